#!/usr/bin/env bash
# The demo: roost as PID 1 of fresh PID, mount and UTS namespaces runs a workload from a run
# config, reaps its orphans, stops what it leaves behind, and passes its exit code on.
# Needs root (for unshare) and cargo.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin roost || exit 1
config=${1:-examples/demo/config.json}
echo "== roost container --config $config, as PID 1 of new namespaces"
unshare --pid --fork --mount-proc --mount --uts target/release/roost container --config "$config"
code=$?
echo "== the workload's exit code, as roost reported it: $code"
