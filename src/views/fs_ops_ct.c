/* The per-container trees at MOUNTPOINT/ct/NAME: each renders for its
 * cgroup whoever reads it, and lets the kernel keep its files in the page
 * cache for at most ct_ttl (no OPEN, attributes time out). Also the
 * per-CVM sysctl files (sysctl.h), the only files that take writes. */
#include "fs.h"
#include "sysctl.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- file content, shared by getattr and read ---- */

/* The page-cache lifetime of a file (ms); 0 for live files. */
static uint64_t ct_file_ttl_ms(enum vfile f)
{
	const struct views_config *cfg = &views_ctx->cfg;

	if (vfile_live(f))
		return 0;
	return vfile_counters(f) ? MIN(cfg->cache_ms, cfg->ct_ttl_ms) : cfg->ct_ttl_ms;
}

/* Is the render cf still good for an attribute request? Other files
 * re-render once a quarter of their page-cache lifetime has passed. A live
 * file's attributes never stay in the kernel (timeout 0), so every read(2)
 * asks: it gets a new render once the last is LIVE_NS old and the file was
 * not asked for within LIVE_NS -- a reader going on to its next read(2) of
 * the same pass (to EOF, or `dd bs=1`) must not find the content changed
 * under it -- and at the latest once the render is cache_ms old. */
static bool ct_file_fresh(struct ct_file *cf, enum vfile f, uint64_t now)
{
	uint64_t age = now - cf->rendered_ns, quiet = now - cf->asked_ns;

	if (!vfile_live(f))
		return age < ct_file_ttl_ms(f) * 1000000 / 4;
	cf->asked_ns = now;
	return age < LIVE_NS || (quiet < LIVE_NS && age < views_ctx->cfg.cache_ms * 1000000);
}

/* Render (f, arg) into its slot unless the slot is good: fresh, or for a
 * READ (only_if_empty) filled at all, as the kernel saw its size. Returns
 * the slot with ct->lock held, or NULL and *err. */
static struct ct_file *ct_file_get(fuse_req_t req, struct ct *ct, enum vfile f, unsigned arg,
				   bool only_if_empty, int *err)
{
	_cleanup_sbuf_ struct sbuf b;
	uint64_t now = now_ns();
	struct ct_file *cf;
	struct timespec rt;

	sbuf_init(&b);
	pthread_mutex_lock(&ct->lock);
	cf = ct_file_slot(ct, f, arg);
	*err = cf ? 0 : -ENOMEM;
	if (!cf || (cf->data && (only_if_empty || ct_file_fresh(cf, f, now))))
		goto out;
	cf->asked_ns = now;
	*err = fs_render(req, ct->id, f, arg, &b);
	if (*err < 0)
		goto out;
	free(cf->data);
	cf->data = sbuf_take(&b, &cf->len);
	cf->rendered_ns = now;
	clock_gettime(CLOCK_REALTIME, &rt);
	cf->mtime_ns = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
out:
	if (*err < 0)
		pthread_mutex_unlock(&ct->lock);
	return *err < 0 ? NULL : cf;
}

static int ct_file_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	unsigned view = ino_view(ino);
	const struct ct_file *cf = NULL;
	struct ct *ct;
	int r = -ESTALE;

	views_read_lock();
	ct = ct_get(view);
	if (ct)
		cf = ct_file_get(req, ct, views_tree[ino_tnode(ino)].file, ino_arg(ino), false, &r);
	else
		log_debug("getattr: per-container tree @%u is gone", view);
	if (cf) {
		st->st_size = (off_t)cf->len;
		st->st_mtim.tv_sec = (time_t)(cf->mtime_ns / 1000000000ULL);
		st->st_mtim.tv_nsec = (long)(cf->mtime_ns % 1000000000ULL);
		st->st_ctim = st->st_mtim;
		pthread_mutex_unlock(&ct->lock);
	}
	urcu_memb_read_unlock();
	return r;
}

/* A rendered file of a per-container tree (not the ct/ root, view 0). */
static bool ino_is_ct_file(fuse_ino_t ino)
{
	return !(ino & PASS_BIT) && ino_view(ino) && views_tree[ino_tnode(ino)].kind == TN_FILE;
}

/* ---- attributes and lookup ---- */

static int ct_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	int r;

	if (sysctl_node(ino))
		return sysctl_attr(req, ino, st);
	r = fs_attr(ino, st);
	if (r == 0 && ino_is_ct_file(ino))
		r = ct_file_attr(req, ino, st);
	return r;
}

static double ct_attr_timeout(fuse_ino_t ino)
{
	if (sysctl_node(ino))
		return 0; /* owner per reader; written values show at once */
	if (ino_is_ct_file(ino))
		return (double)ct_file_ttl_ms(views_tree[ino_tnode(ino)].file) / 1000.0;
	return ino & PASS_BIT ? (double)views_ctx->cfg.ct_ttl_ms / 1000.0 : LONG_TIMEOUT;
}

static void ct_list(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b);

/* A tree renders for one cgroup: its cpuN entries stay. */
struct fs_tree views_ct_tree = {
	.attr = ct_attr,
	.attr_timeout = ct_attr_timeout,
	.list = ct_list,
	.pass_entry_s = LONG_TIMEOUT,
	.cpu_entry_s = LONG_TIMEOUT,
	.cpu_noent_s = 1.0,
};

static void lookup_sysctl(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = sysctl_dir_ino(ino_view(parent));
	int r = sysctl_node(parent) ? sysctl_lookup(parent, name, &ino) : 0;

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_reply_entry(req, ino, 1.0, &views_ct_tree);
}

