/* unlink and rmdir. An upper object is removed, or replaced by a whiteout
 * in one rename when the image also has the name (a reader never sees the
 * image's object come back); an image object gets a whiteout. Bytes come back at once, except for a file still open: it
 * stays charged until its last close, as its blocks stay allocated. */
#include "fuse/ops.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct target {
	struct dnode *p;
	char *prel, *crel; /* union paths of the parent and the target */
	struct found f;
	bool whiteout;
	enum area ar;
};

static void target_done(struct target *t)
{
	free(t->prel);
	free(t->crel);
}

static int target_find(fuse_ino_t parent, const char *name, struct target *t)
{
	int r;

	*t = (struct target){ 0 };
	t->p = node_kget(parent);
	if (!t->p)
		return -ENOENT; /* removed: see op_getattr */
	r = node_lookup(t->p, name, &t->f);
	if (r == 0)
		r = node_path(t->p, &t->prel);
	if (r == 0 && !(t->crel = path_join_dup(t->prel, name)))
		r = -ENOMEM;
	if (r < 0)
		return r;
	t->whiteout = node_lower_has(t->p, name);
	t->ar = area_of_path(t->crel);
	return 0;
}

/* The object at tfd lost the name: charge through its node if it has one. */
static void charge_removed(struct dnode *n, int tfd, enum area ar)
{
	struct stat after;

	if (fstat(tfd, &after) < 0)
		return;
	if (n)
		charge_unlinked(n, &after, tfd);
	else if (after.st_nlink == 0 || S_ISDIR(after.st_mode))
		charge_gone(ar, &after);
}

static int remove_upper(struct target *t, const char *name, bool dir)
{
	_cleanup_close_ int pfd = node_open(t->p, O_PATH | O_DIRECTORY);
	_cleanup_close_ int tfd = layer_open(0, t->crel, O_PATH | O_NOFOLLOW);
	struct dnode *n;
	int r = 0;

	if (pfd < 0 || tfd < 0)
		return pfd < 0 ? pfd : tfd;
	if (dir)
		whiteouts_clear(tfd, t->ar);
	n = node_find_real(0, t->f.st.st_ino);
	if (n) {
		node_lock(n); /* no open may slip in between */
		/* Books must match the blocks the unlink will give back. */
		charge_node(n, tfd, 0, 0);
	}
	/* With an image object under the name, the name goes from the upper
	 * object straight to a whiteout in one rename. */
	if (t->whiteout && dir)
		r = rmdir_hiding(pfd, name, t->ar);
	else if (t->whiteout)
		r = whiteout_make(pfd, name, true, t->ar);
	else if (unlinkat(pfd, name, dir ? AT_REMOVEDIR : 0) < 0)
		r = -errno;
	if (r == 0)
		charge_removed(n, tfd, t->ar);
	if (n) {
		node_unlock(n);
		node_unref(n);
	}
	charge_node(t->p, pfd, 0, 0);
	return r;
}

static int remove_lower(struct target *t, const char *name)
{
	_cleanup_close_ int pfd = node_upper_dir(t->p);
	int r;

	if (pfd < 0)
		return pfd;
	r = whiteout_make(pfd, name, false, t->ar);
	charge_node(t->p, pfd, 0, 0);
	return r;
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	NS_READ();
	struct target t;
	int r = target_find(parent, name, &t);

	if (r == 0 && S_ISDIR(t.f.st.st_mode))
		r = -EISDIR;
	if (r == 0)
		r = t.f.layer == 0 ? remove_upper(&t, name, false) : remove_lower(&t, name);
	target_done(&t);
	if (r == -ENOENT && req_resent(req)) /* the dead server removed it */
		r = 0;
	fuse_reply_err(req, -r);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	NS_READ();
	struct target t;
	struct dlist l;
	int r = target_find(parent, name, &t);

	if (r == 0 && !S_ISDIR(t.f.st.st_mode))
		r = -ENOTDIR;
	if (r == 0)
		r = dir_list(NULL, t.crel, t.f.layer == 0, t.f.lmask, &l);
	if (r == 0) {
		r = l.n ? -ENOTEMPTY : 0;
		dlist_free(&l);
	}
	if (r == 0)
		r = t.f.layer == 0 ? remove_upper(&t, name, true) : remove_lower(&t, name);
	target_done(&t);
	if (r == -ENOENT && req_resent(req))
		r = 0;
	fuse_reply_err(req, -r);
}
