# Shared by the bench/*.sh scripts: cleanup and arguments (sourced, not run).

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

# bench_build_dir REPO [DIR]: the build directory to use: DIR (default
# build) as given when it exists from here or is absolute, else under REPO.
bench_build_dir() {
	local b=${2:-build}
	case $b in /*) ;; *) [ -d "$b" ] || b=$1/$b ;; esac
	printf '%s\n' "$b"
}
