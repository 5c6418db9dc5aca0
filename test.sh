#!/usr/bin/env bash
# The test command (run as root: the integration tests create namespaces).
#
#   ./test.sh          everything: setup, the fast tiers, the VM boot, the fuzz smoke
#   ./test.sh fast     unit and integration tests (cargo test --workspace), no VM, no fuzzing
#   ./test.sh vm       the VM boot test only (a real kernel under QEMU)
#   ./test.sh fuzz [S] the fuzz smoke: every target S seconds (default 5)
#   ./test.sh setup    only install or make what the tests need
#
# Setup installs the Debian packages it can (apt, as root) and names any it cannot with a
# one-line hint; it makes target/test-venv (boto3, moto, PyJWT, schemathesis from PyPI), adds
# the musl target and installs vhost-device-vsock as needed (fuzz/run.sh installs cargo-fuzz).
# Each tier sets up what it needs first.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
tier="${1:-all}"

# install WHAT package...: installs Debian packages (as root, with apt), or names them in a
# one-line hint and stops.
install() {
    local what="$1"
    shift
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends "$@" && return 0
    fi
    echo "test.sh: the $what tests need: apt-get install $*" >&2
    exit 1
}

# apt_need WHAT tool:package...: installs the packages of the tools that are missing.
apt_need() {
    local what="$1"
    shift
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
    done
    [ ${#missing[@]} -eq 0 ] || install "$what" "${missing[@]}"
}

setup_fast() {
    # unshare/setpriv/setsid (util-linux), script (bsdutils), curl (a real HTTP client for
    # /.fly/api, run as another uid), ip and ethtool (the network tests), python3 (the SDKs).
    # dnsmasq and lighttpd: the real daemons of the services tests' sidecar set. runc: a
    # container service run by another runtime than roost-oci. umoci and skopeo build the
    # OCI images `roostctl image build` reads; e2fsprogs makes and reads its ext4 disks;
    # socat sends READY=1 from inside a container. redis-server runs a real project's Redis
    # from the import corpus.
    apt_need fast unshare:util-linux setpriv:util-linux setsid:util-linux script:bsdutils \
        mount:mount id:coreutils sed:sed curl:curl ip:iproute2 ethtool:ethtool python3:python3 \
        dnsmasq:dnsmasq-base lighttpd:lighttpd runc:runc umoci:umoci skopeo:skopeo \
        mke2fs:e2fsprogs debugfs:e2fsprogs socat:socat redis-server:redis-server \
        redis-cli:redis-tools
    # The broker tests' real AWS SDK (boto3) and AWS stand-in (moto, PyJWT), and the
    # control API's schemathesis, from PyPI.
    local venv="${ROOST_TEST_VENV:-target/test-venv}"
    if [ ! -x "$venv/bin/python3" ]; then
        mkdir -p "$(dirname "$venv")"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            install fast python3-venv
            python3 -m venv "$venv"
        fi
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
    static_busybox fast
}

# static_busybox WHAT: Debian's static busybox at /bin/busybox (the VM image's userland, and
# the image root of the container-service tests in the fast tier).
static_busybox() {
    if ! { [ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod; }; then
        install "$1" busybox-static
    fi
}

setup_vm() {
    # QEMU, static busybox, socat (MMDS forwarding), kmod (depmod), cpio, e2fsprogs (mkfs.ext4
    # -d, debugfs), xz (the 6.12 kernel's modules), the musl target, and vhost-device-vsock
    # for the host side of vsock.
    apt_need vm qemu-system-x86_64:qemu-system-x86 socat:socat depmod:kmod cpio:cpio \
        mkfs.ext4:e2fsprogs debugfs:e2fsprogs musl-gcc:musl-tools dnsmasq:dnsmasq-base \
        lighttpd:lighttpd xz:xz-utils
    static_busybox vm
    rustup target list --installed | grep -q x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl
    command -v vhost-device-vsock >/dev/null || [ -x "$HOME/.cargo/bin/vhost-device-vsock" ] \
        || cargo install --locked vhost-device-vsock --version 0.3.0
}

fast() { cargo test --workspace --locked; }
# One at a time: the VM tests share the images in target/vm.
vm() { cargo test --locked -p roost --test vm_boot -- --include-ignored --test-threads=1; }
fuzz() { fuzz/run.sh "${1:-5}"; }

case "$tier" in
    all) setup_fast && setup_vm && fast && vm && fuzz 5 ;;
    fast) setup_fast && fast ;;
    vm) setup_vm && vm ;;
    fuzz) fuzz "${2:-5}" ;;
    setup) setup_fast && setup_vm ;;
    *)
        sed -n '2,13p' "$0" >&2
        exit 2
        ;;
esac
