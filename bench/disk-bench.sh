#!/bin/bash
# disk-bench.sh: cvmfsd disk side by side with native ext4 and fuse-overlayfs.
#
#   bench/disk-bench.sh [BUILD_DIR]        (as root; BUILD_DIR defaults to build)
#
# From a clean clone: installs the dependencies (scripts/deps.sh) if a tool
# is missing and builds BUILD_DIR (scripts/build.sh) first.
#
# In one run, on fresh directories of the same filesystem (under one
# mktemp -d /tmp/cvmfs-test-diskbench-XXXX), measures four targets:
#   native    a plain directory
#   fuse-ovl  fuse-overlayfs -o lowerdir=L,upperdir=U,workdir=W
#   cvmfs     cvmfsd disk --image L --limit $DISK_BENCH_LIMIT (default 8G)
#   cvmfs-nl  cvmfsd disk --image L --limit 1000000T ("no limit": cvmfsd disk
#             has no unlimited mode, so quota overhead is measured against the
#             same mount with a limit it can never reach)
#   cvmfs-vol cvmfsd disk --volume loop --limit $DISK_BENCH_LIMIT: the root
#             union, its upper on the volume (an ext4 on a loop device over a
#             sparse file of the same filesystem)
#   cvmfs-lane the same workspace's /home lane: the volume's ext4 directly,
#             as a CVM sees /home (no FUSE on the path)
#   (the last two unless DISK_BENCH_VOLUME=0 or the machine has no
#   /dev/loop-control)
#   cvmfs-base cvmfsd disk of another build (DISK_BENCH_BASELINE=BUILD_DIR,
#             e.g. one of the commit before a change), same options as
#             cvmfs: a before/after table of the same run
# with the workloads
#   - 1 GiB sequential write + fsync (dd bs=1M conv=fsync), MB/s, best of
#     DISK_BENCH_SEQ_REPEAT
#   - cold-cache sequential read of it (drop_caches first), MB/s, likewise
#   - create, then delete, of 20,000 files of 4 KiB (Python os.open/write/close,
#     os.unlink), files/s per phase, best of 3
#   - untar of a ~100 MiB tree of many real files (built once per run from
#     /usr/lib/python3.* and /usr/share; tarball warm in the page cache; tar's
#     time only, no sync), MB/s and files/s, best of 3
#   - find -printf (an lstat per entry) over the untarred tree: warm (after
#     one warm-up pass) and cold (after drop_caches), best of
#     DISK_BENCH_REPEAT each, entries/s
# and prints a markdown table.  Then checks that each cvmfsd disk's live
# used_bytes / inodes_used (RUN_DIR/disk/NAME.json) equal a fresh recount of
# DATA/upper + the image (sum of st_blocks*512 over distinct inodes).
#
# Environment: DISK_BENCH_REPEAT (best-of count for the short tests, default 3),
#              DISK_BENCH_SEQ_REPEAT (best-of count for the sequential tests,
#                default 5: the host disk behind the loop file varies by 2x
#                between runs of the same 1 GiB write),
#              DISK_BENCH_FILES (create/delete count, default 20000),
#              DISK_BENCH_TAR_MB (untar tree size, default 100),
#              DISK_BENCH_LIMIT (limit of the limited mount, default 8G),
#              DISK_BENCH_SEQ_MB (sequential file size in MiB, default 1024),
#              DISK_BENCH_BASELINE (a build dir: its cvmfsd disk as one
#                more target, and tables of this build against it: by
#                rate, and by the daemon's CPU time per workload),
#              DISK_BENCH_FS (loop, the default: every target on one fresh
#                ext4 made in a sparse file under the temp dir and mounted
#                with -o loop, so that the figures do not depend on the
#                history of the host's filesystem (ext4 without a journal
#                searches recently deleted inodes on every create); host:
#                the temp dir's own filesystem).
#
# Everything it creates lives under its temp dir; the daemons it starts
# (fuse-overlayfs, cvmfsd disk, run in the foreground as children) are
# remembered by pid and stopped on exit whatever happens (SIGTERM, wait, then
# fusermount3 -u / umount -l of its own mount points), and the temp dir is
# removed.  Nothing it did not create is touched.  drop_caches is global.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
BUILD=$(bench_build_dir "$REPO" "${1:-}")
CVMFSD=$BUILD/src/cvmfsd
REPEAT=${DISK_BENCH_REPEAT:-3}
SEQ_REPEAT=${DISK_BENCH_SEQ_REPEAT:-5}
NFILES=${DISK_BENCH_FILES:-20000}
TAR_MB=${DISK_BENCH_TAR_MB:-100}
LIMIT=${DISK_BENCH_LIMIT:-8G}
SEQ_MB=${DISK_BENCH_SEQ_MB:-1024}
NOLIMIT=1000000T

