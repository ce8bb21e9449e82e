//! The shard task: one loop around the one [`Switch`] — wait for what happened (SIP,
//! RTP batches, HTTP, DNS, the shared store, reloads, shutdown, the next deadline), hand it
//! in with its time, drain the outputs (`flush.rs`), and tell the switch when the loop falls
//! behind (`load.rs`).

mod flush;
mod load;
mod receive;
pub(super) mod send;

use super::*;

/// Why the calls left at shutdown were hung up, in their records.
const SHUTTING_DOWN: &str = "server shutting down";

/// After hanging up at shutdown, how long BYEs may take before the calls are dropped.
const BYE_GRACE: Duration = Duration::from_secs(4);

pub(super) struct Shard {
    pub(super) switch: Switch,
    pub(super) records: records::Records,
    pub(super) http: HttpClient,
    /// The store `[shared]` names: the HTTP path asks its lookup cache.
    pub(super) shared: Option<Shared>,
    /// What the heartbeat reports as this instance's load (with `shared` only).
    pub(super) local_load: Option<Arc<LocalLoad>>,
    /// The other instances' load after each heartbeat, for the switch.
    pub(super) peers_rx: mpsc::Receiver<concierge_b2bua::PeerLoad>,
    /// Asks the store about lockouts for the switch (with `shared` only).
    pub(super) store_lockout: Option<lockout::StoreLockout>,
    /// What the store said about them.
    pub(super) locks_rx: mpsc::Receiver<lockout::LockAnswer>,
    pub(super) http_tx: mpsc::Sender<(CallRef, Result<HttpResponse, HttpFailure>)>,
    pub(super) http_rx: mpsc::Receiver<(CallRef, Result<HttpResponse, HttpFailure>)>,
    /// Looks up named bridge targets; `None` when the system's DNS config is unreadable.
    pub(super) resolver: Option<Arc<crate::dns::SipResolver>>,
    pub(super) dns_tx: mpsc::Sender<DnsAnswer>,
    pub(super) dns_rx: mpsc::Receiver<DnsAnswer>,
    pub(super) rtp: rtp::RtpSockets,
    /// Received RTP, in batches from the RTP thread.
    pub(super) rtp_rx: mpsc::Receiver<RtpBatch>,
    pub(super) udp: Option<Arc<UdpSocket>>,
    /// What the UDP sockets of the other `[sip] listen` addresses (IPv6 beside IPv4)
    /// received.
    pub(super) extra_udp_rx: mpsc::Receiver<(SocketAddr, Bytes)>,
    /// The socket each family's datagrams leave from, `[IPv4, IPv6]` ([`udp_by_family`]).
    pub(super) udp_by_family: [Option<Arc<UdpSocket>>; 2],
    /// The UDP datagrams of this turn of the loop, sent in batches as it ends.
    pub(super) udp_out: send::UdpOut,
    pub(super) tcp: Option<tcp::Tcp>,
    /// SIP over TLS: the listener's connections, and outbound ones to `sips:` targets.
    pub(super) tls: tcp::Tcp,
    pub(super) stream_rx: mpsc::Receiver<StreamInput>,
    pub(super) shutdown: watch::Receiver<Shutdown>,
    pub(super) drain_timeout: Duration,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    pub(super) programs: mpsc::Receiver<Program>,
    /// `[sip] allow` / `deny`.
    pub(super) acl: Acl,
    /// What the switch was last told about overload.
    pub(super) overloaded: bool,
    /// When the overload warning was last logged.
    pub(super) overload_logged: Option<Instant>,
    /// When the SIP socket was last found empty.
    pub(super) sip_drained_at: Instant,
    /// How long the last RTP packet handled had waited since it arrived.
    pub(super) rtp_lag: Duration,
    /// UDP send/receive errors: a peer can cause one per datagram (ICMP unreachable for
    /// answers to spoofed sources), so they are logged within a budget.
    pub(super) udp_errors: concierge_sip::LogLimiter,
    /// RTP ports the kernel would not bind (another program's, or no descriptor left).
    pub(super) bind_errors: concierge_sip::LogLimiter,
}

