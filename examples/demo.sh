#!/usr/bin/env bash
# The demo: a machine of several services from one config, under roost as PID 1 of fresh PID,
# mount and UTS namespaces.
#   setup  a one-shot the others wait on (it writes the page web serves, into a volume both
#          mount);
#   web    a container (busybox httpd) from an image made by umoci and `roostctl image
#          build`, run by roost's OCI runtime, healthy once its HTTP check passes;
#   api    calls /.fly/api with curl without ever holding the machine's token;
#   aws    an unmodified boto3 with no keys: roost fetches and refreshes its web identity token.
# The devplatform (a stand-in for the platform) mints the macaroon and issues OIDC tokens; a
# local AWS (moto behind an STS that verifies tokens against the devplatform's JWKS) stands
# in for AWS. While it runs: `roostctl ps`, `roostctl logs`, an exec into a service; then a
# clean stop, as a host asks for one.
# Needs root (for unshare), cargo, curl, python3 and umoci (boto3 and moto are installed from
# PyPI into target/test-venv on the first run; umoci from Debian when it is missing).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cargo build --quiet --release -p roost -p roostctl -p roost-oci --bin roost --bin roostctl \
    --bin roost-oci --example devplatform || exit 1
command -v umoci >/dev/null || apt-get install -y -qq umoci >/dev/null || { echo "the demo needs umoci: apt-get install umoci" >&2; exit 1; }
venv="$repo/target/test-venv"
if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c 'import boto3, moto, jwt' 2>/dev/null; then
    echo "== installing boto3, moto and PyJWT into $venv (once)"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
        -r tests/python/requirements.txt || exit 1
fi
demo=$(mktemp -d /tmp/roost-demo.XXXXXX)
chmod 755 "$demo"
mkdir -p "$demo/www"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$demo"; }
trap cleanup EXIT
wait_file() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }
ctl="target/release/roostctl --unix $demo/ctl.sock"

echo "== an image for the web container: busybox, made into an OCI layout by umoci, then"
echo "   roostctl image build --dir (its root) --config (its OCI config, as image_config)"
layout="$demo/layout"
umoci init --layout "$layout" && umoci new --image "$layout:v1" \
    && umoci unpack --image "$layout:v1" "$demo/bundle" >/dev/null || exit 1
root="$demo/bundle/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/www"
cp /bin/busybox "$root/bin/busybox" || { echo "the demo needs busybox: apt-get install busybox" >&2; exit 1; }
for tool in sh httpd cat echo; do ln -s busybox "$root/bin/$tool"; done
printf 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/www:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nwww:x:33:\n' > "$root/etc/group"
umoci repack --image "$layout:v1" "$demo/bundle" && umoci config --image "$layout:v1" \
    --config.env PATH=/bin --config.user www --config.workingdir /www || exit 1
target/release/roostctl image build "$layout" --ref v1 --dir "$demo/image" \
    --config "$demo/image-config.json" || exit 1

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
# The image's config goes to the container; the local AWS endpoints and the python with boto3
# go to the aws service.
"$venv/bin/python3" - "$demo" "$repo" "$venv/bin/python3" <<'PY'
import json, sys
demo, repo, python = sys.argv[1:]
ends = json.load(open(f"{demo}/aws.ready"))
path = f"{demo}/config.json"
c = json.load(open(path))
for s in c["Containers"]:
    if s["name"] == "web":
        s["image_config"] = json.load(open(f"{demo}/image-config.json"))
    if s["name"] == "aws":
        s["env"].update({"AWS_ENDPOINT_URL_STS": ends["sts"], "AWS_ENDPOINT_URL_S3": ends["s3"],
                         "DEMO_PYTHON": python, "DEMO_REPO": repo})
json.dump(c, open(path, "w"), indent=2)
PY

echo "== roost container --config $demo/config.json --control unix:$demo/ctl.sock, as PID 1 of new namespaces"
ROOST_VOLUME_DIR="$demo/volumes" unshare --pid --fork --mount-proc --mount --uts target/release/roost container \
    --config "$demo/config.json" --control "unix:$demo/ctl.sock" 2>"$demo/roost.log" &
roost_pid=$!
pids+=("$roost_pid")
wait_file "$demo/ctl.sock"
for _ in $(seq 100); do $ctl ps 2>/dev/null | grep -q '^api .*exited' && break; sleep 0.2; done
echo "== roostctl ps"
$ctl ps | sed 's/^/   /'
echo "== roostctl logs setup; roostctl logs api; roostctl logs web"
for s in setup api web; do $ctl logs "$s" | sed "s/^/   [$s] /"; done
echo "== roostctl exec --container aws -- sh -c 'id -u; echo \$AWS_ROLE_SESSION_NAME' (inside the aws service: its user and env)"
$ctl exec --container aws -- sh -c 'id -u; echo "$AWS_ROLE_SESSION_NAME"' | sed 's/^/   /'
echo "== the web container from the host: $(curl -s http://127.0.0.1:18080/)"
echo "== waiting for the aws service (its token is refreshed on the way)"
for _ in $(seq 300); do $ctl ps | grep -q '^aws .*exited' && break; sleep 0.2; done
$ctl logs aws | sed 's/^/   [aws] /'
echo "== a clean stop: SIGTERM to roost, as a host stops a machine; roostctl wait reports the code"
# roost is unshare's child (PID 1 of the new PID namespace): the signal goes to it.
kill -TERM "$(pgrep -P "$roost_pid" -x roost)"
$ctl wait
code=$?
wait "$roost_pid"
echo "== roost's console on the way out (services stopped in reverse dependency order):"
grep -E 'SIGTERM|exited: code|workload done|roost exits' "$demo/roost.log" | sed 's/^/   /'
echo "== STS verified these web identity tokens (signature, iss, aud, exp, session name):"
grep AssumeRoleWithWebIdentity "$demo/sts.log" | sed 's/^/   /'
echo "== the machine's exit code, as roostctl wait reported it: $code"
