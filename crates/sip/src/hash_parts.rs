//! Hashing a key made of several strings in one write: SipHash costs a few dozen
//! instructions per `write` besides its bytes, and a derived `Hash` writes each string and
//! its terminator separately (six writes for a dialog's three strings). Keys hashed for
//! every message (dialog ids, transaction fingerprints) are written here into one buffer
//! on the stack and handed to the hasher at once.

use std::hash::Hasher;

/// Parts whose bytes, each followed by a 0xFF (which no UTF-8 text holds), fit in this
/// many bytes go to the hasher in one write; longer ones in one write per part.
const BUFFER: usize = 192;

/// Writes `parts` into `state`, each followed by a 0xFF. The same parts always make the
/// same writes (how they are grouped depends only on their lengths), so equal keys hash
/// equal.
pub(crate) fn write_parts<H: Hasher>(state: &mut H, parts: &[&[u8]]) {
    let total: usize = parts.iter().map(|p| p.len() + 1).sum();
    if total <= BUFFER {
        let mut buf = [0u8; BUFFER];
        let mut len = 0;
        for part in parts {
            if let Some(room) = buf.get_mut(len..len + part.len() + 1) {
                let (text, end) = room.split_at_mut(part.len());
                text.copy_from_slice(part);
                end.fill(0xff);
                len += part.len() + 1;
            }
        }
        state.write(buf.get(..len).unwrap_or_default());
    } else {
        for part in parts {
            state.write(part);
            state.write_u8(0xff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, RandomState};

    fn hash(parts: &[&[u8]]) -> u64 {
        let keys = RandomState::new();
        let mut state = keys.build_hasher();
        write_parts(&mut state, parts);
        // The same parts in a second hasher of the same keys: the same hash.
        let mut again = keys.build_hasher();
        write_parts(&mut again, parts);
        assert_eq!(state.finish(), again.finish());
        state.finish()
    }

    #[test]
    fn short_and_long_keys_hash_the_same_each_time() {
        hash(&[b"call@host", b"tag1", b""]);
        let long = [b'x'; 300];
        hash(&[&long, b"tag"]);
    }

    #[test]
    fn where_one_part_ends_counts() {
        let keys = RandomState::new();
        let of = |parts: &[&[u8]]| {
            let mut state = keys.build_hasher();
            write_parts(&mut state, parts);
            state.finish()
        };
        assert_ne!(of(&[b"ab", b"c"]), of(&[b"a", b"bc"]));
    }
}
