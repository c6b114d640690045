#!/bin/bash
# views-bench.sh: cvmfsd views side by side with native /proc and LXCFS.
#
#   bench/views-bench.sh [BUILD_DIR]        (as root; BUILD_DIR defaults to build)
#
# From a clean clone: installs the dependencies (scripts/deps.sh) if a tool
# is missing and builds BUILD_DIR (scripts/build.sh) first.
#
# Reads every view file in a loop from inside a limited v1 cgroup, through
# native /proc, LXCFS, the cvmfsd shared tree and the cvmfsd per-container
# tree, and prints a markdown table.  Then measures cvmfsd's memory per
# tracked cgroup with 1000 short-lived memory cgroups.
#
# Environment: VIEWS_BENCH_SECONDS (per file and target, default 2),
#              VIEWS_BENCH_MEM_CGROUPS (default 1000),
#              VIEWS_BENCH_TARGETS (default "native lxcfs shared ct"),
#              VIEWS_BENCH_BEFORE=BUILD_DIR2: also mount BUILD_DIR2's cvmfsd
#              (an older build: "before") and read its trees in the same run
#              (targets shared-before, ct-before), then print after ÷ before
#              per file and flag any request path more than 2 % slower.
#
# Everything it creates (temp dir, mounts, cgroups, processes) is named
# *cvmfs-test-bench-* / *cvmfs-test-mem-* (plus a parent cgroup `cvmfs`
# where a hierarchy lacks one), remembered, and removed on exit whatever
# happens; nothing it did not create is touched.  Its own shell never joins
# a cgroup: the readers are children that move themselves.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
BUILD=$(bench_build_dir "$REPO" "${1:-}")
BENCH_SECONDS=${VIEWS_BENCH_SECONDS:-2}
MEM_CGROUPS=${VIEWS_BENCH_MEM_CGROUPS:-1000}
CGROOT=/sys/fs/cgroup
NAME=cvmfs-test-bench-$$
CONTROLLERS=(memory cpu cpuacct cpuset)
FILES=(proc/meminfo proc/cpuinfo proc/stat proc/uptime proc/loadavg proc/swaps
       proc/diskstats sys/devices/system/cpu/online)
read -r -a TARGETS <<<"${VIEWS_BENCH_TARGETS:-native lxcfs shared ct}"
BEFORE_BUILD=${VIEWS_BENCH_BEFORE:-}
[[ -z $BEFORE_BUILD ]] || TARGETS+=(shared-before ct-before)
THREADS=(1 4)

# Cleanup state: filled in as things are created.
TMP=""
CVMFSD_PID=""
BEFORE_PID=""
LXCFS_PID=""
BENCH_PID=""
CREATED_CGS=()         # absolute dirs, in creation order (parents first)
declare -A ORIG_CG=()  # hierarchy dir -> this shell's cgroup there at start
HIERS=()               # distinct hierarchy dirs of CONTROLLERS

die() {
	echo "views-bench: $*" >&2
	exit 1
}

log() { echo "views-bench: $*" >&2; }

# ---------------------------------------------------------------- checks

check_prereqs() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (cgroups, FUSE mounts)"
	local t c tools=(lxcfs fusermount3 sha256sum)
	for t in "${TARGETS[@]}"; do
		[[ $t =~ ^(native|lxcfs|shared|ct|shared-before|ct-before)$ ]] ||
			die "VIEWS_BENCH_TARGETS: unknown target '$t' (native lxcfs shared ct)"
	done
	[[ $MEM_CGROUPS =~ ^[0-9]+$ ]] || die "VIEWS_BENCH_MEM_CGROUPS: not a number"
	[[ -c /dev/fuse ]] || die "/dev/fuse missing"
	for c in "${CONTROLLERS[@]}"; do
		grep -qw "$c" /proc/self/cgroup ||
			die "cgroup v1 controller '$c' not mounted under $CGROOT (this bench needs v1)"
		[[ -e $CGROOT/$c/cgroup.procs ]] || die "$CGROOT/$c: not a cgroup hierarchy"
	done
	bench_prepare views-bench "$REPO" "$BUILD" "${tools[@]}" || exit 1
	for t in "${tools[@]}"; do
		command -v "$t" >/dev/null || die "missing tool: $t (not installed by scripts/deps.sh)"
	done
	CVMFSD=$BUILD/src/cvmfsd
	BENCH=$BUILD/bench/views_bench
	[[ -x $CVMFSD ]] || die "no cvmfsd binary at $CVMFSD after building $BUILD"
	[[ -x $BENCH ]] || die "no views_bench binary at $BENCH after building $BUILD"
}

