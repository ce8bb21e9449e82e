//! What the interpreter asks its caller to do.

// HTTP bodies and caller values reach this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::sync::Arc;
use std::time::Duration;

use crate::model::TransferMode;

/// What the caller of the interpreter must do next, returned by [`Run::start`](crate::Run::start)
/// and [`Run::handle`](crate::Run::handle). Each action names the [`Event`](crate::Event) that
/// reports its outcome; while it is under way the run waits (an event it did not ask for repeats
/// the action or is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play the prompts in order, then report
    /// [`Event::PromptFinished`](crate::Event::PromptFinished).
    Play {
        /// Prompt names (the catalogue's), `spell:` entries already expanded to digits.
        prompts: Vec<String>,
        /// A key stops the prompts; it stays for the next keypad (barge-in).
        interruptible: bool,
    },
    /// Collect keypad digits as the spec says (a [`crate::Collector`] does it), then report
    /// [`Event::Digits`](crate::Event::Digits), [`Event::InputTimeout`](crate::Event::InputTimeout)
    /// or, when its lockout group is locked for this caller,
    /// [`Event::Locked`](crate::Event::Locked).
    CollectDigits(CollectSpec),
    /// Perform the request (after its `delay`), then report
    /// [`Event::HttpResult`](crate::Event::HttpResult). Boxed: a request is by far the largest
    /// action.
    Http(Box<HttpRequest>),
    /// Move the call to `target`, then report
    /// [`Event::TransferResult`](crate::Event::TransferResult); after a success the run is over.
    Transfer {
        /// A `sip:`, `sips:` or `tel:` URI, rendered from the node's template.
        target: String,
        /// Headers for the new call (bridge) or the Refer-To (REFER), rendered.
        headers: Vec<(String, String)>,
        /// How the call layer moves the call.
        mode: TransferMode,
        /// Played to the caller before the transfer starts.
        prompt: Option<String>,
        /// The target or a header was rendered from a secret variable or `${ENV}`: logs
        /// and records must not show them.
        redact: bool,
        /// The registered trunk the call goes through (the node's `trunk`, or a target
        /// written `sip:USER@trunk:NAME`): its route and credentials, and for a target in
        /// that form its registrar's domain. `None`: straight to the target.
        trunk: Option<String>,
    },
    /// End the call (playing `prompt` first when there is one); the run is over and any
    /// further event returns [`Action::Done`].
    Hangup {
        /// The last thing the caller hears.
        prompt: Option<String>,
        /// Why, for logs and the call record (`flow ended at bye`, `transfer failed: …`).
        reason: String,
    },
    /// The flow has ended; nothing more will be asked.
    Done,
}

/// How to collect digits for a keypad node ([`Action::CollectDigits`]); the media layer
/// hands it to a [`crate::Collector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectSpec {
    /// Played first; a key press stops it (barge-in).
    pub prompts: Vec<String>,
    /// Fewer digits than this is an invalid entry (the node retries or takes `invalid`).
    pub min: u32,
    /// Collection stops at this many digits.
    pub max: u32,
    /// No key within this after the prompts end is
    /// [`Event::InputTimeout`](crate::Event::InputTimeout).
    pub first_digit_timeout: Duration,
    /// No further key within this ends the entry with the digits so far.
    pub inter_digit_timeout: Duration,
    /// The key that ends an entry early (`#` by default); it is not part of the digits.
    pub terminator: Option<char>,
    /// The digits are a secret (`secret = true`): never shown in logs, records or output.
    pub secret: bool,
    /// The keypad's lockout group: while it is locked for this caller, answer
    /// [`Event::Locked`](crate::Event::Locked) instead of collecting.
    pub lockout: Option<String>,
}

/// An HTTP request to perform. Header values may hold secrets from the environment, so
/// `Debug` does not print them.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The `http` node that asks (for logs, metrics and the call record).
    pub node: String,
    /// `GET`, `POST` or `PUT`.
    pub method: String,
    /// The URL, variables percent-encoded. May hold a secret: log [`Self::url_for_log`].
    pub url: String,
    /// Header values rendered (may hold `${ENV}` tokens), plus `Content-Type` with a body.
    pub headers: Vec<(String, String)>,
    /// The body, variables escaped for its content type (JSON or form).
    pub body: Option<String>,
    /// Give up after this long and report [`HttpFailure::Timeout`](crate::HttpFailure::Timeout).
    pub timeout: Duration,
    /// Wait this long before sending (retry backoff).
    pub delay: Duration,
    /// The URL was rendered from a secret variable or `${ENV}`: logs and output show
    /// `<redacted>` for it. (Header values and the body are never shown.)
    pub redact: bool,
    /// The node caches its answers ([`crate::LookupCache`]).
    pub cache: Option<crate::CacheSpec>,
    /// The cache key: method, URL, body and the headers not rendered from a secret or
    /// `${ENV}` (a token that changes must not empty the cache). Never shown.
    pub cache_key: Option<String>,
    /// What a cache shared by several instances may keep of the answer; `None` when the
    /// node does not cache, or when its URL or body is built from a secret variable or
    /// `${ENV}`, or its value goes into a secret variable (such answers stay in this
    /// process).
    pub share: Option<crate::ShareSpec>,
    /// Audio for the caller while the request is in flight.
    pub comfort: Option<crate::ComfortSpec>,
    /// The request carries a bearer token from this `[auth.<name>]` block.
    pub auth: Option<Arc<crate::AuthSpec>>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("node", &self.node)
            .field("method", &self.method)
            .field("url", &self.url_for_log())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("cache", &self.cache.is_some())
            .field("auth", &self.auth.as_ref().map(|a| a.name.as_str()))
            .finish()
    }
}

impl HttpRequest {
    /// The URL as logs may show it.
    pub fn url_for_log(&self) -> &str {
        if self.redact {
            "<redacted>"
        } else {
            &self.url
        }
    }
}
