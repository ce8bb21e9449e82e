//! SIP over TCP: one reader task per connection frames messages by Content-Length and
//! hands them to the shard; one writer task per connection sends what the shard wants.
//! Connections are keyed by the remote address, so in-dialog requests and responses reuse
//! the connection the caller opened (RFC 3261 §18.2.2, §18.1.1); when none is open we
//! connect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use concierge_sip::wire::{StreamFramer, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::StreamInput;

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>>>;

pub(super) struct Tcp {
    pub(super) local_addr: SocketAddr,
    writers: Writers,
    to_shard: mpsc::Sender<StreamInput>,
}

impl Tcp {
    pub(super) async fn start(
        addr: SocketAddr,
        to_shard: mpsc::Sender<StreamInput>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let writers: Writers = Arc::default();
        let (w, tx) = (writers.clone(), to_shard.clone());
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        attach(stream, peer, w.clone(), tx.clone());
                    }
                    Err(e) => warn!(error = %e, "TCP accept failed"),
                }
            }
        });
        Ok(Self {
            local_addr,
            writers,
            to_shard,
        })
    }

    /// Open connections (for the metrics).
    pub(super) fn connections(&self) -> usize {
        self.writers.lock().expect("writers lock poisoned").len()
    }

    /// Queues `bytes` for `peer`, connecting first when no connection is open.
    pub(super) fn send(&self, peer: SocketAddr, bytes: Bytes) {
        let existing = self
            .writers
            .lock()
            .expect("writers lock poisoned")
            .get(&peer)
            .cloned();
        if let Some(tx) = existing {
            if tx.send(bytes.clone()).is_ok() {
                return;
            }
        }
        let (writers, to_shard) = (self.writers.clone(), self.to_shard.clone());
        tokio::spawn(async move {
            match TcpStream::connect(peer).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    if let Some(tx) = attach(stream, peer, writers, to_shard) {
                        let _ = tx.send(bytes);
                    }
                }
                Err(e) => warn!(error = %e, %peer, "TCP connect failed; message dropped"),
            }
        });
    }
}

fn attach(
    stream: TcpStream,
    peer: SocketAddr,
    writers: Writers,
    to_shard: mpsc::Sender<StreamInput>,
) -> Option<mpsc::UnboundedSender<Bytes>> {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    writers
        .lock()
        .expect("writers lock poisoned")
        .insert(peer, tx.clone());
    let pong = tx.clone();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if let Err(e) = wr.write_all(&bytes).await {
                debug!(error = %e, %peer, "TCP write failed");
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut framer = StreamFramer::new();
        let mut buf = vec![0u8; 16 * 1024];
        'conn: loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_item() {
                    Ok(None) => break,
                    Ok(Some(StreamItem::Ping)) => {
                        let _ = pong.send(Bytes::from_static(b"\r\n"));
                    }
                    Ok(Some(StreamItem::Message { head, body })) => {
                        if to_shard
                            .send(StreamInput::Message { peer, head, body })
                            .await
                            .is_err()
                        {
                            break 'conn;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, %peer, "unframeable TCP stream; closing the connection");
                        break 'conn;
                    }
                }
            }
        }
        let mut w = writers.lock().expect("writers lock poisoned");
        if w.get(&peer).is_some_and(|t| t.same_channel(&pong)) {
            w.remove(&peer);
        }
    });
    Some(tx)
}
