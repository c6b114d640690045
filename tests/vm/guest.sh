#!/bin/sh
# PID 1 of the v2 lane's VM (tests/vm/vm_lane.py), after the initramfs
# switch_root'ed into the host's root (read-only 9p under a tmpfs overlay).
# $1: the results share (the same path as on the host). Runs the job's
# tests in one meson run (no rebuild), its output and JSON log to the
# share, then powers off.
OUT=$1
exec >"$OUT/guest.log" 2>&1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. "$OUT/job"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The unified hierarchy only, as Debian 12's systemd mounts it.
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock /run/user
hostname cvmfs-vm
# The network: qemu's user-mode NIC (10.0.2.15, gateway 10.0.2.2), so that
# the launcher's default --net private (pasta in a user namespace, a
# bridge and nft as root) has a default route and /dev/net/tun as on a host.
modprobe tun; modprobe virtio_net
mkdir -p /dev/net
[ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
# The guest's tests run in their own cgroup, the root keeps no process
# (no internal processes once controllers are enabled below it).
mkdir /sys/fs/cgroup/init.scope
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control
done
modprobe fuse; modprobe loop; modprobe overlay
# The guest kernel's own modules (the host's kernel is another version).
echo "guest: $(grep -c . /proc/modules) modules from /lib/modules/$(uname -r)"
echo "guest: $(date +%T) $(uname -r), $(nproc) CPUs, cgroup2 $(cat /sys/fs/cgroup/cgroup.subtree_control)"
# TCG is 10-30x slower than the host: meson's timeouts and the tests' own
# waits for a boot scale (tests/launch/launchtest.py SLOW).
export CVMFS_TEST_SLOW=6
# One meson run for all (its start costs ~12 s here); per-test results and
# times are in its JSON log, which the host side reads.
echo "guest: $(date +%T) meson test $TESTS"
meson test -C "$BUILD" --no-rebuild --print-errorlogs --num-processes 1 \
	--timeout-multiplier 4 --logbase vm $TESTS >"$OUT/meson-output.txt" 2>&1
echo "guest: $(date +%T) meson exit $?"
cp "$BUILD/meson-logs/vm.json" "$BUILD/meson-logs/vm.txt" "$OUT/"
sync
# busybox's poweroff -f: reboot(2) at once (no systemd here to ask).
exec /bin/busybox poweroff -f
