//! SIP over UDP leaves in batches: what one turn of the loop produced for a socket goes
//! out in one `sendmmsg` (a plain call's 180 and 200 are one system call, and a busy
//! turn's answers to many callers are one), instead of a `sendto` each.
//!
//! Nothing waits for a batch that is not full: the batch is sent as the turn ends, before
//! the loop sleeps. A full socket buffer (`EAGAIN`) falls back to tokio's send for that
//! datagram, which waits for room as before; a datagram the kernel refuses (an
//! unreachable address) is logged within the UDP error budget and the rest still go.

use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use std::io::IoSlice;

use super::*;

/// The most datagrams handed to one `sendmmsg` (the kernel's own cap is `UIO_MAXIOV`,
/// 1,024); a turn of the loop rarely produces more.
const MAX_BATCH: usize = 64;

/// The UDP datagrams a turn of the loop produced, per family (`[IPv4, IPv6]`, as
/// [`udp_by_family`]), in the order the switch produced them.
#[derive(Debug, Default)]
pub(in crate::driver) struct UdpOut {
    queued: [Vec<(SocketAddr, Bytes)>; 2],
}

impl UdpOut {
    /// Queues `bytes` for `to`; it leaves with [`Shard::send_udp`].
    pub(super) fn push(&mut self, to: SocketAddr, bytes: Bytes) {
        self.queued[usize::from(to.is_ipv6())].push((to, bytes));
    }
}

impl Shard {
    /// Sends every queued datagram, in order, a batch per system call.
    pub(super) async fn send_udp(&mut self) {
        for family in 0..2 {
            if self.udp_out.queued[family].is_empty() {
                continue;
            }
            let mut queue = std::mem::take(&mut self.udp_out.queued[family]);
            if let Some(udp) = self.udp_by_family[family].clone() {
                send_all(&udp, &queue, |e, to| self.udp_error(e, Some(to))).await;
            }
            queue.clear();
            // The emptied queue keeps its room for the next turn.
            self.udp_out.queued[family] = queue;
        }
    }
}

/// Sends `queue` in order from `udp`, as few system calls as the kernel allows; each
/// datagram the kernel refuses goes to `failed` and the rest still go.
async fn send_all(
    udp: &UdpSocket,
    queue: &[(SocketAddr, Bytes)],
    mut failed: impl FnMut(&std::io::Error, SocketAddr),
) {
    let mut start = 0;
    while let Some(rest) = queue.get(start..).filter(|r| !r.is_empty()) {
        let batch = rest.get(..MAX_BATCH).unwrap_or(rest);
        match send_batch(udp, batch) {
            Ok(sent) => start += sent,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                // The socket's buffer is full: wait for room as tokio does.
                let (to, bytes) = &rest[0];
                if let Err(e) = udp.send_to(bytes, *to).await {
                    failed(&e, *to);
                }
                start += 1;
            }
            Err(e) => {
                // The first datagram of the batch was refused; the rest go on.
                failed(&e.into(), rest[0].0);
                start += 1;
            }
        }
    }
}

/// One `sendmmsg` of `batch` (never empty): how many datagrams the kernel took, at least
/// one. An error is the first datagram's (the kernel reports a later one's as a short
/// count, and again when the rest are sent).
fn send_batch(udp: &UdpSocket, batch: &[(SocketAddr, Bytes)]) -> Result<usize, Errno> {
    if let [(to, bytes)] = batch {
        // One datagram: the plain call, without building headers.
        return rustix::net::sendto(udp, bytes, SendFlags::DONTWAIT, to).map(|_| 1);
    }
    let addrs: Vec<SocketAddrAny> = batch.iter().map(|(to, _)| to.as_any()).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|(_, b)| [IoSlice::new(b)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = batch
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(controls.iter_mut())
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    match sendmmsg(udp, &mut msgs, SendFlags::DONTWAIT)? {
        // Not documented for a non-empty batch; taken as a full buffer, never a spin.
        0 => Err(Errno::AGAIN),
        sent => Ok(sent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(i: usize) -> Bytes {
        Bytes::from(format!("datagram {i}"))
    }

    /// Every datagram a receiver got within a short wait, in order.
    async fn received(socket: &UdpSocket) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf)).await
        {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    }

    #[tokio::test]
    async fn more_datagrams_than_a_batch_arrive_all_and_in_order() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        let queue: Vec<_> = (0..MAX_BATCH * 2 + 3).map(|i| (to, datagram(i))).collect();
        let mut failures = 0;
        send_all(&udp, &queue, |_, _| failures += 1).await;
        let expected: Vec<_> = (0..queue.len()).map(|i| format!("datagram {i}")).collect();
        assert_eq!(received(&peer).await, expected);
        assert_eq!(failures, 0);
    }

    #[tokio::test]
    async fn a_datagram_the_kernel_refuses_is_reported_and_the_rest_still_go() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        // Broadcast without SO_BROADCAST: EACCES (or no route), whatever the host.
        let refused: SocketAddr = "255.255.255.255:9".parse().unwrap();
        let queue = vec![
            (to, datagram(0)),
            (refused, datagram(1)),
            (to, datagram(2)),
            (refused, datagram(3)),
            (to, datagram(4)),
        ];
        let mut failed = Vec::new();
        send_all(&udp, &queue, |_, at| failed.push(at)).await;
        assert_eq!(
            received(&peer).await,
            ["datagram 0", "datagram 2", "datagram 4"]
        );
        assert_eq!(failed, [refused, refused]);
    }
}
