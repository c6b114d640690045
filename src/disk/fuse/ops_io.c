/* Open files: open, read, write, fallocate, fsync, release, lseek, and
 * setattr (truncate, chmod, chown, utimes).
 *
 * Reads are spliced from the layer file (fuse_reply_data with an fd
 * buffer); writes go through fuse_buf_copy. No writeback cache: every write
 * reaches write_buf, where it is admitted against the limit before a byte
 * lands. An overwrite of blocks already allocated needs no reservation, so
 * a full disk still lets files be rewritten in place.
 *
 * Which opens use the page cache, direct I/O or passthrough is open_io.c's
 * choice; pages other opens cached are invalidated after a direct write.
 * No FLUSH handler: nothing is done at close that release does not
 * do, and without one the kernel stops sending FLUSH. */
#include "fuse/ops.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* With FUSE_HANDLE_KILLPRIV (session_io.c), and for direct writes in any
 * case, the kernel leaves it to us to clear set-user-ID and executable
 * set-group-ID bits on write and truncate. Our own writes run as root,
 * which keeps them, so clear them here for every caller but root (the
 * kernel's test is CAP_FSETID, which in practice only uid 0 has).
 * security.capability goes by itself: the upper filesystem drops it on
 * any write or truncate, and on chown. */
static void kill_suid(fuse_req_t req, int fd)
{
	struct stat st;
	mode_t m;

	if (fuse_req_ctx(req)->uid == 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	m = st.st_mode;
	if ((m & S_ISUID) || (m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		(void)fd_chmod(fd, m & 07777 & ~(mode_t)(S_ISUID | S_ISGID));
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	/* The kernel's internal __FMODE_EXEC (040) arrives on opens for
	 * execve; openat2 rejects unknown bits with EINVAL. O_DIRECT stays
	 * with the kernel (it makes the open FOPEN_DIRECT_IO, open_io.c):
	 * our request buffers are not aligned as an O_DIRECT upper fd
	 * wants, and every such write failed with EINVAL. */
	int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | 040);
	int fd, r = 0;

	if (req_resent(req))
		open_drop_unanswered(req);
	if (!n) /* removed: see op_getattr */
		return (void)fuse_reply_err(req, ENOENT);
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		r = copy_up(n);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fd = node_open_counted(n, flags | O_NOFOLLOW);
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	if (flags & O_TRUNC) {
		kill_suid(req, fd);
		charge_node(n, fd, 0, 0);
	}
	reply_opened(req, n, fd, fi, NULL);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fh_fd(fi);
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* Worst-case growth of a write: nothing if it only rewrites allocated
 * blocks inside the file (no hole from off to its end; SEEK_HOLE finds
 * the one at end of file), else the block-rounded range plus headroom. */
static int64_t write_growth(fuse_req_t req, int fd, off_t off, size_t len)
{
	off_t hole;

	kill_suid(req, fd);
	hole = lseek(fd, off, SEEK_HOLE);
	if (hole >= off + (off_t)len)
		return 0;
	return write_worst_case((uint64_t)off, len, disk_ctx->blksize);
}

/* Under n's lock (mmap_guard.c: a guarded file gets no gap before off). */
static ssize_t write_locked(fuse_req_t req, struct dnode *n, struct fuse_bufvec *bufv, off_t off,
			    int fd)
{
	size_t len = fuse_buf_size(bufv);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(len);
	int64_t res = write_growth(req, fd, off, len);
	off_t end;
	int64_t gap = mmap_guard_gap(n, fd, off, &end);
	ssize_t w;
	int r;

	if (gap < 0)
		return gap;
	r = charge_reserve(res + gap, 0);
	if (r < 0)
		return r;
	w = mmap_guard_alloc(fd, end, off);
	if (w == 0) {
		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = fd;
		out.buf[0].pos = off;
		w = fuse_buf_copy(&out, bufv, 0);
	}
	charge_node(n, fd, res + gap, 0);
	return w;
}

/* Returns bytes written or -errno; *stale: pages cached by other opens
 * now differ from the file. */
static ssize_t write_admitted(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			      struct fuse_file_info *fi, bool *stale)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	ssize_t w;

	if (!n)
		return -ESTALE;
	node_lock(n);
	w = write_locked(req, n, bufv, off, fh_fd(fi));
	*stale = w > 0 && open_is_direct(fi->flags) && n->page_cached;
	node_unlock(n);
	return w;
}

void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
		  struct fuse_file_info *fi)
{
	bool stale = false;
	ssize_t w = write_admitted(req, ino, bufv, off, fi, &stale);

	if (w < 0)
		return (void)fuse_reply_err(req, (int)-w);
	/* Kernels since 6.x drop those pages themselves; older ones do not.
	 * Outside the namespace lock: the kernel may wait for a read that
	 * another worker serves. */
	if (stale)
		fuse_lowlevel_notify_inval_inode(disk_ctx->se, ino, off, w);
	fuse_reply_write(req, (size_t)w);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dnode *n;

	disk_thread_enter();
	/* Resent after a take-over: the dead server may have closed the fd
	 * (its journal slot is free then), whose number may be another
	 * file's by now. */
	if (req_resent(req) && !journal_open_get(fh_fd(fi), &(uint64_t){ 0 }, &(unsigned){ 0 },
						 &(uint32_t){ 0 }))
		return (void)fuse_reply_err(req, 0);
	n = node_get(ino);
	/* Delayed allocation may have added blocks (ext4 extent blocks) since
	 * the last write was charged: measure once more before letting go. */
	if (n && (fi->flags & O_ACCMODE) != O_RDONLY)
		charge_node(n, fh_fd(fi), 0, 0);
	open_released(n, fi);
	fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = fh_fd(fi);
	int r = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
	struct dnode *n;

	disk_thread_enter();
	n = r ? NULL : node_get(ino);
	/* Writeback allocated what delayed allocation had only promised. */
	if (n)
		charge_node(n, fd, 0, 0);
	fuse_reply_err(req, r);
}

/* The modes the kernel passes on; any other (insert range, write zeroes)
 * could grow the file in ways not reserved here. */
#define FALLOC_MODES (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)

/* Under n's lock (mmap_guard.c). */
static int fallocate_locked(struct dnode *n, int fd, int mode, off_t off, off_t len)
{
	int64_t res = 0, gap = 0;
	off_t end = off;
	int r;

	if (mode & FALLOC_FL_PUNCH_HOLE)
		res = mmap_guard_punch(n, fd, &mode, off, len);
	else
		res = write_worst_case((uint64_t)off, (uint64_t)len, disk_ctx->blksize);
	if (!(mode & FALLOC_FL_KEEP_SIZE))
		gap = mmap_guard_gap(n, fd, off, &end);
	if (res < 0 || gap < 0)
		return (int)(res < 0 ? res : gap);
	r = charge_reserve(res + gap, 0);
	if (r < 0)
		return r;
	r = mmap_guard_alloc(fd, end, off);
	if (r == 0)
		r = fallocate(fd, mode, off, len) < 0 ? -errno : 0;
	charge_node(n, fd, res + gap, 0);
	return r;
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		  struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	int r;

	if (!n)
		return (void)fuse_reply_err(req, ESTALE);
	if (mode & ~FALLOC_MODES)
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	node_lock(n);
	r = fallocate_locked(n, fh_fd(fi), mode, off, len);
	node_unlock(n);
	fuse_reply_err(req, -r);
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t r = lseek(fh_fd(fi), off, whence);

	(void)ino;
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_lseek(req, r);
}

static int set_times(int fd, const struct stat *attr, int to_set)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = attr->st_mtim;
	return fd_utimens(fd, ts);
}

/* Under n's lock (mmap_guard.c: growing a guarded file allocates the
 * new range before the size exposes it). */
static int set_size_locked(fuse_req_t req, struct dnode *n, int fd, off_t size)
{
	char p[64];
	int64_t res = (int64_t)disk_ctx->blksize; /* a hole costs nothing; metadata may */
	off_t end;
	int64_t gap = mmap_guard_gap(n, fd, size, &end);
	int r;

	if (gap < 0)
		return (int)gap;
	r = charge_reserve(res + gap, 0);
	if (r < 0)
		return r;
	kill_suid(req, fd);
	r = mmap_guard_alloc(fd, end, size);
	if (r == 0 && ftruncate(fd, size) < 0) {
		/* fd is O_PATH: truncate through its magic link. */
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		r = truncate(p, size) < 0 ? -errno : 0;
	}
	charge_node(n, fd, res + gap, 0);
	return r;
}

static int set_size(fuse_req_t req, struct dnode *n, int fd, off_t size)
{
	int r;

	node_lock(n);
	r = set_size_locked(req, n, fd, size);
	node_unlock(n);
	return r;
}

static int apply_attr(fuse_req_t req, struct dnode *n, int fd, struct stat *attr, int to_set)
{
	int r = 0;

	if (to_set & FUSE_SET_ATTR_MODE && (r = fd_chmod(fd, attr->st_mode & 07777)) < 0)
		return r;
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (to_set & FUSE_SET_ATTR_SIZE && (r = set_size(req, n, fd, attr->st_size)) < 0)
		return r;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		      FUSE_SET_ATTR_MTIME_NOW))
		r = set_times(fd, attr, to_set);
	return r;
}

