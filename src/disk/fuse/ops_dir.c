/* Directory listings. The merged listing of a directory is taken when a
 * reader starts at offset 0, and readdir offsets index it. No OPENDIR or
 * RELEASEDIR: where the kernel allows it (FUSE_CAP_NO_OPENDIR_SUPPORT)
 * opendir answers ENOSYS once, and from then on the kernel opens and
 * closes directories without asking and keeps each listing it has read
 * whole (as with FOPEN_CACHE_DIR). The daemon is the only writer, and
 * every change of a directory goes through a FUSE request on it, which
 * drops the kernel's copy; so a warm `find` sends nothing at all.
 *
 * Without a handle, a listing being read lives in a small table keyed by
 * directory between the requests of one reader, and is dropped when the
 * reader reaches its end (or, evicted, is taken again: the order of an
 * unchanged directory is the same). */
#include "fuse/ops.h"

#include "cvmfs/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTINGS 64

struct listing {
	fuse_ino_t ino; /* 0: free slot */
	uint64_t stamp; /* last use, for eviction */
	struct dlist l;
};

static struct listing listings[LISTINGS];
static uint64_t listing_clock;
static pthread_mutex_t listing_lock = PTHREAD_MUTEX_INITIALIZER;
static bool opendir_silent; /* the kernel takes ENOSYS from opendir */

void dir_listings_init(bool kernel_skips_opendir)
{
	opendir_silent = kernel_skips_opendir;
}

static int listing_fill(struct dnode *n, struct dlist *l)
{
	struct dir_where w;
	bool removed;

	node_lock(n);
	removed = n->unlinked;
	node_unlock(n);
	if (removed) { /* read by a process still in it: empty, as on ext4 */
		*l = (struct dlist){ 0 };
		return 0;
	}
	node_dir_where(n, &w);
	return dir_list(n, NULL, w.upper, w.lmask, l);
}

/* The listing of ino for a read at off: the one in progress, moved out of
 * the table (a concurrent reader of the same directory takes its own),
 * or a new one. ns_lock held. */
static int listing_take(fuse_ino_t ino, off_t off, struct dlist *out)
{
	struct dnode *n;

	memset(out, 0, sizeof(*out));
	if (off > 0) {
		LOCK_GUARD(&listing_lock);
		for (unsigned i = 0; i < LISTINGS; i++) {
			if (listings[i].ino == ino) {
				*out = listings[i].l;
				listings[i].ino = 0;
				return 0;
			}
		}
	}
	n = node_kget(ino);
	return n ? listing_fill(n, out) : -ENOENT; /* removed: see op_getattr */
}

/* Keep l for the reader's next request, or free it at the end. */
static void listing_put(fuse_ino_t ino, struct dlist *l, bool ended)
{
	struct listing *slot = NULL;

	if (!ended) {
		LOCK_GUARD(&listing_lock);
		/* Replace an older copy for ino, else fill a free slot, else
		 * evict the least recently used. */
		for (unsigned i = 0; i < LISTINGS; i++) {
			struct listing *c = &listings[i];

			if (c->ino == ino) {
				slot = c;
				break;
			}
			if (!slot || (slot->ino && (!c->ino || c->stamp < slot->stamp)))
				slot = c;
		}
		if (slot->ino)
			dlist_free(&slot->l);
		slot->ino = ino;
		slot->stamp = ++listing_clock;
		slot->l = *l;
		return;
	}
	dlist_free(l);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (opendir_silent)
		return (void)fuse_reply_err(req, ENOSYS);
	fi->fh = 0;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Offsets: 1 ".", 2 "..", then entry i at i + 3. */
static const char *listing_entry(const struct dlist *l, size_t i, fuse_ino_t ino, struct stat *st)
{
	st->st_ino = i < 2 ? ino : l->ents[i - 2].ino;
	st->st_mode = (mode_t)(i < 2 ? DT_DIR : l->ents[i - 2].type) << 12;
	return i == 0 ? "." : i == 1 ? ".." : l->ents[i - 2].name;
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	NS_READ();
	_cleanup_free_ char *buf = malloc(size);
	struct dlist l;
	size_t used = 0, i;
	int r;

	(void)fi;
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	r = listing_take(ino, off, &l);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	for (i = (size_t)off; i < l.n + 2; i++) {
		struct stat st = { 0 };
		const char *name = listing_entry(&l, i, ino, &st);
		size_t len = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);

		if (len > size - used)
			break;
		used += len;
	}
	listing_put(ino, &l, (size_t)off >= l.n + 2);
	fuse_reply_buf(req, buf, used);
}

