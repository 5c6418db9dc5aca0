#!/usr/bin/env bash
# Boots the VM of the boot test N times (QEMU TCG here; KVM where it works) and prints roost's
# boot phases (ms since roost started, from /v2/status), the time to the workload's first
# output as QEMU sees it, roost's RSS inside the VM, and (in the first boot) roost against tini
# inside the VM, where cgroups are pure v2 and mounted with favordynmods.
#   bench/vm.sh [N]     default 5
#   bench/vm.sh snapshot    one run of the VM snapshot test (a save and two restores), and a
#                           table of what prepare and restored took, step by step
# Needs tini, crun and runc (apt-get install tini crun runc) for the in-VM comparisons.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = snapshot ]; then
    log=$(mktemp /tmp/roost-snapbench.XXXXXX)
    trap 'rm -f "$log"' EXIT
    cargo test --quiet -p roost --test vm_boot -- --include-ignored \
        a_snapshot_restored_twice --nocapture > "$log" 2>&1 || { cat "$log"; exit 1; }
    python3 - "$log" <<'PY'
import json, sys
answers = []
for line in open(sys.argv[1]):
    if line.startswith("snapshot-answer "):
        _, who, call, body = line.split(" ", 3)
        answers.append((who, call, json.loads(body)))
print("| call (QEMU TCG, 1 vCPU) | " + " | ".join(["step: ms"] * 1) + " | total ms |")
print("|---|---|---|")
for who, call, a in answers:
    steps = ", ".join(f"{s['step']} {s['duration_ms']:.1f}" for s in a["steps"])
    print(f"| {call} ({who}) | {steps} | {a['duration_ms']:.1f} |")
print()
print("| restore | restored call to a valid token file, ms (every step up to `tokens`) |")
print("|---|---|")
for who, call, a in answers:
    if call != "restored":
        continue
    upto = 0.0
    for s in a["steps"]:
        upto += s["duration_ms"]
        if s["step"] == "tokens":
            break
    print(f"| {who} | {upto:.1f} |")
PY
    exit 0