/* ftruncate, fchmod, fchown and futimens come with the open file: use its
 * fd (no path walk). libfuse leaves fi->flags 0 here, so ask the fd: a
 * writable one is of the upper file (op_open copied up first); a
 * read-only one may be of the image file, opened before a copy-up, and is
 * used only when it is the upper file (and never to change the size). */
static bool setattr_through_open_file(struct dnode *n, const struct fuse_file_info *fi,
				      int to_set)
{
	struct stat st;
	bool upper;
	int fl;

	if (!fi || (fl = fcntl(fh_fd(fi), F_GETFL)) < 0)
		return false;
	if ((fl & O_ACCMODE) != O_RDONLY)
		return true;
	if ((to_set & FUSE_SET_ATTR_SIZE) || fstat(fh_fd(fi), &st) < 0)
		return false;
	node_lock(n);
	upper = n->layer == 0 && n->real_ino == (uint64_t)st.st_ino;
	node_unlock(n);
	return upper;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	_cleanup_close_ int own = -EBADF;
	struct stat st;
	int fd, r;

	if (!n) /* removed: see op_getattr */
		return (void)fuse_reply_err(req, ENOENT);
	r = copy_up(n);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	if (setattr_through_open_file(n, fi, to_set)) {
		fd = fh_fd(fi);
	} else {
		own = node_open(n, (to_set & FUSE_SET_ATTR_SIZE) ? O_WRONLY : O_PATH | O_NOFOLLOW);
		if (own < 0)
			return (void)fuse_reply_err(req, -own);
		fd = own;
	}
	r = apply_attr(req, n, fd, attr, to_set);
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	charge_node_stat(n, &st, fd, 0, 0);
	fill_attr(n, &st);
	fuse_reply_attr(req, &st, entry_timeout());
}
