//! The challenges a registration has been given, and the credentials lines answering
//! them (RFC 3261 §22.4, RFC 2617 §3.2.2 with `qop=auth`, RFC 8760 for SHA-256).
//!
//! The last challenge of each kind is kept and answered in every later REGISTER with a
//! rising nonce count, so a refresh usually needs no extra round trip; a registrar that
//! expired the nonce challenges again (`stale=true`, or a fresh nonce) and is answered.
//! The credentials are rejected — the answer was wrong, trying again cannot help — when,
//! without `stale=true`, a challenge carries the very nonce we just answered, or comes
//! for a realm we already answered a challenge of within the same attempt (registrars
//! such as Kamailio issue a fresh nonce with every challenge, wrong password or not).

use super::config::Credentials;
use super::failure::{ChallengeProblem, Failure};
use crate::digest::Challenge;
use crate::wire::{HeaderName, Response, StatusCode};

/// Realm, nonce and opaque are echoed in our answer: longer than this is refused, so a
/// registrar cannot make our requests grow without bound.
const MAX_PARAM_LEN: usize = 512;

/// Challenge headers of one response we look at; more are ignored.
const MAX_CHALLENGE_HEADERS: usize = 8;

/// Which side challenged: the registrar (401) or a proxy on the way (407).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `401` with `WWW-Authenticate`, answered in `Authorization`.
    Www,
    /// `407` with `Proxy-Authenticate`, answered in `Proxy-Authorization`.
    Proxy,
}

impl Kind {
    fn of(status: StatusCode) -> Option<Self> {
        match status.0 {
            401 => Some(Self::Www),
            407 => Some(Self::Proxy),
            _ => None,
        }
    }

    fn challenge_header(self) -> HeaderName {
        match self {
            Self::Www => HeaderName::WWW_AUTHENTICATE,
            Self::Proxy => HeaderName::PROXY_AUTHENTICATE,
        }
    }

    fn answer_header(self) -> HeaderName {
        match self {
            Self::Www => HeaderName::AUTHORIZATION,
            Self::Proxy => HeaderName::PROXY_AUTHORIZATION,
        }
    }
}

/// A challenge and how often its nonce has been used.
#[derive(Debug, Clone)]
struct Answered {
    challenge: Challenge,
    /// The nonce count of the last answer (RFC 2617 §3.2.2: from 1, rising per request).
    nc: u32,
}

/// The challenges to answer in the next requests: at most one per kind.
#[derive(Debug, Clone, Default)]
pub(super) struct Auth {
    www: Option<Answered>,
    proxy: Option<Answered>,
}

impl Auth {
    /// Takes in the challenge of a 401 or 407 to our last request, `answered` being the
    /// kinds whose challenges this attempt already answered. `Ok(kind)` when the request
    /// should go again with an answer to it; `Err` when it must not.
    pub(super) fn challenged(
        &mut self,
        response: &Response,
        answered: &[Kind],
    ) -> Result<Kind, Failure> {
        let kind = Kind::of(response.status).ok_or(Failure::Refused(response.status))?;
        let header = kind.challenge_header();
        let challenge = Challenge::best(
            response
                .headers
                .get_all(&header)
                .take(MAX_CHALLENGE_HEADERS),
        )
        .map_err(|e| Failure::Challenge(e.into()))?;
        if ![
            Some(challenge.realm.as_str()),
            Some(challenge.nonce.as_str()),
            challenge.opaque.as_deref(),
        ]
        .into_iter()
        .flatten()
        .all(echoable)
        {
            return Err(Failure::Challenge(ChallengeProblem::Malformed));
        }
        let slot = match kind {
            Kind::Www => &mut self.www,
            Kind::Proxy => &mut self.proxy,
        };
        let rejected = slot.as_ref().is_some_and(|a| {
            a.challenge.nonce == challenge.nonce
                || (answered.contains(&kind) && a.challenge.realm == challenge.realm)
        });
        if rejected && !challenge.stale {
            return Err(Failure::CredentialsRejected);
        }
        *slot = Some(Answered { challenge, nc: 0 });
        Ok(kind)
    }

    /// The credentials lines for the next request (`method` on `uri`), each nonce count
    /// one higher than the last; `cnonce` gives each line a fresh client nonce.
    pub(super) fn answers(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        mut cnonce: impl FnMut() -> String,
    ) -> Vec<(HeaderName, String)> {
        let mut out = Vec::new();
        for (kind, slot) in [(Kind::Www, &mut self.www), (Kind::Proxy, &mut self.proxy)] {
            let Some(answered) = slot else { continue };
            answered.nc = answered.nc.saturating_add(1);
            let line = answered.challenge.answer(
                &credentials.username,
                credentials.password.expose(),
                method,
                uri,
                &cnonce(),
                answered.nc,
            );
            out.push((kind.answer_header(), line));
        }
        out
    }
}

/// A value we may put back between quotes in our answer.
fn echoable(value: &str) -> bool {
    value.len() <= MAX_PARAM_LEN
        && !value
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
}
