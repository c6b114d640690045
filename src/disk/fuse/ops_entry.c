/* Operations that add a name: mknod, mkdir, symlink, create, link.
 *
 * Each reserves one inode and the worst-case growth (a block for the parent
 * directory, a block for a directory or long symlink) before touching the
 * upper layer, then settles to what the new object and its parent really
 * use. New objects belong to the caller (fsuid/fsgid, or the parent's group
 * under a set-group-ID directory), so Unix permissions hold for every user
 * with default_permissions. A name hidden by one of the union's whiteouts
 * is created beside it and moved over it; a directory made so is opaque. */
#include "fuse/ops.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

enum mk_kind { MK_NOD, MK_DIR, MK_SYMLINK, MK_FILE };

struct mkreq {
	enum mk_kind kind;
	mode_t mode;
	dev_t rdev;
	const char *target; /* symlink */
	int flags;          /* create */
	uid_t uid;
	gid_t gid;
};

static void mk_owner(fuse_req_t req, const struct stat *pst, struct mkreq *m)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	m->uid = ctx->uid;
	m->gid = (pst->st_mode & S_ISGID) ? pst->st_gid : ctx->gid;
}

/* Create dirfd/name as the caller. Returns an fd for files, else 0. */
static int mk_at(int dirfd, const char *name, const struct mkreq *m)
{
	int fd = 0, r = 0;

	switch (m->kind) {
	case MK_NOD:
		r = mknodat(dirfd, name, m->mode, m->rdev);
		break;
	case MK_DIR:
		r = mkdirat(dirfd, name, m->mode);
		break;
	case MK_SYMLINK:
		r = symlinkat(m->target, dirfd, name);
		break;
	case MK_FILE:
		fd = r = openat(dirfd, name, (m->flags & ~O_NOCTTY) | O_CREAT | O_EXCL | O_NOFOLLOW |
						 O_CLOEXEC, m->mode);
		break;
	}
	if (r < 0)
		return -errno;
	/* A new file is owned through its fd: no second lookup of name. */
	if ((m->kind == MK_FILE ? fchown(fd, m->uid, m->gid)
				: fchownat(dirfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW)) < 0 ||
	    (m->kind != MK_SYMLINK && (m->mode & (S_ISUID | S_ISGID)) &&
	     fchmodat(dirfd, name, m->mode & 07777, 0) < 0)) {
		r = -errno;
		if (m->kind == MK_FILE)
			close(fd);
		unlinkat(dirfd, name, m->kind == MK_DIR ? AT_REMOVEDIR : 0);
		return r;
	}
	return fd;
}

/* The name is taken in upper: by a union whiteout (replace it) or by a
 * concurrent creator (EEXIST). */
