/* Lookup across layers, and the union's whiteouts.
 *
 * Upper layer: only the union's own markers count: a char 0/0 device with
 * the trusted.cvmfs.whiteout xattr hides a name, trusted.cvmfs.opaque on a
 * directory hides everything below it. A user's char 0/0 device, .wh.*
 * file or trusted.overlay.* xattr in the upper layer is just that (kernel
 * overlayfs keeps its own whiteouts there when Docker uses this disk).
 * Image layers: OCI (.wh.NAME, .wh..wh..opq) and overlayfs (char 0/0,
 * trusted.overlay.opaque=y) markers are metadata and never visible. */
#include "union/union.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static int at_lgetxattr(int dirfd, const char *name, const char *key, char *buf, size_t size)
{
	char p[PATH_MAX];
	ssize_t r;

	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", dirfd, name);
	r = lgetxattr(p, key, buf, size);
	return r < 0 ? -errno : (int)r;
}

static bool is_char00(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

bool is_union_whiteout(int dirfd, const char *name, const struct stat *st)
{
	char v[4];

	return is_char00(st) && at_lgetxattr(dirfd, name, XATTR_WHITEOUT, v, sizeof(v)) >= 0;
}

static bool upper_dir_opaque(int dirfd, const char *name)
{
	char v[4];

	return at_lgetxattr(dirfd, name, XATTR_OPAQUE, v, sizeof(v)) >= 0;
}

bool lower_dir_opaque(int dirfd, const char *name)
{
	char p[PATH_MAX], v[4];
	struct stat st;
	int r;

	snprintf(p, sizeof(p), "%s/" OCI_OPAQUE, name);
	if (fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return true;
	r = at_lgetxattr(dirfd, name, XATTR_OVL_OPAQUE, v, sizeof(v));
	return r > 0 && v[0] == 'y';
}

void layer_dirs_init(struct layer_dirs *ld, const char *prel)
{
	ld->prel = prel;
	ld->prel_own = NULL;
	ld->dir = NULL;
	ld->borrowed = 0;
	ld->rcu = false;
	for (unsigned i = 0; i <= MAX_LOWER; i++)
		ld->fd[i] = LAYER_DIR_UNOPENED;
}

void layer_dirs_close(struct layer_dirs *ld)
{
	for (unsigned i = 0; i <= MAX_LOWER; i++)
		if (ld->fd[i] >= 0 && !(ld->borrowed & (1ULL << i)))
			close(ld->fd[i]);
	if (ld->rcu)
		urcu_memb_read_unlock();
	ld->rcu = false;
	ld->dir = NULL;
	free(ld->prel_own);
	ld->prel_own = NULL;
}

/* A node's union path costs a malloc and a walk to the root: built only
 * for a layer whose directory no kept fd covers (ns_lock held). */
static int layer_dir_by_path(struct layer_dirs *ld, unsigned i)
{
	if (!ld->prel) {
		int r = ld->dir ? node_path(ld->dir, &ld->prel_own) : -EINVAL;

		if (r < 0)
			return r;
		ld->prel = ld->prel_own;
	}
	return layer_open(i, ld->prel, O_PATH | O_DIRECTORY);
}

/* The directory prel in layer i: an O_PATH fd, or -errno. An image
 * layer's through the node's kept fds where there is a node. */
static int layer_dir(struct layer_dirs *ld, unsigned i)
{
	int fd = -EAGAIN;
	bool owned = true;

	if (ld->fd[i] != LAYER_DIR_UNOPENED)
		return ld->fd[i];
	if (i > 0 && ld->dir) {
		if (!ld->rcu)
			urcu_memb_read_lock();
		ld->rcu = true;
		fd = node_lower_dirfd(ld->dir, i, &owned);
	}
	if (fd == -EAGAIN)
		fd = layer_dir_by_path(ld, i);
	else if (fd >= 0 && !owned)
		ld->borrowed |= 1ULL << i;
	return ld->fd[i] = fd;
}

/* The generation of what was found at name in layer: from the ghost it
 * left where a directory node is known (a cold walk), else from its
 * backing file handle (one system call). */
static uint32_t found_gen(struct layer_dirs *ld, unsigned layer, const char *name,
			  const struct stat *st)
{
	uint32_t gen;

	if (ld->dir && ghost_gen(ino_for(layer, st->st_ino), ld->dir->ino, name, &gen))
		return gen;
	return backing_gen(layer_dir(ld, layer), name);
}

/* In lower layer j: 1 found (f->st), 0 absent, -ENOENT whited out. */
static int lower_probe(struct layer_dirs *ld, unsigned j, const char *name, struct stat *st,
		       bool *opaque)
{
	int dfd = layer_dir(ld, j + 1);
	char wh[NAME_MAX + 8];

	if (dfd < 0)
		return 0; /* this layer has no such directory */
	if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (is_char00(st))
			return -ENOENT;
		*opaque = S_ISDIR(st->st_mode) && lower_dir_opaque(dfd, name);
		return 1;
	}
	snprintf(wh, sizeof(wh), OCI_WH_PREFIX "%s", name);
	if (fstatat(dfd, wh, st, AT_SYMLINK_NOFOLLOW) == 0)
		return -ENOENT;
	return 0;
}

/* Upper layer: 1 found, 0 absent, -ENOENT whited out. Whether a
 * directory is opaque matters only if an image layer has the parent
 * (lmask): elsewhere (home, Docker's tree) the xattr is not even read. */
static int upper_probe(struct layer_dirs *ld, uint32_t lmask, const char *name, struct stat *st,
		       bool *opaque)
{
	int dfd = layer_dir(ld, 0);

	if (dfd < 0)
		return dfd == -ENOENT || dfd == -ENOTDIR ? 0 : dfd;
	if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (is_union_whiteout(dfd, name, st))
		return -ENOENT;
	*opaque = S_ISDIR(st->st_mode) && lmask && upper_dir_opaque(dfd, name);
	return 1;
}

int union_lookup_in(struct layer_dirs *ld, bool upper, uint32_t lmask, const char *name,
		    struct found *f)
{
	bool found = false, opaque = false;
	struct stat st;
	int r;

	f->lmask = 0;
	if (upper) {
		r = upper_probe(ld, lmask, name, &f->st, &opaque);
		if (r < 0)
			return r;
		if (r > 0) {
			found = true;
			f->layer = 0;
			if (!S_ISDIR(f->st.st_mode) || opaque) {
				f->gen = found_gen(ld, 0, name, &f->st);
				return 0;
			}
		}
	}
	/* OCI markers in image layers are metadata, never entries. */
	if (oci_is_meta(name)) {
		if (found)
			f->gen = found_gen(ld, 0, name, &f->st);
		return found ? 0 : -ENOENT;
	}
	for (unsigned j = 0; j < disk_ctx->nlayers - 1 && lmask >> j; j++) {
		if (!(lmask & (1u << j)))
			continue;
		r = lower_probe(ld, j, name, &st, &opaque);
		if (r < 0)
			break;
		if (r == 0)
			continue;
		if (found && (!S_ISDIR(st.st_mode) || !S_ISDIR(f->st.st_mode)))
			break; /* a non-directory below a directory is hidden */
		if (!found) {
			f->st = st;
			f->layer = j + 1;
			found = true;
		}
		if (!S_ISDIR(st.st_mode))
			break;
		f->lmask |= 1u << j;
		if (opaque)
			break;
	}
	if (!found)
		return -ENOENT;
	f->gen = found_gen(ld, f->layer, name, &f->st);
	return 0;
}

int union_lookup(const char *prel, bool upper, uint32_t lmask, const char *name,
		 struct found *f)
{
	struct layer_dirs ld;
	int r;

	layer_dirs_init(&ld, prel);
	r = union_lookup_in(&ld, upper, lmask, name, f);
	layer_dirs_close(&ld);
	return r;
}

void layer_dirs_init_dir(struct layer_dirs *ld, const struct dir_where *w, struct dnode *dir)
{
	int fd;

	layer_dirs_init(ld, NULL);
	ld->dir = dir;
	/* The upper directory through the fd it keeps (path.c), not its path. */
	if (w->upper && (fd = node_upper_dirfd(dir)) >= 0) {
		ld->fd[0] = fd;
		ld->borrowed |= 1;
	}
}

int node_lookup(struct dnode *parent, const char *name, struct found *f)
{
	struct layer_dirs ld;
	struct dir_where w;
	int r;

	node_dir_where(parent, &w);
	layer_dirs_init_dir(&ld, &w, parent);
	r = union_lookup_in(&ld, w.upper, w.lmask, name, f);
	layer_dirs_close(&ld);
	return r;
}

bool node_lower_has(struct dnode *parent, const char *name)
{
	struct layer_dirs ld;
	struct dir_where w;
	struct found f;
	bool has = false;

	node_dir_where(parent, &w);
	if (w.lmask) {
		layer_dirs_init_dir(&ld, &w, parent);
		has = union_lookup_in(&ld, false, w.lmask, name, &f) == 0;
		layer_dirs_close(&ld);
	}
	return has;
}

int tmp_name(char *buf, size_t size)
{
	unsigned long seq = __atomic_add_fetch(&disk_ctx->tmp_seq, 1, __ATOMIC_RELAXED);

	return snprintf(buf, size, "t%d.%lu", (int)getpid(), seq) < (int)size ? 0 : -ENAMETOOLONG;
}

/* Made in the work directory with its marker already set, so the upper
 * layer never holds an unmarked 0/0 device of ours. Reserves one inode and
 * a directory block; whiteout_settle() or whiteout_abort() ends that. */
int whiteout_prepare(char *tmp, size_t size, struct stat *st)
{
	char p[PATH_MAX];
	int r = charge_reserve(dirent_growth(), 1);

	if (r < 0)
		return r;
	r = tmp_name(tmp, size);
	if (r == 0 && mknodat(disk_ctx->work_fd, tmp, S_IFCHR, makedev(0, 0)) < 0)
		r = -errno;
	if (r < 0) {
		charge_unreserve(dirent_growth(), 1);
		return r;
	}
	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", disk_ctx->work_fd, tmp);
	if (lsetxattr(p, XATTR_WHITEOUT, "y", 1, 0) < 0 ||
	    fstatat(disk_ctx->work_fd, tmp, st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		whiteout_abort(tmp);
		return r;
	}
	return 0;
}

/* The prepared whiteout is in place (or went nowhere): charge or undo. */
void whiteout_settle(enum area ar, const struct stat *st)
{
	charge_settle(ar, dirent_growth(), blocks_bytes(st), 1, 1);
}

void whiteout_abort(const char *tmp)
{
	unlinkat(disk_ctx->work_fd, tmp, 0);
	charge_unreserve(dirent_growth(), 1);
}

int whiteout_make(int dirfd, const char *name, bool replace, enum area ar)
{
	char tmp[64];
	struct stat st;
	int r = whiteout_prepare(tmp, sizeof(tmp), &st);

	if (r < 0)
		return r;
	if (renameat2(disk_ctx->work_fd, tmp, dirfd, name, replace ? 0 : RENAME_NOREPLACE) < 0) {
		r = -errno;
		whiteout_abort(tmp);
		return r;
	}
	whiteout_settle(ar, &st);
	return 0;
}

/* rmdir of an upper directory whose name an image layer also has: the
 * whiteout takes the directory's place in one renameat2(RENAME_EXCHANGE),
 * so the image's directory never shows through, not even for an instant or
 * after a crash; the directory, now in DATA/work, is removed after. */
int rmdir_hiding(int dirfd, const char *name, enum area ar)
{
	char tmp[64];
	struct stat st;
	int r = whiteout_prepare(tmp, sizeof(tmp), &st);

	if (r < 0)
		return r;
	if (renameat2(disk_ctx->work_fd, tmp, dirfd, name, RENAME_EXCHANGE) < 0) {
		r = -errno;
		whiteout_abort(tmp);
		return r;
	}
	if (unlinkat(disk_ctx->work_fd, tmp, AT_REMOVEDIR) < 0) {
		r = -errno; /* not empty after all: put it back */
		if (renameat2(disk_ctx->work_fd, tmp, dirfd, name, RENAME_EXCHANGE) < 0)
			log_error_errno(-errno, "rmdir %s: directory left in DATA/work/%s", name, tmp);
		whiteout_abort(tmp);
		return r;
	}
	whiteout_settle(ar, &st);
	return 0;
}

int whiteouts_clear(int dirfd, enum area ar)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (de->d_type != DT_CHR && de->d_type != DT_UNKNOWN)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !is_union_whiteout(dirfd, de->d_name, &st))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			charge_gone(ar, &st);
	}
	return 0;
}

