/* Copy-up: an image object becomes an upper object before it changes.
 * The copy is built in DATA/work under a temporary name (data with holes
 * kept, xattrs except the image's overlay markers, owner, mode, times) and
 * renamed into place, so the upper layer never shows a half-made copy. Its
 * worst-case size is reserved first: a copy-up that does not fit fails with
 * ENOSPC and changes nothing. */
#include "union/union.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static int copy_range(int in, int out, off_t pos, off_t end)
{
	_cleanup_free_ char *tbuf = NULL;

	while (pos < end) {
		loff_t ip = pos, op = pos;
		ssize_t n = copy_file_range(in, &ip, out, &op, (size_t)(end - pos), 0);

		if (n > 0) {
			pos += n;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
		/* Another filesystem type: plain copy. */
		if (!tbuf && !(tbuf = malloc(1 << 20)))
			return -ENOMEM;
		n = pread(in, tbuf, (size_t)MIN((off_t)1 << 20, end - pos), pos);
		if (n <= 0)
			return n < 0 ? -errno : 0;
		if (pwrite(out, tbuf, (size_t)n, pos) != n)
			return -errno;
		pos += n;
	}
	return 0;
}

/* Data segments only, so sparse files stay sparse. */
static int copy_data(int in, int out, off_t size)
{
	off_t pos = 0;
	int r;

	while (pos < size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			data = pos; /* no SEEK_DATA: copy everything */
			hole = size;
		} else {
			hole = lseek(in, data, SEEK_HOLE);
			if (hole < 0)
				hole = size;
		}
		r = copy_range(in, out, data, hole);
		if (r < 0)
			return r;
		pos = hole;
	}
	return ftruncate(out, size) < 0 ? -errno : 0;
}

static int copy_xattrs(int sfd, const char *dst)
{
	char list[65536], val[65536];
	int len = fd_listxattr(sfd, list, sizeof(list));

	if (len < 0)
		return len == -ENOTSUP ? 0 : len;
	for (int i = 0; i < len; i += (int)strlen(list + i) + 1) {
		int vl;

		if (xattr_hidden(list + i, true))
			continue;
		vl = fd_getxattr(sfd, list + i, val, sizeof(val));
		if (vl < 0)
			continue;
		if (lsetxattr(dst, list + i, val, (size_t)vl, 0) < 0 && errno != ENOTSUP &&
		    errno != EPERM)
			return -errno;
	}
	return 0;
}