# Controllers co-mounted (cpu,cpuacct) share a directory: create each once.
find_hierarchies() {
	local c d h seen
	for c in "${CONTROLLERS[@]}"; do
		d=$(readlink -f "$CGROOT/$c")
		seen=0
		for h in "${HIERS[@]}"; do [[ $h == "$d" ]] && seen=1; done
		((seen)) || HIERS+=("$d")
	done
}

# Where this shell sits in a hierarchy, so that cleanup can put it back.
record_own_cgroups() {
	local h opts line
	for h in "${HIERS[@]}"; do
		opts=$(basename "$h")   # "memory" or "cpu,cpuacct"
		line=$(awk -F: -v o="$opts" '$2 == o { print $3 }' /proc/self/cgroup)
		ORIG_CG[$h]=${line:-/}
	done
}

# ---------------------------------------------------------------- cgroups

# mkdir that remembers only what it created; an existing dir is left alone.
cg_mkdir() {
	local d=$1
	if mkdir "$d" 2>/dev/null; then
		CREATED_CGS+=("$d")
	elif [[ ! -d $d ]]; then
		die "cannot create cgroup $d"
	fi
}

# A v1 cpuset cgroup takes no task (nor a usable child) until cpus and mems
# are set.  Only a parent created here is filled; someone else's is checked.
cpuset_fill() {
	local d=$1 c
	[[ -e $d/cpuset.cpus ]] || return 0
	for c in "${CREATED_CGS[@]}"; do
		[[ $c == "$d" ]] || continue
		cat /sys/devices/system/cpu/online >"$d/cpuset.cpus"
		cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
		return 0
	done
	[[ -n $(<"$d/cpuset.cpus") && -n $(<"$d/cpuset.mems") ]] ||
		die "existing cpuset cgroup $d has no cpus or mems; cannot put a child under it"
}

# 1G of memory, 2 CPUs of quota, every online CPU in the cpuset.
cg_limit() {
	local d=$1
	[[ -e $d/memory.limit_in_bytes ]] && echo 1073741824 >"$d/memory.limit_in_bytes"
	if [[ -e $d/cpu.cfs_quota_us ]]; then
		echo 100000 >"$d/cpu.cfs_period_us"
		echo 200000 >"$d/cpu.cfs_quota_us"
	fi
	if [[ -e $d/cpuset.cpus ]]; then
		cat /sys/devices/system/cpu/online >"$d/cpuset.cpus"
		cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
	fi
	return 0
}

# The limited cgroup the shared-tree readers run in, and cvmfs/NAME, the
# one the per-container tree $TMP/views/ct/NAME reports on.
make_bench_cgroups() {
	local h
	for h in "${HIERS[@]}"; do
		cg_mkdir "$h/$NAME"
		cg_limit "$h/$NAME"
		cg_mkdir "$h/cvmfs"
		cpuset_fill "$h/cvmfs"
		cg_mkdir "$h/cvmfs/$NAME"
		cg_limit "$h/cvmfs/$NAME"
	done
}

# spawn_in_cg OUT REL CMD...: start CMD in the background, stdout to OUT,
# with its pid in REL of every hierarchy; BENCH_PID is CMD's own pid (sh
# execs it), so cleanup can stop it.  VB_OWNER marks it as ours even if it
# were ever orphaned.
spawn_in_cg() {
	local out=$1 rel=$2
	shift 2
	VB_OWNER=$$ VB_HIERS="${HIERS[*]}" sh -c '
		rel=$1; shift
		for h in $VB_HIERS; do
			echo $$ >"$h/$rel/cgroup.procs" || exit 125
		done
		exec "$@"' sh "$rel" "$@" >"$out" &
	BENCH_PID=$!
}

# ---------------------------------------------------------------- daemons

is_mounted() {
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}

alive() {   # a zombie is not alive; kill -0 would say it is
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ ${st:0:1} != Z ]]
}

