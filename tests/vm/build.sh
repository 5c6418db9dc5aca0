#!/usr/bin/env bash
# Builds what the VM boot test boots, into WORK (default target/vm):
#   vmlinuz           Debian's cloud kernel (6.1), unpacked from its package, not installed
#   initrd.cpio.gz    static busybox, the virtio/vsock/overlay modules, /init that loads them and
#                     execs roost (the static musl build), which stays PID 1
#   vmgenid/          the same two for Debian's 6.12 cloud kernel, with its VMGenID driver
#   rootfs.img        ext4 root device (/dev/vda): busybox, /etc/passwd with user "app",
#                     the workload script, dnsmasq and lighttpd with their libraries,
#                     roost-oci (static) at /sbin/roost-oci
#   volume.img        ext4 volume (/dev/vdb), empty
# Needs: apt-get (qemu-system-x86 busybox-static kmod cpio e2fsprogs dnsmasq-base lighttpd),
# rustup's musl target;
# with ROOST_VM_BENCH=1 also tini (for /usr/bin/tini-static), crun and runc.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
work=${1:-target/vm}
mkdir -p "$work"
work=$(cd "$work" && pwd)

# roost, static, in its own target dir (a cargo test may hold the main one).
rustup target list --installed | grep -q x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
# ROOST_FEATURES: extra cargo features (the boot test adds fault-injection, inert unless
# ROOST_FAULT is set, to show that a panic in a task does not end the VM).
CARGO_TARGET_DIR="$work/cargo" cargo build --quiet --release --target x86_64-unknown-linux-musl --bin roost ${ROOST_FEATURES:+--features "$ROOST_FEATURES"}
roost="$work/cargo/x86_64-unknown-linux-musl/release/roost"
# The static binary's budget (docs/performance.md): under 4 MiB. The plain build is held to
# it; a test build with extra features is not what ships.
if [ -z "${ROOST_FEATURES:-}" ]; then
    size=$(stat -c %s "$roost")
    if [ "$size" -ge 4194304 ]; then
        echo "build.sh: the static roost is $size bytes, over its 4 MiB budget (4194304)" >&2
        exit 1
    fi
fi
# roost-oci, static too: the runtime PID 1 drives for the containers boot.
CARGO_TARGET_DIR="$work/cargo" cargo build --quiet --release --target x86_64-unknown-linux-musl -p roost-oci
roost_oci="$work/cargo/x86_64-unknown-linux-musl/release/roost-oci"

# A kernel package unpacked into DIR (vmlinuz, kroot/) and an initramfs for it
# (DIR/initrd.cpio.gz): static busybox, the modules listed after DIR (with what they need;
# compressed ones decompressed, busybox's insmod reads plain .ko), /init that loads them
# and execs roost, which stays PID 1.
kernel_and_initrd() {
    local pkg=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    if [ ! -f "$dir/vmlinuz" ]; then
        (cd "$dir" && rm -f linux-image-*.deb && apt-get download "$pkg" 2>/dev/null)
        rm -rf "$dir/kroot"
        dpkg-deb -x "$dir"/linux-image-*.deb "$dir/kroot"
        local v
        v=$(ls "$dir/kroot/lib/modules")
        depmod -b "$dir/kroot" "$v"
        cp "$dir/kroot/boot/vmlinuz-$v" "$dir/vmlinuz"
    fi
    kver=$(ls "$dir/kroot/lib/modules")
    local init="$dir/initramfs"
    rm -rf "$init"
    mkdir -p "$init"/{bin,sbin,dev,proc,sys,lib/modules,newroot}
    cp /bin/busybox "$init/bin/busybox"
    for tool in sh insmod mount mkdir; do ln -s busybox "$init/bin/$tool"; done
    cp "$roost" "$init/sbin/roost"
    : > "$init/modules"
    for m in "$@"; do
        modprobe -d "$dir/kroot" -S "$kver" --show-depends "$m" | awk '/^insmod/ {print $2}'
    done | awk '!seen[$0]++' | while read -r ko; do
        local name
        name=$(basename "$ko")
        case "$name" in
            *.ko.xz) name=${name%.xz}; xz -dc "$ko" > "$init/lib/modules/$name" ;;
            *) cp "$ko" "$init/lib/modules/" ;;
        esac
        echo "$name" >> "$init/modules"
    done
    cat > "$init/init" <<'INIT'
#!/bin/busybox sh
# Load the drivers Debian's kernel has as modules, then hand PID 1 to roost.
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in $(/bin/busybox cat /modules); do /bin/busybox insmod /lib/modules/$m; done
exec /sbin/roost
INIT
    chmod 755 "$init/init"
    (cd "$init" && find . | cpio -o -H newc --quiet | gzip -1 > "$dir/initrd.cpio.gz")
}

