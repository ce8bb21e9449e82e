//! The switch's RTP to send: every packet — a paced frame or a relayed one — is written
//! once, in place, into a batch the driver will send from ([`RtpBatch`]): header, payload
//! and SRTP tag where they leave, no buffer of their own and no allocation. The batches are
//! handed out whole (`Output::Rtp`) and come back empty ([`crate::Switch::recycle`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::rtp_batch::RtpBatch;

/// Empty batches kept for reuse at most; one more than a drain fills at 4,000 calls.
const SPARE: usize = 4;

/// The batch being written, the full ones not yet handed out, and empty ones to reuse.
#[derive(Debug, Default)]
pub(crate) struct RtpOut {
    filling: Option<RtpBatch>,
    full: VecDeque<RtpBatch>,
    spare: Vec<RtpBatch>,
}

impl RtpOut {
    /// Room for one packet of up to [`crate::MAX_DATAGRAM`] bytes: write it there, then
    /// [`RtpOut::commit`] it (a packet not committed is overwritten by the next). A full
    /// batch is set aside for the driver and the next one started.
    pub(crate) fn room(&mut self) -> &mut [u8] {
        let spare = &mut self.spare;
        let batch = self
            .filling
            .get_or_insert_with(|| spare.pop().unwrap_or_default());
        if batch.spare().is_none() {
            let next = spare.pop().unwrap_or_default();
            self.full.push_back(std::mem::replace(batch, next));
        }
        batch
            .spare()
            .expect("an empty batch has room for the largest datagram")
    }

    /// Keeps the `len` bytes just written into [`RtpOut::room`] as a packet from our
    /// `port` to `to`, written at `at`.
    pub(crate) fn commit(&mut self, port: u16, to: SocketAddr, at: Instant, len: usize) {
        if let Some(batch) = self.filling.as_mut() {
            batch.commit(port, to, at, len);
        }
    }

    /// A batch of packets for the driver to send, in the order they were written; `None`
    /// when no packet is waiting.
    pub(crate) fn take(&mut self) -> Option<RtpBatch> {
        if let Some(full) = self.full.pop_front() {
            return Some(full);
        }
        self.filling.take_if(|b| !b.is_empty())
    }

    /// A batch the driver has sent, to be written into again.
    pub(crate) fn recycle(&mut self, mut batch: RtpBatch) {
        if self.spare.len() < SPARE {
            batch.clear();
            self.spare.push(batch);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;
    use crate::rtp_batch::MAX_DATAGRAM;

    #[test]
    fn packets_fill_batches_in_order_and_the_batches_are_reused() {
        let mut out = RtpOut::default();
        let to: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let now = Instant::now();
        assert!(out.take().is_none(), "nothing written, nothing handed out");
        // More than one batch's worth of the largest packets.
        for i in 0..200u16 {
            let room = out.room();
            room[..2].copy_from_slice(&i.to_be_bytes());
            out.commit(i, to, now, MAX_DATAGRAM);
        }
        let mut seen = Vec::new();
        let mut batches = Vec::new();
        while let Some(b) = out.take() {
            seen.extend(
                b.iter()
                    .map(|(d, p)| (d.port, u16::from_be_bytes([p[0], p[1]]))),
            );
            batches.push(b);
        }
        assert_eq!(batches.len(), 2);
        assert_eq!(seen, (0..200).map(|i| (i, i)).collect::<Vec<_>>());
        for b in batches {
            out.recycle(b);
        }
        // A packet written but not committed is not sent.
        out.room()[0] = 1;
        assert!(out.take().is_none());
        out.commit(7, to, now, 12);
        let b = out.take().unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(out.spare.len(), 1, "the written batch came from the spares");
    }
}
