//! SIP over UDP arrives in batches: one `recvmmsg` takes what is waiting on the socket, up
//! to [`BATCH`] datagrams, instead of a `recvfrom` each and one more to find the socket
//! empty. At 6,000 calls a second (18,000 datagrams) that is about 1,700 reads instead of
//! 19,700; the answers of a turn leave together too (`send.rs`).

use std::cell::RefCell;
use std::io::IoSliceMut;
use std::net::{SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::Interest;

use super::*;

/// The most datagrams one `recvmmsg` takes.
pub(super) const BATCH: usize = 32;

/// Room for one datagram: the largest UDP payload, so none is ever cut short.
pub(super) const SLOT: usize = 65_536;

thread_local! {
    /// `recvmmsg`'s headers, made once per thread: nix's hold raw pointers, so they are not
    /// `Send` and cannot live in the shard's future across an await.
    static HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BATCH, None));
}

/// The shard's receive buffer: [`BATCH`] slots of [`SLOT`] bytes (pages the kernel never
/// writes to are never touched).
pub(super) fn buffer() -> Vec<u8> {
    vec![0u8; BATCH * SLOT]
}

/// What one read took: each datagram's sender and length, in the order they arrived; the
/// bytes are in the buffer's slots, the i-th in slot i.
pub(super) struct Received {
    /// `None` for a sender that is neither IPv4 nor IPv6, which an IP socket never reports.
    pub(super) datagrams: [(Option<SocketAddr>, usize); BATCH],
    pub(super) count: usize,
    /// The socket had no more waiting.
    pub(super) emptied: bool,
}

/// Reads what waits on `udp` into `buf`'s slots, without waiting. A read that found fewer
/// datagrams than it had room for emptied the socket: tokio is told so (as `WouldBlock`),
/// so it waits for the next datagram's readiness instead of asking the kernel once more.
pub(super) fn read_batch(udp: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Received> {
    let mut received = Received {
        datagrams: [(None, 0); BATCH],
        count: 0,
        emptied: false,
    };
    let fd = udp.as_raw_fd();
    let result = udp.try_io(Interest::READABLE, || {
        let n = read_into(fd, buf, &mut received.datagrams)?;
        received.count = n;
        if n < BATCH {
            received.emptied = true;
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(received),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            received.emptied = true;
            Ok(received)
        }
        Err(e) => Err(e),
    }
}

/// One `recvmmsg` of up to [`BATCH`] datagrams into `buf`'s slots; their senders and
/// lengths go to `into`.
fn read_into(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    into: &mut [(Option<SocketAddr>, usize); BATCH],
) -> std::io::Result<usize> {
    HEADERS.with_borrow_mut(|headers| {
        let mut slots = buf.chunks_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
        let results = recvmmsg(fd, headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
            .map_err(std::io::Error::from)?;
        let mut count = 0;
        for (slot, msg) in into.iter_mut().zip(results) {
            let from = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::V4(SocketAddrV4::from(*v4)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
                    })
            });
            *slot = (from, msg.bytes);
            count += 1;
        }
        Ok(count)
    })
}

/// The bytes of the i-th datagram a read took.
pub(super) fn slot(buf: &[u8], i: usize, len: usize) -> &[u8] {
    buf.get(i * SLOT..)
        .and_then(|s| s.get(..len.min(SLOT)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `udp` until `n` datagrams came, as the shard does: wait for readiness, read.
    async fn read_n(udp: &UdpSocket, n: usize) -> (Vec<(SocketAddr, Vec<u8>)>, bool) {
        let mut buf = buffer();
        let mut got = Vec::new();
        let mut emptied = false;
        while got.len() < n {
            udp.readable().await.unwrap();
            let r = read_batch(udp, &mut buf).unwrap();
            for (i, (peer, len)) in r.datagrams[..r.count].iter().enumerate() {
                got.push((peer.unwrap(), slot(&buf, i, *len).to_vec()));
            }
            emptied = r.emptied;
        }
        (got, emptied)
    }

    #[tokio::test]
    async fn a_read_takes_the_waiting_datagrams_in_arrival_order_a_batch_at_a_time() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let n = 3 * BATCH + 5;
        for i in 0..n {
            let datagram = format!("datagram {i}");
            sender
                .send_to(datagram.as_bytes(), udp.local_addr().unwrap())
                .unwrap();
        }
        let (got, emptied) = read_n(&udp, n).await;
        let from = sender.local_addr().unwrap();
        let want: Vec<_> = (0..n)
            .map(|i| (from, format!("datagram {i}").into_bytes()))
            .collect();
        assert_eq!(got, want);
        assert!(
            emptied,
            "the last read found fewer than a batch: the socket is empty"
        );
    }

    #[tokio::test]
    async fn the_largest_datagram_arrives_whole() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let big = vec![b'x'; 65_507];
        sender.send_to(&big, udp.local_addr().unwrap()).unwrap();
        sender.send_to(b"after", udp.local_addr().unwrap()).unwrap();
        let (got, _) = read_n(&udp, 2).await;
        assert_eq!(got[0].1, big);
        assert_eq!(got[1].1, b"after");
    }

    #[tokio::test]
    async fn an_empty_socket_reads_nothing_and_is_reported_empty() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let r = read_batch(&udp, &mut buffer()).unwrap();
        assert_eq!((r.count, r.emptied), (0, true));
    }

    #[tokio::test]
    async fn after_a_read_found_the_socket_empty_the_next_datagram_still_wakes_the_reader() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"first", udp.local_addr().unwrap()).unwrap();
        let (got, emptied) = read_n(&udp, 1).await;
        assert_eq!((got[0].1.as_slice(), emptied), (&b"first"[..], true));
        sender
            .send_to(b"second", udp.local_addr().unwrap())
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(10), read_n(&udp, 1)).await;
        assert_eq!(waited.expect("readiness came back").0[0].1, b"second");
    }
}
