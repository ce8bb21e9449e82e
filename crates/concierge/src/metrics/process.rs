//! `process_*` metrics of this process, read from `/proc/self` at each scrape (Linux), with
//! the names every Prometheus client uses, so stock dashboards and alerts work.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Reads `/proc/self/stat` and `/proc/self/status` when scraped. On a system without
/// them it reports nothing rather than zeros.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// Linux's USER_HZ: the unit of utime/stime in /proc/self/stat, 100 on every platform
/// Linux runs on today (sysconf(_SC_CLK_TCK); reading it would need libc).
const TICKS_PER_SECOND: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(cpu) = cpu_seconds() {
            let c = ConstCounter::new(cpu);
            let m = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        if let Some(rss) = status_kib("VmRSS:") {
            let g = ConstGauge::new(rss as f64 * 1024.0);
            let m = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        if let Some(vm) = status_kib("VmSize:") {
            let g = ConstGauge::new(vm as f64 * 1024.0);
            let m = encoder.encode_descriptor(
                "process_virtual_memory",
                "Virtual memory size",
                Some(&Unit::Bytes),
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        #[cfg(feature = "alloc-count")]
        {
            let (allocations, bytes) = crate::alloc_count::totals();
            let c = ConstCounter::new(allocations);
            let m = encoder.encode_descriptor(
                "process_allocations",
                "Heap allocations since start (built with the alloc-count feature)",
                None,
                c.metric_type(),
            )?;
            c.encode(m)?;
            let c = ConstCounter::new(bytes);
            let m = encoder.encode_descriptor(
                "process_allocated",
                "Heap bytes allocated since start (built with the alloc-count feature)",
                Some(&Unit::Bytes),
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let g = ConstGauge::new(fds.count() as i64);
            let m = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        Ok(())
    }
}

/// utime + stime from `/proc/self/stat`, in seconds.
fn cpu_seconds() -> Option<f64> {
    parse_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 and 15 (utime, stime), counted after the `(comm)` field, which may itself
/// hold spaces and parentheses — hence the split at the last `)`.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After `)`: state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// A `kB` line of `/proc/self/status`, such as `VmRSS:`.
fn status_kib(key: &str) -> Option<u64> {
    parse_status_kib(&std::fs::read_to_string("/proc/self/status").ok()?, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_utime_plus_stime_even_with_a_strange_command_name() {
        let stat = "1234 (con (cierge) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 100 1000000 900 18446744073709551615";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\tconcierge\nVmSize:\t  20480 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(8192));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(cpu_seconds().is_some());
        assert!(status_kib("VmRSS:").is_some_and(|k| k > 0));
    }
}