/* --image-idmap UID:GID:COUNT: a user-namespaced CVM maps its root to UID
 * on the host, so image files owned by host root would show as nobody and
 * be read-only to it. Ids below COUNT in the image layers are shown shifted
 * (0 -> UID), and a copy-up keeps the shifted owner, as an id-mapped mount
 * would; DATA/upper holds host ids. */
int image_idmap_parse(const char *s)
{
	unsigned long long uid, gid, count;
	int end = 0;

	if (sscanf(s, "%llu:%llu:%llu%n", &uid, &gid, &count, &end) != 3 || s[end] ||
	    !count || uid + count > UINT32_MAX || gid + count > UINT32_MAX)
		return -EINVAL;
	disk_ctx->idmap_uid = (uint32_t)uid;
	disk_ctx->idmap_gid = (uint32_t)gid;
	disk_ctx->idmap_count = (uint32_t)count;
	return 0;
}

/* The union's root is DATA/upper itself, made by us as host root: with an
 * id map, it takes the owner the image's root shows (root of the CVM), as
 * a copy-up would, or root inside could not create anything in "/" (the
 * kernel grants no capability over an inode whose owner is not mapped into
 * the caller's user namespace). Only while it is still ours (0:0): an owner
 * set from inside stays. */
int upper_root_adopt(void)
{
	struct stat up, img;

	if (!disk_ctx->idmap_count || disk_ctx->nlayers < 2 || fstat(disk_ctx->layers[0].fd, &up) < 0 ||
	    fstat(disk_ctx->layers[1].fd, &img) < 0)
		return 0;
	image_owner(&img);
	if (up.st_uid != 0 || up.st_gid != 0 || (img.st_uid == 0 && img.st_gid == 0))
		return 0;
	if (fchownat(disk_ctx->layers[0].fd, "", img.st_uid, img.st_gid, AT_EMPTY_PATH) < 0)
		return log_error_errno(-errno, "%s/upper: taking the image root's owner %u:%u",
				       disk_ctx->cfg.data, img.st_uid, img.st_gid);
	return 0;
}

void image_owner(struct stat *st)
{
	if (!disk_ctx->idmap_count)
		return;
	if (st->st_uid < disk_ctx->idmap_count)
		st->st_uid += disk_ctx->idmap_uid;
	if (st->st_gid < disk_ctx->idmap_count)
		st->st_gid += disk_ctx->idmap_gid;
}
