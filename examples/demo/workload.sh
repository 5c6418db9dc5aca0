#!/bin/sh
# The demo workload: what an app sees when roost is its PID 1.
echo "$GREETING: pid $$ (uid $(id -u)) in $(pwd); PID 1 is $(cat /proc/1/comm)"
echo "ExtraEnv: DEMO_MODE=$DEMO_MODE; default PATH=$PATH"

api() { curl -s --unix-socket "$FLY_API" "$@"; echo; }
machine="http://localhost/v1/apps/demo-app/machines/e2865d0f9e3d87"
echo "-- /.fly/api: no token in this process; roost attaches the macaroon on the way out"
echo "   env mentions a token: $(env | grep -ci 'fm2\|flyv1\|macaroon' || true) times"
api -X POST "$machine/metadata/role" -H 'Content-Type: application/json' -d '{"value": "demo"}'
echo "   metadata, as the platform stored it: $(api "$machine/metadata")"
echo "   another machine's metadata: $(api "http://localhost/v1/apps/demo-app/machines/someone-else/metadata")"
jwt=$(api -X POST http://localhost/v1/tokens/oidc -d '{"aud": "sts.amazonaws.com"}')
claims=$(printf '%s' "$jwt" | cut -d. -f2 | tr '_-' '/+')
while [ $(( ${#claims} % 4 )) -ne 0 ]; do claims="$claims="; done
echo "   OIDC token claims: $(printf '%s' "$claims" | base64 -d)"

echo "-- AWS: AWS_ROLE_ARN=$AWS_ROLE_ARN; roost exported AWS_WEB_IDENTITY_TOKEN_FILE=$AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_SESSION_NAME=$AWS_ROLE_SESSION_NAME"
echo "   static keys in env: $(env | grep -c '^AWS_SECRET_ACCESS_KEY=\|^AWS_ACCESS_KEY_ID=' || true)"
"$DEMO_PYTHON" "$DEMO_REPO/examples/demo/aws_sdk.py"
echo "   (waiting 12 s: the 20 s token is refreshed at about half its life)"
sleep 12
"$DEMO_PYTHON" "$DEMO_REPO/examples/demo/aws_sdk.py"

echo "-- processes"
i=0; while [ $i -lt 50 ]; do sh -c 'sleep 0.1 &'; i=$((i+1)); done
echo "left 50 orphans for roost to reap"
sh -c 'trap "echo daemon: stopped cleanly by roost; exit 0" TERM; while :; do sleep 0.1; done' &
sleep 0.3
echo "exiting with 7; roost stops the daemon left behind"
exit 7
