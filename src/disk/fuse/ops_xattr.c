/* Extended attributes. trusted.* and user.* pass through (kernel overlayfs
 * stores trusted.overlay.* in the upper layer when it uses this disk).
 * The union's own trusted.cvmfs.* markers are invisible and cannot be set;
 * an image layer's trusted.overlay.* markers are metadata, invisible too.
 * A change copies the object up and may grow it by a block.
 *
 * The kernel itself keeps asking for a few names (see is_probed). Almost
 * no file has them, and only a setxattr through us can add one, so a node
 * remembers their absence (made by us, or listed once) and the answer
 * costs no system call. */
#include "fuse/ops.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool node_is_lower(struct dnode *n)
{
	bool lower;

	node_lock(n);
	lower = n->layer != 0;
	node_unlock(n);
	return lower;
}

#define XATTR_CAPS "security.capability"

/* The names the kernel probes on its own: security.capability before
 * every chown and cached write, and overlayfs's trusted.overlay.* at every
 * lookup through an overlayfs that has a layer here (Docker's). */
static bool is_probed(const char *name)
{
	return !strcmp(name, XATTR_CAPS) ||
	       !strncmp(name, XATTR_OVL_PREFIX, strlen(XATTR_OVL_PREFIX));
}

static bool probed_known_absent(struct dnode *n, const char *name)
{
	bool absent;

	if (!is_probed(name))
		return false;
	node_lock(n);
	absent = n->no_probed_xattrs;
	node_unlock(n);
	return absent;
}

static void probed_note(struct dnode *n, bool absent)
{
	node_lock(n);
	n->no_probed_xattrs = absent;
	node_unlock(n);
}

/* A probed name was missing: list the object's names once, and if no
 * probed one is visible, answer the next probes without a system call. */
static void probed_learn(struct dnode *n, int fd, const char *name)
{
	char list[4096];
	bool lower = node_is_lower(n);
	int len;

	if (!is_probed(name))
		return;
	/* Listed and noted under the node's lock; a setxattr clears the note
	 * under it after its change, so a note never outlives a new name. */
	node_lock(n);
	len = fd_listxattr(fd, list, sizeof(list));
	for (int i = 0; i < len; i += (int)strlen(list + i) + 1)
		if (is_probed(list + i) && !xattr_hidden(list + i, lower))
			len = -1;
	if (len >= 0)
		n->no_probed_xattrs = true;
	node_unlock(n);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	int r;

	if (n && probed_known_absent(n, name))
		return (void)fuse_reply_err(req, ENODATA);
	fd = n ? node_open(n, O_PATH | O_NOFOLLOW) : -ENOENT;
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	if (xattr_hidden(name, node_is_lower(n)))
		return (void)fuse_reply_err(req, ENODATA);
	if (size && !(buf = malloc(size)))
		return (void)fuse_reply_err(req, ENOMEM);
	r = fd_getxattr(fd, name, buf, size);
	if (r == -ENODATA)
		probed_learn(n, fd, name);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	if (!size)
		return (void)fuse_reply_xattr(req, (size_t)r);
	fuse_reply_buf(req, buf, (size_t)r);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	_cleanup_close_ int fd = n ? node_open(n, O_PATH | O_NOFOLLOW) : -ENOENT;
	_cleanup_free_ char *buf = NULL;
	int len;
	size_t out;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	/* Filtering needs the whole list even when only its size is asked. */
	len = fd_listxattr(fd, NULL, 0);
	if (len < 0)
		return (void)fuse_reply_err(req, -len);
	if (!(buf = malloc((size_t)len + 1)))
		return (void)fuse_reply_err(req, ENOMEM);
	len = fd_listxattr(fd, buf, (size_t)len);
	if (len < 0)
		return (void)fuse_reply_err(req, -len == ERANGE ? EAGAIN : -len);
	out = xattr_list_filter(buf, (size_t)len, node_is_lower(n));
	if (!size)
		return (void)fuse_reply_xattr(req, out);
	if (out > size)
		return (void)fuse_reply_err(req, ERANGE);
	fuse_reply_buf(req, buf, out);
}

static int xattr_change(struct dnode *n, const char *name, const char *value, size_t size,
			int flags, bool remove)
{
	_cleanup_close_ int fd = -EBADF;
	int64_t res = remove ? 0 : (int64_t)disk_ctx->blksize;
	int r;

	if (xattr_hidden(name, false))
		return -EPERM;
	r = charge_reserve(res, 0);
	if (r < 0)
		return r;
	r = copy_up(n);
	if (r == 0 && (fd = node_open(n, O_PATH | O_NOFOLLOW)) < 0)
		r = fd;
	if (r == 0)
		r = remove ? fd_removexattr(fd, name) : fd_setxattr(fd, name, value, size, flags);
	if (is_probed(name))
		probed_note(n, false); /* after the change: see probed_learn */
	if (fd >= 0)
		charge_node(n, fd, res, 0);
	else
		charge_unreserve(res, 0);
	return r;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags)
{
	NS_READ();
	struct dnode *n = node_kget(ino);

	fuse_reply_err(req, n ? -xattr_change(n, name, value, size, flags, false) : ENOENT);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	NS_READ();
	struct dnode *n = node_kget(ino);

	fuse_reply_err(req, n ? -xattr_change(n, name, NULL, 0, 0, true) : ENOENT);
}
