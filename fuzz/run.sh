#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) with cargo-fuzz (libFuzzer) on stable via
# RUSTC_BOOTSTRAP=1, starting from the committed seed corpus; prints a table.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(run_config mmds_document jwt_claims control_json proxy_path kernel_cmdline redact)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
echo "| target | seconds | runs | result |"
echo "|---|---|---|---|"
crashed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "findings/$t"
    # The seed corpus stays as committed; what the run finds goes to findings/ (not committed).
    log=$(mktemp)
    if cargo fuzz run "$t" "findings/$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
        result=ok
    else
        result="CRASH: see $(ls -t artifacts/$t/* 2>/dev/null | head -1)"
        crashed=1
    fi
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    echo "| $t | $secs | ${runs:-?} | $result |"
    rm -f "$log"
done
# A crash fails the run (CI's fuzz smoke included).
exit $crashed
