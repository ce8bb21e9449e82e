//! RTP media for Concierge, sans-IO, with no knowledge of SIP: SDP offer/answer ([`sdp`],
//! the SIP side hands the body over as text), the RTP port pool ([`ports`]), RTP sessions
//! and DTMF detection.
//!
//! The call logic feeds received datagrams to an [`RtpReceiver`] with the time they
//! arrived and gets digits back; it asks an [`RtpSender`] to packetise one frame per ptime
//! on the shard's pacing tick. G.711 goes through [`g711`]; DTMF arrives three ways and is
//! decoded here: RFC 4733 telephone-events ([`telephone_event`]), SIP INFO bodies
//! ([`info_dtmf`], handed over as bytes), and in-band tones ([`goertzel`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod fuzzing;
pub mod g711;
pub mod goertzel;
pub mod info_dtmf;
pub mod ports;
pub mod rtp_stream;
pub mod sdes;
pub mod sdp;
pub mod source;
pub mod srtp;
pub mod telephone_event;

pub use g711::Law;
pub use ports::RtpPorts;
pub use rtp_stream::{Received, RtpReceiver, RtpSender};
pub use sdp::{AudioSession, OfferError};
pub use source::SourcePolicy;
