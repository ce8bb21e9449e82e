use std::net::IpAddr;
use std::time::Duration;

use concierge_sip::dialog::session_timer::SessionTimerConfig;
use concierge_sip::transaction::TimerConfig;

/// Credentials for targets that challenge our INVITE (401/407).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundAuth {
    /// The Digest user name (RFC 2617) for our INVITE to a challenging target.
    pub username: String,
    /// Its password: never logged, never in a record.
    pub password: String,
}

/// What the call logic needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Host (IP or name) we put in Contact, Via and SDP; the address callers reach us on.
    pub advertised_host: String,
    /// The SIP port we listen on, for our Via and Contact.
    pub sip_port: u16,
    /// Our host for peers reached over IPv6 (bracketed); `None`: `advertised_host`.
    pub advertised_host_v6: Option<String>,
    /// The port of our SIP-over-TLS listener, for Contact in TLS dialogs; `None`: `sip_port`.
    pub tls_port: Option<u16>,
    /// The address in our SDP (`c=`) and where RTP sockets are bound.
    pub media_ip: IpAddr,
    /// The media address for peers reached over IPv6 (an `IP6` c= line, RTP over IPv6);
    /// `None`: `media_ip` for everyone.
    pub media_ip_v6: Option<IpAddr>,
    /// Even RTP ports are taken from `rtp_ports.0 .. rtp_ports.1`.
    pub rtp_ports: (u16, u16),
    /// How long a released RTP port rests before another call may use it.
    pub rtp_port_rest: Duration,
    /// Beyond this many calls new INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    /// The Retry-After of every 503 we send (capacity, draining, no port).
    pub retry_after: Duration,
    /// How long a call rings (180) before we answer it.
    pub answer_after: Duration,
    /// A REFER whose subscription reports no final status by then has failed.
    pub transfer_timeout: Duration,
    /// Calls are ended (BYE, or 480 while still ringing) after this long, so that no
    /// peer or flow mistake can hold a call and its port for ever.
    pub max_call_duration: Duration,
    /// A bridged transfer's second leg that is not answered by then is cancelled.
    pub bridge_ring_timeout: Duration,
    /// Credentials for bridge targets that challenge our INVITE.
    pub outbound_auth: Option<crate::OutboundAuth>,
    /// Every bridge leg goes through this proxy (RFC 3261 §8.1.2: a preloaded Route);
    /// a name is resolved like a target's (RFC 3263). `None`: straight to the target.
    pub outbound_proxy: Option<concierge_sip::wire::SipUri>,
    /// This instance's name, in every call record (the driver puts it on every log line).
    pub instance: String,
    /// RFC 3261 transaction timers (T1, T2, T4).
    pub timers: TimerConfig,
    /// Peers whose P-Asserted-Identity (and From) we believe; everyone else's is claimed.
    pub trusted_peers: crate::TrustedPeers,
    /// Failed code attempts allowed across calls.
    pub lockout: crate::LockoutConfig,
    /// Lockouts shared with other instances through a store (`[shared]`): a call whose
    /// flow has lockout groups asks the driver about them when it arrives
    /// ([`crate::Output::LockoutCheck`]) and a keypad of such a group waits for the answer
    /// at most this long after that; every failed attempt goes to the store too
    /// ([`crate::Output::LockoutFailure`]). `None`: the counts are this switch's alone,
    /// and neither output is ever sent.
    pub shared_lockout: Option<Duration>,
    /// Signs the flow variables a transfer carries; `None`: they go unsigned.
    pub transfer_signer: Option<crate::TransferSigner>,
    /// Base URL of the customer directory (`http://127.0.0.1:8089`), given to flows as
    /// `system.directory_url` so that moving its port is one setting.
    pub directory_url: String,
    /// RFC 4028: the interval we ask for, our minimum and the preferred refresher.
    pub session_timer: SessionTimerConfig,
    /// RFC 3262: send 18x reliably when the caller merely supports `100rel` (a caller
    /// that requires it always gets reliable 18x).
    pub prefer_100rel: bool,
    /// `Server` / `User-Agent` value. The default names no version: a scanner learns
    /// nothing from it to match against advisories.
    pub user_agent: String,
    /// No RTP from the caller for this long ends an up call with BYE (a BYE that was
    /// lost must not hold the call until `max_call_duration`). Held calls are exempt.
    pub media_timeout: Duration,
    /// INVITE admission: global and per-source token buckets, checked before a call
    /// takes anything.
    pub admission: crate::admission::AdmissionConfig,
    /// Seed for tags, branches and SSRCs.
    pub seed: u64,
    /// An address of a resolved target that sends no response at all by then is given up
    /// for the next one (RFC 3263 §4.3; Timer B, 64·T1, is longer than anyone waits).
    pub dns_failover: Duration,
    /// Whether calls are encrypted: SRTP with SDES keys (`[rtp] srtp`).
    pub srtp: concierge_media::sdes::SrtpPolicy,
    /// Seed of the generator that draws SRTP master keys: a cryptographic generator of its
    /// own (tags and branches, which anyone sees, come from a fast non-cryptographic one).
    /// The driver fills it from the system's random source; tests fix it.
    pub key_seed: [u8; 32],
    /// Emit [`crate::Output::Event`]s as calls arrive, move through their flow, are
    /// transferred and end (the live console). Off, a call builds none of them.
    pub call_events: bool,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            advertised_host: "127.0.0.1".into(),
            sip_port: 5060,
            advertised_host_v6: None,
            tls_port: None,
            media_ip: IpAddr::from([127, 0, 0, 1]),
            media_ip_v6: None,
            rtp_ports: (10_000, 20_000),
            rtp_port_rest: Duration::from_secs(4),
            max_calls: 10_000,
            retry_after: Duration::from_secs(5),
            answer_after: Duration::ZERO,
            transfer_timeout: Duration::from_secs(30),
            max_call_duration: Duration::from_secs(4 * 3600),
            bridge_ring_timeout: Duration::from_secs(30),
            outbound_auth: None,
            outbound_proxy: None,
            instance: "concierge".into(),
            timers: TimerConfig::default(),
            trusted_peers: Default::default(),
            lockout: Default::default(),
            shared_lockout: None,
            transfer_signer: None,
            directory_url: "http://127.0.0.1:8089".into(),
            session_timer: SessionTimerConfig::default(),
            prefer_100rel: false,
            user_agent: "Concierge".into(),
            media_timeout: Duration::from_secs(60),
            admission: Default::default(),
            seed: 0,
            dns_failover: Duration::from_secs(4),
            srtp: Default::default(),
            key_seed: [0; 32],
            call_events: false,
        }
    }
}
