//! The switch's one calling contract: [`Switch::handle_input`] for everything that
//! happens, [`Switch::poll_output`] for everything to do, ending with the next wake-up.

use std::time::Instant;

use concierge_sip::wire::StatusCode;
use tracing::info;

use super::{Key, Owner, Switch};
use crate::input::{Command, Input};
use crate::output::{Output, PortError};
use crate::record::EndedBy;

impl Switch {
    /// Hands the switch one input that happened at `now` (the time it arrived, not the
    /// time it is handled, when the two differ). Everything the input causes is queued:
    /// drain [`Switch::poll_output`] before the next input.
    ///
    /// `now` must not go backwards between calls; the switch reads no clock of its own.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Datagram { peer, data } => {
                if !self.refuse_early(now, peer, data) {
                    self.shared.endpoint.handle_datagram(now, peer, data);
                }
            }
            Input::Stream {
                peer,
                head,
                body,
                authenticated,
            } => {
                if !self.refuse_early(now, peer, head) {
                    // Everything the message causes is handled within this input (the
                    // pump below drains it), so the flag is scoped to this one message.
                    self.shared.authenticated_input = authenticated;
                    self.shared.endpoint.handle_framed(now, peer, head, body);
                }
            }
            Input::Rtp { port, from, data } => self.on_rtp(now, port, from, data),
            Input::RtpBatch(batch) => {
                for (d, data) in batch.iter() {
                    self.on_rtp(d.at, d.port, d.peer, data);
                }
            }
            Input::PortBound { port } => {
                if let Some(id) = self.books.index.port(port) {
                    self.run(now, id, |call, cx| call.on_port_bound(cx, port));
                }
            }
            Input::PortFailed { port, error } => {
                if error == PortError::InUse {
                    self.shared.ports.retire(port);
                }
                if let Some(id) = self.books.index.port(port) {
                    self.run(now, id, |call, cx| call.on_port_failed(cx, port, error));
                }
            }
            Input::Http { call, result } => {
                self.run(now, call, |call, cx| call.on_http(cx, result));
            }
            Input::Resolved { id, result } => match self.books.index.resolve(id) {
                Some(Owner::Call(call)) => {
                    self.run(now, call, |call, cx| call.on_resolved(cx, id, result));
                }
                Some(Owner::Trunk) => {
                    self.books.index.remove_trunk(Key::Resolve(id));
                    let peers = result.unwrap_or_default();
                    self.shared.trunks.on_resolved(now, id, peers);
                }
                None => {}
            },
            Input::ConnectionLost { peer } => self.shared.trunks.on_connection_lost(now, peer),
            Input::SharedLocks { call, locks } => {
                for lock in locks.iter().flatten() {
                    if self.shared.lockout.lock_for(now, lock) {
                        info!(
                            group = %lock.group,
                            by = lock.subject.kind(),
                            lock_s = lock.remaining.as_secs(),
                            "code entry locked across instances (the shared store's count)"
                        );
                    }
                }
                if let Some(call) = call {
                    self.run(now, call, |call, cx| {
                        call.on_store_answer(cx, locks.is_some())
                    });
                }
            }
            Input::Timeout => self.on_timeout(now),
            Input::Command(command) => self.on_command(now, command),
        }
        // The one place endpoint events reach the calls: whatever the input made the
        // endpoint report (a request, a response, a transaction timeout).
        self.pump(now);
        self.shared.authenticated_input = false;
    }

    /// The next thing the driver must do. Call it after every
    /// [`Switch::handle_input`] until it returns [`Output::Timeout`]: that last output
    /// carries the instant at which to hand in [`Input::Timeout`] (or `None`: nothing is
    /// due until another input arrives). Ending the drain only on `Timeout` means a driver
    /// cannot forget the deadline. RTP comes first, in whole batches ([`Output::Rtp`]).
    pub fn poll_output(&mut self) -> Output {
        if let Some(batch) = self.shared.rtp.take() {
            return Output::Rtp(batch);
        }
        if let Some(o) = self.shared.outputs.pop_front() {
            return o;
        }
        if let Some(t) = self.shared.endpoint.poll_transmit() {
            return Output::Sip(t);
        }
        Output::Timeout(self.next_deadline())
    }

    fn on_command(&mut self, now: Instant, command: Command<'_>) {
        match command {
            Command::Transfer { call, mode, target } => {
                self.run(now, call, |call, cx| call.transfer(cx, mode, target));
            }
            Command::HangUp { call, why } => {
                self.run(now, call, |call, cx| call.hang_up(cx, why));
            }
            Command::HangUpAll { why } => {
                for id in self.calls.refs() {
                    let status = StatusCode::SERVICE_UNAVAILABLE;
                    self.run(now, id, |call, cx| call.end_from_our_side(cx, status, why));
                }
            }
            Command::AbandonAll => {
                for id in self.calls.refs() {
                    let why = "server shut down";
                    self.run(now, id, |call, cx| call.end(cx, EndedBy::Concierge, why));
                }
                self.shared.trunks.abandon();
            }
            Command::Drain => {
                self.draining = true;
                // No new calls: the trunks stop sending them (Expires: 0).
                self.shared.trunks.unregister_all();
            }
            Command::Overloaded(on) => self.admission.set_overloaded(on),
            Command::Peers(load) => self.admission.set_peers(load),
            Command::Install(program) => {
                self.shared.trunks.install(now, &program.trunks);
                self.shared.program = std::sync::Arc::new(*program);
                self.shared.stats.programs_installed += 1;
            }
        }
    }
}
