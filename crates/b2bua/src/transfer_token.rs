//! The signed transfer context: a REFER's Refer-To (or a 302's Contact) passes through
//! the caller's phone, which places the new call and could change `X-Concierge-Tier` on
//! the way. So when a transfer carries flow variables, Concierge adds the original call
//! id and caller, and `X-Concierge-Token`: an HMAC-SHA256 over those headers and an
//! expiry, with a key from the environment, that the queue side (or a proxy in front of
//! it) verifies — `deploy/verify_transfer_token.py` shows how.
//!
//! Token: `v1;exp=<unix seconds>;h=<header names, lowercase, comma-separated>;sig=<hex>`,
//! where `sig` = HMAC-SHA256(key, "v1\n" + exp + "\n" + for each name in `h`:
//! name + ":" + value + "\n"), the values as they read after URI-header unescaping.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header with the original call's Call-ID.
pub const CALL_ID_HEADER: &str = "X-Concierge-Call-Id";
/// Header with the caller's number (`anonymous` when the caller asked for privacy).
pub const CALLER_HEADER: &str = "X-Concierge-Caller";
/// Header with the token.
pub const TOKEN_HEADER: &str = "X-Concierge-Token";

/// The key and lifetime of transfer tokens. `Debug` does not show the key.
#[derive(Clone)]
pub struct TransferSigner {
    key: Vec<u8>,
    /// How long after the transfer a token is accepted.
    pub ttl_s: u64,
}

impl std::fmt::Debug for TransferSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferSigner")
            .field("key", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

impl TransferSigner {
    /// Signs with `key` (HMAC-SHA256); a token is valid `ttl_s` seconds after the
    /// transfer.
    pub fn new(key: impl Into<Vec<u8>>, ttl_s: u64) -> Self {
        Self {
            key: key.into(),
            ttl_s,
        }
    }

    /// Adds the call id, the caller and the token to a transfer's `headers`.
    pub fn sign(
        &self,
        headers: &mut Vec<(String, String)>,
        call_id: &str,
        caller: &str,
        now_unix_s: u64,
    ) {
        headers.retain(|(n, _)| {
            ![CALL_ID_HEADER, CALLER_HEADER, TOKEN_HEADER]
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
        });
        headers.push((CALL_ID_HEADER.into(), call_id.into()));
        headers.push((CALLER_HEADER.into(), caller.into()));
        let exp = now_unix_s + self.ttl_s;
        let names: Vec<String> = headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("v1\n{exp}\n").as_bytes());
        for (name, (_, value)) in names.iter().zip(headers.iter()) {
            mac.update(format!("{name}:{value}\n").as_bytes());
        }
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        headers.push((
            TOKEN_HEADER.into(),
            format!("v1;exp={exp};h={};sig={sig}", names.join(",")),
        ));
    }
}

/// Why [`TransferSigner::verify`] refused a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `v1;exp=…;h=…;sig=…` (another version, a field missing or unreadable).
    #[error("not a transfer token (expected v1;exp=…;h=…;sig=…)")]
    Malformed,
    /// A header the token signs did not come with it.
    #[error("the signed header {0} is missing")]
    MissingHeader(String),
    /// The signature does not match the headers: altered, or signed with another key.
    #[error(
        "the signature does not match: the headers were altered, or it was signed with another key"
    )]
    BadSignature,
    /// Genuine, but older than its lifetime.
    #[error("expired at {exp} (Unix seconds)")]
    Expired {
        /// When it expired.
        exp: u64,
    },
}

/// What a genuine token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedContext {
    /// When the token expires (Unix seconds).
    pub expires_unix_s: u64,
    /// The signed headers in the token's order, names in lower case, values as received.
    pub headers: Vec<(String, String)>,
}

impl SignedContext {
    /// The value of the signed header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl TransferSigner {
    /// Checks `token` (an `X-Concierge-Token` value) against the `headers` that came with it
    /// (names in any case, values after URI-header unescaping) at `now_unix_s`: the
    /// signature over the headers it names, then its expiry. The comparison is the MAC
    /// crate's constant-time one. Returns the signed headers, or why the token is refused
    /// (a forged or altered token is never reported as merely expired).
    ///
    /// Callers: the live console's call widget (`/widget?token=…`), and anything that takes
    /// a transfer's context from a desk. `deploy/verify_transfer_token.py` does the same.
    pub fn verify(
        &self,
        token: &str,
        headers: &[(String, String)],
        now_unix_s: u64,
    ) -> Result<SignedContext, TokenError> {
        let mut exp = None;
        let mut names = None;
        let mut sig = None;
        let mut fields = token.trim().split(';');
        if fields.next() != Some("v1") {
            return Err(TokenError::Malformed);
        }
        for field in fields {
            match field.split_once('=') {
                Some(("exp", v)) => exp = v.parse::<u64>().ok(),
                Some(("h", v)) => names = Some(v),
                Some(("sig", v)) => sig = hex_decode(v),
                _ => return Err(TokenError::Malformed),
            }
        }
        let (Some(exp), Some(names), Some(sig)) = (exp, names, sig) else {
            return Err(TokenError::Malformed);
        };
        let mut signed = Vec::new();
        for name in names.split(',').filter(|n| !n.is_empty()) {
            let value = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| TokenError::MissingHeader(name.to_owned()))?;
            signed.push((name.to_ascii_lowercase(), value));
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("v1\n{exp}\n").as_bytes());
        for (name, value) in &signed {
            mac.update(format!("{name}:{value}\n").as_bytes());
        }
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        if now_unix_s >= exp {
            return Err(TokenError::Expired { exp });
        }
        Ok(SignedContext {
            expires_unix_s: exp,
            headers: signed,
        })
    }
}

