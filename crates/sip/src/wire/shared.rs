//! One copy of a message's header section that its parsed URIs and parameters share.
//!
//! A request's Request-URI, the URIs of its From and To and the parameters of those and of
//! its Vias each used to be copied into an allocation of its own (five or six per
//! message). They are pieces of one text, so they now hold a share of one copy of it and
//! where they lie in it: one allocation, made when the first piece is kept.

use std::cell::OnceCell;
use std::ops::Range;
use std::sync::Arc;

/// A header section bigger than this is not shared: each piece kept gets its own copy, as
/// before. A value kept for long (a dialog's URIs) then never holds much more text than
/// it needs, however long the peer made the rest of its message.
const LIMIT: usize = 4096;

/// Text the pieces parsed from it may keep a share of rather than a copy.
pub(crate) struct Shared<'a> {
    text: &'a str,
    copy: OnceCell<Arc<str>>,
}

impl<'a> Shared<'a> {
    /// Pieces of `text` will share one copy of it (made when the first is kept), unless
    /// it is longer than [`LIMIT`].
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            copy: OnceCell::new(),
        }
    }

    /// `piece` kept: a share of the copy and where `piece` lies in it when `piece` is a
    /// slice of the text, else a copy of its own.
    #[inline]
    pub(crate) fn keep(this: Option<&Self>, piece: &str) -> (Arc<str>, Range<usize>) {
        if let Some((copy, range)) = this.and_then(|s| s.share(piece)) {
            return (copy, range);
        }
        (Arc::from(piece), 0..piece.len())
    }

    fn share(&self, piece: &str) -> Option<(Arc<str>, Range<usize>)> {
        if self.text.len() > LIMIT {
            return None;
        }
        // Addresses compared, not dereferenced: a piece of another string (a folded
        // value, joined anew) lies outside and gets its own copy.
        let start = (piece.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        let range = start..start.checked_add(piece.len())?;
        if range.end > self.text.len() {
            return None;
        }
        // `piece` is text itself, so its ends are char boundaries of the text (UTF-8
        // never starts a character with a byte that can end one), and of the copy.
        let copy = self.copy.get_or_init(|| Arc::from(self.text));
        Some((Arc::clone(copy), range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_the_text_share_one_copy_and_others_get_their_own() {
        let text = "INVITE sip:a@b SIP/2.0\r\nTo: <sip:c@d>\r\n";
        let shared = Shared::new(text);
        let uri = text.get(7..14).unwrap();
        let to = text.get(28..37).unwrap();
        let (a, ra) = Shared::keep(Some(&shared), uri);
        let (b, rb) = Shared::keep(Some(&shared), to);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((a.get(ra), b.get(rb)), (Some(uri), Some(to)));
        let other = String::from("sip:e@f");
        let (c, rc) = Shared::keep(Some(&shared), &other);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.get(rc), Some("sip:e@f"));
        let (d, rd) = Shared::keep(None, uri);
        assert_eq!(d.get(rd), Some(uri));
    }

    #[test]
    fn a_long_text_is_not_shared() {
        let text = "x".repeat(LIMIT + 1);
        let shared = Shared::new(&text);
        let (copy, range) = Shared::keep(Some(&shared), text.get(..3).unwrap());
        assert_eq!((&*copy, range), ("xxx", 0..3));
    }
}
