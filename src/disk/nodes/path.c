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

int node_dir_where(struct dnode *dir, struct dir_where *w)
{
	node_lock(dir);
	w->upper = dir->layer == 0;
	w->lmask = dir->lmask;
	node_unlock(dir);
	return node_path(dir, &w->path);
}

void dir_where_done(struct dir_where *w)
{
	free(w->path);
	w->path = NULL;
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
	if (kept && !dir->unlinked && (fd = fcntl(kept, F_DUPFD_CLOEXEC, 3)) < 0)
		fd = -errno;
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

/* n locked; pfd: upper_parent_fd's. */
static int open_locked(struct dnode *n, int flags, int pfd)
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
	if (n->layer == 0 && pfd >= 0)
		return layer_openat(pfd, n->name, flags);
	r = node_path(n, &path);
	return r < 0 ? r : layer_open(n->layer, path, flags);
}

static int open_node(struct dnode *n, int flags, bool count)
{
	int pfd = upper_parent_fd(n);
	int fd;

	node_lock(n);
	fd = open_locked(n, flags, pfd);
	if (fd >= 0 && count)
		n->open_count++;
	node_unlock(n);
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

int node_stat(struct dnode *n, struct stat *st)
{
	int fd = node_open(n, O_PATH | O_NOFOLLOW);
	int r = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0)
		r = -errno;
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
