//! The allocation counter the benchmark reads (`--features alloc-count`): every heap
//! allocation of the process goes through the system allocator with a count beside it, and
//! `/metrics` reports the totals (`process_allocations_total`,
//! `process_allocated_bytes_total`). Off by default: the count costs two atomic additions
//! per allocation, shared by every thread, which a server does not need.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes allocated since the process started.
pub(crate) fn totals() -> (u64, u64) {
    let s = GLOBAL.stats();
    (
        (s.allocations + s.reallocations) as u64,
        (s.bytes_allocated + s.bytes_reallocated.max(0) as usize) as u64,
    )
}
