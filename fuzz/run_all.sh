#!/bin/sh
# Runs every fuzz target for SECONDS (default 600) one after the other, growing
# fuzz/corpus/<target>/ in place; output in fuzz/logs/<target>.log. The toolchain here
# is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the nightly-only sanitizer flags.
# Usage (from the repository root): sh fuzz/run_all.sh [SECONDS] [TARGET...]
set -u
cd "$(dirname "$0")"
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-"sip_datagram sip_stream digest_challenge sdp_offer_answer rtp_events info_body flow_toml"}
mkdir -p logs
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t for ${seconds}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "logs/$t.log" 2>&1
    echo "   exit $? — $(grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "logs/$t.log" | tr '\n' ' ')"
done
