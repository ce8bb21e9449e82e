//! RFC 4028 session timers: the negotiation of Session-Expires / Min-SE when we answer an
//! INVITE, and the per-dialog timer that asks for a refresh at half the interval (when we
//! are the refresher) or declares the session dead when no refresh came in time.
//!
//! A session whose BYE is lost would otherwise stay up on both sides until some maximum
//! duration; carriers rely on this to clean such sessions up.

use std::time::{Duration, Instant};

use super::prack::has_option_tag;
use crate::wire::{HeaderName, Headers};

/// RFC 4028 §4: the smallest Session-Expires anyone may ask for, and the Min-SE assumed
/// when a request carries none.
pub const RFC_MIN_SE: u32 = 90;

/// Which side sends the refreshes, in the words of the request that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The sender of the request.
    Uac,
    /// The receiver of the request.
    Uas,
}

impl Refresher {
    /// The parameter value (`uac` or `uas`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uac => "uac",
            Self::Uas => "uas",
        }
    }
}

/// `Session-Expires: <delta-seconds>[;refresher=uac|uas]` (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval in seconds.
    pub delta: u32,
    /// Who refreshes, when the header says.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// `None` for a value that is not delta-seconds (a refresher we do not know is
    /// ignored, as an unknown parameter is).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let delta = parts.next()?.trim().parse().ok()?;
        let refresher = parts.find_map(|p| {
            let (name, v) = p.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match v.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Some(Self { delta, refresher })
    }

    /// The Session-Expires of a message; `None` when absent or malformed.
    pub fn of(headers: &Headers) -> Option<Self> {
        headers
            .get(&HeaderName::SESSION_EXPIRES)
            .and_then(Self::parse)
    }

    /// The header value.
    pub fn value(&self) -> String {
        let mut value = String::with_capacity(24);
        self.parts(|part| value.push_str(part));
        value
    }

    /// Appends the header (`name`: [`Self::value`]) to `headers` without a string of its
    /// own.
    pub fn push_to(&self, headers: &mut Headers, name: HeaderName) {
        let mut delta = itoa::Buffer::new();
        let delta = delta.format(self.delta);
        match self.refresher {
            Some(r) => headers.push_joined(name, &[delta, ";refresher=", r.as_str()]),
            None => headers.push(name, delta),
        }
    }

    fn parts(&self, mut part: impl FnMut(&str)) {
        part(itoa::Buffer::new().format(self.delta));
        if let Some(r) = self.refresher {
            part(";refresher=");
            part(r.as_str());
        }
    }
}

/// `Min-SE: <delta-seconds>` of `headers`, if well-formed.
pub fn min_se_of(headers: &Headers) -> Option<u32> {
    let v = headers.get(&HeaderName::MIN_SE)?;
    v.split(';').next()?.trim().parse().ok()
}

/// What we ask for and accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The interval we put in our answer when the caller asks for none (or a longer one).
    pub interval: u32,
    /// Below this a caller's Session-Expires gets 422 with this as Min-SE. RFC 4028 says
    /// at least 90 s; lower values exist for tests.
    pub min_se: u32,
    /// Who refreshes when the caller leaves it to us (`Uac`: the caller, `Uas`: we).
    pub refresher: Refresher,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        Self {
            interval: 1800,
            min_se: RFC_MIN_SE,
            refresher: Refresher::Uac,
        }
    }
}

/// The outcome of [`negotiate_uas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// Answer with these values.
    Agreed(Agreed),
    /// §9: reject with 422 and `Min-SE: min_se`.
    TooSmall {
        /// Our Min-SE in seconds.
        min_se: u32,
    },
}

/// The session timer agreed with the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The Session-Expires of our 2xx, refresher as seen from the caller's request.
    pub expires: SessionExpires,
    /// The caller understands session timers: our 2xx carries `Require: timer`.
    pub peer_supports: bool,
}

impl Agreed {
    /// Whether we (the UAS of the request negotiated) send the refreshes.
    pub fn we_refresh(&self) -> bool {
        self.expires.refresher == Some(Refresher::Uas)
    }

    /// The negotiated session interval.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.expires.delta.into())
    }
}

/// RFC 4028 §9: the UAS side for a request (INVITE or a refresh) with `headers`.
pub fn negotiate_uas(headers: &Headers, cfg: &SessionTimerConfig) -> Negotiation {
    let peer_supports = has_option_tag(headers, &HeaderName::SUPPORTED, "timer")
        || has_option_tag(headers, &HeaderName::REQUIRE, "timer");
    // Absent, the caller's floor is 90 s (§5) and its Session-Expires respects it already.
    let their_min = min_se_of(headers).unwrap_or(0);
    let asked = SessionExpires::of(headers);
    let delta = match asked {
        // §9: too small for us; only a caller that knows the extension can act on 422 — for
        // another (a proxy inserted the header) the answer raises the interval instead.
        Some(se) if se.delta < cfg.min_se && peer_supports => {
            return Negotiation::TooSmall { min_se: cfg.min_se }
        }
        // §9: the UAS may lower the interval, never below the request's Min-SE.
        Some(se) => se.delta.min(cfg.interval).max(their_min).max(cfg.min_se),
        None => cfg.interval.max(their_min).max(cfg.min_se),
    };
    // §9: a caller without the extension cannot refresh; then we must.
    let refresher = if !peer_supports {
        Refresher::Uas
    } else {
        asked.and_then(|se| se.refresher).unwrap_or(cfg.refresher)
    };
    Negotiation::Agreed(Agreed {
        expires: SessionExpires {
            delta,
            refresher: Some(refresher),
        },
        peer_supports,
    })
}

/// What the session timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTimerEvent {
    /// We are the refresher and half the interval passed: send a refresh.
    Refresh,
    /// No refresh arrived in time (§10): end the session with BYE.
    Expired,
}