modules="virtio_mmio virtio_pci virtio_blk virtio_net vmw_vsock_virtio_transport overlay"
# The kernel: the concrete package behind linux-image-cloud-amd64 (6.1, no VMGenID driver).
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
# shellcheck disable=SC2086
kernel_and_initrd "$pkg" "$work" $modules
kver61=$kver
# A 6.12 cloud kernel (bookworm-security has it), whose VMGenID driver reseeds the CRNG on a
# restore and says so on /dev/kmsg: the snapshot test's restore noticed without the host.
# Its packages are versioned by name; the newest one the archive still serves is taken.
vmgenid="$work/vmgenid"
if [ ! -f "$vmgenid/vmlinuz" ]; then
    for candidate in $(apt-cache search --names-only '^linux-image-6\.12\..*-cloud-amd64-unsigned$' | awk '{print $1}' | sort -rV); do
        if [ -n "$(apt-cache policy "$candidate" | awk '/Candidate:/ && $2 != "(none)"')" ]; then
            pkg612=$candidate
            break
        fi
    done
    [ -n "${pkg612:-}" ] || { echo "build.sh: no 6.12 cloud kernel package in the apt sources" >&2; exit 1; }
else
    pkg612=unused
fi
# shellcheck disable=SC2086
kernel_and_initrd "$pkg612" "$vmgenid" $modules vmgenid
kver612=$kver
kver=$kver61

# The root device.
root="$work/rootdir"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,dev,proc,sys,run,tmp,data,app,home/app,.fly}
cp /bin/busybox "$root/bin/busybox"
for tool in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$tool" ] || ln -s busybox "$root/bin/$tool"
done
chmod 1777 "$root/tmp"
cat > "$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$root/etc/group" <<'GR'
root:x:0:
app:x:1000:
audio:x:29:app
www-data:x:33:
nogroup:x:65534:
GR
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
cp "$repo/tests/vm/workload.sh" "$root/app/workload.sh"
# The services boot's real Debian daemons: dnsmasq and lighttpd with the shared libraries
# they load (glibc's loader included), copied from the host's packages.
for daemon in /usr/sbin/dnsmasq /usr/sbin/lighttpd; do
    [ -x "$daemon" ] || { echo "build.sh: $daemon is missing (apt-get install dnsmasq-base lighttpd)" >&2; exit 1; }
    mkdir -p "$root/usr/sbin"
    cp "$daemon" "$root/usr/sbin/"
    for lib in $(ldd "$daemon" | awk '/=> \// {print $3} /^\s*\/lib64/ {print $1}'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
mkdir -p "$root/lib64" "$root/usr/lib/x86_64-linux-gnu/lighttpd"
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
cp -L /usr/lib/x86_64-linux-gnu/lighttpd/mod_*.so "$root/usr/lib/x86_64-linux-gnu/lighttpd/" 2>/dev/null || true
# ROOST_VM_BENCH=1 (bench/vm.sh): roost, tini-static and the static roost-bench in /bench, for
# the side-by-side spawn comparison on the VM's pure cgroup v2.
if [ -n "${ROOST_VM_BENCH:-}" ]; then
    CARGO_TARGET_DIR="$work/cargo" cargo build --quiet --release --target x86_64-unknown-linux-musl --example roost-bench
    mkdir -p "$root/bench"
    cp "$roost" "$root/bench/roost"
    cp "$work/cargo/x86_64-unknown-linux-musl/release/examples/roost-bench" "$root/bench/roost-bench"
    cp /usr/bin/tini-static "$root/bench/tini-static"
    # roost-oci beside Debian's crun and runc (with their libraries), for the side-by-side
    # OCI run on pure cgroup v2, which crun needs.
    cp "$roost_oci" "$root/bench/roost-oci"
    for rt in /usr/bin/crun /usr/sbin/runc; do
        [ -x "$rt" ] || { echo "build.sh: $rt is missing (apt-get install crun runc)" >&2; exit 1; }
        mkdir -p "$root$(dirname "$rt")"
        cp "$rt" "$root$rt"
        for lib in $(ldd "$rt" | awk '/=> \// {print $3}'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    done
fi
cp "$roost_oci" "$root/sbin/roost-oci"
chmod 755 "$root/app/workload.sh"
chown 1000:1000 "$root/home/app"
rm -f "$work/rootfs.img" "$work/volume.img"
mkfs.ext4 -q -F -d "$root" "$work/rootfs.img" 128M
mkfs.ext4 -q -F "$work/volume.img" 16M
echo "built: $work/{vmlinuz,initrd.cpio.gz,rootfs.img,volume.img} (kernel $kver), $vmgenid/{vmlinuz,initrd.cpio.gz} (kernel $kver612)"
