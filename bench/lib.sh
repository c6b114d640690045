# shellcheck shell=bash
# Shared by the bench/*.sh scripts (and bench/fuse-rtt.py): cleanup,
# arguments and the one-command start from a clean clone (sourced, not run).

# bench_unmount WHO MOUNTPOINT: unmount a FUSE mount of ours if it is one.
bench_unmount() {
	mountpoint -q "$2" 2>/dev/null || return 0
	fusermount3 -u "$2" 2>/dev/null || umount -l "$2" 2>/dev/null ||
		echo "$1: could not unmount $2" >&2
}

# bench_remove_tmp WHO DIR: remove our temp dir, never through a mount left
# inside it.
bench_remove_tmp() {
	[ -n "$2" ] && [ -d "$2" ] || return 0
	if findmnt -rn -o TARGET | grep -q "^$2/"; then
		echo "$1: something still mounted under $2; left in place" >&2
	else
		rm -rf --one-file-system "$2"
	fi
}

# bench_build_dir REPO [DIR]: the build directory to use, as an absolute
# path: DIR (default build) as given when it exists from here or is
# absolute, else under REPO (a clean clone has none yet: bench_prepare
# makes it there).
bench_build_dir() {
	local b=${2:-build}
	case $b in /*) ;; *) [ -d "$b" ] || b=$1/$b ;; esac
	realpath -m -- "$b"
}

# bench_prepare WHO REPO BUILD [TOOL...]: what a bench needs before it can
# run on a fresh Debian 12 as root with one command. The dependencies
# (scripts/deps.sh: apt-get update and install) when a build tool, a library
# or one of the bench's TOOLs is missing -- not otherwise, so that a machine
# that has them all runs offline -- then BUILD configured once and brought up
# to date (scripts/build.sh), so that the binaries measured are the tree's.
bench_prepare() {
	local who=$1 repo=$2 build=$3 t missing=""
	shift 3
	[ "$(id -u)" -eq 0 ] || { echo "$who: must run as root" >&2; return 1; }
	for t in meson ninja cc pkg-config "$@"; do
		command -v "$t" >/dev/null 2>&1 || missing+=" $t"
	done
	pkg-config --exists fuse3 liburcu-memb liburcu-cds inih libcap 2>/dev/null ||
		missing+=" (libraries: fuse3 liburcu inih libcap)"
	if [ -n "$missing" ]; then
		echo "$who: missing$missing: installing the dependencies (scripts/deps.sh)" >&2
		bash "$repo/scripts/deps.sh" >&2 || { echo "$who: scripts/deps.sh failed" >&2; return 1; }
	fi
	[ -f "$build/build.ninja" ] || echo "$who: configuring and building $build" >&2
	# stdout is the bench's table: meson's chatter goes to stderr.
	BUILD_DIR=$build bash "$repo/scripts/build.sh" >&2 ||
		{ echo "$who: building $build failed (scripts/build.sh)" >&2; return 1; }
}