die() { echo "disk-bench: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (drop_caches, FUSE mounts)"
TOOLS=(fuse-overlayfs fusermount3 mountpoint findmnt python3 dd tar find umount awk mkfs.ext4)
bench_prepare disk-bench "$REPO" "$BUILD" "${TOOLS[@]}" || exit 1
for t in "${TOOLS[@]}"; do
	command -v "$t" >/dev/null || die "missing tool: $t (not installed by scripts/deps.sh)"
done
[ -x "$CVMFSD" ] || die "missing $CVMFSD after building $BUILD"
[ -c /dev/fuse ] || die "missing /dev/fuse"
[ -w /proc/sys/vm/drop_caches ] || die "cannot write /proc/sys/vm/drop_caches"

# ---------------------------------------------------------------- cleanup --
TMP=""
LOOPFS=""    # our loop-mounted ext4, unmounted after the FUSE mounts on it
PIDS=()      # daemons we started
MNTS=()      # mount points we made
cleanup() {
	local rc=$? p m i
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
	done
	for p in "${PIDS[@]}"; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$p" 2>/dev/null; then
			echo "disk-bench: pid $p ignored SIGTERM for 10 s; SIGKILL" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
	for m in "${MNTS[@]}"; do
		bench_unmount disk-bench "$m"
	done
	if [ -n "$LOOPFS" ] && mountpoint -q "$LOOPFS"; then
		umount "$LOOPFS" 2>/dev/null || umount -l "$LOOPFS" ||
			echo "disk-bench: could not unmount $LOOPFS" >&2
	fi
	bench_remove_tmp disk-bench "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/cvmfs-test-diskbench-XXXX)
TAG=cvmfs-test-diskbench-$$
mkdir -p "$TMP/run" "$TMP/work"
: >"$TMP/empty.conf"
ROOT=$TMP    # where every target's files live
if [ "${DISK_BENCH_FS:-loop}" = loop ]; then
	# Room for the sequential file, four untarred trees and the rest, x4
	# (x2 for the targets on the volume, which is a file on it).
	truncate -s "$(((SEQ_MB + TAR_MB * 4 + 512) * 4))M" "$TMP/fs.img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$TMP/fs.img"
	mkdir "$TMP/fs"
	mount -o loop "$TMP/fs.img" "$TMP/fs"
	LOOPFS=$TMP/fs
	ROOT=$TMP/fs
fi
mkdir -p "$ROOT/lower/dir"

# --------------------------------------------------------------- helpers --
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

wait_mounted() { # MNT PID LOG
	local i
	for ((i = 0; i < 100; i++)); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "daemon for $1 exited"; }
		sleep 0.1
	done
	cat "$3" >&2
	die "$1 not mounted after 10 s"
}

# A small lower layer: a few files, a directory, a symlink.
for i in 1 2 3 4 5; do head -c $((i * 10000)) /dev/urandom >"$ROOT/lower/file$i"; done
echo hello >"$ROOT/lower/dir/readme"
ln -s file1 "$ROOT/lower/link"

# Python drivers.
cat >"$TMP/work/cd.py" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
buf = b"x" * 4096
os.mkdir(d)
names = [os.path.join(d, "f%d" % i) for i in range(n)]
t0 = time.perf_counter()
for p in names:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, buf)
    os.close(fd)
