//! RFC 3262, the UAS side: reliable provisional responses and their PRACKs.
//!
//! The UAS core (not the transaction) retransmits a reliable 1xx at T1, 2·T1, 4·T1 … (no
//! T2 cap, §3) until a PRACK with a matching RAck arrives; after 64·T1 without one the
//! INVITE should be rejected with a 5xx. Only one reliable 1xx is outstanding at a time
//! (§3: "MUST NOT send a second reliable provisional response until the first is
//! acknowledged"), so later ones wait in a short queue and go out as each PRACK arrives.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::transaction::TimerConfig;
use crate::wire::{HeaderName, Headers, Method};

/// Reliable 1xx waiting behind the outstanding one; more are dropped (a UAS sends two or
/// three provisional responses at most, so a longer queue only means a misbehaving core).
const MAX_QUEUED: usize = 4;

/// `RAck: <rseq> <cseq> <method>` (RFC 3262 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    /// The RSeq being acknowledged.
    pub rseq: u32,
    /// The CSeq number of the request the provisional response answers.
    pub cseq: u32,
    /// The method of that request.
    pub method: Method,
}

impl RAck {
    /// `None` for anything that is not three well-formed fields.
    pub fn parse(value: &str) -> Option<Self> {
        let mut it = value.split_ascii_whitespace();
        let rseq = it.next()?.parse().ok()?;
        let cseq = it.next()?.parse().ok()?;
        let method = Method::parse(it.next()?)?;
        if it.next().is_some() {
            return None;
        }
        Some(Self { rseq, cseq, method })
    }
}

