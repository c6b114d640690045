/* rename, with RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT.
 *
 * The union namespace changes shape here, so rename holds ns_lock for
 * writing. Both objects are brought into the upper layer first; a
 * directory with image content is copied up as a whole tree and made
 * opaque (no redirects: the renamed tree no longer depends on the image
 * layers, at the price of copying it once). The rename itself is one
 * renameat2 in the upper layer, or, when the image also has the old name,
 * RENAME_EXCHANGEs with a whiteout made beforehand, so that the old name
 * turns into the whiteout in the same step that moves the object (see
 * rn_hiding). Bytes move between areas with the object (a directory's
 * subtree is walked when an area boundary is crossed). */
#include "fuse/ops.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

struct side {
	struct dnode *p;
	const char *name;
	char *prel, *rel; /* union paths of the parent and of the name */
	bool exists, lower_has;
	struct found f;
	struct dnode *n; /* the object's node, held */
	bool temp;       /* n was made for this call: forget it after */
};

static int side_init(struct side *s, fuse_ino_t parent, const char *name)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->name = name;
	s->p = node_kget(parent);
	if (!s->p)
		return -ENOENT; /* removed: see op_getattr */
	if (!name_valid(name))
		return -EINVAL;
	r = node_path(s->p, &s->prel);
	if (r == 0 && !(s->rel = path_join_dup(s->prel, name)))
		r = -ENOMEM;
	if (r < 0)
		return r;
	r = node_lookup(s->p, name, &s->f);
	if (r < 0 && r != -ENOENT)
		return r;
	s->exists = r == 0;
	s->lower_has = node_lower_has(s->p, name);
	return 0;
}

static int side_hold(struct side *s)
{
	s->n = node_find_real(s->f.layer, s->f.st.st_ino);
	if (s->n)
		return 0;
	s->n = node_obtain(s->p, s->name, s->f.layer, s->f.lmask, &s->f.st, s->f.gen);
	s->temp = true;
	return s->n ? 0 : -ENOMEM;
}

static void side_release(struct side *s)
{
	free(s->prel);
	free(s->rel);
	s->prel = s->rel = NULL;
	if (!s->n)
		return;
	if (s->temp)
		node_forget(s->n, 1);
	else
		node_unref(s->n);
	s->n = NULL;
}

static int side_upper(struct side *s)
{
	int r = side_hold(s);

	if (r < 0)
		return r;
	return S_ISDIR(s->f.st.st_mode) ? copy_up_tree(s->n) : copy_up(s->n);
}

static int check_target(const struct side *src, const struct side *dst, unsigned flags)
{
	struct dlist l;
	int r;

	if ((flags & RENAME_NOREPLACE) && dst->exists)
		return -EEXIST;
	if ((flags & RENAME_EXCHANGE) && !dst->exists)
		return -ENOENT;
	if (!dst->exists || (flags & RENAME_EXCHANGE))
		return 0;
	if (S_ISDIR(src->f.st.st_mode) && !S_ISDIR(dst->f.st.st_mode))
		return -ENOTDIR;
	if (!S_ISDIR(src->f.st.st_mode) && S_ISDIR(dst->f.st.st_mode))
		return -EISDIR;
	if (!S_ISDIR(dst->f.st.st_mode))
		return 0;
	r = dir_list(NULL, dst->rel, dst->f.layer == 0, dst->f.lmask, &l);
	if (r == 0) {
		r = l.n ? -ENOTEMPTY : 0;
		dlist_free(&l);
	}
	return r;
}

static void node_area_update(struct dnode *n, void *arg)
{
	_cleanup_free_ char *path = NULL;

	(void)arg;
	if (node_path(n, &path) == 0)
		n->area = area_of_path(path);
}

/* A directory at a name the image also has must hide the image's one. */
static void make_opaque(int pfd, const char *name, struct dnode *n)
{
	_cleanup_close_ int fd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 || fd_setxattr(fd, XATTR_OPAQUE, "y", 1, 0) < 0)
		return;
	node_lock(n);
	n->lmask = 0;
	node_lower_fds_release(n); /* its image directories are hidden now */
	node_unlock(n);
	charge_node(n, fd, 0, 0);
}

/* Bytes of the object now at newrel move from the areas of oldrel. */
static void move_areas(int pfd, const char *name, const char *oldrel, const char *newrel,
		       struct dnode *n)
{
	if (!area_paths_differ(oldrel, newrel))
		return;
	area_move_object(pfd, name, oldrel, newrel);
	node_area_update(n, NULL);
	node_for_each_below(n, node_area_update, NULL);
}

struct rn {
	struct side src, dst;
	unsigned flags;
	int pfd, npfd, tfd;
	struct dnode *tn; /* a replaced upper target's node */
	int64_t res_i;
	bool dst_wh;      /* a union whiteout holds the target name in upper */
	struct stat wst;  /* ... this one */
};

