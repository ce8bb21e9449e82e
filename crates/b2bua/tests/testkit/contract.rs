//! The switch's inputs and outputs: the one place in the tests that calls a
//! [`concierge_b2bua::Switch`] method. Every input goes through `handle_input` at the kit's
//! now; `poll_output` is drained until it yields the next wake-up, as a driver does.

use std::net::SocketAddr;
use std::time::Instant;

use concierge_b2bua::{
    CallRef, Command, Input, Output, PortError, Program, ResolveId, SharedLock, Switch,
    SwitchConfig, SwitchStats, TransferMode, WallClock,
};
use concierge_flow::{HttpFailure, HttpResponse};
use concierge_sip::wire::{parse_datagram, Transport};
use concierge_sip::Peer;

use super::{HttpCall, Kit, RtpSent, Sent};

/// A switch with `cfg` running `program`, its wall clock `wall`.
pub(super) fn switch(cfg: SwitchConfig, wall: WallClock, program: Program) -> Switch {
    Switch::new(cfg, wall, program)
}

impl Kit {
    /// Hands the switch `input` at the kit's now and takes everything it has to say.
    fn input(&mut self, input: Input<'_>) {
        self.switch.handle_input(self.now, input);
        self.drain();
    }

    /// A SIP datagram from `from`.
    pub(crate) fn sip_from(&mut self, from: SocketAddr, text: &str) {
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        self.input(Input::Datagram {
            peer,
            data: text.as_bytes(),
        });
    }

    /// A SIP message framed from a stream connection of `peer` (TCP, TLS);
    /// `authenticated`: its client certificate was verified.
    pub(crate) fn sip_framed(&mut self, peer: Peer, head: &[u8], body: &[u8], authenticated: bool) {
        self.input(Input::Stream {
            peer,
            head,
            body,
            authenticated,
        });
    }

    /// A datagram from `from` on our RTP port `port`.
    pub(crate) fn rtp_in(&mut self, port: u16, from: SocketAddr, packet: &[u8]) {
        self.input(Input::Rtp {
            port,
            from,
            data: packet,
        });
    }

    pub(super) fn input_http(&mut self, call: CallRef, result: Result<HttpResponse, HttpFailure>) {
        self.input(Input::Http { call, result });
    }

    /// Answers the oldest name lookup the switch asked for.
    pub(crate) fn resolved(&mut self, result: Result<Vec<Peer>, String>) {
        let r = self.resolves.pop_front().expect("a name to resolve");
        self.answer_resolve(r.id, result);
    }

    /// Answers name lookup `id` (taken from [`Self::resolves`] already, or a duplicate).
    pub(crate) fn answer_resolve(&mut self, id: ResolveId, result: Result<Vec<Peer>, String>) {
        self.input(Input::Resolved { id, result });
    }

    /// The shared store's word on lockouts: the answer to `call`'s check, or (no call)
    /// the locks a reported failure brought about; `None`: the store did not answer.
    pub(crate) fn shared_locks(&mut self, call: Option<CallRef>, locks: Option<Vec<SharedLock>>) {
        self.input(Input::SharedLocks { call, locks });
    }

    /// One turn of the contract exactly as a driver sees it, for a test that shows the
    /// contract itself: `input` at the kit's now, then every output up to the `Timeout`
    /// that ends the drain, returned as they came — nothing is bound, captured or
    /// answered — and the `Timeout`'s instant, which becomes the kit's next wake-up.
    pub(crate) fn turn(&mut self, input: Input<'_>) -> (Vec<Output>, Option<Instant>) {
        self.switch.handle_input(self.now, input);
        let mut outputs = Vec::new();
        loop {
            match self.switch.poll_output() {
                Output::Timeout(at) => {
                    self.deadline = at;
                    return (outputs, at);
                }
                other => outputs.push(other),
            }
        }
    }

    /// Moves virtual time to the switch's next wake-up and hands in `Input::Timeout`
    /// there, as [`Self::turn`] does.
    pub(crate) fn wake(&mut self) -> (Vec<Output>, Option<Instant>) {
        self.now = self.deadline.expect("a deadline");
        self.turn(Input::Timeout)
    }

    /// Takes what the switch has to say before any input (its trunks' first requests).
    pub(super) fn settle(&mut self) {
        self.drain();
    }

    /// The TCP or TLS connection to `peer` closed.
    pub(crate) fn connection_lost(&mut self, peer: Peer) {
        self.input(Input::ConnectionLost { peer });
    }

    /// Starts draining (new calls refused, trunks un-registered) and reports whether the
    /// switch is idle then.
    pub(crate) fn drain_now(&mut self) -> bool {
        self.command(Command::Drain);
        self.switch.is_idle()
    }

