/* Union paths and their resolution beneath a layer root.
 *
 * Every open of a layer object goes through layer_open(): openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV from the layer's root fd. A symlink anywhere in a layer
 * (to /etc, to ../../..) is therefore only ever an object of the union,
 * never a way out of the layer; a trailing symlink opens as itself with
 * O_PATH | O_NOFOLLOW and fails with ELOOP otherwise. */
#include "nodes/nodes.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>


/* Union paths have no length limit of their own (the kernel has none for a
 * tree, only for one system call's path), so they are built on the heap:
 * first the length, walking up, then the names from the end. */
int node_path(struct dnode *n, char **out)
{
	size_t len = 0;
	char *buf;

	for (struct dnode *m = n; m && m->parent; m = m->parent)
		len += strlen(m->name) + 1;
	*out = buf = malloc(len ? len : 2);
	if (!buf)
		return -ENOMEM;
	if (!len) {
		strcpy(buf, ".");
		return 0;
	}
	buf[--len] = '\0';
	for (struct dnode *m = n; m && m->parent; m = m->parent) {
		size_t l = strlen(m->name);

		len -= l;
		memcpy(buf + len, m->name, l);
		if (len)
			buf[--len] = '/';
	}
	return 0;
}

void node_dir_where(struct dnode *dir, struct dir_where *w)
{
	node_lock(dir);
	w->upper = dir->layer == 0;
	w->lmask = dir->lmask;
	node_unlock(dir);
}

