//! SIP signalling for Concierge, sans-IO.
//!
//! Nothing in this crate owns a socket, a thread or a clock. The driver feeds bytes and the
//! current [`std::time::Instant`] in and drains what to send and when to wake up out:
//!
//! * [`wire`] turns bytes into our own message types (our own codec, no codec crate) and
//!   messages back into bytes;
//! * [`transaction`] holds the four RFC 3261 §17 state machines and their timer table;
//! * [`dialog`] holds the RFC 3261 §12 dialog state and builds in-dialog requests;
//! * [`ids`] gives Call-IDs, tags and branches their own types;
//! * [`endpoint`] owns all transactions of one shard, matches each message to its
//!   transaction (§17.1.3, §17.2.3, §9.2) and reports what the application must decide;
//! * [`registration`] keeps a trunk registered at its registrar (§10.2), sending its
//!   REGISTERs as client transactions of the endpoint.
//!
//! The run loop a driver implements, for every socket event or expired deadline:
//! `endpoint.handle_*(now, …)`, then drain `poll_transmit()` and `poll_event()` until both
//! are empty, then sleep until `poll_timeout()`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dialog;
pub mod digest;
pub mod endpoint;
#[doc(hidden)]
pub mod fuzzing;
mod hash_parts;
pub mod ids;
pub mod registration;
pub mod transaction;
pub mod untrusted;
pub mod wire;

pub use endpoint::{Endpoint, EndpointConfig, EndpointEvent, Peer, Transmit};
pub use ids::{Branch, CallId, Tag};
pub use untrusted::{LogLimiter, Untrusted, UntrustedBytes};
