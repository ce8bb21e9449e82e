//! OpenMetrics → Prometheus text format (0.0.4).
//!
//! `prometheus-client` writes OpenMetrics, which Prometheus itself scrapes when it asks
//! for it. Tools that read the classic text format (promtool, older scrapers, a person
//! with curl) get it converted: the two differ only in that a counter family's HELP and
//! TYPE lines name it without `_total` in OpenMetrics and with it in the text format, and
//! in the `# UNIT` and `# EOF` lines, which the text format does not have.

use std::collections::HashSet;

pub(super) fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let om = "# HELP concierge_calls Calls ended.\n# TYPE concierge_calls counter\n\
                  concierge_calls_total{flow=\"vip\"} 2\n\
                  # HELP concierge_x_seconds X.\n# TYPE concierge_x_seconds histogram\n\
                  # UNIT concierge_x_seconds seconds\nconcierge_x_seconds_count 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP concierge_calls_total Calls ended.\n# TYPE concierge_calls_total counter\n\
             concierge_calls_total{flow=\"vip\"} 2\n\
             # HELP concierge_x_seconds X.\n# TYPE concierge_x_seconds histogram\n\
             concierge_x_seconds_count 1\n"
        );
    }
}
