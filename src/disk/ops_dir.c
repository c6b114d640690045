/* Directory handles: the merged listing is taken at the first readdir (and
 * again when a reader rewinds to offset 0), so readdir offsets stay valid
 * for the life of the handle. The kernel may keep listings (cache_readdir):
 * the daemon is the only writer, and every change of a directory goes
 * through a FUSE request on it, which drops the kernel's copy. So a warm
 * `find` costs an OPENDIR that lists nothing. */
#include "disk.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dirh {
	struct dlist l;
	bool filled;
	bool served;
};

static int dirh_fill(struct dnode *n, struct dirh *h)
{
	char path[PATH_MAX];
	bool upper;
	uint32_t lmask;
	int r = node_path(n, path, sizeof(path));

	if (r < 0)
		return r;
	node_lock(n);
	upper = n->layer == 0;
	lmask = n->lmask;
	node_unlock(n);
	dlist_free(&h->l);
	return dir_list(path, upper, lmask, &h->l);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_get(ino);
	struct dirh *h = calloc(1, sizeof(*h));

	if (!n || !h) {
		free(h);
		return (void)fuse_reply_err(req, n ? ENOMEM : ESTALE);
	}
	fi->fh = (uintptr_t)h;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0) {
		dlist_free(&h->l);
		free(h);
	}
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (!h->filled || (off == 0 && h->served)) {
		NS_READ();
		struct dnode *n = node_get(ino);
		int r = n ? dirh_fill(n, h) : -ESTALE;

		if (r < 0 && !h->filled) {
			free(buf);
			return (void)fuse_reply_err(req, -r);
		}
		h->filled = true;
	}
	h->served = true;
	/* Offsets: 1 ".", 2 "..", then entry i at i + 3. */
	for (size_t i = (size_t)off; i < h->l.n + 2; i++) {
		struct stat st = { 0 };
		const char *name = i == 0 ? "." : i == 1 ? ".." : h->l.ents[i - 2].name;
		size_t len;

		st.st_ino = i < 2 ? ino : h->l.ents[i - 2].ino;
		st.st_mode = (i < 2 ? DT_DIR : h->l.ents[i - 2].type) << 12;
		len = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;

	(void)ino;
	dlist_free(&h->l);
	free(h);
	fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_get(ino);
	int fd, r = 0;

	(void)fi;
	if (!n)
		return (void)fuse_reply_err(req, ESTALE);
	fd = n->layer == 0 ? node_open(n, O_RDONLY | O_DIRECTORY) : -1;
	if (fd >= 0) {
		r = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
		close(fd);
	}
	fuse_reply_err(req, r);
}