t1 = time.perf_counter()
for p in names:
    os.unlink(p)
t2 = time.perf_counter()
os.rmdir(d)
print("%.1f %.1f" % (n / (t1 - t0), n / (t2 - t1)))
EOF
cat >"$TMP/work/mktar.py" <<'EOF'
# Build a tarball of about MB MiB of real files (dirs, files, symlinks).
import glob, os, sys, tarfile
out, limit = sys.argv[1], int(sys.argv[2]) << 20
roots = sorted(glob.glob("/usr/lib/python3.*")) + ["/usr/share/doc", "/usr/share"]
total = files = 0
seen = set()
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
    for root in roots:
        for dp, dns, fns in os.walk(root):
            dns.sort(); fns.sort()
            if dp in seen:
                dns[:] = []
                continue
            seen.add(dp)
            tf.add(dp, arcname="tree" + dp, recursive=False)
            for f in fns:
                p = os.path.join(dp, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                import stat as S
                if not (S.S_ISREG(st.st_mode) or S.S_ISLNK(st.st_mode)):
                    continue
                if S.S_ISREG(st.st_mode) and st.st_size > (4 << 20):
                    continue
                try:
                    tf.add(p, arcname="tree" + p, recursive=False)
                except OSError:
                    continue
                total += st.st_size if S.S_ISREG(st.st_mode) else 0
                files += 1
                if total >= limit:
                    break
            if total >= limit:
                break
        if total >= limit:
            break
print(total, files)
EOF
cat >"$TMP/work/recount.py" <<'EOF'
# Sum st_blocks*512 and count inodes over distinct inodes of the given trees
# (each root included), never following symlinks.
import os, sys
seen = set()
nbytes = 0
for root in sys.argv[1:]:
    for dp, dns, fns in os.walk(root):
        for p in [dp] + [os.path.join(dp, f) for f in fns] + \
                 [os.path.join(dp, d) for d in dns if os.path.islink(os.path.join(dp, d))]:
            st = os.lstat(p)
            k = (st.st_dev, st.st_ino)
            if k not in seen:
                seen.add(k)
                nbytes += st.st_blocks * 512
print(nbytes, len(seen))
EOF

# ---------------------------------------------------------------- targets --
TARGETS=(native fuseovl cvmfs cvmfsnl)
VOLUME=${DISK_BENCH_VOLUME:-1}
[ -c /dev/loop-control ] || VOLUME=0
[ "$VOLUME" = 1 ] && TARGETS+=(cvmfsvol cvmfslane)
BASELINE=${DISK_BENCH_BASELINE:-}
if [ -n "$BASELINE" ]; then
	[ -x "$BASELINE/src/cvmfsd" ] || die "DISK_BENCH_BASELINE: no $BASELINE/src/cvmfsd"
	TARGETS+=(cvmfsbase)
fi
declare -A LABEL=([cvmfsbase]="cvmfsd disk, baseline" [native]="native" [fuseovl]="fuse-overlayfs"
                  [cvmfs]="cvmfsd disk" [cvmfsnl]="cvmfsd disk (no limit)"
                  [cvmfsvol]="cvmfsd disk, volume: root union" [cvmfslane]="volume: /home lane")
declare -A DIR=() NAME=() DATA=()

mkdir -p "$ROOT/native/dir"
DIR[native]=$ROOT/native/dir

mkdir -p "$ROOT/fuseovl/upper" "$ROOT/fuseovl/work" "$ROOT/fuseovl/mnt"
MNTS+=("$ROOT/fuseovl/mnt")
fuse-overlayfs -f -o "lowerdir=$ROOT/lower,upperdir=$ROOT/fuseovl/upper,workdir=$ROOT/fuseovl/work" \
	"$ROOT/fuseovl/mnt" >"$ROOT/fuseovl/log" 2>&1 &
PIDS+=($!)
wait_mounted "$ROOT/fuseovl/mnt" $! "$ROOT/fuseovl/log"
DIR[fuseovl]=$ROOT/fuseovl/mnt

declare -A DPID=() CPU=() # a cvmfsd disk target's pid; CPU[key,target] in ticks
# The daemon's own CPU time (user + system, all threads) in clock ticks:
# what a change to the daemon costs, far steadier on a busy machine than
# wall time (the A/B table below). 0 for targets that are no daemon of ours.
# The daemon's CPU ticks: the process started and its children, since
# cvmfsd disk serves from a server process its supervisor starts.
cpu_ticks() {
	local p=${DPID[$1]:-} t=0 c n
	[ -n "$p" ] || { echo 0; return; }
	for c in "$p" $(cat /proc/"$p"/task/*/children 2>/dev/null); do
		n=$(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null) || n=0
		t=$((t + ${n:-0}))
	done
	echo "$t"
}
cpu_add() { # KEY TARGET TICKS_BEFORE
	CPU[$1,$2]=$(( ${CPU[$1,$2]:-0} + $(cpu_ticks "$2") - $3 ))
}

start_cvmfs() { # TARGET LIMIT [cvmfsd disk options]
	local t=$1 d=$ROOT/$1 lim=$2 bin=$CVMFSD
	shift 2
	[ "$t" = cvmfsbase ] && bin=$BASELINE/src/cvmfsd
	mkdir -p "$d/mnt"
	NAME[$t]=$TAG-$t
	DATA[$t]=$d/data
	MNTS+=("$d/mnt")
	"$bin" disk -f -c "$TMP/empty.conf" --name "${NAME[$t]}" --data "$d/data" \
		--limit "$lim" --image "$ROOT/lower" --run-dir "$TMP/run" "$@" "$d/mnt" \
		>"$d/log" 2>&1 &
	PIDS+=($!)
	DPID[$t]=$!
	wait_mounted "$d/mnt" $! "$d/log"
	DIR[$t]=$d/mnt
}
start_cvmfs cvmfs "$LIMIT"
start_cvmfs cvmfsnl "$NOLIMIT"
[ -n "$BASELINE" ] && start_cvmfs cvmfsbase "$LIMIT"
if [ "$VOLUME" = 1 ]; then
	# The daemon unmounts its volume (lazily) at SIGTERM; the loop device
	# goes with the last user (autoclear).
	start_cvmfs cvmfsvol "$LIMIT" --volume loop --volume-dir "$ROOT/volumes"
	for ((i = 0; i < 100; i++)); do [ -f "$TMP/run/disk/${NAME[cvmfsvol]}.json" ] && break; sleep 0.1; done
	DIR[cvmfslane]=${DATA[cvmfsvol]}/lanes/home
	mkdir -p "${DIR[cvmfslane]}/dir"
	cp "$ROOT/lower/dir/readme" "${DIR[cvmfslane]}/dir/readme"
fi

for t in fuseovl cvmfs cvmfsnl; do
	[ "$(cat "${DIR[$t]}/dir/readme")" = hello ] || die "${LABEL[$t]}: lower layer not visible"
done

declare -A R=()   # R[test,target] = rate
TESTS=()
add_test() { TESTS+=("$1|$2"); }   # key|label

echo "disk-bench: temp dir $TMP; targets mounted; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# ------------------------------------------------------- sequential 1 GiB --
add_test seqw "$SEQ_MB MiB seq write + fsync (MB/s)"
add_test seqr "$SEQ_MB MiB seq read, cold cache (MB/s)"
# Best of REPEAT, the targets taking turns within each round so that a
# slow spell of the host's disk does not land on one target only.
declare -A SW=() SR=()
SEQ_MB_DEC=$(awk -v m="$SEQ_MB" 'BEGIN { print m * 1.048576 }')
for ((i = 0; i < SEQ_REPEAT; i++)); do
	for t in "${TARGETS[@]}"; do
		f=${DIR[$t]}/big
		drop_caches
		c=$(cpu_ticks "$t")
		a=$(now); dd if=/dev/zero of="$f" bs=1M count="$SEQ_MB" conv=fsync status=none; b=$(now)
		cpu_add seqw "$t" "$c"
		SW[$t]+=" $(rate "$SEQ_MB_DEC" "$a" "$b")"
		drop_caches
		c=$(cpu_ticks "$t")
		a=$(now); dd if="$f" of=/dev/null bs=1M status=none; b=$(now)
		cpu_add seqr "$t" "$c"
		SR[$t]+=" $(rate "$SEQ_MB_DEC" "$a" "$b")"
		rm -f "$f"
		sync # the freed blocks reach the disk before the next target writes
	done
done
for t in "${TARGETS[@]}"; do
	# shellcheck disable=SC2086
	R[seqw,$t]=$(best ${SW[$t]})
	# shellcheck disable=SC2086
	R[seqr,$t]=$(best ${SR[$t]})
	echo "  seq ${LABEL[$t]}: write${SW[$t]} MB/s, read${SR[$t]} MB/s" >&2
done

# ---------------------------------------------------- create/delete 20k --
add_test create "create $NFILES × 4 KiB (files/s)"
add_test delete "delete $NFILES × 4 KiB (files/s)"
declare -A CR=() DE=()
for ((i = 0; i < REPEAT; i++)); do          # round robin: load spikes hit all
	for t in "${TARGETS[@]}"; do
		sync
		c0=$(cpu_ticks "$t")
		read -r c d < <(python3 "$TMP/work/cd.py" "${DIR[$t]}/cd$i" "$NFILES")
		cpu_add create "$t" "$c0" # create and delete together
		CR[$t]+=" $c"; DE[$t]+=" $d"
	done
done
for t in "${TARGETS[@]}"; do
	# shellcheck disable=SC2086
	R[create,$t]=$(best ${CR[$t]})
	# shellcheck disable=SC2086
	R[delete,$t]=$(best ${DE[$t]})
	echo "  create/delete ${LABEL[$t]}:${CR[$t]} /${DE[$t]}" >&2
done

# ------------------------------------------------------------------ untar --
read -r TAR_BYTES _ < <(python3 "$TMP/work/mktar.py" "$TMP/work/tree.tar" "$TAR_MB")
TAR_ENTRIES=$(tar -tf "$TMP/work/tree.tar" | wc -l)
cat "$TMP/work/tree.tar" >/dev/null
TAR_MIB=$(awk -v b="$TAR_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
add_test untarmb "untar ${TAR_MIB} MiB tree (MB/s)"
add_test untarf "untar $TAR_ENTRIES entries (files/s)"
TAR_MB_DEC=$(awk -v b="$TAR_BYTES" 'BEGIN { print b / 1e6 }')
declare -A UMB=() UFS=()
for ((i = 0; i < REPEAT; i++)); do
	for t in "${TARGETS[@]}"; do
		mkdir "${DIR[$t]}/untar$i"
		sync
		c=$(cpu_ticks "$t")
		a=$(now); tar -xf "$TMP/work/tree.tar" -C "${DIR[$t]}/untar$i"; b=$(now)
		cpu_add untarmb "$t" "$c"
		UMB[$t]+=" $(rate "$TAR_MB_DEC" "$a" "$b")"
		UFS[$t]+=" $(rate "$TAR_ENTRIES" "$a" "$b")"
	done
done
for t in "${TARGETS[@]}"; do
	# shellcheck disable=SC2086
	R[untarmb,$t]=$(best ${UMB[$t]})
	# shellcheck disable=SC2086
	R[untarf,$t]=$(best ${UFS[$t]})
	echo "  untar ${LABEL[$t]}:${UMB[$t]} MB/s" >&2
done

# ------------------------------------------------------------ find + stat --
add_test findw "find+lstat, warm (entries/s)"
add_test findc "find+lstat, cold cache (entries/s)"
declare -A FW=() NENT=()
for t in "${TARGETS[@]}"; do
	for ((i = 1; i < REPEAT; i++)); do rm -rf "${DIR[$t]}/untar$i"; done
	find "${DIR[$t]}/untar0" -printf '%i %s %y %m\n' >/dev/null   # warm-up
done
for ((i = 0; i < REPEAT; i++)); do
	for t in "${TARGETS[@]}"; do
		c=$(cpu_ticks "$t")
		a=$(now); n=$(find "${DIR[$t]}/untar0" -printf '%i %s %y %m\n' | wc -l); b=$(now)
		cpu_add findw "$t" "$c"
		FW[$t]+=" $(rate "$n" "$a" "$b")"; NENT[$t]=$n
	done
done
declare -A FC=()
for ((i = 0; i < REPEAT; i++)); do
	for t in "${TARGETS[@]}"; do
		drop_caches
		c=$(cpu_ticks "$t")
		a=$(now); n=$(find "${DIR[$t]}/untar0" -printf '%i %s %y %m\n' | wc -l); b=$(now)
		cpu_add findc "$t" "$c"
		FC[$t]+=" $(rate "$n" "$a" "$b")"
	done
done
for t in "${TARGETS[@]}"; do
	# shellcheck disable=SC2086
	R[findw,$t]=$(best ${FW[$t]})
	# shellcheck disable=SC2086
	R[findc,$t]=$(best ${FC[$t]})
	echo "  find ${LABEL[$t]}: ${NENT[$t]} entries, warm${FW[$t]}, cold${FC[$t]}" >&2
done

# ------------------------------------------------------------------ table --
echo
echo "## cvmfsd disk benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(findmnt -n -o FSTYPE -T "$ROOT") under $ROOT)"
echo
echo "Higher is better everywhere.  \"no limit\" = the same cvmfsd disk mount with --limit $NOLIMIT"
echo "(cvmfsd disk always enforces a limit; quota accounting still runs).  Limit overhead % ="
echo "(no-limit rate − $LIMIT-limit rate) / no-limit rate; ratios use the $LIMIT-limited mount."
echo "Every figure is the best of $REPEAT runs ($SEQ_REPEAT for the sequential ones), the targets taking turns in each round."
echo "Untar: tar's own time (tarball warm in cache), no sync; files/s counts every tar entry."
echo
echo "| test | native | fuse-overlayfs | cvmfsd disk | cvmfsd disk (no limit) | cvmfs ÷ native | cvmfs ÷ fuse-overlayfs | limit overhead % |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for e in "${TESTS[@]}"; do
	k=${e%%|*} l=${e#*|}
	awk -v l="$l" -v n="${R[$k,native]}" -v f="${R[$k,fuseovl]}" \
	    -v c="${R[$k,cvmfs]}" -v u="${R[$k,cvmfsnl]}" 'BEGIN {
		printf "| %s | %s | %s | %s | %s | %.2f | %.2f | %+.1f |\n",
		       l, n, f, c, u, c / n, c / f, (u - c) / u * 100 }'
done
if [ "$VOLUME" = 1 ]; then
	echo
	echo "### With a volume (--volume loop, same limit): /home lane and root union"
	echo
	echo "| test | native | /home lane | lane ÷ native | root union, volume | root union, no volume | volume ÷ no volume |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for e in "${TESTS[@]}"; do
		k=${e%%|*} l=${e#*|}
		awk -v l="$l" -v n="${R[$k,native]}" -v a="${R[$k,cvmfslane]}" \
		    -v v="${R[$k,cvmfsvol]}" -v c="${R[$k,cvmfs]}" 'BEGIN {
			printf "| %s | %s | %s | %.2f | %s | %s | %.2f |\n", l, n, a, a / n, v, c, v / c }'
	done
fi

if [ -n "$BASELINE" ]; then
	echo
	echo "### This build against the baseline ($BASELINE), same run, same limit"
	echo
	echo "| test | baseline | this build | this ÷ baseline |"
	echo "|---|---:|---:|---:|"
	for e in "${TESTS[@]}"; do
		k=${e%%|*} l=${e#*|}
		awk -v l="$l" -v b="${R[$k,cvmfsbase]}" -v c="${R[$k,cvmfs]}" 'BEGIN {
			printf "| %s | %s | %s | %.2f |\n", l, b, c, c / b }'
	done
	echo
	echo "### The daemon's CPU time (user + system, all rounds, seconds; lower is better)"
	echo
	echo "Steadier than the rates on a loaded machine: the work each daemon did for the same workload."
	echo
	echo "| workload | baseline | this build | this ÷ baseline |"
	echo "|---|---:|---:|---:|"
	hz=$(getconf CLK_TCK)
	for e in "seqw|seq write" "seqr|seq read, cold" "create|create + delete" \
		 "untarmb|untar" "findw|find+lstat, warm" "findc|find+lstat, cold"; do
		k=${e%%|*} l=${e#*|}
		awk -v l="$l" -v b="${CPU[$k,cvmfsbase]:-0}" -v c="${CPU[$k,cvmfs]:-0}" -v hz="$hz" 'BEGIN {
			r = b > 0 ? sprintf("%.2f", c / b) : "-"
			printf "| %s | %.2f | %.2f | %s |\n", l, b / hz, c / hz, r }'
	done
fi

# ------------------------------------------------------ accounting check --
echo
echo "### cvmfsd disk accounting check (live NAME.json vs. recount of DATA/upper + image)"
echo
echo "| mount | json used_bytes | recount bytes | json − recount | json inodes_used | recount inodes | statfs used bytes | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
sync
sleep 2.5      # the figures are republished at least once a second
BAD=0
for t in cvmfs cvmfsnl; do
	js=$TMP/run/disk/${NAME[$t]}.json
	read -r ju ji < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["used_bytes"], j["inodes_used"])' "$js")
	read -r rb ri < <(python3 "$TMP/work/recount.py" "${DATA[$t]}/upper" "$ROOT/lower")
	sf=$(stat -f -c '%S %b %f' "${DIR[$t]}" | awk '{ printf "%.0f", $1 * ($2 - $3) }')
	res=OK
	if [ "$ju" != "$rb" ] || [ "$ji" != "$ri" ]; then res=MISMATCH; BAD=1; fi
	echo "| ${LABEL[$t]} | $ju | $rb | $((ju - rb)) | $ji | $ri | $sf | $res |"
done
if [ "$VOLUME" = 1 ]; then # used is the volume's statfs: the same number
	js=$TMP/run/disk/${NAME[cvmfsvol]}.json
	ju=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["used_bytes"])' "$js")
	sf=$(stat -f -c '%S %b %f' "${DATA[cvmfsvol]}" | awk '{ printf "%.0f", $1 * ($2 - $3) }')
	res=OK
	[ "$ju" = "$sf" ] || { res=MISMATCH; BAD=1; }
	echo "| ${LABEL[cvmfsvol]} | $ju | (volume statfs) | | | | $sf | $res |"
fi
for t in cvmfs cvmfsnl; do
	if grep -qiE 'error|warn|fail' "$ROOT/$t/log"; then
		echo; echo "${LABEL[$t]} log:"; sed 's/^/    /' "$ROOT/$t/log"
	fi
done
[ "$BAD" -eq 0 ] || {
	echo "disk-bench: cvmfsd disk live usage differs from the recount (exit 2)" >&2
	exit 2
}
