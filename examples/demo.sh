#!/usr/bin/env bash
# The demo. The devplatform (a stand-in for the platform) mints this VM's macaroon, issues OIDC
# tokens and writes the run config; a local AWS (moto behind an STS that verifies tokens
# against the devplatform's JWKS) stands in for AWS. roost, as PID 1 of fresh PID, mount and
# UTS namespaces, serves /.fly/api to the workload with the macaroon attached, fetches and
# refreshes the workload's AWS web identity token, reaps its orphans, stops what it leaves
# behind, and passes its exit code on.
# Needs root (for unshare), cargo, curl and python3 (boto3 and moto are installed from PyPI
# into target/test-venv on the first run).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cargo build --quiet --release -p roost -p roostctl --bin roost --bin roostctl --example devplatform || exit 1
venv="$repo/target/test-venv"
if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c 'import boto3, moto, jwt' 2>/dev/null; then
    echo "== installing boto3, moto and PyJWT into $venv (once)"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
        -r tests/python/requirements.txt || exit 1
fi
demo=$(mktemp -d /tmp/roost-demo.XXXXXX)
chmod 755 "$demo"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$demo"; }
trap cleanup EXIT
wait_file() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }

sed -e "s|@DEMO_DIR@|$demo|g" -e "s|@REPO@|$repo|g" examples/demo/config.json > "$demo/base.json"
target/release/examples/devplatform --listen 127.0.0.1:0 \
    --app demo-app --machine e2865d0f9e3d87 --token-lifetime 20 \
    --base-config "$demo/base.json" --write-config "$demo/config.json" \
    --ready-file "$demo/platform.ready" 2>"$demo/platform.log" &
pids+=($!)
wait_file "$demo/platform.ready"
issuer=$("$venv/bin/python3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["Api"]["Upstream"])' "$demo/config.json")
"$venv/bin/python3" tests/python/aws_standin.py --jwks-url "$issuer/.well-known/jwks.json" \
    --issuer "$issuer" --ready "$demo/aws.ready" --log "$demo/sts.log" >/dev/null 2>&1 &
pids+=($!)
wait_file "$demo/aws.ready"
# The local AWS endpoints and the python with boto3 go into the workload's image env.
"$venv/bin/python3" - "$demo" "$repo" "$venv/bin/python3" <<'PY'
import json, sys
demo, repo, python = sys.argv[1:]
ends = json.load(open(f"{demo}/aws.ready"))
path = f"{demo}/config.json"
c = json.load(open(path))
c["ImageConfig"]["Env"] += [
    "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/demo-app", "AWS_REGION=us-east-1",
    f"AWS_ENDPOINT_URL_STS={ends['sts']}", f"AWS_ENDPOINT_URL_S3={ends['s3']}",
    f"DEMO_PYTHON={python}", f"DEMO_REPO={repo}",
]
json.dump(c, open(path, "w"), indent=2)
PY

echo "== roost container --config $demo/config.json --control unix:$demo/ctl.sock, as PID 1 of new namespaces"
unshare --pid --fork --mount-proc --mount --uts target/release/roost container \
    --config "$demo/config.json" --control "unix:$demo/ctl.sock" &
roost_pid=$!
pids+=("$roost_pid")
wait_file "$demo/ctl.sock"
sleep 4
ctl="target/release/roostctl --unix $demo/ctl.sock"
echo "== roostctl status (excerpt), while the workload runs"
$ctl status | grep -E '"(ok|mode|pid1|state|pid|expires_at|refreshes|requests|forwarded|refused)"' | sed 's/^/   /'
echo "== roostctl exec -- sh -c 'id -u; echo \$AWS_ROLE_SESSION_NAME' (the workload's env, argv in order)"
$ctl exec -- sh -c 'id -u; echo "$AWS_ROLE_SESSION_NAME"' | sed 's/^/   /'
echo "== roostctl wait: blocks until the workload exits, then exits with its code"
$ctl wait
code=$?
wait "$roost_pid"
echo "== STS verified these web identity tokens (signature, iss, aud, exp, session name):"
grep AssumeRoleWithWebIdentity "$demo/sts.log" | sed 's/^/   /'
echo "== the workload's exit code, as roostctl wait reported it: $code"