/* Make the new object in the work dir as tmp. */
static int make_copy(int sfd, const struct stat *st, const char *tmp)
{
	_cleanup_close_ int in = -EBADF, out = -EBADF;
	char target[PATH_MAX];
	ssize_t n;

	switch (st->st_mode & S_IFMT) {
	case S_IFDIR:
		return mkdirat(disk_ctx->work_fd, tmp, 0700) < 0 ? -errno : 0;
	case S_IFLNK:
		n = readlinkat(sfd, "", target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		return symlinkat(target, disk_ctx->work_fd, tmp) < 0 ? -errno : 0;
	case S_IFREG:
		snprintf(target, sizeof(target), "/proc/self/fd/%d", sfd);
		in = open(target, O_RDONLY | O_CLOEXEC);
		out = openat(disk_ctx->work_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (in < 0 || out < 0)
			return -errno;
		return copy_data(in, out, st->st_size);
	default:
		return mknodat(disk_ctx->work_fd, tmp, st->st_mode & S_IFMT, st->st_rdev) < 0 ? -errno : 0;
	}
}

static int copy_meta(int sfd, const struct stat *st, const char *tmp)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	char p[PATH_MAX];
	int r;

	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", disk_ctx->work_fd, tmp);
	r = copy_xattrs(sfd, p);
	if (r < 0)
		return r;
	if (fchownat(disk_ctx->work_fd, tmp, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* After chown, which clears set-id bits. */
	if (!S_ISLNK(st->st_mode) && fchmodat(disk_ctx->work_fd, tmp, st->st_mode & 07777, 0) < 0)
		return -errno;
	return utimensat(disk_ctx->work_fd, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Creating the entry changed the parent's times; the union shows the
 * parent as it was (copy-up is invisible). */
static void restore_times(int dirfd, const struct stat *before)
{
	struct timespec ts[2] = { before->st_atim, before->st_mtim };
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", dirfd);
	utimensat(AT_FDCWD, p, ts, 0);
}

/* Copy the image object sfd (an O_PATH fd; what: its name for the log)
 * into upper dir upfd as name. */
static int copy_from(int sfd, const char *what, int upfd, const char *name, enum area ar,
		     struct stat *out)
{
	struct stat st, pst;
	int64_t res;
	char tmp[64];
	int r;

	if (fstat(sfd, &st) < 0 || fstat(upfd, &pst) < 0)
		return -errno;
	image_owner(&st);
	res = (blocks_bytes(&st) + (int64_t)disk_ctx->blksize - 1) / (int64_t)disk_ctx->blksize *
		      (int64_t)disk_ctx->blksize + 2 * (int64_t)disk_ctx->blksize;
	r = charge_reserve(res, 1);
	if (r < 0)
		return r;
	tmp_name(tmp, sizeof(tmp));
	r = make_copy(sfd, &st, tmp);
	if (r == 0)
		r = copy_meta(sfd, &st, tmp);
	if (r == 0 && renameat2(disk_ctx->work_fd, tmp, upfd, name, RENAME_NOREPLACE) < 0)
		r = -errno;
	if (r == 0 && fstatat(upfd, name, out, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	if (r < 0) {
		if (unlinkat(disk_ctx->work_fd, tmp, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 &&
		    errno == ENOENT)
			log_debug("copy-up of %s: %s", what, strerror(-r));
		charge_unreserve(res, 1);
		return r;
	}
	restore_times(upfd, &pst);
	charge_settle(ar, res, blocks_bytes(out), 1, 1);
	return 0;
}

int copy_obj(unsigned src, const char *rel, int upfd, const char *name, enum area ar,
	     struct stat *out)
{
	_cleanup_close_ int sfd = layer_open(src, rel, O_PATH | O_NOFOLLOW);

	return sfd < 0 ? sfd : copy_from(sfd, rel, upfd, name, ar, out);
}

int copy_up(struct dnode *n)
{
	_cleanup_close_ int upfd = -EBADF, sfd = -EBADF;
	struct stat st;
	int r;

	node_lock(n);
	r = n->layer == 0;
	node_unlock(n);
	if (r)
		return 0;
	r = copy_up(n->parent); /* parents first: lock order parent -> child */
	if (r < 0)
		return r;
	upfd = node_open(n->parent, O_PATH | O_DIRECTORY);
	if (upfd < 0)
		return upfd;
	node_lock(n);
	if (n->layer != 0) {
		/* The source beneath its parent's kept image fd, not by a path
		 * from the layer root (which may pass PATH_MAX). */
		sfd = r = node_open(n, O_PATH | O_NOFOLLOW);
		if (r >= 0)
			r = copy_from(sfd, n->name, upfd, n->name, n->area, &st);
		if (r == 0) {
			node_set_real(n, 0, st.st_ino);
			n->charged_bytes = blocks_bytes(&st);
			n->charged_inode = true;
			n->written = true; /* the copy's blocks meet writeback later */
		}
	}
	node_unlock(n);
	if (r == 0)
		charge_node(n->parent, upfd, 0, 0);
	return r;
}

/* ---- whole trees (rename of a directory with image content) ---- */

static int set_opaque(int dirfd, enum area ar)
{
	struct stat a, b;
	int r;

	if (fstat(dirfd, &b) < 0)
		return -errno;
	r = fd_setxattr(dirfd, XATTR_OPAQUE, "y", 1, 0);
	if (r == 0 && fstat(dirfd, &a) == 0)
		charge_settle(ar, 0, blocks_bytes(&a) - blocks_bytes(&b), 0, 0);
	return r;
}

static int tree_copy(const char *rel, uint32_t lmask, int dfd);

static int tree_entry(const char *rel, uint32_t lmask, int dfd, const struct dent *e)
{
	_cleanup_free_ char *crel = path_join_dup(rel, e->name);
	struct found f;
	struct stat st;
	_cleanup_close_ int cfd = -EBADF;
	int r = crel ? 0 : -ENOMEM;

	if (r == 0)
		r = union_lookup(rel, true, lmask, e->name, &f);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (f.layer != 0) {
		r = copy_obj(f.layer, crel, dfd, e->name, area_of_path(crel), &st);
		if (r < 0)
			return r;
	}
	if (!S_ISDIR(f.st.st_mode) || !f.lmask)
		return 0;
	cfd = layer_open(0, crel, O_PATH | O_DIRECTORY);
	return cfd < 0 ? cfd : tree_copy(crel, f.lmask, cfd);
}

/* Everything visible below rel is in the upper layer afterwards and rel
 * is opaque, so it no longer depends on the image layers. */
static int tree_copy(const char *rel, uint32_t lmask, int dfd)
{
	struct dlist l;
	struct stat before, after;
	enum area ar = area_of_path(rel);
	int r;

	if (fstat(dfd, &before) < 0)
		return -errno;
	r = dir_list(NULL, rel, true, lmask, &l);
	for (size_t i = 0; r == 0 && i < l.n; i++)
		r = tree_entry(rel, lmask, dfd, &l.ents[i]);
	dlist_free(&l);
	if (r < 0)
		return r;
	if (fstat(dfd, &after) == 0)
		charge_settle(ar, 0, blocks_bytes(&after) - blocks_bytes(&before), 0, 0);
	r = whiteouts_clear(dfd, ar);
	return r < 0 ? r : set_opaque(dfd, ar);
}

/* A node below a copied tree now stands for its upper object. */
static void node_resync(struct dnode *n, void *arg)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	(void)arg;
	if (node_path(n, &path) < 0)
		return;
	fd = layer_open(0, path, O_PATH | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	node_lock(n);
	if (n->unlinked) {
		node_unlock(n);
		return;
	}
	if (n->layer != 0 || n->real_ino != (uint64_t)st.st_ino)
		node_set_real(n, 0, st.st_ino);
	n->lmask = 0;
	node_lower_fds_release(n); /* its image directories are hidden now */
	n->charged_bytes = blocks_bytes(&st);
	n->charged_inode = true;
	n->written = true;
	node_unlock(n);
}

int copy_up_tree(struct dnode *dir)
{
	_cleanup_close_ int dfd = -EBADF;
	_cleanup_free_ char *path = NULL;
	uint32_t lmask;
	int r = copy_up(dir);

	if (r < 0)
		return r;
	node_lock(dir);
	lmask = dir->lmask;
	node_unlock(dir);
	if (!lmask)
		return 0;
	r = node_path(dir, &path);
	if (r < 0)
		return r;
	dfd = node_open(dir, O_PATH | O_DIRECTORY);
	if (dfd < 0)
		return dfd;
	r = tree_copy(path, lmask, dfd);
	node_for_each_below(dir, node_resync, NULL);
	node_resync(dir, NULL);
	return r;
}

int node_upper_dir(struct dnode *n)
{
	int r = copy_up(n);

	return r < 0 ? r : node_open(n, O_PATH | O_DIRECTORY);
}
