#!/bin/sh
# Shrinks fuzz/corpus/TARGET to the inputs that keep its edge coverage (counters off:
# hit counts would keep thousands of near-duplicates), for committing.
# Usage (from the repository root): sh fuzz/minimise.sh TARGET...
set -eu
cd "$(dirname "$0")"
mkdir -p logs
for t in "$@"; do
    tmp=$(mktemp -d)
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$tmp" "corpus/$t" -- -merge=1 -use_counters=0 \
        > "logs/minimise_$t.log" 2>&1
    before=$(ls "corpus/$t" | wc -l)
    rm -rf "corpus/$t" && mv "$tmp" "corpus/$t"
    echo "$t: $before -> $(ls "corpus/$t" | wc -l) files, $(du -sb "corpus/$t" | cut -f1) bytes"
done