# wait_mounted PID WHAT MOUNTPOINT...: up to 10 s, failing early if PID died.
wait_mounted() {
	local pid=$1 what=$2 i m missing
	shift 2
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || die "$what exited before mounting (log: see above)"
		missing=0
		for m in "$@"; do is_mounted "$m" || missing=1; done
		((missing)) || return 0
		sleep 0.1
	done
	die "$what did not mount $* within 10 s"
}

start_daemons() {
	mkdir "$TMP/lxcfs" "$TMP/views"
	lxcfs -f -l -p "$TMP/lxcfs.pid" "$TMP/lxcfs" >"$TMP/lxcfs.log" 2>&1 &
	LXCFS_PID=$!
	# Which binary ran: it may be rebuilt under us while the bench goes on.
	CVMFSD_ID="$CVMFSD built $(date -u -r "$CVMFSD" '+%F %T UTC'), sha256 $(sha256sum "$CVMFSD" | cut -c1-12), tree $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
	"$CVMFSD" views -f "$TMP/views" >"$TMP/cvmfsd.log" 2>&1 &
	CVMFSD_PID=$!
	wait_mounted "$LXCFS_PID" lxcfs "$TMP/lxcfs"
	wait_mounted "$CVMFSD_PID" cvmfsd "$TMP/views" "$TMP/views/ct"
	log "lxcfs pid $LXCFS_PID, cvmfsd pid $CVMFSD_PID, mounted under $TMP"
	[[ -n $BEFORE_BUILD ]] || return 0
	mkdir "$TMP/before"
	"$BEFORE_BUILD/src/cvmfsd" views -f "$TMP/before" >"$TMP/before.log" 2>&1 &
	BEFORE_PID=$!
	wait_mounted "$BEFORE_PID" "cvmfsd (before)" "$TMP/before" "$TMP/before/ct"
}

# After ÷ before, same run: ops/s and p50 of each request path.
print_before() {
	[[ -n $BEFORE_BUILD ]] || return 0
	echo
	echo "After ($BUILD) ÷ before ($BEFORE_BUILD), same run; SLOWER: ops/s more than 2 % lower."
	echo
	awk -F'\t' -v files="${FILES[*]}" -v threads="${THREADS[*]}" '
	{ k = $2 SUBSEP $3 SUBSEP $1; have[k] = 1; ops[k] = $6; p50[k] = $7 }
	END {
		nf = split(files, F, " "); nn = split(threads, N, " "); slower = 0
		print "| file | threads | tree | ops/s ÷ before | p50 ÷ before | |"
		print "|---|---:|---|---:|---:|---|"
		for (i = 1; i <= nf; i++) for (j = 1; j <= nn; j++) for (t = 0; t < 2; t++) {
			tr = t ? "ct" : "shared"; a = F[i] SUBSEP N[j] SUBSEP tr; b = a "-before"
			if (!(a in have) || !(b in have) || ops[b] == 0 || p50[b] == 0) continue
			r = ops[a] / ops[b]; flag = r < 0.98 ? "SLOWER" : ""; slower += flag != ""
			printf "| %s | %s | %s | %.3f | %.3f | %s |\n", F[i], N[j], tr, r, p50[a] / p50[b], flag
		}
		printf "\n%d request path(s) more than 2 %% slower than before\n", slower
	}' "$TMP/results.tsv"
}

# stop_pid PID: SIGTERM, 5 s grace, then SIGKILL; always our own child.
stop_pid() {
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- benchmark

target_prefix() {   # TARGET -> directory the FILES are relative to
	case $1 in
	native) echo "" ;;
	lxcfs) echo "$TMP/lxcfs" ;;
	shared) echo "$TMP/views" ;;
	ct) echo "$TMP/views/ct/$NAME" ;;
	shared-before) echo "$TMP/before" ;;
	ct-before) echo "$TMP/before/ct/$NAME" ;;
	esac
}

