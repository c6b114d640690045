#!/bin/bash
# disk-scale.sh: cvmfsd disk over a million files: memory per known inode,
# clean stop and restart, crash recovery.
#
#   bench/disk-scale.sh [BUILD_DIR]        (as root; BUILD_DIR defaults to build)
#
# From a clean clone: installs the dependencies (scripts/deps.sh) if a tool
# is missing and builds BUILD_DIR (scripts/build.sh) first.
#
# Builds DISK_SCALE_FILES (default 1,000,000) empty files, 1,000 per
# directory, directly in DATA/upper (bench/disk_scale mktree, on the host
# filesystem, no FUSE), then with one cvmfsd disk:
#   1. first start: no DATA/state, so a full recount (its time is logged);
#   2. memory: RSS and known_inodes (RUN_DIR/disk/NAME.json) before and
#      after an lstat of every file through the mount (the kernel then holds
#      an inode for each; every one is a node in the daemon's table): bytes
#      per known inode = RSS delta / nodes added;
#   3. forget: echo 2 > /proc/sys/vm/drop_caches makes the kernel forget
#      them; the table must shrink back and the RSS come back;
#   4. clean stop while the kernel holds every inode again (the unmount
#      forgets them all), then clean restart: DATA/state is trusted, no
#      rescan; time from exec to mounted with figures published;
#   5. kill -9, then restart: DATA/state says unclean, the daemon recounts;
#      time to ready and the recount time it logs;
# and prints a markdown table. The figures after the crash restart must
# equal those before it (nothing was written meanwhile).
#
# Everything lives under one mktemp -d /tmp/cvmfs-test-diskscale-XXXX; the
# daemon it starts is remembered by pid and stopped on exit whatever happens,
# its mount point unmounted, the directory removed. drop_caches is global
# (it only costs other processes their caches).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
BUILD=$(bench_build_dir "$REPO" "${1:-}")
CVMFSD=$BUILD/src/cvmfsd
HELPER=$BUILD/bench/disk_scale
NFILES=${DISK_SCALE_FILES:-1000000}
NAME=cvmfs-test-scale

