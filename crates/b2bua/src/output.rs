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
    /// Send one RTP packet from the call's port.
    Rtp {
        port: u16,
        to: std::net::SocketAddr,
        packet: bytes::Bytes,
    },
    /// Perform a flow's HTTP request and report with [`crate::Switch::handle_http_result`].
    Http {
        call: CallRef,
        request: concierge_flow::HttpRequest,
    },
    /// A call ended: append its record.
    Record(Box<CallRecord>),
}