/// Lower- or upper-case hex to bytes; `None` for anything else.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some((digit(*pair.first()?)? * 16 + digit(*pair.get(1)?)?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_covers_the_headers_call_id_caller_and_expiry() {
        let signer = TransferSigner::new(b"k".to_vec(), 120);
        let mut h = vec![("X-Concierge-Tier".to_owned(), "gold".to_owned())];
        signer.sign(&mut h, "c1@host", "+46706170786", 1_800_000_000);
        assert_eq!(h.len(), 4);
        let token = &h[3].1;
        assert!(
            token.starts_with(
                "v1;exp=1800000120;h=x-concierge-tier,x-concierge-call-id,x-concierge-caller;sig="
            ),
            "{token}"
        );
        // The same input signs the same; a different tier signs differently.
        let mut again = vec![("X-Concierge-Tier".to_owned(), "gold".to_owned())];
        signer.sign(&mut again, "c1@host", "+46706170786", 1_800_000_000);
        assert_eq!(h, again);
        let mut other = vec![("X-Concierge-Tier".to_owned(), "silver".to_owned())];
        signer.sign(&mut other, "c1@host", "+46706170786", 1_800_000_000);
        assert_ne!(other[3].1, h[3].1);
        // Forged context headers from the flow are replaced, not signed twice.
        let mut forged = vec![(CALLER_HEADER.to_owned(), "+1".to_owned())];
        signer.sign(&mut forged, "c1", "+46", 0);
        assert_eq!(forged.iter().filter(|(n, _)| n == CALLER_HEADER).count(), 1);
        assert!(format!("{signer:?}").contains("<redacted>"));
    }

    fn signed(tier: &str) -> Vec<(String, String)> {
        let mut h = vec![("X-Concierge-Tier".to_owned(), tier.to_owned())];
        TransferSigner::new(b"k".to_vec(), 120).sign(&mut h, "c1@host", "+46706170786", 1_000);
        h
    }

    fn token(h: &[(String, String)]) -> String {
        h.iter().find(|(n, _)| n == TOKEN_HEADER).unwrap().1.clone()
    }

    #[test]
    fn a_token_verifies_against_the_headers_it_signed_until_it_expires() {
        let signer = TransferSigner::new(b"k".to_vec(), 120);
        let h = signed("gold");
        let context = signer.verify(&token(&h), &h, 1_100).expect("genuine");
        assert_eq!(context.expires_unix_s, 1_120);
        assert_eq!(context.get("X-Concierge-Tier"), Some("gold"));
        assert_eq!(context.get("x-concierge-caller"), Some("+46706170786"));
        assert_eq!(
            signer.verify(&token(&h), &h, 1_120),
            Err(TokenError::Expired { exp: 1_120 })
        );
        // Header names arrive in any case.
        let upper: Vec<(String, String)> = h
            .iter()
            .map(|(n, v)| (n.to_ascii_uppercase(), v.clone()))
            .collect();
        assert!(signer.verify(&token(&h), &upper, 1_100).is_ok());
    }

    #[test]
    fn an_altered_header_another_key_or_a_made_up_token_is_refused() {
        let signer = TransferSigner::new(b"k".to_vec(), 120);
        let h = signed("member");
        let mut altered = h.clone();
        altered[0].1 = "gold".into();
        assert_eq!(
            signer.verify(&token(&h), &altered, 1_100),
            Err(TokenError::BadSignature)
        );
        let other = TransferSigner::new(b"other".to_vec(), 120);
        assert_eq!(
            other.verify(&token(&h), &h, 1_100),
            Err(TokenError::BadSignature)
        );
        // An expired forgery is a forgery.
        assert_eq!(
            other.verify(&token(&h), &h, 9_999),
            Err(TokenError::BadSignature)
        );
        let missing: Vec<(String, String)> = h[1..].to_vec();
        assert_eq!(
            signer.verify(&token(&h), &missing, 1_100),
            Err(TokenError::MissingHeader("x-concierge-tier".into()))
        );
        for junk in [
            "",
            "v2;exp=1;h=a;sig=00",
            "v1;exp=x;h=a;sig=00",
            "v1;exp=1;h=a;sig=zz",
            "v1;exp=1;h=a",
            "v1;exp=1;h=a;sig=0",
        ] {
            assert_eq!(
                signer.verify(junk, &h, 0),
                Err(TokenError::Malformed),
                "{junk:?}"
            );
        }
    }
}
