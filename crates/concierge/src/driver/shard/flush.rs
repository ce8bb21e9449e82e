//! Carrying out what the switch asks, until it names its next deadline.

use super::*;

impl Shard {
    /// Does what the switch asks until it names its next deadline, and returns that.
    /// A port bound (or not) is reported once the drain is over, as its own input, so the
    /// switch is never re-entered mid-drain.
    pub(super) async fn flush(&mut self) -> Option<std::time::Instant> {
        let mut ports = Vec::new();
        loop {
            match self.switch.poll_output() {
                Output::Timeout(at) => {
                    if ports.is_empty() {
                        // The records of the calls this turn ended are on disk before the
                        // messages that end them leave.
                        self.records.write_pending();
                        self.send_udp().await;
                        self.rtp.flush();
                        // The batches sent meanwhile, for the switch's next packets.
                        while let Some(batch) = self.rtp.sent() {
                            self.switch.recycle(batch);
                        }
                        return at;
                    }
                    let now = std::time::Instant::now();
                    for input in ports.drain(..) {
                        self.switch.handle_input(now, input);
                    }
                }
                Output::Sip(t) => match t.peer.transport {
                    Transport::Udp => self.udp_out.push(t.peer.addr, t.bytes),
                    Transport::Tls => self.tls.send(t.peer.addr, t.bytes),
                    _ => match &self.tcp {
                        Some(tcp) => tcp.send(t.peer.addr, t.bytes),
                        None => warn!(to = %t.peer.addr, "no TCP transport for this message"),
                    },
                },
                Output::Record(record) => {
                    if let Some(load) = &self.local_load {
                        load.call_ended();
                    }
                    self.metrics.observe_record(&record);
                    self.records.write(&record);
                }
                Output::Event(event) => self.records.event(&event),
                Output::MediaOpen { port } => match self.rtp.open(port) {
                    Ok(()) => ports.push(Input::PortBound { port }),
                    Err(e) => {
                        let error = if e.kind() == std::io::ErrorKind::AddrInUse {
                            PortError::InUse
                        } else {
                            PortError::Other
                        };
                        // Out of descriptors or ports, one a call: a few lines, then a count.
                        log_within(
                            &mut self.bind_errors,
                            "RTP ports that could not be bound",
                            || warn!(error = %e, port, "cannot bind the RTP port"),
                        );
                        ports.push(Input::PortFailed { port, error });
                    }
                },
                Output::MediaClose { port } => self.rtp.close(port),
                Output::Rtp(batch) => {
                    self.metrics.rtp_sent_many(batch.len() as u64);
                    if let Some(dropped) = self.rtp.send(batch) {
                        self.switch.recycle(dropped);
                    }
                }
                Output::Http { call, request } => {
                    let (client, tx) = (self.http.clone(), self.http_tx.clone());
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        let result =
                            crate::shared::perform(&client, shared.as_ref(), *request).await;
                        let _ = tx.send((call, result)).await;
                    });
                }
                Output::Trunks(trunks) => self.report_trunks(trunks),
                ask @ (Output::LockoutCheck { .. } | Output::LockoutFailure { .. }) => {
                    // Sent only with [shared]; without a store the call's deadline moves it on.
                    if let Some(store) = &self.store_lockout {
                        store.ask(ask);
                    }
                }
                Output::Resolve(resolve) => {
                    let (resolver, tx) = (self.resolver.clone(), self.dns_tx.clone());
                    let names = self.tls.server_names();
                    tokio::spawn(async move {
                        let result = match resolver {
                            Some(r) => r.locate(&resolve.uri).await.map_err(|e| e.to_string()),
                            None => Err("no DNS resolver configured".to_owned()),
                        };
                        // RFC 5922: a TLS target is verified against the domain it was found
                        // under, so the driver remembers which name each address came from.
                        if let Ok(peers) = &result {
                            for p in peers.iter().filter(|p| p.transport == Transport::Tls) {
                                names.insert(p.addr, resolve.uri.host());
                            }
                        }
                        let _ = tx.send((resolve.id, result)).await;
                    });
                }
            }
        }
    }
}
