//! The identifiers that tie messages together: [`CallId`], [`Tag`] and [`Branch`].
//!
//! Each is a string with its own type, so a tag cannot be passed where a Call-ID or
//! a branch is expected. The split follows where a value lives: the codec (`wire`) hands
//! out header values as the raw text it parsed (`request.call_id`, `from.tag()`,
//! `via.branch()` are `String`/`&str`), and the identity layer — [`DialogId`],
//! [`Dialog`], [`TsxKey`] and the generators on [`Endpoint`] — holds these types. Crossing
//! from the wire into that layer is a `From` conversion; going back to a header is
//! [`as_str`](Tag::as_str).
//!
//! None of them checks its text: a value taken from a peer's message is whatever the peer
//! wrote (already bounded and validated as a header by the codec), and comparing it is all
//! the identity layer does with it.
//!
//! [`DialogId`]: crate::dialog::DialogId
//! [`Dialog`]: crate::dialog::Dialog
//! [`TsxKey`]: crate::transaction::TsxKey
//! [`Endpoint`]: crate::endpoint::Endpoint

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Defines one string newtype with the conversions and comparisons all three share. The
/// text is shared (`Arc<str>`): an id is copied into every key, dialog and message that
/// names it, and a copy is then a count, not an allocation.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The text as it goes into a header.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The owned text, for a message field that holds a `String`.
            pub fn into_string(self) -> String {
                self.0.as_ref().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by this type can be searched with the `&str` of a parsed header.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text.into())
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.into())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.into_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                *self.0 == **other
            }
        }
    };
}

string_id! {
    /// The Call-ID header value (RFC 3261 §8.1.1.4, §20.8): the same in every request and
    /// response of a call, and with the tags it identifies a dialog (§12).
    ///
    /// One that arrives in a request is the caller's and is kept as it was written
    /// (compared byte for byte, §19.3). One we make for a call we place must be globally
    /// unique over space and time; the call logic builds it from
    /// [`Endpoint::random_u64`](crate::endpoint::Endpoint::random_u64).
    CallId
}

string_id! {
    /// The `tag` parameter of a From or To header (RFC 3261 §19.3): each side's half of a
    /// dialog's identity (§12).
    ///
    /// A peer's tag is kept as it was written. One of ours comes from
    /// [`Endpoint::new_tag`](crate::endpoint::Endpoint::new_tag): twelve hex digits (48
    /// bits) from the endpoint's generator, which the driver seeds at random and tests seed
    /// with a constant ([`EndpointConfig::seed`](crate::endpoint::EndpointConfig::seed)).
    /// An empty tag stands for one the peer left out (an RFC 2543 element).
    Tag
}

string_id! {
    /// The `branch` parameter of a Via header (RFC 3261 §8.1.1.7, §20.42): names one
    /// transaction on one hop.
    ///
    /// Every branch we generate (in [`Endpoint::new_via`](crate::endpoint::Endpoint::new_via)
    /// and for each client transaction) starts with the magic cookie
    /// [`MAGIC_COOKIE`](crate::wire::MAGIC_COOKIE) `z9hG4bK`, followed by sixteen hex digits
    /// (64 bits) from the endpoint's seeded generator, so it is unique per transaction. A
    /// peer's branch may lack the cookie (an RFC 2543 element); then transactions are
    /// matched on other headers (§17.2.3).
    Branch
}

/// A Call-ID reads as its text: it is a message's field (`Request::call_id`), and a
/// message's `Debug` (what the codec's verdicts print) shows it as the text it was.
impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tag").field(&self.0).finish()
    }
}

impl fmt::Debug for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Branch").field(&self.0).finish()
    }
}

impl Branch {
    /// Whether it starts with the RFC 3261 magic cookie, so it alone (with the sent-by and
    /// method) identifies a transaction (§17.2.3). Every branch we generate does.
    pub fn is_rfc3261(&self) -> bool {
        self.0.starts_with(crate::wire::MAGIC_COOKIE)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_map_keyed_by_an_id_is_searched_with_header_text() {
        let mut calls = HashMap::new();
        calls.insert(CallId::from("a84b4c76e66710"), 1);
        assert_eq!(calls.get("a84b4c76e66710"), Some(&1));
        assert_eq!(
            calls.get("A84B4C76E66710"),
            None,
            "Call-IDs compare byte for byte"
        );
    }

    #[test]
    fn ids_print_and_convert_as_their_bare_text() {
        let tag = Tag::from("1928301774".to_owned());
        assert_eq!(tag.to_string(), "1928301774");
        assert_eq!(tag, "1928301774");
        assert_eq!(String::from(tag.clone()), "1928301774");
        assert_eq!(tag.into_string(), "1928301774");
    }

    #[test]
    fn only_a_cookie_branch_is_an_rfc3261_branch() {
        assert!(Branch::from("z9hG4bK776asdhds").is_rfc3261());
        assert!(!Branch::from("776asdhds").is_rfc3261());
        assert!(!Branch::default().is_rfc3261());
    }
}