/* In ct/: NAME for a cgroup CT_PARENT/NAME, @ID for an anonymous tree. */
static void ct_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	/* A real-sysfs passthrough node's bits mean nothing here. */
	bool tree_root = !(parent & PASS_BIT) && ino_view(parent) && ino_tnode(parent) == T_ROOT;
	struct ct *ct = NULL;
	struct stat st;
	unsigned id = 0;

	fs_log_lookup(req, parent, name);
	if (sysctl_node(parent) || (tree_root && !strcmp(name, SYSCTL_DIR_NAME))) {
		lookup_sysctl(req, parent, name);
		return;
	}
	if (parent != FUSE_ROOT_ID) {
		fs_lookup(req, parent, name, &views_ct_tree);
		return;
	}
	if (name[0] == '@') {
		views_read_lock();
		ct = ct_get((unsigned)strtoul(name + 1, NULL, 10));
		id = ct && ct->anon ? ct->id : 0;
		urcu_memb_read_unlock();
	} else if (ct_cgroup_stat(name, &st) == 0) {
		ct = ct_intern(name);
		id = ct ? ct->id : 0;
	}
	if (id) {
		fs_reply_entry(req, tnode_ino(id, T_ROOT), 1.0, &views_ct_tree);
	} else {
		log_debug("lookup %s in ct/: no such tree", name);
		fs_reply_noent(req, 0);
	}
}

static void ct_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_getattr(req, ino, &views_ct_tree);
}

/* ---- file content ---- */

/* Refuse OPEN with ENOSYS once: the kernel then stops sending OPEN and
 * RELEASE, keeps pages, and drops them when a refreshed attribute shows a
 * new mtime (auto_inval_data). */
static void ct_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void read_sysctl(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	char text[128];
	int r = sysctl_read(req, ino, text, sizeof(text));

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_reply_slice(req, text, (size_t)r, size, off);
}

/* The render the last attribute request sized, so that the bytes match
 * the size the kernel has. */
static void read_file(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	enum vfile f = views_tree[ino_tnode(ino)].file;
	struct ct_file *cf = NULL;
	struct ct *ct;
	int r = -ESTALE;

	views_read_lock();
	ct = ct_get(ino_view(ino));
	if (ct)
		cf = ct_file_get(req, ct, f, ino_arg(ino), true, &r);
	if (cf) {
		cf->asked_ns = now_ns();
		fs_reply_slice(req, cf->data, cf->len, size, off);
		pthread_mutex_unlock(&ct->lock);
	} else {
		fuse_reply_err(req, -r);
	}
	urcu_memb_read_unlock();
}

static void ct_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (sysctl_node(ino))
		read_sysctl(req, ino, size, off);
	else if (ino & PASS_BIT)
		fs_read_pass(req, ino, size, off);
	else if (!ino_is_file(ino))
		fuse_reply_err(req, EISDIR);
	else
		read_file(req, ino, size, off);
}

/* Writes reach only the sysctl files: every other file is read-only. */
static void ct_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	int r = sysctl_node(ino) ? sysctl_write(req, ino, buf, size, off) : -EROFS;

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* open(O_TRUNC) of a sysctl file: its value stays until the write that
 * follows. Owner and mode never change (EPERM, as /proc/sys says). */
static void ct_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	if (!sysctl_node(ino))
		fuse_reply_err(req, EROFS);
	else if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		fuse_reply_err(req, EPERM);
	else
		fs_getattr(req, ino, &views_ct_tree);
}

/* ---- directories ---- */

/* ct/ lists the cgroups below CT_PARENT in the first hierarchy that has
 * it; an anonymous tree (@ID) is reached only through a link. */
static void list_trees(fuse_req_t req, struct dirbuf *b)
{
	for (int r = 0; r < CG_NRES; r++) {
		_cleanup_closedir_ DIR *d = NULL;
		int fd;
		struct dirent *e;

		if (views_ctx->layout.hier_fd[r] < 0)
			continue;
		fd = openat(views_ctx->layout.hier_fd[r], views_ctx->cfg.ct_parent,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && !(d = fdopendir(fd)))
			close(fd);
		while (d && (e = readdir(d))) {
			struct ct *ct;

			if (e->d_type != DT_DIR || e->d_name[0] == '.')
				continue;
			ct = ct_intern(e->d_name);
			if (ct)
				fs_dir_add(req, b, e->d_name, tnode_ino(ct->id, T_ROOT), S_IFDIR);
		}
		return;
	}
}

struct dir_to {
	fuse_req_t req;
	struct dirbuf *b;
};

static void sysctl_add(void *ctx, const char *name, fuse_ino_t ino, mode_t mode)
{
	struct dir_to *to = ctx;

	fs_dir_add(to->req, to->b, name, ino, mode);
}

static void ct_list(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b)
{
	struct dir_to to = { req, b };

	if (sysctl_node(ino)) {
		sysctl_list(ino, sysctl_add, &to);
		return;
	}
	if (ino == FUSE_ROOT_ID) {
		list_trees(req, b);
		return;
	}
	fs_list(req, ino, b);
	if (!(ino & PASS_BIT) && ino_view(ino) && ino_tnode(ino) == T_ROOT)
		fs_dir_add(req, b, SYSCTL_DIR_NAME, sysctl_dir_ino(ino_view(ino)), S_IFDIR);
}

static void ct_init(void *userdata, struct fuse_conn_info *conn)
{
	views_thread_enter();
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
}

const struct fuse_lowlevel_ops views_ct_ops = {
	.init = ct_init,
	.lookup = ct_lookup,
	.getattr = ct_getattr,
	.readlink = fs_readlink,
	.open = ct_open,
	.read = ct_read,
	.write = ct_write,
	.setattr = ct_setattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_release,
};
