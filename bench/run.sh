#!/usr/bin/env bash
# Benchmarks roost against tini (Debian's package) and prints a Markdown table.
#   bench/run.sh [RUNS] [ORPHANS]      defaults: 200 runs, 10000 orphans
#   PROXY_REQUESTS=N                   requests per route for the proxy table (default 5000)
# Needs: tini (apt-get install tini), the musl target for the size figure; for the services
# table supervisor and s6 (apt-get install supervisor s6).
#   SERVICES=N SERVICE_RUNS=N          the services table (defaults 100 services, 5 runs)
#   COLD_RUNS=N                        the start-up table's runs each after 50 ms idle (100)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
orphans=${2:-10000}

command -v tini >/dev/null || { echo "tini is not installed: apt-get install -y tini" >&2; exit 1; }
cargo build --quiet --release --bin roost --example roost-bench --example devplatform
musl=target/x86_64-unknown-linux-musl/release/roost
if rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
    cargo build --quiet --release --target x86_64-unknown-linux-musl --bin roost
fi

# The previous release point, measured beside main in the same interleaved run: the commit
# before several services were added (BASELINE=none leaves it out). Built from this
# repository's own history in a worktree under target/.
baseline=${BASELINE:-7dde490}
baseline_args=()
if [ "$baseline" != none ] && git rev-parse -q --verify "$baseline^{commit}" >/dev/null; then
    tree=target/baseline-$baseline
    [ -d "$tree" ] || git worktree add -q --detach "$tree" "$baseline"
    if rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
        (cd "$tree" && CARGO_TARGET_DIR="$PWD/../baseline-target" cargo build --quiet --release \
            --target x86_64-unknown-linux-musl --bin roost)
        baseline_bin=target/baseline-target/x86_64-unknown-linux-musl/release/roost
    else
        (cd "$tree" && CARGO_TARGET_DIR="$PWD/../baseline-target" cargo build --quiet --release --bin roost)
        baseline_bin=target/baseline-target/release/roost
    fi
    baseline_args=(--baseline "$baseline_bin" --baseline-name "roost $baseline")
fi

echo "## roost vs tini ($(nproc) cores, $(uname -r))"
echo
# roost runs as a child subreaper here, like `tini -s`: the same job, no namespace set-up cost.
target/release/examples/roost-bench compare --roost "$musl" --tini "$(command -v tini)" \
    --runs "$runs" --orphans "$orphans" "${baseline_args[@]}"
echo
echo "Each start after 50 ms idle, as a machine's one start finds the kernel (COLD_RUNS, default 100):"
echo
target/release/examples/roost-bench compare --roost "$musl" --tini "$(command -v tini)" \
    --runs "${COLD_RUNS:-100}" --orphans 1000 --pause-ms 50 "${baseline_args[@]}"
echo
echo "| binary | size |"
echo "|---|---|"
[ -f "$musl" ] && echo "| roost (x86_64-unknown-linux-musl, static, stripped) | $(stat -c %s "$musl") bytes |"
echo "| roost (glibc, dynamic, stripped) | $(stat -c %s target/release/roost) bytes |"
for t in /usr/bin/tini-static /usr/bin/tini; do
    [ -f "$t" ] && echo "| $(basename "$t") (Debian $(dpkg-query -W -f '${Version}' tini)) | $(stat -c %s "$t") bytes |"
done

echo
echo "## services: ${SERVICES:-100} trivial services under roost, supervisord and s6"
echo
# supervisord and s6 are Debian's packages (apt-get install supervisor s6); a missing one is
# left out of the table. Each supervisor is PID 1 of its own PID namespace.
target/release/examples/roost-bench services --roost target/release/roost \
    --services "${SERVICES:-100}" --runs "${SERVICE_RUNS:-5}"

echo
echo "## OCI runtimes: roost-oci, crun and runc"
echo
# crun and runc are Debian's packages (apt-get install crun runc); crun refuses a hybrid-cgroup
# host and is reported so.
cargo build --quiet --release -p roost-oci
target/release/examples/roost-bench oci --roost-oci target/release/roost-oci --runs "${OCI_RUNS:-50}"
echo
echo "| binary | size |"
echo "|---|---|"
echo "| roost-oci (glibc, dynamic, stripped) | $(stat -c %s target/release/roost-oci) bytes |"

echo
echo "## /.fly/api: latency added by the proxy, and streaming throughput"
echo
# Both routes verify the macaroon in the devplatform; roost here is the glibc release build.
target/release/examples/roost-bench proxy --roost target/release/roost \
    --devplatform target/release/examples/devplatform --requests "${PROXY_REQUESTS:-5000}"

echo
echo "## control API: round trips and WebSocket exec throughput"
echo
target/release/examples/roost-bench control --roost target/release/roost --requests "${CONTROL_REQUESTS:-2000}"

echo
echo "## load: /.fly/api and concurrent execs"
echo
target/release/examples/roost-bench load --roost target/release/roost \
    --devplatform target/release/examples/devplatform \
    --clients "${LOAD_CLIENTS:-1000}" --requests "${LOAD_REQUESTS:-100000}" --execs "${LOAD_EXECS:-200}"
