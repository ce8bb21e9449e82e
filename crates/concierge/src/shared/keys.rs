//! Key names in the store. Everything after the prefix is a digest of what the key stands
//! for (a caller number, an address, a lookup's URL), so scanning the keyspace shows no
//! number, address or code; only the kind of entry stays readable:
//!
//! - `{prefix}:lockout:{digest}:failures` — a sorted set of failure times;
//! - `{prefix}:lockout:{digest}:lock` — present while the subject is locked;
//! - `{prefix}:lookup:{digest}` — one lookup answer (status and saved value);
//! - `{prefix}:load` — a hash: instance → its calls, new-call rate and expiry.

use sha2::{Digest, Sha256};

pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The two keys of one lockout subject in `group`: its failures and its lock.
    pub(super) fn lockout(&self, group: &str, kind: &str, subject: &str) -> (String, String) {
        let d = self.digest(&["lockout", group, kind, subject]);
        (
            format!("{}:lockout:{d}:failures", self.prefix),
            format!("{}:lockout:{d}:lock", self.prefix),
        )
    }

    /// The key of one lookup answer, from the flow's [`concierge_flow::ShareSpec::key`].
    pub(super) fn lookup(&self, share_key: &str) -> String {
        format!(
            "{}:lookup:{}",
            self.prefix,
            self.digest(&["lookup", share_key])
        )
    }

    /// The hash of every instance's load.
    pub(super) fn load(&self) -> String {
        format!("{}:load", self.prefix)
    }

    /// 128 bits of SHA-256 over the parts, each length-prefixed so that no two different
    /// lists of parts give the same input. The prefix goes in too: two deployments on one
    /// server never meet.
    fn digest(&self, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for part in std::iter::once(&self.prefix.as_str()).chain(parts) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_kind_and_hide_what_they_stand_for() {
        let k = Keys::new("concierge");
        let (failures, lock) = k.lockout("codes", "number-verified", "+46706170786");
        assert!(failures.starts_with("concierge:lockout:") && failures.ends_with(":failures"));
        assert_eq!(
            failures.trim_end_matches(":failures"),
            lock.trim_end_matches(":lock")
        );
        let lookup = k.lookup("GET http://crm/customers/%2B46706170786\n\n");
        for key in [&failures, &lock, &lookup] {
            assert!(!key.contains("46706170786"), "{key}");
        }
        // Claimed and verified numbers, and other groups or prefixes, are apart.
        assert_ne!(
            k.lockout("codes", "number-claimed", "+46706170786").0,
            failures
        );
        assert_ne!(
            k.lockout("pins", "number-verified", "+46706170786").0,
            failures
        );
        assert_ne!(
            Keys::new("other")
                .lockout("codes", "number-verified", "+46706170786")
                .0,
            failures.replacen("concierge", "other", 1)
        );
        assert_eq!(k.load(), "concierge:load");
    }
}