static int layer_openat(int dirfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* A path longer than one system call takes is walked in pieces, each
 * beneath the directory the one before opened, with the same rules. */
int layer_open(unsigned layer, const char *rel, int flags)
{
	char piece[PATH_MAX];
	int dirfd = disk_ctx->layers[layer].fd, fd;

	while (strlen(rel) >= sizeof(piece)) {
		const char *cut = rel + sizeof(piece) - 1;

		while (cut > rel && *cut != '/')
			cut--;
		if (cut == rel) /* a name longer than PATH_MAX: no file has it */
			fd = -ENAMETOOLONG;
		else {
			memcpy(piece, rel, (size_t)(cut - rel));
			piece[cut - rel] = '\0';
			fd = layer_openat(dirfd, piece, O_PATH | O_DIRECTORY);
		}
		if (dirfd != disk_ctx->layers[layer].fd)
			close(dirfd);
		if (fd < 0)
			return fd;
		dirfd = fd;
		rel = cut + 1;
	}
	fd = layer_openat(dirfd, rel, flags);
	if (dirfd != disk_ctx->layers[layer].fd)
		close(dirfd);
	return fd;
}

/* An unlinked open object has no path: reopen it through the O_PATH fd it
 * kept (charge.c), O_PATH opens as a copy of that fd, others through its
 * magic link (which opens the object itself, name or not). */
static int orphan_open(int orphan_fd, int flags)
{
	char p[64];
	int fd;

	if (flags & O_PATH)
		fd = fcntl(orphan_fd, F_DUPFD_CLOEXEC, 3);
	else {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", orphan_fd);
		fd = open(p, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

/* Upper directories keep an O_PATH fd of their own while the kernel knows
 * them (closed when it forgets them, inode.c), at most this many at once:
 * fds are bounded (DESIGN.md, 20,000 for everything), and open files come
 * first. An object is then opened by its name beneath its parent's fd,
 * one component, instead of by its whole union path from the layer root;
 * the fd follows the directory through renames. */
#define UPPER_DIR_FDS 1024

int node_upper_dirfd(struct dnode *dir)
{
	_cleanup_free_ char *path = NULL;
	int kept, fd = -ENOENT;

	node_lock(dir);
	kept = dir->upper_fd;
	if (!kept && dir->type == S_IFDIR && dir->layer == 0 && !dir->unlinked &&
	    !dir->orphan_fd &&
	    __atomic_load_n(&disk_ctx->upper_fds, __ATOMIC_RELAXED) < UPPER_DIR_FDS &&
	    node_path(dir, &path) == 0) {
		kept = layer_open(0, path, O_PATH | O_DIRECTORY);
		if (kept > 0) {
			/* Read without the lock by upper_parent_fd(). */
			__atomic_store_n(&dir->upper_fd, kept, __ATOMIC_RELEASE);
			__atomic_add_fetch(&disk_ctx->upper_fds, 1, __ATOMIC_RELAXED);
		} else {
			kept = 0;
		}
	}
	/* Not dup'ed: a cold walk made two system calls more per LOOKUP and
	 * listing for a copy (fcntl, close). */
	if (kept && !dir->unlinked)
		fd = kept;
	node_unlock(dir);
	return fd;
}

/* An upper object's parent's kept fd, to open the object by its name
 * beneath it, or -EAGAIN where none is kept (yet: node_upper_dirfd keeps
 * it at the parent's next lookup). Borrowed, not a copy: the parent keeps
 * it until the kernel forgets the parent (node_retire), and a node holds
 * its parent (ns_lock held: n->parent stays). Read without any lock, so
 * that the caller may hold n's: taking the parent's too would nest node
 * locks (one at a time, disk.h). An object once upper stays upper: a stale
 * read of its layer only means it is opened by its path. */
static int upper_parent_fd(const struct dnode *n)
{
	int fd;

	if (__atomic_load_n(&n->layer, __ATOMIC_RELAXED) != 0 || !n->parent)
		return -EAGAIN;
	fd = __atomic_load_n(&n->parent->upper_fd, __ATOMIC_ACQUIRE);
	return fd > 0 ? fd : -EAGAIN;
}

/* Image-layer directories keep an O_PATH fd per image layer that has them
 * (lmask), opened one component beneath their parent's kept fd of the same
 * layer (the layer root's for the root's children) at the first lookup,
 * listing or open that needs it, and given up when the kernel forgets them
 * (node_retire). Image layers never change while mounted, so such an fd
 * never goes stale; a directory renamed in the union is copied up and made
 * opaque first (lmask 0, copyup.c), so a directory's kept fds always name
 * the image's directories at its union path. At most this many at once:
 * with UPPER_DIR_FDS that keeps 3,072 of the 20,000 fds (DESIGN.md) for
 * directories and leaves the rest to open files, which come first; past
 * it, a directory is opened by its name beneath its parent's kept fd, or
 * by its union path (the parents nearer the root, looked up first, keep
 * theirs). */
#define LOWER_DIR_FDS 2048

struct lower_fds {
	struct rcu_head rcu;
	int fd[]; /* by lower layer, nlayers - 1 */
};

static uint32_t lower_fds_kept; /* atomic */

/* Borrowing without a lock or a reference: the array and its fds are
 * closed and freed only a grace period after node_retire, so a thread that
 * read them inside an RCU read-side section may use them until it ends,
 * even if the kernel forgets the directory meanwhile (a copy, dup under the
 * lock, would cost two system calls per layer and lookup; a reference
 * would make the request's thread the one that retires the node). A child
 * holds its parent, so opening it beneath its parent's fd needs no section. */
static void lower_fds_free(struct rcu_head *h)
{
	struct lower_fds *lf = caa_container_of(h, struct lower_fds, rcu);

	for (unsigned j = 0; j + 1 < disk_ctx->nlayers; j++) {
		if (lf->fd[j] > 0) {
			close(lf->fd[j]);
			__atomic_sub_fetch(&lower_fds_kept, 1, __ATOMIC_RELAXED);
		}
	}
	free(lf);
}

/* dir's kept fd in image layer i (>= 1), or 0. Reading it under dir's lock
 * would nest node locks for a child's open (disk.h). */
static int lower_kept(const struct dnode *dir, unsigned i)
{
	struct lower_fds *lf;

	if (dir == disk_ctx->root)
		return disk_ctx->layers[i].fd;
	lf = __atomic_load_n(&dir->lower_fds, __ATOMIC_ACQUIRE);
	return lf ? __atomic_load_n(&lf->fd[i - 1], __ATOMIC_ACQUIRE) : 0;
}

/* dir's directory in layer i, a new fd: by its name beneath its parent's
 * kept fd, else by its union path. ns_lock held. */
static int lower_open(struct dnode *dir, unsigned i, int flags)
{
	_cleanup_free_ char *path = NULL;
	int pfd = dir->parent ? lower_kept(dir->parent, i) : 0, r;

	if (pfd > 0)
		return layer_openat(pfd, dir->name, flags);
	r = node_path(dir, &path);
	return r < 0 ? r : layer_open(i, path, flags);
}

/* dir locked: its kept fd in layer i, opened now if the budget allows; 0
 * where none is kept (not in layer i any more, removed, forgotten: refs 0,
 * node_retire would not see it, or at the bound), or -errno. */
static int lower_keep(struct dnode *dir, unsigned i)
{
	struct lower_fds *lf = dir->lower_fds;
	int fd;

	if (lf && lf->fd[i - 1] > 0)
		return lf->fd[i - 1];
	if (dir->type != S_IFDIR || !(dir->lmask & (1u << (i - 1))) || dir->unlinked ||
	    !__atomic_load_n(&dir->refs, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&lower_fds_kept, __ATOMIC_RELAXED) >= LOWER_DIR_FDS)
		return 0;
	if (!lf) {
		lf = calloc(1, sizeof(*lf) + (disk_ctx->nlayers - 1) * sizeof(lf->fd[0]));
		if (!lf)
			return 0;
		__atomic_store_n(&dir->lower_fds, lf, __ATOMIC_RELEASE);
	}
	fd = lower_open(dir, i, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return fd;
	__atomic_store_n(&lf->fd[i - 1], fd, __ATOMIC_RELEASE);
	__atomic_add_fetch(&lower_fds_kept, 1, __ATOMIC_RELAXED);
	return fd;
}

int node_lower_dirfd(struct dnode *dir, unsigned i, bool *owned)
{
	int fd = lower_kept(dir, i), pfd;

	*owned = false;
	if (fd > 0)
		return fd;
	node_lock(dir);
	fd = lower_keep(dir, i);
	node_unlock(dir);
	if (fd != 0)
		return fd;
	pfd = dir->parent ? lower_kept(dir->parent, i) : 0;
	if (pfd <= 0)
		return -EAGAIN;
	*owned = true;
	return layer_openat(pfd, dir->name, O_PATH | O_DIRECTORY);
}

void node_lower_fds_release(struct dnode *n)
{
	struct lower_fds *lf = n->lower_fds;

	if (!lf)
		return;
	__atomic_store_n(&n->lower_fds, NULL, __ATOMIC_RELEASE);
	urcu_memb_call_rcu(&lf->rcu, lower_fds_free);
}

/* n's parent's kept fd in the layer n was in when read (*layer), to open
 * n by its name beneath it, or -EAGAIN: see upper_parent_fd and lower_kept
 * for why it is read without a lock and stays valid. */
static int parent_fd(const struct dnode *n, unsigned *layer)
{
	int fd;

	*layer = __atomic_load_n(&n->layer, __ATOMIC_RELAXED);
	if (*layer == 0)
		return upper_parent_fd(n);
	fd = n->parent ? lower_kept(n->parent, *layer) : 0;
	return fd > 0 ? fd : -EAGAIN;
}

/* n locked, inside an RCU read-side section (the image fds it borrows,
 * lower_fds_free); pfd: parent_fd's, for n in layer player. */
static int open_locked(struct dnode *n, int flags, int pfd, unsigned player)
{
	_cleanup_free_ char *path = NULL;
	int fd, r;

	if (n->orphan_fd)
		return orphan_open(n->orphan_fd, flags);
	if (n->fh && n->layer == 0) {
		fd = open_by_handle_at(disk_ctx->handle_fd, n->fh, flags | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (n->layer == 0 && n->upper_fd > 0 && (flags & O_PATH)) {
		fd = fcntl(n->upper_fd, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	/* An image directory's own kept fd (the layer root for the root). */
	if (n->layer > 0 && (flags & O_PATH) && n->type == S_IFDIR &&
	    (r = lower_kept(n, n->layer)) > 0) {
		fd = fcntl(r, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	/* The layer may have changed (a copy-up) since pfd was read. */
	if (pfd >= 0 && player == n->layer)
		return layer_openat(pfd, n->name, flags);
	r = node_path(n, &path);
	return r < 0 ? r : layer_open(n->layer, path, flags);
}

static int open_node(struct dnode *n, int flags, bool count)
{
	unsigned player;
	int pfd, fd;

	urcu_memb_read_lock();
	pfd = parent_fd(n, &player);
	node_lock(n);
	fd = open_locked(n, flags, pfd, player);
	if (fd >= 0 && count)
		n->open_count++;
	node_unlock(n);
	urcu_memb_read_unlock();
	return fd;
}

int node_open(struct dnode *n, int flags)
{
	return open_node(n, flags, false);
}

int node_open_counted(struct dnode *n, int flags)
{
	return open_node(n, flags, true);
}

/* n locked, inside an RCU read-side section: n's attributes straight from
 * an fd that is kept anyway (its own, or its parent's and its name: one
 * system call), or 1 where n must be opened first (open_locked's other
 * ways: its handle, its union path). */
static int stat_locked(struct dnode *n, struct stat *st, int pfd, unsigned player)
{
	int fd = 0, r;

	if (n->orphan_fd)
		fd = n->orphan_fd;
	else if (n->fh && n->layer == 0)
		return 1; /* several links: its name may be another's now */
	else if (n->layer == 0 && n->upper_fd > 0)
		fd = n->upper_fd;
	else if (n->layer > 0 && n->type == S_IFDIR && (r = lower_kept(n, n->layer)) > 0)
		fd = r;
	if (fd > 0)
		return fstat(fd, st) < 0 ? -errno : 0;
	if (pfd < 0 || player != n->layer)
		return 1;
	/* One component beneath a directory fd, not followed: never leaves
	 * the layer. */
	return fstatat(pfd, n->name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int node_stat(struct dnode *n, struct stat *st)
{
	unsigned player;
	int pfd, fd, r;

	urcu_memb_read_lock();
	pfd = parent_fd(n, &player);
	node_lock(n);
	r = stat_locked(n, st, pfd, player);
	node_unlock(n);
	urcu_memb_read_unlock();
	if (r <= 0)
		return r;
	fd = node_open(n, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return fd;
	r = fstat(fd, st) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* chmod and utimes of what an fd (O_PATH included) refers to: straight
 * through the fd where the kernel allows it (fchmodat2 with AT_EMPTY_PATH
 * since Linux 6.6, utimensat with AT_EMPTY_PATH), else through the fd's
 * magic link in /proc, a path walk that costs more. */
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* the same number on every architecture */
#endif

int fd_chmod(int fd, mode_t mode)
{
	char p[64];

	if (syscall(SYS_fchmodat2, fd, "", mode, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return -errno;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return chmod(p, mode) < 0 ? -errno : 0;
}

int fd_utimens(int fd, const struct timespec ts[2])
{
	char p[64];

	if (utimensat(fd, "", ts, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOENT)
		return -errno;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return utimensat(AT_FDCWD, p, ts, 0) < 0 ? -errno : 0;
}

/* xattr calls on O_PATH fds go through the fd's magic link, which lands on
 * the object itself (a symlink included) without following it further. */
static void fd_proc(int fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

int fd_getxattr(int fd, const char *name, void *buf, size_t size)
{
	char p[64];
	ssize_t r;

	fd_proc(fd, p, sizeof(p));
	r = getxattr(p, name, buf, size);
	return r < 0 ? -errno : (int)r;
}

int fd_setxattr(int fd, const char *name, const void *val, size_t size, int flags)
{
	char p[64];

	fd_proc(fd, p, sizeof(p));
	return setxattr(p, name, val, size, flags) < 0 ? -errno : 0;
}

int fd_listxattr(int fd, char *buf, size_t size)
{
	char p[64];
	ssize_t r;

	fd_proc(fd, p, sizeof(p));
	r = listxattr(p, buf, size);
	return r < 0 ? -errno : (int)r;
}

int fd_removexattr(int fd, const char *name)
{
	char p[64];

	fd_proc(fd, p, sizeof(p));
	return removexattr(p, name) < 0 ? -errno : 0;
}
