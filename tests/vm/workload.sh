#!/bin/sh
# The VM test's workload: reports what it sees, writes to the volume, and stops gracefully.
echo "vm-workload: uid=$(id -u) gid=$(id -g) groups=$(id -G)"
echo "vm-workload: hostname=$(hostname)"
echo "vm-workload: env GREETING=$GREETING"
echo "vm-workload: resolv=$(grep nameserver /etc/resolv.conf | tr '\n' ' ')"
echo "vm-workload: hosts=$(grep -c 'roost: begin' /etc/hosts) $(grep roost-vm /etc/hosts | tr '\t' ' ')"
if [ -n "$AWS_WEB_IDENTITY_TOKEN_FILE" ]; then
    echo "vm-workload: token=$(head -c 3 "$AWS_WEB_IDENTITY_TOKEN_FILE") file=$AWS_WEB_IDENTITY_TOKEN_FILE"
fi
if wget -q -T 2 -O - http://169.254.169.254/ >/dev/null 2>&1; then
    echo "vm-workload: mmds=reachable"
else
    echo "vm-workload: mmds=blocked"
fi
echo "vm-workload: cgroup2=$(grep -c ' /sys/fs/cgroup cgroup2 .*favordynmods' /proc/mounts) in=$(cut -d: -f3 /proc/self/cgroup)"
echo "written by the workload" > /data/hello.txt
trap 'echo "stopped gracefully" >> /data/hello.txt; sync; echo vm-workload: got-term; exit 42' TERM
echo "vm-workload: ready"
while :; do sleep 1 & wait $!; done
