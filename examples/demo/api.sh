#!/bin/sh
# The demo's api service: what a service sees of /.fly/api when roost is its PID 1.
echo "pid $$ (uid $(id -u)); PID 1 is $(cat /proc/1/comm); DEMO_MODE=$DEMO_MODE"
api() { curl -s --unix-socket "$FLY_API" "$@"; echo; }
machine="http://localhost/v1/apps/demo-app/machines/e2865d0f9e3d87"
echo "no token in this process: env mentions one $(env | grep -ci 'fm2\|flyv1\|macaroon' || true) times; roost attaches the macaroon on the way out"
api -X POST "$machine/metadata/role" -H 'Content-Type: application/json' -d '{"value": "demo"}' >/dev/null
echo "set this machine's metadata role=demo through /.fly/api"
echo "metadata, as the platform stored it: $(api "$machine/metadata")"
echo "another machine's metadata: $(api "http://localhost/v1/apps/demo-app/machines/someone-else/metadata")"
echo "the web container's page: $(curl -s http://127.0.0.1:18080/)"
i=0; while [ $i -lt 50 ]; do sh -c 'sleep 0.1 &'; i=$((i+1)); done
echo "left 50 orphans for roost to reap; done"
