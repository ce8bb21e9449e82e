//! What each answer and timer moves a [`Registration`] to: a new attempt, a binding,
//! another try with credentials or a longer interval, back-off or a stop, keep-alives,
//! and the end of an un-registration. The public entry points in `mod.rs` route to these.

use std::time::{Duration, Instant};

use rand::Rng;

use super::timers::RegTimer;
use super::{
    response, Attempt, Failure, Registration, RegistrationEvent, RegistrationOutput, Removal,
    RequestId, State, MAX_BACKOFF, MAX_CHALLENGES, MAX_EXPIRES, MIN_REFRESH, RETRY_BASE,
};
use crate::endpoint::Peer;
use crate::wire::{HeaderName, Response, Transport};

impl Registration {
    /// A new attempt from scratch: the first hop's addresses afresh (a name is located
    /// again, it may have moved), then a REGISTER.
    pub(super) fn begin_attempt(&mut self, now: Instant) {
        if self.hop.restart() {
            self.send_register(now, Attempt::fresh(self.expires));
        } else {
            self.state = State::Locating;
            let uri = self.hop.uri().clone();
            self.outputs.push_back(RegistrationOutput::Resolve(uri));
        }
    }

    /// Sends a REGISTER for `expires` to the address in use and waits for its answer.
    /// Every state that sends has an address (a literal one, a located one, or the one the
    /// last request went to); should there be none, the attempt fails as unresolvable.
    pub(super) fn send_register(&mut self, now: Instant, attempt: Attempt) {
        match self.hop.current() {
            Some(peer) => {
                let attempt = self.transmit(peer, attempt);
                self.state = State::Registering(attempt);
            }
            None => self.fail(now, Failure::Unresolvable, None),
        }
    }

    /// Queues the REGISTER of `attempt` to `peer`; the attempt now waits for its answer.
    pub(super) fn transmit(&mut self, peer: Peer, mut attempt: Attempt) -> Attempt {
        attempt.id = self.next_request_id();
        let request = Box::new(self.build_register(attempt.expires));
        self.outputs.push_back(RegistrationOutput::Send {
            id: attempt.id,
            request,
            peer,
        });
        attempt
    }

    /// §10.2.4: a 2xx. The binding lasts what the registrar granted our Contact; the
    /// refresh goes at half of that (never sooner than [`MIN_REFRESH`] from now).
    pub(super) fn registered(&mut self, now: Instant, attempt: Attempt, response: &Response) {
        let granted = response::granted(response, self.contact(), attempt.expires);
        if granted == 0 {
            return self.fail(now, Failure::NotBound, None);
        }
        let granted = Duration::from_secs(u64::from(granted));
        let expires_at = now + granted;
        let was_bound = self.binding.replace(expires_at).is_some();
        self.service_route = response::routes(response, &HeaderName::SERVICE_ROUTE);
        self.path = response::routes(response, &HeaderName::PATH);
        self.failures = 0;
        self.last_failure = None;
        self.timers.clear(RegTimer::Retry);
        self.timers
            .set(RegTimer::Refresh, now + (granted / 2).max(MIN_REFRESH));
        self.timers.set(RegTimer::Expiry, expires_at);
        if self.timers.get(RegTimer::Keepalive).is_none() {
            if let Some(every) = self.keepalive_interval() {
                self.timers.set(RegTimer::Keepalive, now + every);
            }
        }
        self.state = State::Registered;
        if !was_bound {
            self.emit(RegistrationEvent::Registered { expires_at });
        }
    }

    /// 401/407: answer the challenge and send again, unless it shows the credentials are
    /// wrong, cannot be answered, or keeps coming.
    pub(super) fn challenged(&mut self, now: Instant, attempt: Attempt, response: &Response) {
        let kind = match self.auth.challenged(response, &attempt.answered.kinds()) {
            Ok(kind) => kind,
            Err(why) => return self.fail(now, why, None),
        };
        if attempt.challenges >= MAX_CHALLENGES {
            return self.fail(now, Failure::TooManyChallenges, None);
        }
        let again = Attempt {
            challenges: attempt.challenges + 1,
            answered: attempt.answered.with(kind),
            ..attempt
        };
        self.send_register(now, again);
    }

