//! The switch's one calling contract: [`Switch::handle_input`] for everything that
//! happens, [`Switch::poll_output`] for everything to do, ending with the next wake-up.

use std::time::Instant;

use super::Switch;
use crate::input::{Command, Input};
use crate::output::Output;

impl Switch {
    /// Hands the switch one input that happened at `now` (the time it arrived, not the
    /// time it is handled, when the two differ). Everything the input causes is queued:
    /// drain [`Switch::poll_output`] before the next input.
    ///
    /// `now` must not go backwards between calls; the switch reads no clock of its own.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Datagram { peer, data } => self.on_datagram(now, peer, data),
            Input::Stream {
                peer,
                head,
                body,
                authenticated,
            } => {
                // Everything the message causes is handled within this call (pump drains
                // it), so the flag is scoped to this one message.
                self.authenticated_input = authenticated;
                self.on_stream_message(now, peer, head, body);
                self.authenticated_input = false;
            }
            Input::Rtp { port, from, data } => self.on_rtp(now, port, from, data),
            Input::PortBound { port } => self.on_port_bound(now, port),
            Input::PortFailed { port, error } => self.on_port_failed(now, port, error),
            Input::Http { call, result } => self.on_http_result(now, call, result),
            Input::Resolved { id, result } => self.on_resolved(now, id, result),
            Input::Timeout => self.on_timeout(now),
            Input::Command(command) => self.on_command(now, command),
        }
    }

    /// The next thing the driver must do. Call it after every
    /// [`Switch::handle_input`] until it returns [`Output::Timeout`]: that last output
    /// carries the instant at which to hand in [`Input::Timeout`] (or `None`: nothing is
    /// due until another input arrives). Ending the drain only on `Timeout` means a driver
    /// cannot forget the deadline.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        if let Some(t) = self.endpoint.poll_transmit() {
            return Output::Sip(t);
        }
        if let Some(r) = self.resolves.pop_front() {
            return Output::Resolve(r);
        }
        Output::Timeout(self.next_deadline())
    }

    fn on_command(&mut self, now: Instant, command: Command<'_>) {
        match command {
            Command::Transfer { call, mode, target } => self.transfer(now, call, mode, target),
            Command::HangUp { call, why } => self.hang_up(now, call, why),
            Command::HangUpAll { why } => self.hang_up_all(now, why),
            Command::AbandonAll => self.abandon_all(now),
            Command::Drain => self.draining = true,
            Command::Overloaded(on) => self.admission.set_overloaded(on),
            Command::Peers(load) => self.admission.set_peers(load),
            Command::Install(program) => {
                self.program = std::sync::Arc::new(*program);
                self.stats.programs_installed += 1;
            }
        }
    }
}
