#!/usr/bin/env bash
# The main job with built-in defaults, as root on Debian 12: build cvmfs,
# start `cvmfsd views`, put a shell in a limited demo cgroup (512 MiB, one
# CPU) in its own mount and PID namespace with the views bound over /proc and
# /sys, and show free, nproc, uptime and top inside next to the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root" >&2; exit 1; }
bash scripts/deps.sh
bash scripts/build.sh

tmp=$(mktemp -d /tmp/cvmfs-demo-XXXX)
name=cvmfs-demo-$$
views=$tmp/views
mkdir -p "$views"
daemon=
cgdirs=()

cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	for m in "$views/ct" "$views"; do
		grep -q " $m " /proc/mounts && umount -l "$m" 2>/dev/null
	done
	for d in "${cgdirs[@]}"; do rmdir "$d" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

build/src/cvmfsd views -f "$views" 2>"$tmp/views.log" &
daemon=$!
for _ in $(seq 50); do [ -e "$views/proc/meminfo" ] && break; sleep 0.1; done
[ -e "$views/proc/meminfo" ] || { cat "$tmp/views.log" >&2; exit 1; }

# One cgroup with the demo limits, on whichever hierarchy this host has.
first_cpu=$(cut -d, -f1 /sys/devices/system/cpu/online | cut -d- -f1)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	for c in memory cpu cpuset; do
		grep -qw $c /sys/fs/cgroup/cgroup.subtree_control || echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control
	done
	cg=/sys/fs/cgroup/$name
	mkdir "$cg"; cgdirs+=("$cg")
	echo 512M >"$cg/memory.max"
	echo "100000 100000" >"$cg/cpu.max"
	echo "$first_cpu" >"$cg/cpuset.cpus"
	procs=("$cg/cgroup.procs")
else
	procs=()
	for c in memory cpu cpuacct cpuset pids; do
		[ -d /sys/fs/cgroup/$c ] || continue
		mkdir "/sys/fs/cgroup/$c/$name"; cgdirs+=("/sys/fs/cgroup/$c/$name")
		procs+=("/sys/fs/cgroup/$c/$name/cgroup.procs")
	done
	echo 512M >/sys/fs/cgroup/memory/$name/memory.limit_in_bytes
	echo 100000 >/sys/fs/cgroup/cpu/$name/cpu.cfs_quota_us
	cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/$name/cpuset.mems
	echo "$first_cpu" >/sys/fs/cgroup/cpuset/$name/cpuset.cpus
fi

cat >"$tmp/show.sh" <<'SHOW'
echo "--- free -h";    free -h
echo "--- nproc: $(nproc)   getconf _NPROCESSORS_ONLN: $(getconf _NPROCESSORS_ONLN)   python3 os.cpu_count(): $(python3 -c 'import os; print(os.cpu_count())')"
echo "--- uptime";     uptime
echo "--- top -bn1 | head -5"; top -bn1 | head -5
SHOW
cat >"$tmp/inside.sh" <<'INSIDE'
# Runs as PID 1 of a new PID namespace, in a private mount namespace.
views=$1
for f in meminfo cpuinfo stat uptime loadavg swaps diskstats; do
	mount --bind "$views/proc/$f" "/proc/$f"
done
mount --bind "$views/sys/devices/system/cpu" /sys/devices/system/cpu
sleep 1
bash "$(dirname "$0")/show.sh"
INSIDE

echo "===== on the host ====="
bash "$tmp/show.sh"

echo
echo "===== inside the demo cgroup (memory 512M, 1 CPU), views bound over /proc and /sys ====="
sh -c 'inside=$1 views=$2; shift 2
	for f in "$@"; do echo $$ >"$f"; done
	exec unshare --mount --pid --fork --mount-proc --propagation private bash "$inside" "$views"' \
	sh "$tmp/inside.sh" "$views" "${procs[@]}"
