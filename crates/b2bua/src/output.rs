use concierge_sip::Transmit;

use crate::record::CallRecord;

/// A call inside one [`crate::Switch`]: stable for the call's life, never reused.
pub type CallRef = u64;

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send SIP bytes.
    Sip(Transmit),
    /// Bind a UDP socket for a call's RTP on this port of the media address.
    MediaOpen { port: u16 },
    /// The call is over: close that socket.
    MediaClose { port: u16 },
    /// A call ended: append its record.
    Record(Box<CallRecord>),
}