impl Shard {
    pub(super) async fn run(mut self) {
        let mut buf = receive::buffer();
        let mut drain_deadline: Option<Instant> = None;
        // Whether the remaining calls were hung up; the next deadline then drops them.
        let mut hung_up = false;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let mut next = self.flush().await;
        loop {
            let wake = next.map(Instant::from_std).unwrap_or(far);
            let wake = drain_deadline.map_or(wake, |d| wake.min(d));
            tokio::select! {
                r = sip_readable(self.udp.as_deref()) => match r {
                    Ok(()) => {
                        let emptied = self.take_waiting_datagrams(&mut buf);
                        self.report_load(emptied);
                    }
                    Err(e) => self.udp_error(&e, None),
                },
                Some(input) = self.stream_rx.recv() => match input {
                    StreamInput::Message { peer, head, body, transport, authenticated } => {
                        if self.acl.permits(peer.ip()) {
                            let peer = Peer { transport, addr: peer };
                            let input = Input::Stream { peer, head: &head, body: &body, authenticated };
                            self.switch.handle_input(std::time::Instant::now(), input);
                        }
                    }
                    StreamInput::Closed { peer, transport } => {
                        let input = Input::ConnectionLost { peer: Peer { transport, addr: peer } };
                        self.switch.handle_input(std::time::Instant::now(), input);
                    }
                },
                Some((from, data)) = self.extra_udp_rx.recv() => self.handle_udp(from, &data),
                Some((call, result)) = self.http_rx.recv() => {
                    self.switch.handle_input(std::time::Instant::now(), Input::Http { call, result });
                }
                Some(program) = self.programs.recv() => {
                    info!(calls = self.switch.call_count(), "new flows installed; calls in progress keep theirs");
                    let install = Input::Command(Command::Install(Box::new(program)));
                    self.switch.handle_input(std::time::Instant::now(), install);
                }
                Some(load) = self.peers_rx.recv() => {
                    self.metrics.set_shared_peer_calls(load.calls as u64);
                    self.switch.handle_input(std::time::Instant::now(), Input::Command(Command::Peers(load)));
                }
                Some((call, locks)) = self.locks_rx.recv() => {
                    self.switch.handle_input(std::time::Instant::now(), Input::SharedLocks { call, locks });
                }
                Some((id, result)) = self.dns_rx.recv() => {
                    self.switch.handle_input(std::time::Instant::now(), Input::Resolved { id, result });
                }
                Some(batch) = self.rtp_rx.recv() => {
                    self.metrics.rtp_received_many(batch.len() as u64);
                    self.rtp_lag = batch.oldest().map_or(Duration::ZERO, |at| at.elapsed());
                    // Each datagram is handled at the time it arrived.
                    self.switch.handle_input(std::time::Instant::now(), Input::RtpBatch(&batch));
                    self.rtp.recycle(batch);
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = std::time::Instant::now();
                    if drain_deadline.is_some_and(|d| Instant::from_std(now) >= d) {
                        if hung_up {
                            // BYEs nobody answered: the calls go, with their records.
                            info!(calls = self.switch.call_count(), "shutdown: dropping the calls left");
                            self.switch.handle_input(now, Input::Command(Command::AbandonAll));
                            drain_deadline = None;
                        } else {
                            info!(calls = self.switch.call_count(), "drain timeout: hanging up the remaining calls");
                            self.switch.handle_input(now, Input::Command(Command::HangUpAll { why: SHUTTING_DOWN }));
                            hung_up = true;
                            drain_deadline = Some(Instant::from_std(now) + BYE_GRACE);
                        }
                    }
                    let emptied = self.take_waiting_datagrams(&mut buf);
                    self.report_load(emptied);
                    self.switch.handle_input(std::time::Instant::now(), Input::Timeout);
                }
                changed = self.shutdown.changed() => {
                    let state = if changed.is_ok() { *self.shutdown.borrow() } else { Shutdown::Now };
                    let now = std::time::Instant::now();
                    match state {
                        Shutdown::Running => {}
                        Shutdown::Drain => {
                            self.rtp.stop_parking();
                            info!(calls = self.switch.call_count(), "draining: new calls get 503");
                            self.switch.handle_input(now, Input::Command(Command::Drain));
                            drain_deadline = Some(Instant::from_std(now) + self.drain_timeout);
                        }
                        Shutdown::Now => {
                            self.rtp.stop_parking();
                            self.switch.handle_input(now, Input::Command(Command::Drain));
                            self.switch.handle_input(now, Input::Command(Command::HangUpAll { why: SHUTTING_DOWN }));
                            hung_up = true;
                            drain_deadline = Some(Instant::from_std(now) + BYE_GRACE);
                        }
                    }
                }
            }
            next = self.flush().await;
            self.publish();
            if *self.shutdown.borrow() != Shutdown::Running && self.switch.is_idle() {
                info!("all calls ended; stopping");
                return;
            }
        }
    }

    fn handle_udp(&mut self, from: SocketAddr, data: &[u8]) {
        if !self.acl.is_open() && !self.acl.permits(from.ip()) {
            return;
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        self.switch
            .handle_input(std::time::Instant::now(), Input::Datagram { peer, data });
    }

    /// Gauges and the switch's counters into the metrics (a few atomic stores).
    fn publish(&self) {
        if let Some(load) = &self.local_load {
            load.set_calls(self.switch.call_count());
        }
        self.metrics.observe_switch(
            self.switch.call_count(),
            self.switch.is_draining(),
            self.switch.stats(),
        );
        self.records
            .resync(|call_id| self.switch.find_call(call_id).is_some());
    }

    /// Logs a UDP error within the budget, and the summary of the interval before.
    fn udp_error(&mut self, e: &std::io::Error, to: Option<SocketAddr>) {
        log_within(
            &mut self.udp_errors,
            "UDP send/receive errors",
            || match to {
                Some(to) => warn!(error = %e, %to, "UDP send failed"),
                None => warn!(error = %e, "UDP receive failed"),
            },
        );
    }
}

/// The socket a datagram to each family leaves from, `[IPv4, IPv6]`: the first SIP socket
/// of that family (IPv6 beside IPv4), else the main one. Found once at start: asking a
/// socket its address is a system call, which every answer sent used to make.
pub(super) fn udp_by_family(
    udp: Option<&Arc<UdpSocket>>,
    extra: &[Arc<UdpSocket>],
) -> [Option<Arc<UdpSocket>>; 2] {
    let of_family = |v4: bool| {
        udp.into_iter()
            .chain(extra.iter())
            .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == v4))
            .or(udp)
            .cloned()
    };
    [of_family(true), of_family(false)]
}

/// Resolves when the SIP socket has datagrams waiting.
async fn sip_readable(udp: Option<&UdpSocket>) -> std::io::Result<()> {
    match udp {
        Some(udp) => udp.readable().await,
        None => std::future::pending().await,
    }
}

/// Reads one of the extra SIP UDP sockets into the shard's channel.
pub(super) async fn read_extra_udp(socket: Arc<UdpSocket>, tx: mpsc::Sender<(SocketAddr, Bytes)>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.send((from, data)).await.is_err() {
                    return;
                }
            }
            // ICMP errors from earlier sends surface here; never spin on them.
            Err(e) => {
                debug!(error = %e, "SIP UDP receive failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}