/// The running timer of one dialog.
#[derive(Debug, Clone)]
pub struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    refreshed_at: Instant,
    refresh_asked: bool,
}

impl SessionTimer {
    /// Starts the timer at `now`; `we_refresh` says whether we send the refreshes.
    pub fn new(now: Instant, interval: Duration, we_refresh: bool) -> Self {
        Self {
            interval,
            we_refresh,
            refreshed_at: now,
            refresh_asked: false,
        }
    }

    /// A refresh succeeded (a 2xx to a refresh, sent or received): the interval restarts.
    pub fn refreshed(&mut self, now: Instant, interval: Duration, we_refresh: bool) {
        *self = Self::new(now, interval, we_refresh);
    }

    /// The session interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether we are the refresher.
    pub fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// §10: the refresher sends its refresh at half the interval; the other side gives
    /// up at the interval minus min(32 s, a third of it).
    pub fn refresh_at(&self) -> Option<Instant> {
        (self.we_refresh && !self.refresh_asked).then(|| self.refreshed_at + self.interval / 2)
    }

    /// When the session expires without a refresh.
    pub fn expires_at(&self) -> Instant {
        let margin = (self.interval / 3).min(Duration::from_secs(32));
        self.refreshed_at + self.interval - margin
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Instant {
        self.refresh_at()
            .map_or(self.expires_at(), |r| r.min(self.expires_at()))
    }

    /// Called at the deadline: time to refresh, or the session expired.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<SessionTimerEvent> {
        if now >= self.expires_at() {
            return Some(SessionTimerEvent::Expired);
        }
        if self.refresh_at().is_some_and(|at| now >= at) {
            self.refresh_asked = true;
            return Some(SessionTimerEvent::Refresh);
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn headers(lines: &[(&HeaderName, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in lines {
            h.push((*n).clone(), *v);
        }
        h
    }

    fn agreed(n: Negotiation) -> Agreed {
        match n {
            Negotiation::Agreed(a) => a,
            other => panic!("expected agreement, got {other:?}"),
        }
    }

    #[test]
    fn session_expires_parses_with_and_without_refresher() {
        assert_eq!(
            SessionExpires::parse("90;refresher=uas"),
            Some(SessionExpires {
                delta: 90,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 1800 ; foo=bar"),
            Some(SessionExpires {
                delta: 1800,
                refresher: None
            })
        );
        assert_eq!(SessionExpires::parse("soon"), None);
        assert_eq!(SessionExpires::parse("-5"), None);
    }

    #[test]
    fn require_timer_with_90_is_accepted_and_keeps_the_callers_refresher() {
        let h = headers(&[
            (&HeaderName::REQUIRE, "timer"),
            (&HeaderName::SESSION_EXPIRES, "90;refresher=uac"),
        ]);
        let a = agreed(negotiate_uas(&h, &SessionTimerConfig::default()));
        assert_eq!(a.expires.value(), "90;refresher=uac");
        assert!(a.peer_supports && !a.we_refresh());
    }

    #[test]
    fn too_small_is_422_with_our_min_se() {
        let h = headers(&[
            (&HeaderName::SUPPORTED, "timer"),
            (&HeaderName::SESSION_EXPIRES, "30"),
        ]);
        assert_eq!(
            negotiate_uas(&h, &SessionTimerConfig::default()),
            Negotiation::TooSmall { min_se: 90 }
        );
    }

    #[test]
    fn a_caller_without_the_extension_gets_our_interval_and_we_refresh() {
        let a = agreed(negotiate_uas(
            &Headers::new(),
            &SessionTimerConfig::default(),
        ));
        assert_eq!(a.expires.value(), "1800;refresher=uas");
        assert!(!a.peer_supports && a.we_refresh());
        // Too small but not understood: raised, not refused.
        let h = headers(&[(&HeaderName::SESSION_EXPIRES, "30")]);
        assert_eq!(
            agreed(negotiate_uas(&h, &SessionTimerConfig::default()))
                .expires
                .delta,
            90
        );
    }

    #[test]
    fn a_long_interval_is_lowered_to_ours_but_not_below_the_callers_min_se() {
        let cfg = SessionTimerConfig::default();
        let h = headers(&[
            (&HeaderName::SUPPORTED, "timer"),
            (&HeaderName::SESSION_EXPIRES, "7200"),
        ]);
        let a = agreed(negotiate_uas(&h, &cfg));
        assert_eq!(a.expires.delta, 1800);
        assert_eq!(a.expires.refresher, Some(Refresher::Uac), "our preference");
        let h = headers(&[
            (&HeaderName::SUPPORTED, "timer"),
            (&HeaderName::SESSION_EXPIRES, "7200"),
            (&HeaderName::MIN_SE, "3600"),
        ]);
        assert_eq!(agreed(negotiate_uas(&h, &cfg)).expires.delta, 3600);
    }

    #[test]
    fn refresher_refreshes_at_half_the_interval() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, Duration::from_secs(90), true);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(45));
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(45)),
            Some(SessionTimerEvent::Refresh)
        );
        // Asked once; now only the expiry remains until the refresh succeeds.
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(46);
        t.refreshed(t1, Duration::from_secs(90), true);
        assert_eq!(t.poll_timeout(), t1 + Duration::from_secs(45));
    }

    #[test]
    fn without_a_refresh_the_session_expires_at_interval_minus_min_32_or_a_third() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, Duration::from_secs(90), false);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(60));
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(59)), None);
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(60)),
            Some(SessionTimerEvent::Expired)
        );
        let long = SessionTimer::new(t0, Duration::from_secs(1800), false);
        assert_eq!(long.expires_at(), t0 + Duration::from_secs(1768));
    }
}
