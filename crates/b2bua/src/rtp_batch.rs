//! RTP datagrams in bulk, across the switch's contract both ways: many datagrams back to
//! back in one buffer, each with its port and peer — received ones handed in with
//! [`crate::Input::RtpBatch`], the switch's own packets handed out with
//! [`crate::Output::Rtp`]. A batch is allocated once and then passed back and forth for
//! the life of the process (the driver's RTP thread fills and sends them, the switch writes
//! its packets straight into them and gets them back with [`crate::Switch::recycle`]), so
//! no packet costs an allocation on either side.

use std::net::SocketAddr;
use std::time::Instant;

/// The largest datagram a batch takes whole: what the driver reads into
/// [`RtpBatch::spare`] (the rest of a longer one is cut off by the kernel; an RTP packet on
/// an Ethernet path is at most about 1,500 bytes), and the room the switch writes one
/// packet in.
pub const MAX_DATAGRAM: usize = 2048;

/// Bytes one batch holds: 128 datagrams of the largest size, or about 1,500 G.711 packets.
const CAPACITY: usize = 256 * 1024;

/// At most this many datagrams ride in one batch, whatever their size.
const MAX_PACKETS: usize = 1024;

/// One datagram's place in a batch, with where it came from or goes to.
#[derive(Debug, Clone, Copy)]
pub struct RtpDatagram {
    /// Our RTP port it arrived on, or leaves from.
    pub port: u16,
    /// The source of a received datagram; the destination of one to send.
    pub peer: SocketAddr,
    /// When it arrived (received), or when the switch wrote it (to send).
    pub at: Instant,
    start: u32,
    len: u32,
}

/// Datagrams back to back in one reused buffer (see the module docs).
pub struct RtpBatch {
    /// Always `CAPACITY` long (zeroed once); `used` bytes of it hold datagrams.
    bytes: Vec<u8>,
    used: usize,
    datagrams: Vec<RtpDatagram>,
}

impl std::fmt::Debug for RtpBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpBatch")
            .field("datagrams", &self.datagrams.len())
            .field("bytes", &self.used)
            .finish()
    }
}

impl Default for RtpBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpBatch {
    /// An empty batch, its whole buffer allocated now (256 KiB, up to 1,024 datagrams).
    pub fn new() -> Self {
        Self {
            bytes: vec![0; CAPACITY],
            used: 0,
            datagrams: Vec::with_capacity(MAX_PACKETS),
        }
    }

    /// Datagrams in the batch.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// Whether it holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Empties the batch for reuse; the buffer stays allocated.
    pub fn clear(&mut self) {
        self.used = 0;
        self.datagrams.clear();
    }

    /// Whether a datagram of `len` bytes still fits.
    fn has_room(&self, len: usize) -> bool {
        self.datagrams.len() < MAX_PACKETS && CAPACITY - self.used >= len
    }

    /// Copies `data` in as one datagram. `false` (and nothing copied) when it does not fit.
    pub fn push(&mut self, port: u16, peer: SocketAddr, at: Instant, data: &[u8]) -> bool {
        if !self.has_room(data.len()) {
            return false;
        }
        let Some(room) = self.bytes.get_mut(self.used..self.used + data.len()) else {
            return false;
        };
        room.copy_from_slice(data);
        self.commit(port, peer, at, data.len());
        true
    }

    /// Room for one datagram of up to [`MAX_DATAGRAM`] bytes, written in place and kept
    /// with [`RtpBatch::commit`] (or left, and overwritten by the next). `None` when the
    /// batch is full.
    pub fn spare(&mut self) -> Option<&mut [u8]> {
        if !self.has_room(MAX_DATAGRAM) {
            return None;
        }
        self.bytes.get_mut(self.used..self.used + MAX_DATAGRAM)
    }

    /// Keeps the `len` bytes just written at the start of [`RtpBatch::spare`] as a
    /// datagram. `len` is at most [`MAX_DATAGRAM`], and `spare` said there was room.
    pub fn commit(&mut self, port: u16, peer: SocketAddr, at: Instant, len: usize) {
        let len = len.min(MAX_DATAGRAM).min(CAPACITY - self.used);
        // Both fit in u32: `used + len` never exceeds CAPACITY.
        self.datagrams.push(RtpDatagram {
            port,
            peer,
            at,
            start: self.used as u32,
            len: len as u32,
        });
        self.used += len;
    }

    /// The datagrams in the order they were added, each with its bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&RtpDatagram, &[u8])> {
        self.datagrams.iter().map(|d| {
            let range = d.start as usize..(d.start + d.len) as usize;
            (d, self.bytes.get(range).unwrap_or_default())
        })
    }

    /// When the earliest datagram in the batch arrived (or was written).
    pub fn oldest(&self) -> Option<Instant> {
        self.datagrams.iter().map(|d| d.at).min()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    #[test]
    fn datagrams_come_back_in_order_with_their_bytes() {
        let mut b = RtpBatch::new();
        let now = Instant::now();
        assert!(b.push(10, addr(), now, b"first"));
        let room = b.spare().unwrap();
        room[..6].copy_from_slice(b"second");
        b.commit(12, addr(), now, 6);
        let got: Vec<(u16, Vec<u8>)> = b.iter().map(|(d, p)| (d.port, p.to_vec())).collect();
        assert_eq!(got, vec![(10, b"first".to_vec()), (12, b"second".to_vec())]);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.iter().count(), 0);
    }

    #[test]
    fn a_full_batch_refuses_more_and_copies_nothing() {
        let mut b = RtpBatch::new();
        let now = Instant::now();
        let big = vec![7u8; MAX_DATAGRAM];
        let mut n = 0;
        while b.push(1, addr(), now, &big) {
            n += 1;
        }
        assert_eq!(n, CAPACITY / MAX_DATAGRAM);
        assert!(b.spare().is_none());
        assert_eq!(b.len(), n);
        // The packet count caps a batch of small datagrams too.
        let mut small = RtpBatch::new();
        while small.push(1, addr(), now, b"x") {}
        assert_eq!(small.len(), MAX_PACKETS);
    }
}
