use std::time::Duration;

use concierge_sip::transaction::TimerConfig;

/// What the call logic needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Host (IP or name) we put in Contact, Via and SDP; the address callers reach us on.
    pub advertised_host: String,
    pub sip_port: u16,
    /// Beyond this many calls new INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    pub retry_after: Duration,
    /// How long a call rings (180) before we answer it.
    pub answer_after: Duration,
    /// A REFER whose subscription reports no final status by then has failed.
    pub transfer_timeout: Duration,
    pub timers: TimerConfig,
    pub user_agent: String,
    /// Seed for tags, branches and SSRCs.
    pub seed: u64,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            advertised_host: "127.0.0.1".into(),
            sip_port: 5060,
            max_calls: 10_000,
            retry_after: Duration::from_secs(5),
            answer_after: Duration::ZERO,
            transfer_timeout: Duration::from_secs(30),
            timers: TimerConfig::default(),
            user_agent: format!("Concierge/{}", env!("CARGO_PKG_VERSION")),
            seed: 0,
        }
    }
}
