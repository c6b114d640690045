#!/usr/bin/env bash
# The main job with built-in defaults, as root on Debian 12: build cvmfs,
# make (once, cached) a Debian bookworm workspace image with systemd and
# Docker, launch a demo CVM from it (1 GiB, 1 CPU, 3 GiB disk) with systemd
# as init and dockerd inside, show free, nproc, df and uptime inside next to
# the host's, run a container inside, and show cvmfs-stat from the host.
# The CVM runs in the launcher's secure default mode (no flags): its root
# is an id range of its own on the host, with capabilities over its own
# namespaces only, and it has its own network (doc/security.md). Its data
# is on a workspace volume (the default where loop devices work: an ext4 in
# a sparse file of the demo's temp dir, sized to the 3 GiB limit), with
# /home and /var/lib/docker bound from it (doc/cvm-launch.md, Volume).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root" >&2; exit 1; }
bash scripts/deps.sh
bash scripts/build.sh

# The image: bookworm + systemd (debootstrap) and Debian's docker.io and
# docker-compose on top (apt in a chroot), cached in /var/tmp/cvmfs-test-cache
# and shared with the tests; about 2 minutes the first time.
echo "== workspace image (cached after the first run)"
layers=$(python3 -c 'import sys; sys.path.insert(0, "tests/docker"); import dockertest as DT
print(DT.docker_layer() + ":" + DT.LT.systemd_rootfs())')

tmp=$(mktemp -d /var/tmp/cvmfs-demo-XXXX)
# The CVM's root is an unprivileged id on the host: it must be able to pass
# through to its disk and data (mktemp makes the directory 0700).
chmod 711 "$tmp"
name=cvmfs-demo-$$
launcher=
# --cpus sets the CPU time (quota), which free/top/getconf/Python follow;
# coreutils nproc counts the CPUs the process may run on, so the demo also
# gives one CPU as its cpuset.
first_cpu=$(cut -d, -f1 /sys/devices/system/cpu/online | cut -d- -f1)
cleanup() {
	if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
		kill -TERM "$launcher"
		wait "$launcher" || true
	fi
	rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

build/src/launch/cvm-launch --name "$name" --image "$layers" --data "$tmp/data" \
	--run-dir "$tmp/run" --mnt-dir "$tmp/mnt" --views "$tmp/views" --idmap-dir "$tmp/idmap" \
	--volume-dir "$tmp/volumes" \
	--memory 1G --cpus 1 --cpuset "$first_cpu" --disk 3G --hostname demo \
	-- /lib/systemd/systemd >"$tmp/console.log" 2>&1 &
launcher=$!

# The launcher records the CVM once systemd is exec'ed (doc/cvmctl.md);
# cvmctl exec runs a command in it: its cgroups and every namespace, with
# the CVM's own capabilities, seccomp filter and no_new_privs, no more.
record="$tmp/run/launch/$name.json"
for _ in $(seq 200); do
	[ -s "$record" ] && break
	kill -0 "$launcher" 2>/dev/null || break
	sleep 0.05
done
[ -s "$record" ] || { cat "$tmp/console.log" >&2; exit 1; }
init=$(sed -n 's/.*"init_pid": \([0-9]*\).*/\1/p' "$record")
inside() {
	build/src/ctl/cvmctl exec --run-dir "$tmp/run" "$name" -- "$@"
}
for _ in $(seq 120); do
	inside docker info >/dev/null 2>&1 && break
	sleep 0.5
done
inside docker info >/dev/null || { tail -20 "$tmp/console.log" >&2; exit 1; }

show='echo "--- free -h"; free -h
echo "--- nproc: $(nproc)   getconf _NPROCESSORS_ONLN: $(getconf _NPROCESSORS_ONLN)"
echo "--- df -h / /home /var/lib/docker"; df -h / /home $(ls -d /var/lib/docker 2>/dev/null)
echo "--- uptime"; uptime'
echo
echo "===== on the host ====="
sh -c "$show" || true
echo
echo "===== inside the CVM '$name' (memory 1G, 1 CPU, disk 3G, no swap; systemd is PID 1: $(inside systemctl is-system-running)) ====="
inside sh -c "$show" || true
echo "--- root inside is host uid $(awk '/^Uid:/ {print $2}' /proc/$init/status) (the workspace's range: $(cat "$tmp/idmap/$name"))"
echo
echo "===== Docker inside the CVM (storage driver $(inside docker info --format '{{.Driver}}'), /var/lib/docker on the workspace $(inside stat -f -c %T /var/lib/docker | sed 's/ext2\/ext3/volume (ext4)/; s/fuseblk\|fuse.*/disk (FUSE)/')) ====="
# A tiny image made from the CVM's own programs: no registry needed.
inside sh -c 'cd / && tar -chf /tmp/mini.tar usr/bin/sh usr/bin/echo usr/bin/cat usr/bin/uname \
	lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2 && docker import /tmp/mini.tar demo >/dev/null'
echo "\$ docker run --rm demo /usr/bin/sh -c 'echo hello from a container inside the CVM; uname -n'"
inside docker run --rm demo /usr/bin/sh -c 'echo hello from a container inside the CVM; uname -n'
inside docker images demo
# The disk publishes its figures every second; on a volume the lanes'
# areas (HOME, DOCKER) follow a few seconds later (doc/cvmfsd-disk.md).
sleep 6
echo
echo "===== cvmfs-stat on the host (IMAGE: the workspace image's bytes; DOCKER: /var/lib/docker) ====="
build/src/stat/cvmfs-stat --run-dir "$tmp/run" "$name"
echo
echo "===== cvmctl list ====="
build/src/ctl/cvmctl list --run-dir "$tmp/run"
echo
echo "===== cvmctl stop (systemd powers off) ====="
build/src/ctl/cvmctl stop --run-dir "$tmp/run" "$name"
status=0
wait "$launcher" || status=$?
launcher=
left=$(grep -c "$name" /proc/self/mountinfo || true)
left=$((left + $(find /sys/fs/cgroup -mindepth 3 -maxdepth 3 -path "*/cvmfs/$name" | wc -l)))
echo "the CVM powered off: launcher exit $status; mounts and cgroups left: $left"
[ "$status" -eq 0 ] && [ "$left" -eq 0 ]