/// Whether a request carries `tag` in its `name` header (Supported or Require), whose
/// values are comma-separated option tags, possibly over several lines.
pub fn has_option_tag(headers: &Headers, name: &HeaderName, tag: &str) -> bool {
    headers
        .get_all(name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// What the retransmission timer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReliableEvent {
    /// Send the outstanding reliable 1xx again.
    Retransmit(Bytes),
    /// 64·T1 without PRACK: §3 says to reject the INVITE with a 5xx.
    Timeout,
}

/// Why a PRACK is answered 481 (§3: it matches no unacknowledged reliable 1xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMatch;

#[derive(Debug, Clone)]
struct Outstanding {
    rseq: u32,
    bytes: Bytes,
    carries_sdp: bool,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

/// The reliable provisional responses of one INVITE server transaction.
#[derive(Debug, Clone)]
pub struct ReliableProvisionals {
    next_rseq: u32,
    invite_cseq: u32,
    cfg: TimerConfig,
    outstanding: Option<Outstanding>,
    queue: VecDeque<(u32, Bytes, bool)>,
    /// RSeq of a response we stopped retransmitting (a final answer went out): its PRACK
    /// still gets 200 (§3: "MUST be prepared to process PRACK requests").
    abandoned: Option<u32>,
}

impl ReliableProvisionals {
    /// `first_rseq` should be random in 1 ..= 2³¹−1 (§3); `invite_cseq` is the INVITE's
    /// CSeq number, which every RAck must repeat.
    pub fn new(first_rseq: u32, invite_cseq: u32, cfg: TimerConfig) -> Self {
        Self {
            next_rseq: first_rseq.clamp(1, (1 << 31) - 1),
            invite_cseq,
            cfg,
            outstanding: None,
            queue: VecDeque::new(),
            abandoned: None,
        }
    }

    /// The RSeq for the next reliable 1xx; each is one higher than the last (§3).
    pub fn take_rseq(&mut self) -> u32 {
        let r = self.next_rseq;
        self.next_rseq = self.next_rseq.wrapping_add(1);
        r
    }

    /// Hands over a reliable 1xx built with `rseq`. Returns the bytes to send now, or
    /// `None` when it waits behind an unacknowledged one.
    pub fn send(
        &mut self,
        now: Instant,
        rseq: u32,
        bytes: Bytes,
        carries_sdp: bool,
    ) -> Option<Bytes> {
        if self.outstanding.is_some() {
            if self.queue.len() < MAX_QUEUED {
                self.queue.push_back((rseq, bytes, carries_sdp));
            }
            return None;
        }
        self.start(now, rseq, bytes.clone(), carries_sdp);
        Some(bytes)
    }

    fn start(&mut self, now: Instant, rseq: u32, bytes: Bytes, carries_sdp: bool) {
        self.outstanding = Some(Outstanding {
            rseq,
            bytes,
            carries_sdp,
            interval: self.cfg.t1,
            next: now + self.cfg.t1,
            give_up: now + self.cfg.timeout(),
        });
    }

    /// A PRACK arrived. On a match the retransmissions stop and the next queued 1xx (if
    /// any) is returned to send now.
    pub fn handle_prack(&mut self, now: Instant, rack: &RAck) -> Result<Option<Bytes>, NoMatch> {
        if rack.cseq != self.invite_cseq || rack.method != Method::Invite {
            return Err(NoMatch);
        }
        if self.abandoned == Some(rack.rseq) {
            self.abandoned = None;
            return Ok(None);
        }
        match &self.outstanding {
            Some(o) if o.rseq == rack.rseq => {}
            _ => return Err(NoMatch),
        }
        self.outstanding = None;
        Ok(self.queue.pop_front().map(|(rseq, bytes, sdp)| {
            self.start(now, rseq, bytes.clone(), sdp);
            bytes
        }))
    }

    /// Whether a 2xx must still wait. §3 only forbids a 2xx while an unacknowledged
    /// reliable 1xx carries SDP; we also wait for the others, which keeps the RSeq order
    /// the caller sees simple and costs one round trip at most.
    pub fn blocks_answer(&self) -> bool {
        self.outstanding.is_some() || !self.queue.is_empty()
    }

    /// Whether the unacknowledged response carries a session description.
    pub fn outstanding_has_sdp(&self) -> bool {
        self.outstanding.as_ref().is_some_and(|o| o.carries_sdp)
    }

    /// A final response went out: stop retransmitting (§3), forget the queue.
    pub fn finish(&mut self) {
        self.abandoned = self.outstanding.take().map(|o| o.rseq);
        self.queue.clear();
    }

    /// When [`Self::handle_timeout`] must next be called; `None` when nothing is outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.next.min(o.give_up))
    }

    /// Called at the deadline: a retransmission to send, or that the PRACK never came.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ReliableEvent> {
        let o = self.outstanding.as_mut()?;
        if now >= o.give_up {
            self.finish();
            return Some(ReliableEvent::Timeout);
        }
        if now < o.next {
            return None;
        }
        // §3: "an interval that starts at T1 seconds and doubles for each retransmission".
        o.interval *= 2;
        o.next = now + o.interval;
        Some(ReliableEvent::Retransmit(o.bytes.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn rack(rseq: u32) -> RAck {
        RAck {
            rseq,
            cseq: 7,
            method: Method::Invite,
        }
    }

    #[test]
    fn rack_parses_three_fields_and_nothing_else() {
        assert_eq!(
            RAck::parse(" 776656 1 INVITE"),
            Some(RAck {
                rseq: 776656,
                cseq: 1,
                method: Method::Invite
            })
        );
        assert_eq!(RAck::parse("1 INVITE"), None);
        assert_eq!(RAck::parse("x 1 INVITE"), None);
        assert_eq!(RAck::parse("1 2 INVITE extra"), None);
        assert_eq!(RAck::parse("99999999999 1 INVITE"), None);
    }

    #[test]
    fn unacknowledged_1xx_doubles_from_t1_without_cap_then_times_out_at_64_t1() {
        let t0 = Instant::now();
        let mut r = ReliableProvisionals::new(100, 7, TimerConfig::default());
        let rseq = r.take_rseq();
        assert_eq!(
            r.send(t0, rseq, Bytes::from_static(b"180"), false),
            Some(Bytes::from_static(b"180"))
        );
        let mut at_ms = Vec::new();
        loop {
            let at = r.poll_timeout().expect("armed until the timeout");
            match r.handle_timeout(at) {
                Some(ReliableEvent::Retransmit(_)) => at_ms.push((at - t0).as_millis()),
                Some(ReliableEvent::Timeout) => {
                    assert_eq!((at - t0).as_millis(), 32_000);
                    break;
                }
                None => {}
            }
        }
        assert_eq!(at_ms, vec![500, 1500, 3500, 7500, 15_500, 31_500]);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn prack_stops_retransmission_and_releases_the_queued_183() {
        let t0 = Instant::now();
        let mut r = ReliableProvisionals::new(100, 7, TimerConfig::default());
        let first = r.take_rseq();
        r.send(t0, first, Bytes::from_static(b"180"), false);
        let second = r.take_rseq();
        assert_eq!(second, 101);
        assert_eq!(
            r.send(t0, second, Bytes::from_static(b"183"), true),
            None,
            "one at a time"
        );
        assert!(r.blocks_answer());
        // A PRACK for the second before the first matches nothing.
        assert_eq!(r.handle_prack(t0, &rack(101)), Err(NoMatch));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            r.handle_prack(t1, &rack(100)),
            Ok(Some(Bytes::from_static(b"183")))
        );
        assert!(r.outstanding_has_sdp());
        assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_millis(500)));
        assert_eq!(r.handle_prack(t1, &rack(101)), Ok(None));
        assert!(!r.blocks_answer());
        assert_eq!(r.poll_timeout(), None);
        // Acknowledged already: a second PRACK (new transaction) is 481.
        assert_eq!(r.handle_prack(t1, &rack(101)), Err(NoMatch));
    }

    #[test]
    fn rack_must_name_the_invite_cseq_and_method() {
        let t0 = Instant::now();
        let mut r = ReliableProvisionals::new(5, 7, TimerConfig::default());
        let rseq = r.take_rseq();
        r.send(t0, rseq, Bytes::from_static(b"180"), false);
        let wrong_cseq = RAck {
            rseq: 5,
            cseq: 8,
            method: Method::Invite,
        };
        let wrong_method = RAck {
            rseq: 5,
            cseq: 7,
            method: Method::Update,
        };
        assert_eq!(r.handle_prack(t0, &wrong_cseq), Err(NoMatch));
        assert_eq!(r.handle_prack(t0, &wrong_method), Err(NoMatch));
        assert!(r.blocks_answer());
    }

    #[test]
    fn after_a_final_answer_the_late_prack_still_gets_200() {
        let t0 = Instant::now();
        let mut r = ReliableProvisionals::new(5, 7, TimerConfig::default());
        let rseq = r.take_rseq();
        r.send(t0, rseq, Bytes::from_static(b"180"), false);
        r.finish();
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.handle_prack(t0, &rack(5)), Ok(None));
    }

    #[test]
    fn option_tags_are_found_in_lists_over_several_lines() {
        let mut h = Headers::new();
        h.push(HeaderName::SUPPORTED, "replaces,  Timer");
        h.push(HeaderName::SUPPORTED, "100rel");
        assert!(has_option_tag(&h, &HeaderName::SUPPORTED, "timer"));
        assert!(has_option_tag(&h, &HeaderName::SUPPORTED, "100rel"));
        assert!(!has_option_tag(&h, &HeaderName::REQUIRE, "100rel"));
        assert!(!has_option_tag(&h, &HeaderName::SUPPORTED, "100"));
    }
}