# run_target TARGET THREADS: one views_bench over every file the target has;
# appends "target file threads ops fails ops/s p50 p99 mean max" rows.
run_target() {
	local t=$1 n=$2 pre f paths=() rc=0
	pre=$(target_prefix "$t")
	for f in "${FILES[@]}"; do
		# LXCFS has no pressure files, for instance; those rows read n/a.
		[[ -e $pre/$f ]] && paths+=("$pre/$f")
	done
	((${#paths[@]})) || return 0
	spawn_in_cg "$TMP/out.tsv" "$NAME" "$BENCH" --tsv --threads "$n" \
		--seconds "$BENCH_SECONDS" "${paths[@]}"
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	# 1: some reads failed (counted in the table); anything else: setup error.
	((rc == 0 || rc == 1)) || die "views_bench failed ($rc) on target $t"
	awk -F'\t' -v OFS='\t' -v t="$t" -v plen=$((${#pre} + 1)) \
		'NR > 1 { $1 = substr($1, plen + 1); print t, $0 }' "$TMP/out.tsv" >>"$TMP/results.tsv"
}

# daemon_died PIDVAR WHAT: true (and DIED says how) when a daemon we started
# is gone.  It is reaped here and PIDVAR cleared, so that cleanup can never
# signal a recycled pid.
daemon_died() {
	local -n pidvar=$1
	local pid=$pidvar what=$2 rc=0
	[[ -n $pid ]] || return 1
	alive "$pid" && return 1
	wait "$pid" || rc=$?
	pidvar=""
	if ((rc > 128)); then
		DIED="$what (pid $pid) was killed by SIG$(kill -l $((rc - 128)))"
	else
		DIED="$what (pid $pid) exited with status $rc"
	fi
	return 0
}

# Stops at the first daemon death: later rows would only measure errors.
run_benchmarks() {
	local n t
	: >"$TMP/results.tsv"
	for n in "${THREADS[@]}"; do
		for t in "${TARGETS[@]}"; do
			log "reading via $t with $n thread(s), ${BENCH_SECONDS}s per file"
			run_target "$t" "$n"
			if daemon_died CVMFSD_PID cvmfsd || daemon_died LXCFS_PID lxcfs; then
				DIED="$DIED while target $t was read with $n thread(s)"
				return 0
			fi
		done
	done
}

print_env() {
	echo "## cvmfsd views benchmark"
	echo
	echo "- $(uname -sr), $(nproc --all) CPUs online, $(lxcfs --version 2>&1 | tr -d '"' | sed 's/^/lxcfs /')"
	echo "- cvmfsd: $CVMFSD_ID; readers in v1 cgroup $NAME (memory 1G, cpu quota 200000/100000)"
	echo "- ${BENCH_SECONDS}s per file, target and thread count; ops = open + read to EOF + close"
	echo "- targets: native /proc, lxcfs, cvmfs shared tree, cvmfs per-container tree (ct)"
	echo
}

# The results as a markdown table, rows grouped by file then thread count,
# each cvmfs row with its ratio to lxcfs throughput and to native latency.
print_table() {
	awk -F'\t' -v files="${FILES[*]}" -v threads="${THREADS[*]}" -v targets="${TARGETS[*]}" '
	{ k = $2 SUBSEP $3 SUBSEP $1; have[k] = 1; fails[k] = $5; ops[k] = $6; p50[k] = $7; p99[k] = $8 }
	function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : sprintf("%.2f", a / b) }
	END {
		nf = split(files, F, " "); nn = split(threads, N, " "); nt = split(targets, T, " ")
		print "| file | threads | target | ops/s | p50 µs | p99 µs | fails | ops/s ÷ lxcfs | p50 ÷ native |"
		print "|---|---:|---|---:|---:|---:|---:|---:|---:|"
		for (i = 1; i <= nf; i++) for (j = 1; j <= nn; j++) for (l = 1; l <= nt; l++) {
			f = F[i]; n = N[j]; t = T[l]; k = f SUBSEP n SUBSEP t
			lx = f SUBSEP n SUBSEP "lxcfs"; na = f SUBSEP n SUBSEP "native"
			if (!(k in have)) { printf "| %s | %s | %s | n/a | | | | | |\n", f, n, t; continue }
			r1 = (t == "shared" || t == "ct") && (lx in have) ? ratio(ops[k], ops[lx]) : ""
			r2 = (t != "native") && (na in have) ? ratio(p50[k], p50[na]) : ""
			printf "| %s | %s | %s | %d | %.1f | %.1f | %d | %s | %s |\n", f, n, t, ops[k], p50[k], p99[k], fails[k], r1, r2
		}
		print ""
		print "Summary: cvmfs-shared ops/s ÷ lxcfs ops/s; p50 ÷ native p50 for shared and ct."
		print ""
		print "| file | threads | shared ÷ lxcfs ops/s | ct ÷ lxcfs ops/s | shared p50 ÷ native | ct p50 ÷ native |"
		print "|---|---:|---:|---:|---:|---:|"
		for (i = 1; i <= nf; i++) for (j = 1; j <= nn; j++) {
			b = F[i] SUBSEP N[j] SUBSEP
			printf "| %s | %s | %s | %s | %s | %s |\n", F[i], N[j],
				ratio(ops[b "shared"], ops[b "lxcfs"]), ratio(ops[b "ct"], ops[b "lxcfs"]),
				ratio(p50[b "shared"], p50[b "native"]), ratio(p50[b "ct"], p50[b "native"])
		}
	}' "$TMP/results.tsv"
}

# ---------------------------------------------------------------- memory

# The serving process: the supervisor's child (doc/cvmfsd-views.md), or
# cvmfsd itself for a build without one.
server_pid() {
	local kids
	kids=$(cat "/proc/$CVMFSD_PID/task/$CVMFSD_PID/children" 2>/dev/null || true)
	echo "${kids%% *}" | grep -q . && echo "${kids%% *}" || echo "$CVMFSD_PID"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$(server_pid)/status"; }
fd_count() { find "/proc/$(server_pid)/fd" -mindepth 1 -maxdepth 1 | wc -l; }
thread_count() { awk '/^Threads:/ { print $2 }' "/proc/$(server_pid)/status"; }

# One short-lived reader per memory cgroup: a forked subshell (no exec)
# joins the cgroup and reads meminfo with a builtin, so the daemon sees a
# reader in that cgroup.  MemTotal must show the cgroup's 256M limit, which
# proves cvmfsd really looked the cgroup up.
mem_probe_one() {
	local d=$1
	(
		echo "$BASHPID" >"$d/cgroup.procs" || exit 2
		mapfile -t L <"$TMP/views/proc/meminfo" || exit 3
		[[ ${L[0]:-} =~ ^MemTotal:\ +262144\ kB$ ]] && exit 0
		echo "${d##*/} saw '${L[0]:-<empty>}'" >>"$TMP/mem-bad.txt"
		exit 4
	)
}

measure_memory() {
	local memh=$CGROOT/memory i d rss0 rss1 rss2 fd0 fd1 fd2 th0 th1 bad=0 t0 t1 dirs=()
	memh=$(readlink -f "$memh")
	rss0=$(rss_kib) fd0=$(fd_count) th0=$(thread_count)
	log "memory: $MEM_CGROUPS cgroups with one meminfo reader each"
	t0=$(date +%s.%N)
	for ((i = 1; i <= MEM_CGROUPS; i++)); do
		d=$memh/cvmfs-test-mem-$$-$i
		cg_mkdir "$d"
		dirs+=("$d")
		echo 268435456 >"$d/memory.limit_in_bytes"
		mem_probe_one "$d" || bad=$((bad + 1))
	done
	t1=$(date +%s.%N)
	if daemon_died CVMFSD_PID cvmfsd; then
		for d in "${dirs[@]}"; do rmdir "$d"; done
		die "$DIED during the memory measurement ($bad of $MEM_CGROUPS readers failed)"
	fi
	rss1=$(rss_kib) fd1=$(fd_count) th1=$(thread_count)
	for d in "${dirs[@]}"; do rmdir "$d"; done
	log "memory: removed the cgroups; waiting 3 s for cvmfsd to expire them"
	sleep 3
	rss2=$(rss_kib) fd2=$(fd_count)
	echo
	echo "## cvmfsd memory per tracked cgroup"
	echo
	awk -v n="$MEM_CGROUPS" -v a="$t0" -v b="$t1" -v bad="$bad" 'BEGIN {
		printf "- %d memory cgroups (limit 256M), one reader each, in %.1f s; readers whose MemTotal was not 262144 kB: %d\n",
			n, b - a, bad }'
	echo
	echo "| cvmfsd | VmRSS KiB | open fds | threads |"
	echo "|---|---:|---:|---:|"
	echo "| before | $rss0 | $fd0 | $th0 |"
	echo "| with $MEM_CGROUPS cgroups tracked | $rss1 | $fd1 | $th1 |"
	echo "| 3 s after removing them | $rss2 | $fd2 | $(thread_count) |"
	echo
	awk -v a="$rss0" -v b="$rss1" -v c="$rss2" -v n="$MEM_CGROUPS" -v fa="$fd0" -v fb="$fd1" 'BEGIN {
		printf "**%.2f KiB RSS per tracked cgroup** (%.2f fds per cgroup); after expiry RSS is %+d KiB from the start\n",
			(b - a) / n, (fb - fa) / n, c - a }'
	if ((bad)); then
		MEM_BAD=$bad
		echo
		echo "Readers that did not see their limit (first 5):"
		head -n 5 "$TMP/mem-bad.txt" 2>/dev/null | sed 's/^/- /'
	fi
}

# ---------------------------------------------------------------- cleanup

# pid descends from this shell, or was spawned by it (VB_OWNER): only such
# processes may be killed.
is_ours() {
	local p=$1 st f
	tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "VB_OWNER=$$" && return 0
	while ((p > 1)); do
		((p == $$)) && return 0
		st=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || return 1
		read -r -a f <<<"$st"   # state ppid ...
		p=${f[1]}
	done
	return 1
}

empty_cgroup() {   # DIR: kill our leftovers in it so that rmdir can succeed
	local d=$1 pid i
	for ((i = 0; i < 20; i++)); do
		[[ -s $d/cgroup.procs ]] || return 0
		while read -r pid; do
			is_ours "$pid" && kill -KILL "$pid" 2>/dev/null
		done <"$d/cgroup.procs"
		sleep 0.1
	done
	log "cgroup $d still has processes not started by this script: $(tr '\n' ' ' <"$d/cgroup.procs")"
}

restore_own_cgroups() {
	local h
	for h in "${HIERS[@]}"; do
		[[ -n ${ORIG_CG[$h]:-} ]] || continue
		grep -qx "$$" "$h${ORIG_CG[$h]%/}/cgroup.procs" 2>/dev/null ||
			echo $$ >"$h${ORIG_CG[$h]%/}/cgroup.procs"
	done
}

unmount_ours() {
	local m
	for m in "$TMP/views/ct" "$TMP/views" "$TMP/before/ct" "$TMP/before" "$TMP/lxcfs"; do
		is_mounted "$m" || continue
		log "$m still mounted after the daemon exited; unmounting"
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" || log "cannot unmount $m"
	done
}

remove_cgroups() {
	local i d
	for ((i = ${#CREATED_CGS[@]} - 1; i >= 0; i--)); do
		d=${CREATED_CGS[i]}
		[[ -d $d ]] || continue
		empty_cgroup "$d"
		rmdir "$d" 2>/dev/null || log "cannot remove cgroup $d"
	done
}

dump_logs() {
	local f
	for f in "$TMP/cvmfsd.log" "$TMP/lxcfs.log"; do
		[[ -s $f ]] || continue
		echo "---- $(basename "$f") (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	[[ -n $BENCH_PID ]] && stop_pid "$BENCH_PID"
	stop_pid "$CVMFSD_PID"
	stop_pid "$BEFORE_PID"
	stop_pid "$LXCFS_PID"
	if [[ -n $TMP ]]; then
		((rc == 0)) || dump_logs
		unmount_ours
	fi
	restore_own_cgroups
	remove_cgroups
	if [[ -n $TMP ]]; then
		# --one-file-system: never descend into a mount that refused to go.
		rm -rf --one-file-system "$TMP" || log "left $TMP behind"
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- main

main() {
	check_prereqs
	find_hierarchies
	record_own_cgroups
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	TMP=$(mktemp -d /tmp/cvmfs-test-bench-XXXX)
	MEM_BAD=0
	DIED=""
	make_bench_cgroups
	start_daemons
	run_benchmarks
	print_env
	print_table
	print_before
	[[ -z $DIED ]] || die "$DIED; the table above stops there (cvmfsd log follows)"
	if ((MEM_CGROUPS > 0)); then
		measure_memory
	fi
	# An empty cvmfsd log is the expected case; anything there is worth a look.
	if [[ -s $TMP/cvmfsd.log ]]; then
		echo
		echo "cvmfsd log ($(wc -l <"$TMP/cvmfsd.log") lines, last 10):"
		echo '```'
		tail -n 10 "$TMP/cvmfsd.log"
		echo '```'
	fi
	if awk -F'\t' '$5 > 0 { f = 1 } END { exit !f }' "$TMP/results.tsv"; then
		die "some reads failed or returned nothing (fails column)"
	fi
	((MEM_BAD == 0)) || die "$MEM_BAD memory-cgroup readers did not see their 256M limit"
}

main "$@"
