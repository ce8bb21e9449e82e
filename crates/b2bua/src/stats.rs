//! Counters of what the switch did that no call record shows, for the driver's metrics.
//!
//! Plain numbers that only grow, read by the driver with [`crate::Switch::stats`] whenever
//! it likes (it turns them into Prometheus counters): the core stays free of any metrics
//! library, and a counter costs one add on the hot path. Everything a call did is in its
//! [`crate::CallRecord`] instead, which the driver reads as each call ends.

/// Totals since the switch started. A new counter is a field here plus one line in the
/// driver's `Metrics::observe_switch`, which adds what grew since it last looked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SwitchStats {
    /// New INVITEs answered 503 because `max_calls` calls were up.
    pub refused_max_calls: u64,
    /// New INVITEs answered 503 because the switch was draining (shutdown).
    pub refused_draining: u64,
    /// New INVITEs answered 503 because no RTP port was free or could be bound.
    pub refused_no_port: u64,
    /// New INVITEs answered 503 (stateless) over `[calls] invite_rate`.
    pub refused_rate_limit: u64,
    /// New INVITEs answered 503 (stateless) over `[calls] source_invite_rate` for their source.
    pub refused_source_rate_limit: u64,
    /// New INVITEs answered 503 (stateless) while the driver reported overload.
    pub refused_overloaded: u64,
    /// Times a new flow version was installed ([`crate::Command::Install`]).
    pub programs_installed: u64,
}
