#!/usr/bin/env bash
# The demo: the devplatform (a stand-in for the platform) mints this VM's macaroon and writes
# the run config; roost, as PID 1 of fresh PID, mount and UTS namespaces, serves /.fly/api to
# the workload with the macaroon attached, reaps its orphans, stops what it leaves behind, and
# passes its exit code on. Needs root (for unshare), cargo and curl.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cargo build --quiet --release --bin roost --example devplatform || exit 1
demo=$(mktemp -d /tmp/roost-demo.XXXXXX)
chmod 755 "$demo"
platform_pid=
cleanup() { [ -n "$platform_pid" ] && kill "$platform_pid" 2>/dev/null; rm -rf "$demo"; }
trap cleanup EXIT

sed -e "s|@DEMO_DIR@|$demo|g" -e "s|@REPO@|$repo|g" examples/demo/config.json > "$demo/base.json"
target/release/examples/devplatform --listen "unix:$demo/platform.sock" \
    --app demo-app --machine e2865d0f9e3d87 --token-lifetime 600 \
    --base-config "$demo/base.json" --write-config "$demo/config.json" \
    --ready-file "$demo/platform.ready" 2>"$demo/platform.log" &
platform_pid=$!
for _ in $(seq 600); do [ -e "$demo/platform.ready" ] && break; sleep 0.1; done

echo "== roost container --config $demo/config.json, as PID 1 of new namespaces"
unshare --pid --fork --mount-proc --mount --uts target/release/roost container --config "$demo/config.json"
code=$?
echo "== the workload's exit code, as roost reported it: $code"
