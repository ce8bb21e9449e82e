//! `[rtp]`: the media port range and the SRTP policy.

use serde::Deserialize;

/// `[rtp]`: the port pool the driver binds RTP sockets from, and whether SRTP is offered
/// and demanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RtpConfig {
    /// The lowest RTP port (even); each call takes an even port from the range.
    pub(crate) port_min: u16,
    /// The highest RTP port of the range.
    pub(crate) port_max: u16,
    /// SRTP with SDES keys: `off`, `optional` (SRTP when offered) or `mandatory` (488 for
    /// plain offers).
    pub(crate) srtp: SrtpMode,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            port_min: 10_000,
            port_max: 20_000,
            srtp: SrtpMode::Optional,
        }
    }
}

/// `[rtp] srtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SrtpMode {
    /// Plain RTP only: an `RTP/SAVP` offer is refused with 488.
    Off,
    #[default]
    /// SRTP when the caller offers it, plain RTP otherwise.
    Optional,
    /// SRTP only: plain offers get 488.
    Mandatory,
}

impl SrtpMode {
    /// The media crate's policy for this setting; the driver hands it to the switch.
    pub(crate) fn policy(self) -> concierge_media::sdes::SrtpPolicy {
        use concierge_media::sdes::SrtpPolicy;
        match self {
            Self::Off => SrtpPolicy::Off,
            Self::Optional => SrtpPolicy::Optional,
            Self::Mandatory => SrtpPolicy::Mandatory,
        }
    }
}
