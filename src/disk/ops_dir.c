/* Directory handles: the merged listing is taken at the first readdir (and
 * again when a reader rewinds to offset 0), so readdir offsets stay valid
 * for the life of the handle. The kernel may keep listings (cache_readdir):
 * the daemon is the only writer, and every change of a directory goes
 * through a FUSE request on it, which drops the kernel's copy. So a warm
 * `find` costs an OPENDIR that lists nothing. */
#include "disk.h"

#include "cvmfs/cleanup.h"

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

/* Take the listing on the first read and on a rewind. ns_lock held. */
static int dirh_prepare(struct dirh *h, fuse_ino_t ino, off_t off)
{
	if (!h->filled || (off == 0 && h->served)) {
		struct dnode *n = node_get(ino);
		int r = n ? dirh_fill(n, h) : -ESTALE;

		if (r < 0 && !h->filled)
			return r;
		h->filled = true;
	}
	h->served = true;
	return 0;
}

/* Offsets: 1 ".", 2 "..", then entry i at i + 3. */
static const char *dirh_name(const struct dirh *h, size_t i, fuse_ino_t ino, struct stat *st)
{
	st->st_ino = i < 2 ? ino : h->l.ents[i - 2].ino;
	st->st_mode = (mode_t)(i < 2 ? DT_DIR : h->l.ents[i - 2].type) << 12;
	return i == 0 ? "." : i == 1 ? ".." : h->l.ents[i - 2].name;
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	NS_READ();
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	_cleanup_free_ char *buf = malloc(size);
	size_t used = 0;
	int r;

	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	r = dirh_prepare(h, ino, off);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	for (size_t i = (size_t)off; i < h->l.n + 2; i++) {
		struct stat st = { 0 };
		const char *name = dirh_name(h, i, ino, &st);
		size_t len = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);

		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
}

/* readdirplus: each entry comes with what a LOOKUP of it would answer, so
 * `find`, `ls -l` and `du` over a cold tree cost one request per listing
 * page instead of one per entry. The lookups share the directory's fds in
 * every layer. */
struct plus {
	struct dnode *dir;
	struct layer_dirs ld;
	bool upper;
	uint32_t lmask;
	struct dnode **got; /* nodes given a lookup reference, for undo */
	size_t ngot;
	char prel[PATH_MAX];
};

static int plus_start(struct plus *c, struct dnode *dir, size_t size)
{
	int r = node_path(dir, c->prel, sizeof(c->prel));

	if (r < 0)
		return r;
	c->dir = dir;
	node_lock(dir);
	c->upper = dir->layer == 0;
	c->lmask = dir->lmask;
	node_unlock(dir);
	/* An entry takes more than 128 bytes of the reply. */
	c->got = calloc(size / 128 + 1, sizeof(*c->got));
	c->ngot = 0;
	layer_dirs_init(&c->ld, c->prel);
	return c->got ? 0 : -ENOMEM;
}

/* Fill e for name; NULL (e untouched) if it vanished or memory ran out:
 * the entry is then listed without attributes. */
static struct dnode *plus_lookup(struct plus *c, const char *name, struct fuse_entry_param *e)
{
	struct dnode *n;
	struct found f;

	if (union_lookup_in(&c->ld, c->upper, c->lmask, name, &f) < 0)
		return NULL;
	n = node_obtain(c->dir, name, f.layer, f.lmask, &f.st);
	if (!n)
		return NULL;
	e->attr = f.st;
	fill_attr(n, &e->attr);
	e->ino = n->ino;
	e->attr_timeout = e->entry_timeout = entry_timeout();
	return n;
}

static void plus_finish(struct plus *c, bool delivered)
{
	if (!delivered)
		for (size_t i = 0; i < c->ngot; i++)
			node_forget(c->got[i], 1);
	layer_dirs_close(&c->ld);
	free(c->got);
}

static size_t plus_fill(fuse_req_t req, struct plus *c, struct dirh *h, fuse_ino_t ino,
			char *buf, size_t size, off_t off)
{
	size_t used = 0;

	for (size_t i = (size_t)off; i < h->l.n + 2; i++) {
		struct fuse_entry_param e = { 0 };
		const char *name = dirh_name(h, i, ino, &e.attr);
		/* "." and ".." carry no lookup: the kernel does not count one. */
		struct dnode *n = i < 2 ? NULL : plus_lookup(c, name, &e);
		size_t len = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						    (off_t)i + 1);

		if (len > size - used) {
			if (n)
				node_forget(n, 1);
			break;
		}
		if (n)
			c->got[c->ngot++] = n;
		used += len;
	}
	return used;
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	NS_READ();
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	struct dnode *dir = node_get(ino);
	_cleanup_free_ char *buf = malloc(size);
	struct plus c;
	size_t used;
	int r;

	if (!buf || !dir)
		return (void)fuse_reply_err(req, dir ? ENOMEM : ESTALE);
	r = dirh_prepare(h, ino, off);
	if (r == 0)
		r = plus_start(&c, dir, size);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	used = plus_fill(req, &c, h, ino, buf, size, off);
	plus_finish(&c, fuse_reply_buf(req, buf, used) == 0);
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
