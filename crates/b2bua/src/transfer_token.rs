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
}
