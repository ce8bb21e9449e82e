//! A leg's RTP port: taken from the pool, bound by the driver before any SDP names it (a
//! port another program holds is retired and the next one tried), and given back — resting
//! first — once the leg no longer needs it. One rule for both legs, so neither can spin
//! through the pool.

use crate::call::Cx;
use crate::output::{Output, PortError};
use crate::switch::Key;

/// Ports tried for one leg before it gives up (the caller's call is then refused with 503).
pub(crate) const MAX_PORT_ATTEMPTS: u8 = 8;

/// Which port a leg holds and whether the driver bound it.
#[derive(Debug, Default)]
pub(crate) struct LegPort {
    port: Option<u16>,
    bound: bool,
    /// Ports tried so far.
    tried: u8,
}

impl LegPort {
    /// The port the leg holds (bound or not yet).
    pub(crate) fn number(&self) -> Option<u16> {
        self.port
    }

    /// The port, once the driver bound it: only then may an SDP name it.
    pub(crate) fn bound(&self) -> Option<u16> {
        self.port.filter(|_| self.bound)
    }

    /// The leg holds a port the driver has not bound yet.
    pub(crate) fn is_binding(&self) -> bool {
        self.port.is_some() && !self.bound
    }

    pub(crate) fn is(&self, port: u16) -> bool {
        self.port == Some(port)
    }

    /// Asks the driver to bind `port` for this leg (`Output::MediaOpen`).
    pub(crate) fn open(&mut self, cx: &mut Cx<'_>, port: u16) {
        self.port = Some(port);
        self.bound = false;
        self.tried += 1;
        cx.index(Key::Port(port));
        cx.emit(Output::MediaOpen { port });
    }

    /// The driver bound it.
    pub(crate) fn set_bound(&mut self) {
        self.bound = true;
    }

    /// The driver could not bind the leg's port: it goes back to the pool unless another
    /// program holds it (the switch retired it), and the next one is asked for. `None`
    /// once the leg tried [`MAX_PORT_ATTEMPTS`] or the pool is empty.
    pub(crate) fn rebind(&mut self, cx: &mut Cx<'_>, error: PortError) -> Option<u16> {
        let failed = self.port.take()?;
        cx.unindex(Key::Port(failed));
        if error == PortError::Other {
            cx.ports.release(failed, cx.now);
        }
        let next = (self.tried < MAX_PORT_ATTEMPTS)
            .then(|| cx.ports.allocate(cx.now))
            .flatten()?;
        self.open(cx, next);
        Some(next)
    }

    /// Forgets a port that could not be bound, without asking for another.
    pub(crate) fn drop_failed(&mut self, cx: &mut Cx<'_>, error: PortError) {
        if let Some(port) = self.port.take() {
            cx.unindex(Key::Port(port));
            if error == PortError::Other {
                cx.ports.release(port, cx.now);
            }
        }
    }

    /// Gives the port back to the pool (it rests first) and closes its socket.
    pub(crate) fn close(&mut self, cx: &mut Cx<'_>) {
        if let Some(port) = self.port.take() {
            self.bound = false;
            cx.unindex(Key::Port(port));
            cx.ports.release(port, cx.now);
            cx.emit(Output::MediaClose { port });
        }
    }
}