fi
n=${1:-5}
command -v tini-static >/dev/null || { echo "tini is not installed: apt-get install -y tini" >&2; exit 1; }
command -v crun >/dev/null && command -v runc >/dev/null || { echo "crun and runc are needed: apt-get install -y crun runc" >&2; exit 1; }
ROOST_VM_BENCH=1 tests/vm/build.sh target/vm >/dev/null
cargo build --quiet --release -p roost -p roostctl --bin roostctl --example devplatform
ctl=target/release/roostctl
work=$(mktemp -d /tmp/roost-vmbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
vhost=$(command -v vhost-device-vsock || echo "$HOME/.cargo/bin/vhost-device-vsock")
cat > "$work/base.json" <<'JSON'
{"ImageConfig": {"Cmd": ["/app/workload.sh"], "Env": ["GREETING=hello-vm", "AWS_ROLE_ARN=arn:aws:iam::1:role/vm"]},
 "UserOverride": "app", "Hostname": "roost-vm", "EtcResolv": {"Nameservers": ["10.0.2.3"]},
 "Mounts": [{"DevicePath": "/dev/vdb", "MountPath": "/data"}],
 "IPConfigs": [{"IP": "169.254.0.15", "Mask": 16, "Gateway": "169.254.0.2"}],
 "Api": {"SocketPath": "/.fly/api"}, "KillTimeout": 5}
JSON
for i in $(seq "$n"); do
    run="$work/run$i"; mkdir -p "$run"
    cp target/vm/rootfs.img target/vm/volume.img "$run/"
    target/release/examples/devplatform --listen "unix:$run/v.sock_10002" --mmds-listen 127.0.0.1:0 \
        --upstream vsock://2:10002 --base-config "$work/base.json" --write-config "$run/config.json" \
        --ready-file "$run/ready" 2>/dev/null &
    pids+=($!)
    while [ ! -e "$run/ready" ]; do sleep 0.05; done
    mmds=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mmds"])' "$run/ready")
    curl -s --unix-socket "$run/v.sock_10002" -X PUT http://x/_dev/mmds --data-binary @"$run/config.json" >/dev/null
    "$vhost" --guest-cid 3 --socket "$run/vhu.sock" --uds-path "$run/v.sock" >/dev/null 2>&1 &
    pids+=($!)
    while [ ! -S "$run/vhu.sock" ]; do sleep 0.05; done
    t0=$(date +%s.%N)
    qemu-system-x86_64 -machine microvm,rtc=on,pit=on,pic=on -accel tcg -m 512 -smp 1 -nographic -no-reboot \
        -kernel target/vm/vmlinuz -initrd target/vm/initrd.cpio.gz \
        -append "console=ttyS0 quiet panic=-1 reboot=k tsc_early_khz=2000000 roost.shutdown=poweroff" \
        -object memory-backend-memfd,id=mem0,size=512M,share=on -numa node,memdev=mem0 \
        -chardev socket,id=vs0,path="$run/vhu.sock" -device vhost-user-vsock-device,chardev=vs0 \
        -netdev "user,id=n0,restrict=on,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:socat STDIO TCP:$mmds" \
        -device virtio-net-device,netdev=n0 \
        -drive id=root,file="$run/rootfs.img",format=raw,if=none -device virtio-blk-device,drive=root \
        -drive id=vol,file="$run/volume.img",format=raw,if=none -device virtio-blk-device,drive=vol \
        > "$run/console.log" 2>&1 &
    qemu=$!
    until grep -q "vm-workload: ready" "$run/console.log"; do sleep 0.05; done
    t1=$(date +%s.%N)
    echo "$t0 $t1" > "$run/wall"
    $ctl --uds "$run/v.sock" status > "$run/status.json"
    $ctl --uds "$run/v.sock" exec -- cat /proc/1/status > "$run/pid1.status"
    if [ "$i" = 1 ]; then
        $ctl --uds "$run/v.sock" exec --timeout 900 -- /bench/roost-bench compare \
            --roost /bench/roost --tini /bench/tini-static --runs "${VM_COMPARE_RUNS:-50}" --orphans 1000 \
            > "$work/compare.md"
        $ctl --uds "$run/v.sock" exec --timeout 900 -- /bench/roost-bench oci \
            --roost-oci /bench/roost-oci --runs "${VM_OCI_RUNS:-20}" > "$work/oci.md"
    fi
    $ctl --uds "$run/v.sock" signal TERM
    wait "$qemu" || true
done
python3 - "$work" "$n" <<'PY'
import json, statistics, sys, glob
work, n = sys.argv[1], int(sys.argv[2])
runs = sorted(glob.glob(f"{work}/run*"))
phases, walls, rss, anon = {}, [], [], []
for r in runs:
    s = json.load(open(f"{r}/status.json"))
    for p in s["phases"]:
        phases.setdefault(p["name"], []).append(p["at_ms"])
    t0, t1 = map(float, open(f"{r}/wall").read().split())
    walls.append(t1 - t0)
    st = dict(l.split(":", 1) for l in open(f"{r}/pid1.status") if ":" in l)
    rss.append(int(st["VmRSS"].split()[0])); anon.append(int(st["RssAnon"].split()[0]))
print(f"| boot phase (roost's clock, ms after roost started), median of {n} boots | ms |")
print("|---|---|")
prev = 0.0
for name, v in phases.items():
    m = statistics.median(v)
    print(f"| {name} (done at) | {m:.1f} (+{m - prev:.1f}) |")
    prev = m
print(f"\n| figure, median of {n} boots | value |\n|---|---|")
print(f"| QEMU start to the workload's first line (kernel + initramfs + roost), TCG | {statistics.median(walls):.2f} s |")
print(f"| roost's RSS in the VM, workload running (anonymous) | {statistics.median(rss)} KiB ({statistics.median(anon)} KiB) |")
PY
echo
echo "roost vs tini inside the VM (roost-bench compare in the first boot, TCG, pure cgroup v2):"
echo
cat "$work/compare.md"
echo
echo "OCI runtimes inside the VM (roost-bench oci in the first boot, TCG, pure cgroup v2):"
echo
cat "$work/oci.md"