static int mk_over_whiteout(int pfd, const char *name, const struct mkreq *m, enum area ar)
{
	struct stat wst;
	char tmp[64], p[PATH_MAX];
	int fd, r;

	if (fstatat(pfd, name, &wst, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !is_union_whiteout(pfd, name, &wst))
		return -EEXIST;
	tmp_name(tmp, sizeof(tmp));
	fd = mk_at(disk_ctx->work_fd, tmp, m);
	if (fd < 0)
		return fd;
	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", disk_ctx->work_fd, tmp);
	if (m->kind == MK_DIR) {
		/* Everything of the image below this name stays deleted. */
		r = lsetxattr(p, XATTR_OPAQUE, "y", 1, 0);
		if (r == 0)
			r = renameat2(disk_ctx->work_fd, tmp, pfd, name, RENAME_EXCHANGE);
		if (r == 0)
			r = unlinkat(disk_ctx->work_fd, tmp, 0); /* the old whiteout */
	} else {
		r = renameat2(disk_ctx->work_fd, tmp, pfd, name, 0);
	}
	if (r < 0) {
		r = -errno;
		if (m->kind == MK_FILE)
			close(fd);
		unlinkat(disk_ctx->work_fd, tmp, m->kind == MK_DIR ? AT_REMOVEDIR : 0);
		return r;
	}
	charge_gone(ar, &wst);
	return fd;
}

/* The name a node of an O_TMPFILE file has until a link gives it one. No
 * lookup ever finds a node by name; this one is only seen in logs. */
#define TMPFILE_NAME "(tmpfile)"

static int tmpfile_at(int dirfd, const struct mkreq *m)
{
	int flags = m->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TMPFILE | 040);
	int fd = openat(dirfd, ".", flags | O_TMPFILE | O_CLOEXEC, m->mode & 07777);

	if (fd < 0)
		return -errno;
	if (fchown(fd, m->uid, m->gid) < 0 ||
	    ((m->mode & (S_ISUID | S_ISGID)) && fchmod(fd, m->mode & 07777) < 0)) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int64_t mk_reserve_bytes(const struct mkreq *m)
{
	bool block = m->kind == MK_DIR || (m->kind == MK_SYMLINK && strlen(m->target) > 59);

	return dirent_growth() + (block ? (int64_t)disk_ctx->blksize : 0);
}

static struct dnode *new_node(struct dnode *p, const char *name, const struct stat *st,
			      uint32_t gen)
{
	/* Its natural id: a new object never takes the id a dead server gave
	 * an earlier one of that name (nodes/journal.c, journal_id_at). */
	struct dnode *n = node_obtain_as(p, name, 0, 0, st, gen, ino_for(0, st->st_ino),
					 false);

	if (n) {
		/* Not charged yet: charge_node below counts it. */
		node_lock(n);
		n->charged_bytes = 0;
		n->charged_inode = false;
		n->unlinked = false;
		n->no_probed_xattrs = true;
		node_unlock(n);
	}
	return n;
}

static int do_make(fuse_req_t req, fuse_ino_t parent, const char *name, struct mkreq *m,
		   struct dnode **out, struct stat *st)
{
	struct dnode *p = node_kget(parent);
	_cleanup_close_ int pfd = -EBADF;
	int64_t res = mk_reserve_bytes(m);
	struct stat pst;
	int fd, r;

	if (!p) /* removed (after a take-over): see op_getattr */
		return -ENOENT;
	if (!name_valid(name))
		return strlen(name) > 255 ? -ENAMETOOLONG : -EINVAL;
	r = charge_reserve(res, 1);
	if (r < 0)
		return r;
	pfd = node_upper_dir(p);
	if (pfd < 0 || fstat(pfd, &pst) < 0) {
		charge_unreserve(res, 1);
		return pfd < 0 ? pfd : -errno;
	}
	mk_owner(req, &pst, m);
	fd = mk_at(pfd, name, m);
	if (fd == -EEXIST)
		fd = mk_over_whiteout(pfd, name, m, node_area_of(p, name));
	if (fd < 0 || fstatat(pfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		charge_unreserve(res, 1);
		return fd < 0 ? fd : -errno;
	}
	*out = new_node(p, name, st, backing_gen(pfd, name));
	if (!*out) {
		charge_unreserve(res, 1);
		return -ENOMEM;
	}
	charge_node_stat(*out, st, -1, res - dirent_growth(), 1);
	charge_node(p, pfd, dirent_growth(), 0);
	return fd;
}

/* A resent make or create that finds name there: the dead server may have
 * died between mk_at's creation (owned by the daemon, host uid 0) and its
 * chown, and the caller would see a file it does not own (tar's utime
 * failed with EPERM in a CVM). Give it the owner the request asked for,
 * as mk_at would have. Only in a user-namespaced CVM (--image-idmap),
 * where host uid 0 owns nothing a caller made: without one, root's own
 * file could not be told from such a leftover. ns_lock held. */
static void mk_owner_again(fuse_ino_t parent, const char *name, const struct mkreq *m,
			   mode_t type)
{
	struct dnode *p = node_kget(parent);
	_cleanup_close_ int pfd = -EBADF;
	struct stat st;

	if (!disk_ctx->idmap_count || !p || (m->uid == 0 && m->gid == 0) ||
	    disk_ctx->idmap_uid == 0 || (pfd = node_upper_dir(p)) < 0 ||
	    fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || (st.st_mode & S_IFMT) != type ||
	    st.st_uid != 0)
		return;
	if (fchownat(pfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (type != S_IFLNK && (m->mode & (S_ISUID | S_ISGID)) &&
	     fchmodat(pfd, name, m->mode & 07777, 0) < 0))
		log_warn("resent request: the owner of '%s': %s", name, strerror(errno));
	else
		log_info("resent request: '%s' made by the dead server given its owner %u:%u",
			 name, (unsigned)m->uid, (unsigned)m->gid);
}

static void make_reply(fuse_req_t req, fuse_ino_t parent, const char *name, struct mkreq *m)
{
	NS_READ();
	struct dnode *n;
	struct stat st;
	int r = do_make(req, parent, name, m, &n, &st);
	mode_t type = m->kind == MK_DIR ? S_IFDIR : m->kind == MK_SYMLINK ? S_IFLNK : m->mode & S_IFMT;

	if (r == -EEXIST && req_resent(req))
		mk_owner_again(parent, name, m, type);
	if (r == -EEXIST && req_resent(req) && reply_made_before(req, parent, name, type))
		return;
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	reply_entry(req, n, &st);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct mkreq m = { .kind = MK_NOD, .mode = mode, .rdev = rdev };

	make_reply(req, parent, name, &m);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mkreq m = { .kind = MK_DIR, .mode = mode };

	make_reply(req, parent, name, &m);
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct mkreq m = { .kind = MK_SYMLINK, .mode = S_IFLNK | 0777, .target = link };

	make_reply(req, parent, name, &m);
}

/* An O_TMPFILE file in parent's upper directory: no name, one inode
 * charged, and an O_PATH fd kept like any unlinked open file (charge.c),
 * until its last close uncharges it or op_link gives it a name. The kernel
 * allows the link only without O_EXCL; the upper file is always linkable. */
static int do_tmpfile(fuse_req_t req, fuse_ino_t parent, struct mkreq *m, struct dnode **out,
		      struct stat *st)
{
	struct dnode *p = node_kget(parent);
	_cleanup_close_ int pfd = -EBADF;
	struct stat pst;
	int fd, r;

	*out = NULL;
	if (!p)
		return -ENOENT;
	r = charge_reserve(0, 1);
	if (r < 0)
		return r;
	pfd = node_upper_dir(p);
	if (pfd < 0 || fstat(pfd, &pst) < 0) {
		charge_unreserve(0, 1);
		return pfd < 0 ? pfd : -errno;
	}
	mk_owner(req, &pst, m);
	fd = tmpfile_at(pfd, m);
	if (fd >= 0 && fstat(fd, st) < 0)
		r = -errno;
	if (fd >= 0 && r == 0) {
		*out = new_node(p, TMPFILE_NAME, st, backing_gen(fd, ""));
		r = *out ? orphan_adopt(*out, fd) : -ENOMEM;
		if (r < 0 && *out)
			node_forget(*out, 1);
	}
	if (fd < 0 || r < 0) {
		charge_unreserve(0, 1);
		if (fd >= 0)
			close(fd);
		return fd < 0 ? fd : r;
	}
	charge_node_stat(*out, st, -1, 0, 1);
	return fd;
}

/* A resent CREATE that finds a regular upper file there: the dead server
 * made it and its reply was lost; it is opened (not truncated again). */
static bool create_made_before(fuse_req_t req, fuse_ino_t parent, const char *name,
			       struct fuse_file_info *fi)
{
	struct fuse_entry_param e = { .attr_timeout = entry_timeout(),
				      .entry_timeout = entry_timeout() };
	int flags = fi->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_DIRECT | 040);
	struct dnode *p = node_kget(parent), *n;
	struct found f;
	bool absorbed;
	int fd;

	if (!p || node_lookup(p, name, &f) < 0 || !S_ISREG(f.st.st_mode) || f.layer != 0)
		return false;
	n = node_obtain(p, name, f.layer, f.lmask, &f.st, f.gen);
	if (!n)
		return false;
	fd = node_open_counted(n, flags | O_NOFOLLOW);
	if (fd < 0) {
		node_forget(n, 1);
		return false;
	}
	e.ino = n->ino;
	e.generation = n->gen;
	e.attr = f.st;
	fill_attr(n, &e.attr);
	/* The dead server's id: see nodes/inode.c. Held through
	 * reply_opened, which uses n after the absorption. */
	node_hold(n);
	absorbed = node_kernel_absorb(n);
	if (!reply_opened(req, n, fd, fi, &e) && !absorbed)
		node_unref(n); /* no lookup given */
	node_unref(n);
	return true;
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	NS_READ();
	/* O_DIRECT: see op_open. */
	struct mkreq m = { .kind = MK_FILE, .mode = mode, .flags = fi->flags & ~O_DIRECT };
	struct fuse_entry_param e = { .attr_timeout = entry_timeout(),
				      .entry_timeout = entry_timeout() };
	struct dnode *n = NULL;
	/* session_io.c hands us the kernel's TMPFILE as a CREATE of "/". */
	bool tmpfile = !strcmp(name, "/");
	int fd;

	if (req_resent(req))
		open_drop_unanswered(req);
	fd = tmpfile ? do_tmpfile(req, parent, &m, &n, &e.attr)
		     : do_make(req, parent, name, &m, &n, &e.attr);

	if (fd == -EEXIST && !tmpfile && req_resent(req))
		mk_owner_again(parent, name, &m, S_IFREG);
	if (fd == -EEXIST && !tmpfile && req_resent(req) && create_made_before(req, parent, name, fi))
		return;
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	if (!tmpfile) { /* (a tmpfile was counted open from the start) */
		node_lock(n);
		n->open_count++;
		node_unlock(n);
	}
	e.ino = n->ino;
	e.generation = n->gen;
	fill_attr(n, &e.attr);
	if (!reply_opened(req, n, fd, fi, &e))
		node_forget(n, 1);
}

/* Hard links live in the upper layer: an image file is copied up first. */
static int link_at(int sfd, int pfd, const char *name, enum area ar)
{
	struct stat wst;
	char tmp[64];

	if (linkat(sfd, "", pfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (fstatat(pfd, name, &wst, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !is_union_whiteout(pfd, name, &wst))
		return -EEXIST;
	tmp_name(tmp, sizeof(tmp));
	if (linkat(sfd, "", disk_ctx->work_fd, tmp, AT_EMPTY_PATH) < 0)
		return -errno;
	if (renameat2(disk_ctx->work_fd, tmp, pfd, name, 0) < 0) {
		int r = -errno;

		unlinkat(disk_ctx->work_fd, tmp, 0);
		return r;
	}
	charge_gone(ar, &wst);
	return 0;
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	NS_READ();
	struct dnode *n = node_kget(ino), *np = node_kget(newparent), *nn;
	_cleanup_close_ int pfd = -EBADF, sfd = -EBADF;
	struct stat st;
	int r;

	if (!n || !np)
		return (void)fuse_reply_err(req, ENOENT);
	if (!name_valid(newname))
		return (void)fuse_reply_err(req, EINVAL);
	/* The links of one file stay in one area (area_move_splits_links). */
	if (node_area_of(np, newname) != n->area)
		return (void)fuse_reply_err(req, EXDEV);
	r = charge_reserve(dirent_growth(), 0);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	r = copy_up(n);
	if (r == 0 && (pfd = node_upper_dir(np)) < 0)
		r = pfd;
	if (r == 0 && (sfd = node_open(n, O_PATH | O_NOFOLLOW)) < 0)
		r = sfd;
	if (r == 0)
		r = link_at(sfd, pfd, newname, node_area_of(np, newname));
	if (r == 0 && fstat(sfd, &st) < 0)
		r = -errno;
	if (r < 0) {
		charge_unreserve(dirent_growth(), 0);
		if (r == -EEXIST && req_resent(req) &&
		    reply_made_before(req, newparent, newname, n->type))
			return;
		return (void)fuse_reply_err(req, -r);
	}
	node_keep_handle(n);
	orphan_linked(n);
	charge_node(np, pfd, dirent_growth(), 0);
	nn = node_obtain(np, newname, 0, 0, &st, backing_gen(pfd, newname));
	if (!nn)
		return (void)fuse_reply_err(req, ENOMEM);
	reply_entry(req, nn, &st);
}