/* Links of one file stay in one area (area_move_splits_links). */
static int rn_links_stay(struct rn *x)
{
	if (!area_paths_differ(x->src.rel, x->dst.rel))
		return 0;
	if (area_move_splits_links(x->pfd, x->src.name))
		return -EXDEV;
	if ((x->flags & RENAME_EXCHANGE) && area_move_splits_links(x->npfd, x->dst.name))
		return -EXDEV;
	return 0;
}

static int rn_prepare(struct rn *x)
{
	int r = side_upper(&x->src);

	if (r == 0 && (x->flags & RENAME_EXCHANGE))
		r = side_upper(&x->dst);
	if (r == 0 && (x->pfd = node_upper_dir(x->src.p)) < 0)
		r = x->pfd;
	if (r == 0 && (x->npfd = node_upper_dir(x->dst.p)) < 0)
		r = x->npfd;
	if (r == 0)
		r = rn_links_stay(x);
	if (r == 0 && !x->dst.exists &&
	    fstatat(x->npfd, x->dst.name, &x->wst, AT_SYMLINK_NOFOLLOW) == 0)
		x->dst_wh = is_union_whiteout(x->npfd, x->dst.name, &x->wst);
	if (r < 0 || !x->dst.exists || (x->flags & RENAME_EXCHANGE) || x->dst.f.layer != 0)
		return r;
	x->tfd = layer_open(0, x->dst.rel, O_PATH | O_NOFOLLOW);
	if (x->tfd < 0)
		return x->tfd;
	if (S_ISDIR(x->dst.f.st.st_mode))
		whiteouts_clear(x->tfd, area_of_path(x->dst.rel));
	x->tn = node_find_real(0, x->dst.f.st.st_ino);
	return 0;
}

static void rn_replaced(struct rn *x)
{
	struct stat after;

	if (x->tfd < 0 || fstat(x->tfd, &after) < 0)
		return;
	if (x->tn)
		charge_unlinked(x->tn, &after, x->tfd);
	else if (after.st_nlink == 0 || S_ISDIR(after.st_mode))
		charge_gone(area_of_path(x->dst.rel), &after);
}

/* Is the renamed name the node's? The node of a file of several links
 * carries the name it was first found by, which may since have gone; a
 * file's only name is its name. */
static bool side_named(const struct side *s)
{
	return (s->n->parent == s->p && !strcmp(s->n->name, s->name)) ||
	       (!S_ISDIR(s->f.st.st_mode) && s->f.st.st_nlink == 1);
}

/* After the upper rename: whiteouts, nodes, opacity, areas. */
static int rn_finish(struct rn *x)
{
	struct stat wst;
	int r = 0;

	rn_replaced(x);
	if (x->flags & RENAME_WHITEOUT) {
		if (fstatat(x->pfd, x->src.name, &wst, AT_SYMLINK_NOFOLLOW) == 0)
			charge_settle(area_of_path(x->src.rel), 0, blocks_bytes(&wst), 1, 1);
		x->res_i--;
	}
	if (side_named(&x->src))
		node_move(x->src.n, x->dst.p, x->dst.name);
	if ((x->flags & RENAME_EXCHANGE) && side_named(&x->dst))
		node_move(x->dst.n, x->src.p, x->src.name);
	move_areas(x->npfd, x->dst.name, x->src.rel, x->dst.rel, x->src.n);
	if (x->flags & RENAME_EXCHANGE)
		move_areas(x->pfd, x->src.name, x->dst.rel, x->src.rel, x->dst.n);
	charge_node(x->src.p, x->pfd, 0, 0);
	charge_node(x->dst.p, x->npfd, dirent_growth(), 0);
	return r;
}

/* The target name is taken by one of our whiteouts (an image object
 * deleted there). The object trades places with it (a directory cannot be
 * renamed over a device), then the whiteout, now at the source name, stays
 * if the image has the source name too, becomes the plain 0/0 device that
 * RENAME_WHITEOUT asks for, or goes. Its charge follows it. */
static int rn_over_whiteout(struct rn *x, bool hide)
{
	enum area from = area_of_path(x->dst.rel), to = area_of_path(x->src.rel);
	char p[PATH_MAX];

	if (renameat2(x->pfd, x->src.name, x->npfd, x->dst.name, RENAME_EXCHANGE) < 0)
		return -errno;
	if (hide) {
		if (from != to)
			acct_move(&disk_ctx->acct, from, to, blocks_bytes(&x->wst), 1);
		return 0;
	}
	charge_gone(from, &x->wst); /* rn_finish charges a RENAME_WHITEOUT device anew */
	if (x->flags & RENAME_WHITEOUT) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", x->pfd, x->src.name);
		if (lremovexattr(p, XATTR_WHITEOUT) < 0)
			log_error_errno(-errno, "rename: %s left hidden", x->src.rel);
	} else if (unlinkat(x->pfd, x->src.name, 0) < 0) {
		log_error_errno(-errno, "rename: whiteout left at %s", x->src.rel);
	}
	return 0;
}