    /// The wake-up the last drain ended with.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn fire(&mut self) {
        self.input(Input::Timeout);
    }

    /// Drains the switch's outputs until its wake-up time, as a driver does. Ports it asks
    /// for are bound after the drain (or fail, when another program holds them) and
    /// reported as inputs, whose outputs are drained in turn.
    fn drain(&mut self) {
        loop {
            let mut to_bind = Vec::new();
            loop {
                match self.switch.poll_output() {
                    Output::Timeout(at) => {
                        self.deadline = at;
                        break;
                    }
                    Output::MediaOpen { port } => {
                        self.opened.push(port);
                        to_bind.push(port);
                    }
                    other => self.take(other),
                }
            }
            if self.binds_late {
                self.late_binds.append(&mut to_bind);
            }
            if to_bind.is_empty() {
                return;
            }
            for port in to_bind {
                let input = self.bind(port);
                self.switch.handle_input(self.now, input);
            }
        }
    }

    /// Binds `port` as the driver would: it fails when another program holds it.
    fn bind(&mut self, port: u16) -> Input<'static> {
        if self.held_ports.contains(&port) {
            return Input::PortFailed {
                port,
                error: PortError::InUse,
            };
        }
        self.open_ports.push(port);
        Input::PortBound { port }
    }

    /// The slow driver (`binds_late`) binds the ports it was asked for now.
    pub(crate) fn bind_late(&mut self) {
        for port in std::mem::take(&mut self.late_binds) {
            let input = self.bind(port);
            self.input(input);
        }
    }

    fn take(&mut self, output: Output) {
        match output {
            Output::Sip(t) if t.bytes.as_ref() == b"\r\n\r\n" => {
                self.keepalives.push((self.now, t.peer));
            }
            Output::Sip(t) => {
                let message = parse_datagram(&t.bytes)
                    .expect("the switch sends valid SIP")
                    .expect("a whole message");
                self.sip.push(Sent {
                    at: self.now,
                    to: t.peer.addr,
                    transport: t.peer.transport,
                    message,
                    read: false,
                });
            }
            Output::Record(r) => self.records.push(*r),
            Output::Event(e) => self.events.push(*e),
            Output::MediaClose { port } => {
                self.closed.push(port);
                self.open_ports.retain(|p| *p != port);
            }
            Output::Rtp(batch) => {
                self.rtp_count += batch.len() as u64;
                for (d, packet) in batch.iter().filter(|_| self.keep_rtp) {
                    self.rtp.push(RtpSent {
                        at: self.now,
                        port: d.port,
                        to: d.peer,
                        packet: bytes::Bytes::copy_from_slice(packet),
                    });
                }
                self.switch.recycle(batch);
            }
            Output::Http { call, request } => {
                let call = HttpCall {
                    call,
                    request: *request,
                    at: self.now,
                };
                self.http_log.push(call.clone());
                self.http.push_back(call);
            }
            Output::Resolve(r) => self.resolves.push_back(r),
            Output::Trunks(statuses) => self.trunk_reports.push(statuses),
            Output::LockoutCheck {
                call,
                groups,
                subjects,
            } => self.lockout_checks.push(super::LockoutCheck {
                call,
                groups,
                subjects,
                at: self.now,
            }),
            Output::LockoutFailure { group, subjects } => {
                self.lockout_failures.push((group, subjects));
            }
            Output::MediaOpen { .. } | Output::Timeout(_) => {
                unreachable!("handled by the drain")
            }
        }
    }

    fn command(&mut self, command: Command<'_>) {
        self.input(Input::Command(command));
    }

    /// Stop taking calls (new INVITEs get 503); calls in progress run to their end.
    pub(crate) fn start_draining(&mut self) {
        self.command(Command::Drain);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.switch.is_draining()
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.switch.is_idle()
    }

    pub(crate) fn call_count(&self) -> usize {
        self.switch.call_count()
    }

    pub(crate) fn stats(&self) -> SwitchStats {
        self.switch.stats()
    }

    pub(crate) fn refused_invites(&self) -> u64 {
        self.switch.refused_invites()
    }

    /// Installs a new program (a reload).
    pub(crate) fn set_program(&mut self, program: Program) {
        self.command(Command::Install(Box::new(program)));
    }

    pub(crate) fn set_overloaded(&mut self, on: bool) {
        self.command(Command::Overloaded(on));
    }

    /// What the other instances sharing state carry (the driver's heartbeat).
    pub(crate) fn set_peers(&mut self, load: concierge_b2bua::PeerLoad) {
        self.command(Command::Peers(load));
    }

    /// The switch's name for the call with Call-ID `call_id`.
    pub(crate) fn call_ref(&self, call_id: &str) -> CallRef {
        self.switch
            .find_call(call_id)
            .unwrap_or_else(|| panic!("no call {call_id} in the switch"))
    }

    /// Moves the call `call_id` to `target` (the driver's transfer command).
    pub(crate) fn transfer(&mut self, call_id: &str, mode: TransferMode, target: &str) {
        let call = self.call_ref(call_id);
        self.command(Command::Transfer { call, mode, target });
    }

    /// Ends the answered call `call_id` from our side with BYE.
    pub(crate) fn hang_up(&mut self, call_id: &str, why: &str) {
        let call = self.call_ref(call_id);
        self.command(Command::HangUp { call, why });
    }

    /// Ends every call (a shutdown): BYE or 503.
    pub(crate) fn hang_up_all(&mut self, why: &str) {
        self.command(Command::HangUpAll { why });
    }

    /// Drops every call still here, each with its record (the last step of a shutdown).
    pub(crate) fn abandon_all(&mut self) {
        self.command(Command::AbandonAll);
    }
}
