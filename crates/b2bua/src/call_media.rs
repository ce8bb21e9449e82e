//! A call's media as the switch sees it: the RTP receiver and sender once the SDP
//! exchange settled them, and the digits that arrived by any of the three ways.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use concierge_media::{Law, Received, RtpReceiver, RtpSender};

use crate::offer_answer::AudioSession;

/// How a digit reached us, as call records name it.
pub(crate) const RFC4733: &str = "rfc4733";
pub(crate) const INFO: &str = "info";
pub(crate) const INBAND: &str = "inband";

#[derive(Debug, Default)]
pub(crate) struct CallMedia {
    pub(crate) receiver: Option<RtpReceiver>,
    pub(crate) sender: Option<RtpSender>,
    pub(crate) law: Option<Law>,
    /// Every digit of the call with its source, for the record.
    pub(crate) digits: Vec<(char, &'static str)>,
    /// Digits not yet taken by the flow.
    pub(crate) pending: VecDeque<char>,
}

impl CallMedia {
    /// Sets up RTP for the agreed session. `ssrc`, `seq`, `ts` are the call's random starts.
    pub(crate) fn start(
        &mut self,
        audio: &AudioSession,
        ssrc: u32,
        seq: u16,
        ts: u32,
        latching: bool,
    ) {
        let law = Law::from_payload_type(audio.payload_type).unwrap_or(Law::Ulaw);
        self.law = Some(law);
        self.receiver = Some(RtpReceiver::new(
            law,
            audio.payload_type,
            audio.telephone_event,
            audio.remote,
            latching,
        ));
        if self.sender.is_none() {
            self.sender = Some(RtpSender::new(ssrc, seq, ts, audio.payload_type));
        }
    }

    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<char> {
        let receiver = self.receiver.as_mut()?;
        let (digit, source) = match receiver.handle_datagram(now, from, data) {
            Received::EventDigit(d) => (d, RFC4733),
            Received::ToneDigit(d) => (d, INBAND),
            _ => return None,
        };
        self.add_digit(digit, source);
        Some(digit)
    }

    pub(crate) fn add_digit(&mut self, digit: char, source: &'static str) {
        self.digits.push((digit, source));
        self.pending.push_back(digit);
    }

    pub(crate) fn remote(&self) -> Option<SocketAddr> {
        self.receiver.as_ref().and_then(RtpReceiver::remote)
    }
}
