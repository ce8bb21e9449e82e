//! Why a registration attempt failed, and whether trying again can help.
//!
//! Every message here is our own text: a registrar's reason phrase, realm or nonce never
//! reaches it, so a failure can go into a log line, a status page or a metric label as it
//! is, whatever the registrar sent.

use crate::digest::DigestError;
use crate::wire::StatusCode;

/// Why a REGISTER did not leave us registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A final answer that is no success (the reason phrase is the RFC's, not the peer's).
    #[error("the registrar answered {} {}", .0, .0.default_reason())]
    Refused(StatusCode),
    /// No response at all (timer F), from every address of the registrar.
    #[error("no response from the registrar")]
    NoResponse,
    /// The registrar's (or outbound proxy's) name has no address.
    #[error("the registrar's address could not be found")]
    Unresolvable,
    /// RFC 3261 §22.4 via RFC 2617 §3.2.2: challenged again, not `stale=true`, for the
    /// very nonce we answered or for a realm this attempt already answered: the
    /// credentials are wrong.
    #[error("the registrar rejected the credentials")]
    CredentialsRejected,
    /// A challenge we cannot answer.
    #[error("cannot answer the registrar's challenge: {0}")]
    Challenge(ChallengeProblem),
    /// More fresh challenges in a row than any registrar needs.
    #[error("the registrar challenged every answer")]
    TooManyChallenges,
    /// 423 without a usable `Min-Expires` (missing, not above what we asked, or above
    /// a day), or a second 423 for the same attempt.
    #[error("the registrar asks for a registration interval we will not use (423)")]
    IntervalTooBrief,
    /// A 2xx that binds our contact for 0 seconds.
    #[error("the registrar accepted the request but bound no contact of ours")]
    NotBound,
    /// The binding ran out before a refresh succeeded.
    #[error("the registration expired before it could be refreshed")]
    Expired,
}

/// What is wrong with a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeProblem {
    /// No `WWW-Authenticate`/`Proxy-Authenticate` header, or no Digest one.
    #[error("no Digest challenge")]
    NotDigest,
    /// A parameter the answer needs (realm, nonce) is missing.
    #[error("the challenge lacks a required parameter")]
    Incomplete,
    /// An algorithm other than MD5 and SHA-256 (and their `-sess` forms).
    #[error("unsupported algorithm")]
    Algorithm,
    /// A `qop` without `auth`.
    #[error("unsupported qop")]
    Qop,
    /// A realm, nonce or opaque value too long, or holding quotes, backslashes or control
    /// characters that would break the header our answer goes in.
    #[error("malformed challenge parameters")]
    Malformed,
}

impl From<DigestError> for ChallengeProblem {
    fn from(e: DigestError) -> Self {
        match e {
            DigestError::NotDigest => Self::NotDigest,
            DigestError::Missing(_) => Self::Incomplete,
            DigestError::Algorithm(_) => Self::Algorithm,
            DigestError::Qop(_) => Self::Qop,
        }
    }
}

impl Failure {
    /// Whether trying again unchanged cannot succeed: the registrar said so (RFC 3261
    /// §21: 403 "authorization will not help", 404 the user does not exist here, …), or
    /// the credentials or challenge are the problem. Hammering a registrar with requests
    /// it refuses for good only risks the account being locked; the trunk stays down
    /// until the operator changes the configuration.
    pub fn is_permanent(self) -> bool {
        match self {
            Self::Refused(status) => matches!(
                status.0,
                // Our request is malformed for it, or uses what it does not support.
                400 | 405 | 416 | 420 | 501
                // Not this user, not here, not ever.
                | 403 | 404 | 410 | 484 | 603 | 604 | 606
            ),
            Self::CredentialsRejected | Self::Challenge(_) => true,
            Self::NoResponse
            | Self::Unresolvable
            | Self::TooManyChallenges
            | Self::IntervalTooBrief
            | Self::NotBound
            | Self::Expired => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_ours_whatever_the_registrar_wrote() {
        assert_eq!(
            Failure::Refused(StatusCode(403)).to_string(),
            "the registrar answered 403 Forbidden"
        );
        assert_eq!(
            Failure::Challenge(DigestError::Algorithm("\u{1b}[31mX".into()).into()).to_string(),
            "cannot answer the registrar's challenge: unsupported algorithm"
        );
    }

    #[test]
    fn forbidden_and_not_found_stop_while_busy_and_unavailable_retry() {
        for code in [403, 404, 603] {
            assert!(Failure::Refused(StatusCode(code)).is_permanent(), "{code}");
        }
        for code in [408, 480, 486, 500, 503, 504, 600] {
            assert!(!Failure::Refused(StatusCode(code)).is_permanent(), "{code}");
        }
    }
}
