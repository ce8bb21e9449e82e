//! Starting the server: the SIP sockets and listeners bound, the RTP thread, the records
//! file, the shared store and the switch's configuration from the config file, then the
//! shard task that runs them.

use super::shard::{read_extra_udp, Shard};
use super::*;

impl Server {
    pub(crate) async fn start(
        cfg: &Config,
        program: Program,
        shutdown: watch::Receiver<Shutdown>,
        operate: Operate,
    ) -> Result<Self, StartError> {
        let addr = cfg.sip.listen.first();
        let bind = |transport, addr| {
            move |source| StartError::Bind {
                transport,
                addr,
                source,
            }
        };
        let (extra_udp_tx, extra_udp_rx) = mpsc::channel(4096);
        let mut udp = None;
        let mut extra_udp = Vec::new();
        if cfg.sip.udp {
            for &a in cfg.sip.listen.all() {
                let socket = Arc::new(
                    bind_udp(a, cfg.sip.udp_receive_buffer_kib * 1024).map_err(bind("UDP", a))?,
                );
                if udp.is_none() {
                    udp = Some(socket);
                } else {
                    tokio::spawn(read_extra_udp(socket.clone(), extra_udp_tx.clone()));
                    extra_udp.push(socket);
                }
            }
        }
        let (stream_tx, stream_rx) = mpsc::channel(4096);
        let limits = tcp::TcpLimits::from_config(&cfg.tcp);
        let tcp = if cfg.sip.tcp {
            Some(
                tcp::Tcp::start(
                    cfg.sip.listen.all(),
                    limits.clone(),
                    stream_tx.clone(),
                    None,
                )
                .await
                .map_err(|(a, e)| bind("TCP", a)(e))?,
            )
        } else {
            None
        };
        // Outbound TLS (bridge legs to sips: targets) works without a listener.
        let tls_setup = tls::TlsSetup::from_config(&cfg.sip, &cfg.advertised_host())?;
        let tls_addrs: Vec<SocketAddr> = cfg.sip.tls_listen.into_iter().collect();
        // Descriptors the sockets of released RTP ports must leave to the TCP and TLS
        // listeners' connections and to `fd_reserve`.
        let stream_fds = limits.max_connections()
            * (usize::from(tcp.is_some()) + usize::from(!tls_addrs.is_empty()));
        let tls = tcp::Tcp::start(&tls_addrs, limits, stream_tx, Some(tls_setup))
            .await
            .map_err(|(addr, source)| StartError::BindTls { addr, source })?;
        let tls_addr = tls.local_addr;
        let udp_addr = udp
            .as_ref()
            .map(|u| u.local_addr())
            .transpose()
            .map_err(bind("UDP", addr))?;
        let media_ip = cfg.media_ip();
        let media_ip_v6 = cfg.media_ip_v6();
        let budget = rtp::parking_budget(
            (cfg.rtp.port_min, cfg.rtp.port_max),
            rtp::sockets_per_port(media_ip_v6),
            tcp::open_files_limit(),
            cfg.tcp.fd_reserve + stream_fds,
        );
        info!(
            parked = budget.parked,
            sockets = budget.sockets,
            "RTP: the sockets of released ports stay bound for the next call, this many at most \
             (and fewer as calls need the descriptors)"
        );
        let (rtp, rtp_rx) =
            rtp::RtpSockets::start(media_ip, media_ip_v6, budget).map_err(StartError::Rtp)?;
        if let Some(tcp) = &tcp {
            operate.metrics.set_tcp_probe(tcp.probe());
        }
        let tcp_addr = tcp.as_ref().and_then(|t| t.local_addr);
        let mut records =
            records::Records::open(&cfg.records.path).map_err(|source| StartError::Records {
                path: cfg.records.path.clone(),
                source,
            })?;
        records.webhook = webhook::Webhook::start(&cfg.records, operate.metrics.clone());
        records.console = operate.console.clone();
        let wall = WallClock {
            instant: std::time::Instant::now(),
            system: std::time::SystemTime::now(),
        };
        if cfg.transfer_signer().is_none() {
            warn!(
                variable = %cfg.transfer.token_key_env,
                "no transfer token key in the environment: flow variables ride transfers unsigned"
            );
        }
        let switch = Switch::new(
            SwitchConfig {
                advertised_host: cfg.advertised_host(),
                sip_port: udp_addr
                    .or(tcp_addr)
                    .map(|a| a.port())
                    .unwrap_or(cfg.sip.listen.port()),
                advertised_host_v6: cfg.advertised_host_v6(),
                tls_port: tls_addr.map(|a| a.port()),
                media_ip,
                media_ip_v6,
                rtp_ports: (cfg.rtp.port_min, cfg.rtp.port_max),
                max_calls: cfg.calls.max_calls,
                retry_after: Duration::from_secs(cfg.calls.retry_after_s),
                answer_after: Duration::from_millis(cfg.calls.answer_after_ms),
                transfer_timeout: Duration::from_secs(cfg.calls.transfer_timeout_s),
                max_call_duration: Duration::from_secs(cfg.calls.max_duration_s),
                bridge_ring_timeout: Duration::from_secs(cfg.bridge.ring_timeout_s),
                outbound_auth: cfg.outbound_auth(),
                outbound_proxy: cfg.outbound_proxy(),
                instance: cfg.server.instance.clone(),
                trusted_peers: cfg
                    .trusted_peers()
                    .expect("trusted_peers was validated when the config was loaded"),
                lockout: cfg.lockout(),
                // With [shared] a keypad waits for the store's lockout answer at most this.
                shared_lockout: cfg.shared.as_ref().map(|s| s.timeout()),
                transfer_signer: cfg.transfer_signer(),
                timers: cfg.timers(),
                directory_url: cfg.directory_url(),
                user_agent: cfg.sip.user_agent.clone(),
                media_timeout: Duration::from_secs(cfg.calls.media_timeout_s),
                admission: cfg.admission(),
                session_timer: cfg.session_timer(),
                prefer_100rel: cfg.sip.prefer_100rel,
                seed: rand::random(),
                srtp: cfg.rtp.srtp.policy(),
                dns_failover: Duration::from_millis(cfg.dns.failover_ms),
                // 256 bits from the system's CSPRNG: SRTP keys must not be guessable.
                key_seed: rand::random(),
                // Calls tell what they do only when a console shows it.
                call_events: operate.console.is_some(),
                ..SwitchConfig::default()
            },
            wall,
            program,
        );
        // State shared with other instances: the lookup cache in the HTTP path, and the
        // load each heartbeat exchanges for the others' (their calls count against
        // `max_calls`).
        let shared = cfg
            .shared
            .as_ref()
            .map(|s| {
                Shared::start(
                    s,
                    &cfg.server.instance,
                    cfg.lockout(),
                    operate.metrics.clone(),
                )
            })
            .transpose()?;
        let (peers_tx, peers_rx) = mpsc::channel(4);
        let (locks_tx, locks_rx) = mpsc::channel(1024);
        let store_lockout = shared
            .as_ref()
            .map(|s| lockout::StoreLockout::new(s.clone(), locks_tx));
        let local_load = shared.as_ref().map(|s| {
            let load = Arc::new(LocalLoad::default());
            let console = operate.console.clone();
            tokio::spawn(crate::shared::heartbeat(
                s.clone(),
                load.clone(),
                peers_tx,
                console,
            ));
            load
        });
        let (http_tx, http_rx) = mpsc::channel(4096);
        let (dns_tx, dns_rx) = mpsc::channel(1024);
        let resolver = match crate::dns::SipResolver::new(&cfg.dns.servers) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                warn!(error = %e, "no DNS resolver (set `[dns] servers`): named bridge targets will fail");
                None
            }
        };
        let shard = Shard {
            switch,
            records,
            http: HttpClient::new(),
            shared: shared.clone(),
            local_load,
            peers_rx,
            store_lockout,
            locks_rx,
            http_tx,
            http_rx,
            resolver,
            dns_tx,
            dns_rx,
            rtp,
            rtp_rx,
            udp_by_family: super::shard::udp_by_family(udp.as_ref(), &extra_udp),
            udp_out: Default::default(),
            udp,
            extra_udp_rx,
            tcp,
            tls,
            stream_rx,
            shutdown,
            drain_timeout: Duration::from_secs(cfg.calls.drain_timeout_s),
            metrics: operate.metrics,
            programs: operate.programs,
            acl: cfg.acl(),
            overloaded: false,
            overload_logged: None,
            sip_drained_at: Instant::now(),
            rtp_lag: Duration::ZERO,
            udp_errors: concierge_sip::LogLimiter::new(Duration::from_secs(10), 10),
            bind_errors: concierge_sip::LogLimiter::new(Duration::from_secs(10), 10),
        };
        let shard = tokio::spawn(shard.run());
        Ok(Self {
            udp_addr,
            tcp_addr,
            tls_addr,
            shared,
            shard,
        })
    }
}

/// The SIP UDP socket, with the receive buffer `receive_buffer` bytes asks for.
fn bind_udp(addr: SocketAddr, receive_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Beside an IPv4 socket on the same port.
        socket.set_only_v6(true)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        warn!(error = %e, bytes = receive_buffer, "cannot set the SIP UDP receive buffer");
    }
    // Linux doubles what it grants (bookkeeping) and caps it at net.core.rmem_max.
    if let Ok(granted) = socket.recv_buffer_size() {
        if granted < receive_buffer {
            warn!(
                asked = receive_buffer,
                granted, "SIP UDP receive buffer capped by the kernel (net.core.rmem_max)"
            );
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