/* readdirplus: each entry comes with what a LOOKUP of it would answer, so
 * `find`, `ls -l` and `du` over a cold tree cost one request per listing
 * page instead of one per entry. The lookups share the directory's fds in
 * every layer. */
struct plus {
	struct dnode *dir;
	struct dir_where w;
	struct layer_dirs ld;
	struct dnode **got; /* nodes given a lookup reference, for undo */
	size_t ngot;
};

static int plus_start(struct plus *c, struct dnode *dir, size_t size)
{
	node_dir_where(dir, &c->w);
	c->dir = dir;
	/* An entry takes more than 128 bytes of the reply. */
	c->got = calloc(size / 128 + 1, sizeof(*c->got));
	c->ngot = 0;
	layer_dirs_init_dir(&c->ld, &c->w, c->dir);
	return c->got ? 0 : -ENOMEM;
}

/* Fill e for name; NULL (e untouched) if it vanished or memory ran out:
 * the entry is then listed without attributes. */
static struct dnode *plus_lookup(struct plus *c, const char *name, struct fuse_entry_param *e)
{
	struct dnode *n;
	struct found f;

	if (union_lookup_in(&c->ld, c->w.upper, c->w.lmask, name, &f) < 0)
		return NULL;
	n = node_obtain(c->dir, name, f.layer, f.lmask, &f.st, f.gen);
	if (!n)
		return NULL;
	e->attr = f.st;
	fill_attr(n, &e->attr);
	e->ino = n->ino;
	e->generation = n->gen;
	e->attr_timeout = e->entry_timeout = entry_timeout();
	return n;
}

/* got: the entries' nodes whose references are the kernel's lookups once
 * delivered (the others' went to node_kernel_absorb). */
static void plus_finish(struct plus *c, bool delivered)
{
	for (size_t i = 0; i < c->ngot && !delivered; i++)
		node_unref(c->got[i]); /* no lookup given */
	layer_dirs_close(&c->ld);
	free(c->got);
}

static size_t plus_fill(fuse_req_t req, struct plus *c, const struct dlist *l, fuse_ino_t ino,
			char *buf, size_t size, off_t off)
{
	size_t used = 0;

	for (size_t i = (size_t)off; i < l->n + 2; i++) {
		struct fuse_entry_param e = { 0 };
		const char *name = listing_entry(l, i, ino, &e.attr);
		/* "." and ".." carry no lookup: the kernel does not count one. */
		struct dnode *n = i < 2 ? NULL : plus_lookup(c, name, &e);
		size_t len = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						    (off_t)i + 1);

		if (len > size - used) {
			if (n)
				node_unref(n);
			break;
		}
		if (n && !node_kernel_absorb(n))
			c->got[c->ngot++] = n;
		used += len;
	}
	return used;
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *dir = node_kget(ino);
	_cleanup_free_ char *buf = malloc(size);
	struct dlist l;
	struct plus c;
	size_t used;
	int r;

	(void)fi;
	if (!buf || !dir)
		return (void)fuse_reply_err(req, dir ? ENOMEM : ENOENT);
	r = listing_take(ino, off, &l);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	r = plus_start(&c, dir, size);
	if (r < 0) {
		dlist_free(&l);
		return (void)fuse_reply_err(req, -r);
	}
	used = plus_fill(req, &c, &l, ino, buf, size, off);
	listing_put(ino, &l, (size_t)off >= l.n + 2);
	plus_finish(&c, fuse_reply_buf(req, buf, used) == 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	int fd, r = 0;

	(void)fi;
	if (!n)
		return (void)fuse_reply_err(req, ENOENT);
	fd = n->layer == 0 ? node_open(n, O_RDONLY | O_DIRECTORY) : -1;
	if (fd >= 0) {
		r = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
		close(fd);
	}
	fuse_reply_err(req, r);
}