/* The second exchange failed: back to where we started. */
static int rn_hiding_undo(struct rn *x, const char *tmp, int r)
{
	if (x->tfd >= 0) {
		if (renameat2(x->pfd, x->src.name, x->npfd, x->dst.name, RENAME_EXCHANGE) < 0)
			log_error_errno(-errno, "rename %s: could not undo", x->src.rel);
		whiteout_abort(tmp);
	} else {
		unlinkat(x->npfd, x->dst.name, 0); /* our whiteout */
		charge_unreserve(dirent_growth(), 1);
	}
	return r;
}

/* The source name has an image object below it: it must go from our
 * object straight to a whiteout, never showing the image's object, not for
 * an instant and not after a crash. A marked whiteout is made in DATA/work
 * and the names change by RENAME_EXCHANGE only:
 *   target free:  whiteout -> target (still no visible object there), then
 *                 source <-> target: the object is at the target, the
 *                 whiteout at the source, in one step;
 *   target taken: source <-> target (the target changes in one step), then
 *                 whiteout <-> source; the replaced object, now in
 *                 DATA/work, is removed. */
static int rn_hiding(struct rn *x)
{
	bool taken = x->tfd >= 0;
	char tmp[64];
	int r = whiteout_prepare(tmp, sizeof(tmp), &x->wst);

	if (r < 0)
		return r;
	if (taken)
		r = renameat2(x->pfd, x->src.name, x->npfd, x->dst.name, RENAME_EXCHANGE);
	else
		r = renameat2(disk_ctx->work_fd, tmp, x->npfd, x->dst.name, RENAME_NOREPLACE);
	if (r < 0) {
		r = -errno;
		whiteout_abort(tmp);
		return r;
	}
	if (taken)
		r = renameat2(disk_ctx->work_fd, tmp, x->pfd, x->src.name, RENAME_EXCHANGE);
	else
		r = renameat2(x->pfd, x->src.name, x->npfd, x->dst.name, RENAME_EXCHANGE);
	if (r < 0)
		return rn_hiding_undo(x, tmp, -errno);
	if (taken && unlinkat(disk_ctx->work_fd, tmp, S_ISDIR(x->dst.f.st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		log_error_errno(-errno, "rename: replaced object left in DATA/work/%s", tmp);
	whiteout_settle(area_of_path(x->src.rel), &x->wst);
	return 0;
}

/* The rename in the upper layer. A directory arriving where the image has
 * the name is made opaque first, so the image's entries never merge in. */
static int rn_move(struct rn *x)
{
	bool hide = x->src.lower_has && !(x->flags & (RENAME_EXCHANGE | RENAME_WHITEOUT));

	if (S_ISDIR(x->src.f.st.st_mode) && x->dst.lower_has)
		make_opaque(x->pfd, x->src.name, x->src.n);
	if ((x->flags & RENAME_EXCHANGE) && S_ISDIR(x->dst.f.st.st_mode) && x->src.lower_has)
		make_opaque(x->npfd, x->dst.name, x->dst.n);
	if (x->dst_wh)
		return rn_over_whiteout(x, hide);
	if (hide)
		return rn_hiding(x);
	return renameat2(x->pfd, x->src.name, x->npfd, x->dst.name, x->flags) < 0 ? -errno : 0;
}

static int rn_do(struct rn *x)
{
	int r;

	r = check_target(&x->src, &x->dst, x->flags);
	if (r < 0)
		return r;
	if (x->dst.exists && x->dst.f.layer == x->src.f.layer &&
	    x->dst.f.st.st_ino == x->src.f.st.st_ino && !(x->flags & RENAME_EXCHANGE))
		return 0; /* two links of one file: nothing to do */
	x->res_i = (x->flags & RENAME_WHITEOUT) ? 1 : 0;
	r = charge_reserve(dirent_growth(), x->res_i);
	if (r < 0)
		return r;
	r = rn_prepare(x);
	if (r == 0)
		r = rn_move(x);
	if (r < 0) {
		charge_unreserve(dirent_growth(), x->res_i);
		return r;
	}
	r = rn_finish(x);
	if (x->res_i > 0)
		charge_unreserve(0, x->res_i);
	return r;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags)
{
	NS_WRITE();
	struct rn x = { .flags = flags, .pfd = -1, .npfd = -1, .tfd = -1 };
	int r;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
		return (void)fuse_reply_err(req, EINVAL);
	r = side_init(&x.src, parent, name);
	if (r == 0 && !x.src.exists)
		r = -ENOENT;
	if (r == 0)
		r = side_init(&x.dst, newparent, newname);
	if (r == 0)
		r = rn_do(&x);
	side_release(&x.src);
	side_release(&x.dst);
	if (x.tn)
		node_unref(x.tn);
	if (x.pfd >= 0)
		close(x.pfd);
	if (x.npfd >= 0)
		close(x.npfd);
	if (x.tfd >= 0)
		close(x.tfd);
	if (r == -ENOENT && req_resent(req)) /* the dead server renamed it */
		r = 0;
	fuse_reply_err(req, -r);
}
