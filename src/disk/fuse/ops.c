/* The FUSE operation table, session setup (init) and the simple
 * operations: lookup, forget, getattr, readlink, statfs. */
#include "fuse/ops.h"
#include "volume/volume.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* The daemon is the only writer of its layers, so the kernel may cache
 * names and attributes for as long as it likes. */
#define CACHE_TIMEOUT 86400.0

double entry_timeout(void)
{
	return CACHE_TIMEOUT;
}

void fill_attr(struct dnode *n, struct stat *st)
{
	st->st_ino = n->ino;
	/* A merged directory's link count means nothing; 1 tells find(1) not
	 * to use the leaf optimisation, as overlayfs does. */
	node_lock(n);
	if (n->type == S_IFDIR && n->lmask && (n->layer == 0 || (n->lmask & (n->lmask - 1))))
		st->st_nlink = 1;
	if (n->layer != 0)
		image_owner(st);
	node_unlock(n);
}

void reply_entry(fuse_req_t req, struct dnode *n, const struct stat *st)
{
	struct fuse_entry_param e = { .ino = n->ino, .generation = n->gen, .attr = *st,
				      .attr_timeout = CACHE_TIMEOUT,
				      .entry_timeout = CACHE_TIMEOUT };
	bool absorbed;

	fill_attr(n, &e.attr);
	absorbed = node_kernel_absorb(n);
	if (fuse_reply_entry(req, &e) == -ENOENT && !absorbed)
		node_unref(n); /* the request was interrupted: no lookup given */
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Exact enforcement happens in write(): no writeback cache. */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/* Requests are read with read(2), through session_io.c, everywhere:
	 * libfuse would splice them where root may size its pipes (with
	 * CAP_SYS_RESOURCE), and a spliced request never reaches the hook
	 * that hands TMPFILE on as a CREATE (O_TMPFILE failed with ENOTSUP
	 * there); a small request then also costs two system calls, not one. */
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	handles_init(conn->proto_minor);
	/* A symlink's target never changes (a new one is a new inode) and we
	 * are the only writer: let the kernel keep it (a container start
	 * read ~290 symlinks through us). */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	/* Every listing page with attributes, not only the first: find, du,
	 * ls -l and tar read a whole directory and then stat each entry,
	 * which after a plain page is a LOOKUP per entry. */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	dir_listings_init(conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT);
	/* We clear set-ID bits on write, truncate and O_TRUNC opens (ops_io.c)
	 * and the upper filesystem does on chown: the kernel can spare the
	 * GETATTR it sends before every chown otherwise. Lookups in one
	 * directory may run in parallel. (session_io.c says why these go
	 * this way.) */
	session_io_init_flags(conn->capable & FUSE_CAP_HANDLE_KILLPRIV,
			      conn->capable & FUSE_CAP_PARALLEL_DIROPS);
	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

/* libfuse 3.14 has no accessor for a request's unique; its struct fuse_req
 * starts with the session pointer and the unique (lib/fuse_i.h, the same
 * since 3.0). */
struct req_head {
	void *se;
	uint64_t unique;
};

#ifndef FUSE_UNIQUE_RESEND
#define FUSE_UNIQUE_RESEND (1ULL << 63)
#endif

bool req_resent(fuse_req_t req)
{
	return ((const struct req_head *)(const void *)req)->unique & FUSE_UNIQUE_RESEND;
}

uint64_t req_unique(fuse_req_t req)
{
	return ((const struct req_head *)(const void *)req)->unique & ~FUSE_UNIQUE_RESEND;
}

/* A resent MKDIR, MKNOD, SYMLINK or LINK that finds name there: a dead
 * server made it (disk_survive.c) and its reply was lost; the entry is
 * answered as a LOOKUP would. False (nothing sent) if name is not of
 * type. ns_lock held. */
bool reply_made_before(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t type)
{
	struct dnode *p = node_kget(parent), *n;
	struct found f;

	if (!p || node_lookup(p, name, &f) < 0 || (f.st.st_mode & S_IFMT) != type)
		return false;
	n = node_obtain(p, name, f.layer, f.lmask, &f.st, f.gen);
	if (!n)
		return false;
	reply_entry(req, n, &f.st);
	return true;
}

/* LOOKUP(id, ".") and (id, ".."): the kernel decoding a file handle, the
 * node maybe long forgotten (union/reconnect.c). The kernel counts a lookup for
 * each, as for any entry. */
static void lookup_dot(fuse_req_t req, fuse_ino_t ino, bool dotdot)
{
	struct dnode *n, *p;
	struct stat st;
	int r = 0;

	n = node_by_id(ino, &r);
	if (!n)
		return (void)fuse_reply_err(req, -r);

	if (dotdot) {
		p = n->parent ? n->parent : n; /* the root is its own parent */
		node_hold(p); /* alive: n holds it */
		node_unref(n);
		n = p;
	}
	r = node_stat(n, &st);
	if (r < 0) {
		node_unref(n);
		return (void)fuse_reply_err(req, r == -ENOENT ? ESTALE : -r);
	}
	if (!dotdot)
		handles_connect(n);
	reply_entry(req, n, &st);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	NS_READ();
	struct dnode *p, *n;
	struct found f;
	int r;

	/* "/" is the name of a dentry the kernel made for a decoded handle
	 * (d_obtain_alias): revalidating it looks "/" up in the object itself. */
	if (!strcmp(name, ".") || !strcmp(name, "/"))
		return lookup_dot(req, parent, false);
	if (!strcmp(name, ".."))
		return lookup_dot(req, parent, true);
	p = node_kget(parent);
	if (!p)
		return (void)fuse_reply_err(req, ENOENT); /* see op_getattr */
	if (strlen(name) > 255)
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	r = name_valid(name) ? node_lookup(p, name, &f) : -ENOENT;
	if (r == -ENOENT) {
		struct fuse_entry_param e = { .entry_timeout = CACHE_TIMEOUT };

		return (void)fuse_reply_entry(req, &e);
	}
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	n = node_obtain(p, name, f.layer, f.lmask, &f.st, f.gen);
	if (!n)
		return (void)fuse_reply_err(req, ENOMEM);
	reply_entry(req, n, &f.st);
}

static uint64_t parent_id(struct dnode *n)
{
	NS_READ(); /* n->parent */

	return n->parent ? n->parent->ino : 0;
}

/* The parent's id of a node whose id is not its object's natural one (a
 * copy-up keeps its image object's id, a taken number gets a fallback:
 * it has a by_real entry), else 0. */
static uint64_t rekeyed_parent(struct dnode *n)
{
	/* No node lock on this hot path (a FORGET per inode of a cache
	 * drop): it would not make the answer any less racy, rl may change
	 * (a copy-up) as soon as it is let go. */
	bool rekeyed = __atomic_load_n(&n->rl, __ATOMIC_RELAXED) != NULL;

	return rekeyed ? parent_id(n) : 0;
}

/* Such a node, once gone, is looked up again under its natural id, but a
 * listing of its parent the kernel keeps (FOPEN_CACHE_DIR: a directory
 * held open across the eviction) still gives the old one as d_ino: it is
 * dropped, so that readdir's d_ino stays what lstat gives as st_ino.
 * Other nodes keep their id (or their listing changed with them). One
 * batch of forgets (a cache drop: many copy-ups of one directory) drops a
 * directory's listing once. */
#define INVAL_BATCH 8

struct invals {
	uint64_t dir[INVAL_BATCH];
	unsigned n;
};

static void inval_dir(struct invals *v, uint64_t dir)
{
	for (unsigned i = 0; i < v->n; i++)
		if (v->dir[i] == dir)
			return;
	if (v->n == INVAL_BATCH) {
		fuse_lowlevel_notify_inval_inode(disk_ctx->se, v->dir[0], 0, 0);
		memmove(v->dir, v->dir + 1, sizeof(v->dir[0]) * (INVAL_BATCH - 1));
		v->n--;
	}
	v->dir[v->n++] = dir;
}

static void inval_flush(struct invals *v)
{
	for (unsigned i = 0; i < v->n; i++)
		fuse_lowlevel_notify_inval_inode(disk_ctx->se, v->dir[i], 0, 0);
	v->n = 0;
}

static void forget_one(uint64_t ino, uint64_t nlookup, struct invals *v)
{
	/* Held: a FORGET of a node with an unknown count may race another
	 * (nodes/inode.c) for the same id. */
	struct dnode *n = ino == FUSE_ROOT_ID ? NULL : node_get_held(ino);
	uint64_t parent;

	if (!n)
		return;
	parent = rekeyed_parent(n);
	node_forget(n, nlookup);
	node_unref(n);
	if (parent && !node_get(ino))
		inval_dir(v, parent);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct invals v = { .n = 0 };

	disk_thread_enter();
	forget_one(ino, nlookup, &v);
	fuse_reply_none(req);
	inval_flush(&v);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct invals v = { .n = 0 };

	disk_thread_enter();
	for (size_t i = 0; i < count; i++)
		forget_one(forgets[i].ino, forgets[i].nlookup, &v);
	fuse_reply_none(req);
	inval_flush(&v);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	struct stat st;
	int r;

	/* An id the kernel holds that no server can find any more (after a
	 * take-over: removed by the dead server, or while the kernel held it)
	 * is a removed object, ENOENT as for one this server removed, never
	 * ESTALE: the kernel retries a path walk on ESTALE (with every name
	 * looked up again), but an fd or a cwd has none, and fstat, fchdir,
	 * getdents or an *at call through one would show ESTALE, which no
	 * local filesystem gives. A file handle of a removed object still
	 * gets ESTALE: that comes through LOOKUP(id, "."), lookup_dot. The
	 * other opcodes on an id answer the same for the same reason. */
	if (!n)
		return (void)fuse_reply_err(req, ENOENT);
	r = node_stat(n, &st);
	/* An unlinked open file has no path any more; its fd still works. */
	if (r < 0 && fi && fstat(fh_fd(fi), &st) == 0)
		r = 0;
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fill_attr(n, &st);
	fuse_reply_attr(req, &st, CACHE_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	NS_READ();
	struct dnode *n = node_kget(ino);
	_cleanup_close_ int fd = n ? node_open(n, O_PATH | O_NOFOLLOW) : -ENOENT; /* op_getattr */
	char buf[PATH_MAX];
	ssize_t len;

	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	len = readlinkat(fd, "", buf, sizeof(buf) - 1);
	if (len < 0)
		return (void)fuse_reply_err(req, errno);
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

/* The limit is the size, like an XFS project quota seen through df. */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };
	uint64_t lim = __atomic_load_n(&disk_ctx->acct.limit_bytes, __ATOMIC_RELAXED);
	uint64_t ilim = __atomic_load_n(&disk_ctx->acct.limit_inodes, __ATOMIC_RELAXED);
	int64_t iused = __atomic_load_n(&disk_ctx->acct.used_inodes, __ATOMIC_RELAXED);

	(void)ino;
	if (volume_on()) { /* the same numbers as df on the lanes */
		int r = volume_statfs(&sv);

		return r < 0 ? (void)fuse_reply_err(req, -r) : (void)fuse_reply_statfs(req, &sv);
	}
	if (fstatvfs(disk_ctx->layers[0].fd, &sv) < 0)
		return (void)fuse_reply_err(req, errno);
	sv.f_bsize = sv.f_frsize = 4096;
	if (lim) {
		sv.f_blocks = lim / 4096;
		sv.f_bfree = sv.f_bavail = acct_avail(&disk_ctx->acct) / 4096;
	}
	if (iused < 0)
		iused = 0;
	sv.f_files = ilim ? ilim : (uint64_t)iused + sv.f_favail;
	sv.f_ffree = sv.f_favail = sv.f_files > (uint64_t)iused ? sv.f_files - (uint64_t)iused : 0;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops disk_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write_buf = op_write_buf,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
