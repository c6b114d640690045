/* Charging upper objects. Every operation that can grow usage reserves its
 * worst case first (acct_reserve: fails with ENOSPC before anything is
 * written), acts, then re-measures the touched objects and settles the
 * reservation to the real st_blocks change. A node remembers what it was
 * last charged, so the change is exact even with concurrent writers. */
#include "quota/quota.h"

#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int64_t dirent_growth(void)
{
	return (int64_t)disk_ctx->blksize;
}

/* Published at once when usage crosses 90 % or 100 % of the limit. */
static void check_level(void)
{
	uint64_t lim = __atomic_load_n(&disk_ctx->acct.limit_bytes, __ATOMIC_RELAXED);
	int64_t used = __atomic_load_n(&disk_ctx->acct.used_bytes, __ATOMIC_RELAXED);
	int level = 0, old;

	if (lim && used > 0) {
		if ((uint64_t)used >= lim)
			level = 2;
		else if ((uint64_t)used * 10 >= lim * 9)
			level = 1;
	}
	old = __atomic_exchange_n(&disk_ctx->level, level, __ATOMIC_RELAXED);
	if (old != level)
		publish_kick();
}

int charge_reserve(int64_t bytes, int64_t inodes)
{
	return acct_reserve(&disk_ctx->acct, bytes, inodes);
}

void charge_unreserve(int64_t bytes, int64_t inodes)
{
	acct_unreserve(&disk_ctx->acct, bytes, inodes);
}

void charge_settle(enum area ar, int64_t res_b, int64_t delta_b, int64_t res_i, int64_t delta_i)
{
	acct_settle(&disk_ctx->acct, ar, res_b, delta_b, res_i, delta_i);
	if (delta_b)
		check_level();
}

int charge_node_stat(struct dnode *n, const struct stat *now, int fd, int64_t res_b,
		     int64_t res_i)
{
	struct stat st;
	int64_t db, di = 0;
	int r = 0;

	node_lock(n);
	if (n->layer != 0) {
		node_unlock(n);
		charge_unreserve(res_b, res_i);
		return 0;
	}
	if (now)
		st = *now;
	else if (fd >= 0)
		r = fstat(fd, &st) < 0 ? -errno : 0;
	else
		r = node_stat(n, &st);
	if (r < 0 || (n->unlinked && !n->open_count)) {
		node_unlock(n);
		charge_unreserve(res_b, res_i);
		return r;
	}
	db = blocks_bytes(&st) - n->charged_bytes;
	if (!n->charged_inode)
		di = 1;
	n->charged_bytes = blocks_bytes(&st);
	n->charged_inode = true;
	if (S_ISREG(n->type))
		n->written = true; /* see node_settle_writeback() */
	charge_settle(n->area, res_b, db, res_i, di);
	node_unlock(n);
	return 0;
}

int charge_node(struct dnode *n, int fd, int64_t res_b, int64_t res_i)
{
	return charge_node_stat(n, NULL, fd, res_b, res_i);
}

static void orphan_drop(struct dnode *n)
{
	if (n->orphan_fd > 0)
		close(n->orphan_fd);
	n->orphan_fd = 0;
}

static void uncharge_locked(struct dnode *n)
{
	charge_settle(n->area, 0, -n->charged_bytes, 0, n->charged_inode ? -1 : 0);
	n->charged_bytes = 0;
	n->charged_inode = false;
	if (n->type != S_IFDIR)
		orphan_drop(n);
}

static int orphan_keep(int fd)
{
	int kept = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (kept < 0)
		log_warn("%s: keeping an unlinked object: %s (fstat of it fails)", disk_ctx->cfg.name,
			 strerror(errno));
	return kept < 0 ? 0 : kept;
}

/* The object at fd (O_PATH) lost a name. Without any left and while open,
 * it keeps fd: fstat, fchmod, ftruncate, futimens and xattrs of the open
 * file arrive as requests on the node, not on the file (GETATTR carries no
 * handle), and must still find it. A removed directory keeps it until the
 * kernel forgets the node (node_retire): we do not see a directory's
 * opens, and a process may sit in it (stat of "." works on ext4). */
void charge_unlinked(struct dnode *n, const struct stat *after, int fd)
{
	if (after->st_nlink > 0 && !S_ISDIR(after->st_mode))
		return; /* another hard link keeps the object */
	node_drop_real(n);
	node_lock(n);
	/* Its inode number may go to another object once it is freed: what
	 * the ghost of its natural id knows no longer holds (ghost_gen). */
	ghost_drop(ino_for(n->layer, n->real_ino));
	n->unlinked = true;
	if ((n->open_count || S_ISDIR(after->st_mode)) && !n->orphan_fd)
		n->orphan_fd = orphan_keep(fd);
	if (!n->open_count)
		uncharge_locked(n);
	node_unlock(n);
}

/* n is a new O_TMPFILE file open on fd: unlinked from the start. Its
 * (layer, inode) entry stays, so that a link finds this node again; the
 * last close drops it. */
int orphan_adopt(struct dnode *n, int fd)
{
	char p[64];
	int kept;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	kept = open(p, O_PATH | O_CLOEXEC);
	if (kept < 0)
		return -errno;
	node_lock(n);
	n->unlinked = true;
	n->orphan_fd = kept;
	n->open_count++;
	node_unlock(n);
	return 0;
}

/* An unlinked object got a name again (linkat of an O_TMPFILE file): it is
 * reached through its handle from now on, and stays charged at its close. */
void orphan_linked(struct dnode *n)
{
	node_lock(n);
	if (n->unlinked && n->fh) {
		n->unlinked = false;
		close(n->orphan_fd);
		n->orphan_fd = 0;
	}
	node_unlock(n);
}

/* Last close of an object whose last link is gone: its blocks are freed
 * now. (A mapping keeps its open file: the kernel releases a mapped file,
 * passthrough or not, only at munmap.) */
void charge_released(struct dnode *n)
{
	bool gone;

	node_lock(n);
	if (n->open_count)
		n->open_count--;
	gone = !n->open_count && n->unlinked;
	if (gone)
		uncharge_locked(n);
	node_unlock(n);
	/* Its inode number is free for a new object now. */
	if (gone)
		node_drop_real(n);
}

/* An upper object with no node went: see charge_unlinked for the ghost. */
void charge_gone(enum area ar, const struct stat *st)
{
	ghost_drop(ino_for(0, st->st_ino));
	charge_settle(ar, 0, -blocks_bytes(st), 0, -1);
}

/* Upper files written through this node may have gained blocks since their
 * last measure (ext4 allocates extent blocks at writeback). A node made
 * again later starts from the blocks it then has, so settle them now. Nodes
 * that were only looked up skip the stat: forgetting a million of them (an
 * unmount, drop_caches) is then pure bookkeeping. */
void charge_settle_writeback(struct dnode *n)
{
	bool measure;

	node_lock(n);
	measure = n->layer == 0 && S_ISREG(n->type) && n->charged_inode && !n->unlinked &&
		  n->written;
	node_unlock(n);
	if (measure)
		charge_node(n, -1, 0, 0);
}