die() { echo "disk-scale: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (drop_caches, FUSE mounts)"
TOOLS=(fusermount3 mountpoint findmnt awk)
bench_prepare disk-scale "$REPO" "$BUILD" "${TOOLS[@]}" || exit 1
for t in "${TOOLS[@]}"; do
	command -v "$t" >/dev/null || die "missing tool: $t (not installed by scripts/deps.sh)"
done
[ -x "$CVMFSD" ] && [ -x "$HELPER" ] || die "missing $CVMFSD or $HELPER after building $BUILD"
[ -c /dev/fuse ] || die "missing /dev/fuse"
[ -w /proc/sys/vm/drop_caches ] || die "cannot write /proc/sys/vm/drop_caches"

TMP=""
PID=""
cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		for ((i = 0; i < 600; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	[ -n "$TMP" ] && bench_unmount disk-scale "$TMP/mnt"
	bench_remove_tmp disk-scale "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/cvmfs-test-diskscale-XXXX)
mkdir -p "$TMP/data/upper" "$TMP/mnt" "$TMP/run"
: >"$TMP/empty.conf"
JSON=$TMP/run/disk/$NAME.json
LOG=$TMP/daemon.log

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
field() { grep -o "\"$1\":[0-9]*" "$JSON" | cut -d: -f2; }
# The publisher rewrites the JSON every second.
fresh() { sleep 1.2; }

start() { # -> PID; returns once mounted with figures published
	rm -f "$JSON"
	"$CVMFSD" disk -f --name "$NAME" --data "$TMP/data" --limit 1T --run-dir "$TMP/run" \
		-c "$TMP/empty.conf" "$TMP/mnt" >>"$LOG" 2>&1 &
	PID=$!
	while ! { [ -s "$JSON" ] && mountpoint -q "$TMP/mnt"; }; do
		kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; die "cvmfsd disk exited"; }
		sleep 0.01
	done
}

stop() { # SIGTERM, wait for the exit
	kill -TERM "$PID"
	wait "$PID" || die "cvmfsd disk exited with $?"
	PID=""
}

wait_known() { # until known_inodes <= $1 (the kernel's forgets arrived)
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(field known_inodes)" -le "$1" ] && return 0
		sleep 0.2
	done
	die "known_inodes still $(field known_inodes) after 120 s"
}

walk() { "$HELPER" walk "$TMP/mnt"; }

echo "disk-scale: $NFILES files under $TMP (df: $(df -h --output=avail /tmp | tail -1 | tr -d ' ') free)"
t=$(now)
"$HELPER" mktree "$TMP/data/upper/tree" "$NFILES"
T_MKTREE=$(since "$t")

t=$(now); start; T_FIRST=$(since "$t")
RECOUNT_FIRST=$(grep -o 'recounted usage .* in [0-9.]* s' "$LOG" | tail -1 | awk '{ print $(NF-1) }')
fresh
USED0=$(field used_bytes); INODES0=$(field inodes_used)

# Memory. Warm up first (worker threads, their buffers), so the baseline
# holds the daemon's fixed costs and the delta only the nodes.
"$HELPER" walk "$TMP/mnt/tree/d00000" >/dev/null
echo 2 >/proc/sys/vm/drop_caches
fresh; wait_known 2; sleep 2
RSS0=$(rss_kib); K0=$(field known_inodes)
t=$(now); SEEN=$(walk); T_WALK=$(since "$t")
fresh
RSS1=$(rss_kib); K1=$(field known_inodes)
t=$(now); echo 2 >/proc/sys/vm/drop_caches; wait_known $((K0 + 16)); T_FORGET=$(since "$t")
sleep 2.5 # the freeing after the grace period, then the publisher's trim
RSS2=$(rss_kib); K2=$(field known_inodes)
PER_INODE=$(awk -v a="$RSS0" -v b="$RSS1" -v k="$((K1 - K0))" 'BEGIN { printf "%.0f", (b - a) * 1024 / k }')

# Clean stop with every inode held by the kernel, then clean restart.
walk >/dev/null
fresh; K3=$(field known_inodes)
echo "disk-scale: walk $T_WALK s, forget $T_FORGET s, $PER_INODE B per inode; stopping with $K3 inodes known" >&2
t=$(now); stop; T_STOP=$(since "$t")
grep -q '^clean 1$' "$TMP/data/state" || { cat "$LOG" >&2; die "clean stop did not persist clean state"; }
t=$(now); start; T_RESTART=$(since "$t")
grep -q 'usage from DATA/state (clean stop)' "$LOG" || die "clean restart did not trust DATA/state"

# Crash, then recovery by recount.
kill -KILL "$PID"; wait "$PID" 2>/dev/null || true; PID=""
fusermount3 -u "$TMP/mnt" 2>/dev/null || umount -l "$TMP/mnt"
grep -q '^clean 0$' "$TMP/data/state" || die "DATA/state not unclean after kill -9"
t=$(now); start; T_CRASH=$(since "$t")
RECOUNT_CRASH=$(grep -o 'recounted usage (unclean stop).* in [0-9.]* s' "$LOG" | tail -1 | awk '{ print $(NF-1) }')
[ -n "$RECOUNT_CRASH" ] || die "no recount after kill -9"
fresh
[ "$(field used_bytes)" = "$USED0" ] && [ "$(field inodes_used)" = "$INODES0" ] ||
	die "figures after the crash recount differ: $(field used_bytes)/$(field inodes_used) vs $USED0/$INODES0"
stop

cat <<EOF

$(date +%F), $(nproc) CPUs, $(uname -r), $NFILES files ($SEEN objects) in DATA/upper on $(findmnt -n -o FSTYPE --target "$TMP")

| measure | value |
|---|---:|
| build the tree in DATA/upper (no FUSE) | $T_MKTREE s |
| first start, no DATA/state: recount / ready | $RECOUNT_FIRST s / $T_FIRST s |
| lstat of every object through the mount (kernel holds them all) | $T_WALK s |
| daemon RSS before / after | $((RSS0 / 1024)) MiB / $((RSS1 / 1024)) MiB |
| known inodes before / after | $K0 / $K1 |
| **memory per known inode** | **$PER_INODE B** |
| drop_caches until the daemon's table is back to $K2 nodes | $T_FORGET s |
| RSS after the forgets | $((RSS2 / 1024)) MiB |
| clean stop with $K3 inodes known (all forgotten at unmount) | $T_STOP s |
| **clean restart** (DATA/state trusted, no rescan): exec to ready | **$T_RESTART s** |
| **crash recovery** (kill -9, restart): recount / exec to ready | **$RECOUNT_CRASH s / $T_CRASH s** |
EOF
echo "disk-scale: removing $TMP ..." >&2