    /// §10.2.8: 423 Interval Too Brief. Ask again, once, for the registrar's Min-Expires,
    /// and keep asking for that from now on.
    pub(super) fn too_brief(&mut self, now: Instant, attempt: Attempt, response: &Response) {
        match response::min_expires(response) {
            Some(min) if !attempt.raised && min > attempt.expires && min <= MAX_EXPIRES => {
                self.expires = min;
                let again = Attempt {
                    expires: min,
                    raised: true,
                    ..attempt
                };
                self.send_register(now, again);
            }
            _ => self.fail(now, Failure::IntervalTooBrief, None),
        }
    }

    /// The answer to our Expires: 0. A challenge is answered once; anything else ends it.
    pub(super) fn unregister_answered(&mut self, attempt: Attempt, response: &Response) {
        let status = response.status;
        if status.is_success() {
            return self.finish(Removal::Confirmed);
        }
        if let Some(peer) = self
            .hop
            .current()
            .filter(|_| matches!(status.0, 401 | 407) && attempt.challenges == 0)
        {
            if let Ok(kind) = self.auth.challenged(response, &[]) {
                let again = Attempt {
                    challenges: 1,
                    answered: attempt.answered.with(kind),
                    ..attempt
                };
                let again = self.transmit(peer, again);
                self.state = State::Unregistering(again);
                return;
            }
        }
        self.finish(Removal::Unconfirmed);
    }

    /// An attempt failed: stop for good when it says so, else back off (longer each time,
    /// at least the registrar's Retry-After).
    pub(super) fn fail(&mut self, now: Instant, why: Failure, retry_after: Option<Duration>) {
        self.last_failure = Some(why);
        if why.is_permanent() {
            self.timers.clear_all();
            self.binding = None;
            self.ping = None;
            self.state = State::Failed { why };
            return self.emit(RegistrationEvent::Stopped { why });
        }
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff().max(retry_after.unwrap_or_default());
        let until = now + wait;
        self.timers.clear(RegTimer::Refresh);
        self.timers.set(RegTimer::Retry, until);
        self.state = State::BackingOff { until, why };
        self.emit(RegistrationEvent::AttemptFailed {
            why,
            retry_at: until,
            consecutive: self.failures,
        });
    }

    /// RFC 5626 §4.5's shape: [`RETRY_BASE`] doubling per failure up to [`MAX_BACKOFF`],
    /// then a random 50–100 % of it, so trunks that failed together do not retry together.
    pub(super) fn backoff(&mut self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        let full = RETRY_BASE.saturating_mul(1 << doublings).min(MAX_BACKOFF);
        let half = full / 2;
        let jitter = self.rng.gen_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// Keeps the path open while a binding is held: OPTIONS over UDP (one at a time),
    /// CRLF over a connection.
    pub(super) fn keepalive(&mut self, now: Instant) {
        let Some(every) = self.keepalive_interval() else {
            return;
        };
        let active = matches!(
            self.state,
            State::Registered | State::Registering(_) | State::BackingOff { .. }
        );
        let Some(peer) = self
            .hop
            .current()
            .filter(|_| active && self.binding.is_some())
        else {
            return;
        };
        self.timers.set(RegTimer::Keepalive, now + every);
        if peer.transport != Transport::Udp {
            self.outputs.push_back(RegistrationOutput::KeepAlive(peer));
        } else if self.ping.is_none() {
            let id = self.next_request_id();
            let request = Box::new(self.build_ping());
            self.ping = Some(id);
            self.outputs
                .push_back(RegistrationOutput::Send { id, request, peer });
        }
    }

    pub(super) fn keepalive_interval(&self) -> Option<Duration> {
        self.cfg.keepalive_every(self.hop.current()?.transport)
    }

    pub(super) fn finish(&mut self, removal: Removal) {
        self.timers.clear_all();
        self.binding = None;
        self.ping = None;
        self.state = State::Unregistered;
        self.emit(RegistrationEvent::Unregistered { removal });
    }

    pub(super) fn emit(&mut self, event: RegistrationEvent) {
        self.outputs.push_back(RegistrationOutput::Event(event));
    }

    pub(super) fn next_request_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }
}
