//! Outbound registration (RFC 3261 §10.2) in virtual time: one behaviour per test, the
//! test playing the registrar. `request` is what a REGISTER holds, `auth` the digest
//! challenges, `refresh` what a 2xx grants and when it is renewed, `failures` back-off
//! and stopping, `keepalive` the path kept open, `unregister` Expires: 0, `hostile`
//! registrars that misbehave, `endpoint` several trunks over a real `Endpoint`.

mod auth;
mod endpoint;
mod failures;
mod hostile;
mod keepalive;
mod refresh;
mod request;
mod rig;
mod unregister;
