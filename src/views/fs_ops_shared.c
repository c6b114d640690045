/* The shared tree at MOUNTPOINT: every open renders for its opener and is
 * served with direct_io; proc/FILE links send each reader to the tree
 * that fits it. */
#include "fs.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What an open file holds: the bytes rendered for its opener, or an fd of
 * a real sysfs file. */
struct fhandle {
	struct fs_handle link; /* first: the list's free_fn casts back */
	int fd;
	int t;
	unsigned arg;
	pthread_mutex_t lock; /* protects data, len, served */
	bool served;
	size_t len;
	char *data;
};

static void fhandle_free(struct fs_handle *link)
{
	struct fhandle *h = (struct fhandle *)link;

	if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h->data);
	free(h);
}

static bool ino_is_link(fuse_ino_t ino)
{
	int t = ino_tnode(ino);

	return !(ino & PASS_BIT) && t >= 0 && t < T_COUNT && tnode_is_link(ino_view(ino), t);
}

/* The shared tree's proc/FILE is one symlink inode whose target depends on
 * the reader (symlink bodies are not cached): a limited reader is sent into
 * its own per-container tree, whose pages the kernel keeps, so a read costs
 * one READLINK round trip; others, and every bind mount they make, reach
 * the generic file that renders at open for whoever opens it. The dentry
 * never changes, so concurrent readers of different containers cannot race
 * on it. proc/ must not be bound as a directory elsewhere: the links are
 * relative to the mount. */
static void caller_link(fuse_req_t req, int t, char *buf, size_t size)
{
	struct view_caller who;
	unsigned id = 0;

	views_read_lock();
	fs_caller(req, 0, &who);
	if (who.c && caller_limited(&who))
		id = ct_for_container(who.c, caller_pidns_start(&who));
	urcu_memb_read_unlock();
	sym_target(id, t, buf, size);
}

static int shared_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	char target[PATH_MAX];

	if (!ino_is_link(ino))
		return fs_attr(ino, st);
	caller_link(req, ino_tnode(ino), target, sizeof(target));
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(target);
	return 0;
}

static double shared_attr_timeout(fuse_ino_t ino)
{
	if (ino_is_link(ino))
		return 0; /* its size depends on the reader */
	return ino & PASS_BIT ? 1.0 : LONG_TIMEOUT;
}

/* cpuN entries differ per reader: neither they nor their absence are
 * cached. */
struct fs_tree views_shared_tree = {
	.attr = shared_attr,
	.attr_timeout = shared_attr_timeout,
	.list = fs_list,
	.pass_entry_s = 1.0,
	.cpu_entry_s = 0,
	.cpu_noent_s = 0,
};

static void shared_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_log_lookup(req, parent, name);
	fs_lookup(req, parent, name, &views_shared_tree);
}

static void shared_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_getattr(req, ino, &views_shared_tree);
}

static void shared_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX];

	if (!ino_is_link(ino)) {
		fs_readlink(req, ino);
		return;
	}
	caller_link(req, ino_tnode(ino), buf, sizeof(buf));
	fuse_reply_readlink(req, buf);
}

static int render_into(fuse_req_t req, struct fhandle *h)
{
	_cleanup_sbuf_ struct sbuf b;
	int r;

	sbuf_init(&b);
	r = fs_render(req, 0, views_tree[h->t].file, h->arg, &b);
	if (r < 0)
		return r;
	free(h->data);
	h->data = sbuf_take(&b, &h->len);
	return 0;
}

static int fhandle_new(fuse_req_t req, fuse_ino_t ino, struct fhandle **hp)
{
	struct fhandle *h = calloc(1, sizeof(*h));
	int r = 0;

	if (!h)
		return -ENOMEM;
	h->fd = -1;
	h->t = ino_tnode(ino);
	h->arg = ino_arg(ino);
	pthread_mutex_init(&h->lock, NULL);
	if (ino & PASS_BIT)
		r = h->fd = fs_open_pass(ino);
	else
		r = render_into(req, h);
	if (r < 0) {
		fhandle_free(&h->link);
		return r;
	}
	*hp = h;
	return 0;
}

static void shared_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fhandle *h;
	int r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (!(ino & PASS_BIT) && !ino_is_file(ino)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	r = fhandle_new(req, ino, &h);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->direct_io = 1; /* every open renders for its own caller */
	fi->noflush = 1;
	fs_reply_open(req, fi, &h->link, fhandle_free);
}

/* A file opened by a dead server: read as if opened now. */
static void read_unopened(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct fhandle h = { .fd = -1, .t = ino_tnode(ino), .arg = ino_arg(ino) };
	int r;

	if (ino & PASS_BIT) {
		fs_read_pass(req, ino, size, off);
		return;
	}
	r = ino_is_file(ino) ? render_into(req, &h) : -ESTALE;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_reply_slice(req, h.data, h.len, size, off);
	free(h.data);
}

/* Render at open, serve later offsets from that snapshot; a new read at
 * offset 0 (top and procps keep the fd and seek back) renders afresh. */
static void shared_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fhandle *h = fs_fh_ptr(fi->fh);
	_cleanup_free_ char *copy = NULL;
	size_t n = 0;
	int r = 0;

	if (!h) {
		read_unopened(req, ino, size, off);
		return;
	}
	if (h->fd >= 0) {
		fs_reply_pread(req, h->fd, size, off);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (off == 0 && h->served)
		r = render_into(req, h);
	h->served = true;
	if (r == 0 && (size_t)off < h->len) {
		n = MIN(size, h->len - (size_t)off);
		copy = malloc(n);
		if (copy)
			memcpy(copy, h->data + off, n);
		else
			r = -ENOMEM;
	}
	/* Unlock before replying: once the reader has its bytes it may close,
	 * and RELEASE frees h on another thread. */
	pthread_mutex_unlock(&h->lock);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, copy, n);
}

static void shared_init(void *userdata, struct fuse_conn_info *conn)
{
	views_thread_enter();
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	/* proc/ link bodies depend on the reader: never cache them. */
	conn->want &= ~(unsigned)FUSE_CAP_CACHE_SYMLINKS;
}

const struct fuse_lowlevel_ops views_shared_ops = {
	.init = shared_init,
	.lookup = shared_lookup,
	.getattr = shared_getattr,
	.readlink = shared_readlink,
	.open = shared_open,
	.read = shared_read,
	.release = fs_release,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_release,
};
