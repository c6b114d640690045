/* Shared writable mappings of passthrough files.
 *
 * While a file has a passthrough open, the kernel accepts only passthrough
 * opens of it (any other fails with EIO), and mmap of a passthrough open
 * maps the backing file, i.e. the upper file itself, opened with the
 * opener's flags. A read-write open beside passthrough readers can
 * therefore map DATA/upper shared and writable: its page faults allocate
 * blocks of the upper file that no request ever shows us, and it lasts
 * past close() (the kernel releases the file at munmap). The guard below
 * is never dropped before the node is forgotten, so it does not depend on
 * when the kernel sends the RELEASE.
 *
 * Page faults can only fill holes inside the file: past the end they get
 * SIGBUS, and only we change the size. So before answering the first such
 * open, every hole of [0, size) is allocated (fallocate KEEP_SIZE, reserved
 * and charged like any fallocate; ENOSPC fails the open), and from then on
 * until the node is forgotten (mapped_writable) every operation that could
 * leave a hole inside the file allocates it first: a truncate up, a write
 * or fallocate past the end, a punched hole (done as a zeroed range, which
 * reads the same). Mapped writes then only rewrite charged blocks.
 *
 * Callers hold the node's lock from the check to the operation, so that an
 * operation racing the first writable open cannot leave a gap unseen. */
#include "quota/quota.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Worst-case growth of allocating every hole of fd in [from, to). SEEK_HOLE
 * also reports unwritten extents, which allocating leaves as they are: the
 * reservation is then settled down to the real change. */
static int64_t holes_worst_case(int fd, off_t from, off_t to)
{
	int64_t sum = 0;
	off_t hole, data;

	while (from < to) {
		hole = lseek(fd, from, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole >= to)
			break;
		data = lseek(fd, hole, SEEK_DATA);
		if (data < 0 && errno != ENXIO)
			return -errno;
		if (data < 0 || data > to)
			data = to;
		sum += write_worst_case((uint64_t)hole, (uint64_t)(data - hole), disk_ctx->blksize);
		from = data;
	}
	return sum;
}

int mmap_guard_alloc(int fd, off_t from, off_t to)
{
	if (to <= from)
		return 0;
	return fallocate(fd, FALLOC_FL_KEEP_SIZE, from, to - from) < 0 ? -errno : 0;
}

int mmap_guard_open(struct dnode *n, int fd)
{
	struct stat st;
	int64_t res;
	int r;

	if (n->mapped_writable)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	res = holes_worst_case(fd, 0, st.st_size);
	if (res < 0)
		return (int)res;
	r = charge_reserve(res, 0);
	if (r < 0)
		return r;
	if (res)
		r = mmap_guard_alloc(fd, 0, st.st_size);
	charge_node(n, fd, res, 0);
	if (r == 0)
		n->mapped_writable = true;
	return r;
}

int64_t mmap_guard_gap(struct dnode *n, int fd, off_t off, off_t *end)
{
	struct stat st;

	*end = off;
	if (!n->mapped_writable)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size >= off)
		return 0;
	*end = st.st_size;
	return write_worst_case((uint64_t)st.st_size, (uint64_t)(off - st.st_size), disk_ctx->blksize);
}

int64_t mmap_guard_punch(struct dnode *n, int fd, int *mode, off_t off, off_t len)
{
	struct stat st;
	int64_t holes;

	if (!n->mapped_writable)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	holes = holes_worst_case(fd, off, off + len < st.st_size ? off + len : st.st_size);
	if (holes < 0)
		return holes;
	*mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	/* Zeroing may split extents: one block of metadata, as for a write. */
	return holes + (int64_t)disk_ctx->blksize;
}
