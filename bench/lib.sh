# Shared by the bench/*.sh scripts' cleanup traps (sourced, not run).

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
