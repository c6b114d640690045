/* How the kernel does I/O on each open file: through its page cache,
 * directly through us, or passing reads through to DATA/upper.
 *
 * - Write-only and O_DIRECT opens: direct I/O. A write-only fd can neither
 *   read nor mmap, so the page cache gains it nothing, and without it each
 *   write(2) is one WRITE request (the cached path splits a write at every
 *   partly written page and first asks for security.capability).
 * - Read-only opens of upper files of 128 KiB or more: passthrough
 *   (passthrough.c), when no open of the file uses the page cache. Smaller
 *   files stay in the page cache: registering a backing file makes each
 *   open ~8 µs dearer (bench/fuse-rtt.py), while a small file read again
 *   costs no request at all from the page cache, and once costs one READ.
 *   Image files are never handed over: a later copy-up would leave the
 *   kernel reading (or mapping, for a writer) the image file itself.
 * - Everything else: the page cache, kept across opens (the daemon is the
 *   only writer).
 *
 * The kernel allows no page-cache or direct open of a file while a
 * passthrough open exists and fails such an open with EIO, so while one
 * exists every open of the file is a passthrough open. It checks when it
 * takes our reply, later than we choose: a direct open chosen just before
 * a reader's passthrough may reach the kernel after it. So no passthrough
 * starts while a page-cache or direct open exists (from our choice to its
 * RELEASE, which the kernel sends after letting go), and while one exists
 * every open of the file is a passthrough open: a writer's gets FOPEN_DIRECT_IO with
 * it, which sends its reads and writes to us (the limit still holds at
 * write(2)) while an mmap maps the upper file itself: mmap_guard.c keeps
 * such a file free of holes, so that its page faults allocate nothing
 * uncharged. The mode is kept in
 * the upper half of fh; the counts per node say which modes are in use. */
#include "fuse/ops.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum open_io { IO_DIRECT, IO_CACHED, IO_PASSTHROUGH };

static enum open_io fh_io(const struct fuse_file_info *fi)
{
	return (enum open_io)(fi->fh >> 32);
}

bool open_is_direct(int flags)
{
	return (flags & O_ACCMODE) == O_WRONLY || (flags & O_DIRECT);
}

static bool open_is_reader(int flags)
{
	return (flags & O_ACCMODE) == O_RDONLY && !(flags & O_DIRECT);
}

/* One READ request's worth: the kernel reads ahead 128 KiB at a time. */
#define PASSTHROUGH_MIN_SIZE (128 << 10)

static bool open_passes_through(struct dnode *n, int fd, bool reader)
{
	struct stat st;
	int id;

	if (n->passthrough_opens)
		return true;
	if (!reader || n->layer != 0 || n->cached_opens || n->direct_opens ||
	    !passthrough_enabled() ||
	    fstat(fd, &st) < 0 || st.st_size < PASSTHROUGH_MIN_SIZE)
		return false;
	id = passthrough_backing_open(fd);
	if (id <= 0)
		return false;
	n->backing_id = (uint32_t)id;
	return true;
}

/* Under n's lock: the mode for a new open of n on fd. */
static enum open_io open_io_choose(struct dnode *n, int fd, int flags)
{
	if (open_passes_through(n, fd, open_is_reader(flags))) {
		n->passthrough_opens++;
		return IO_PASSTHROUGH;
	}
	if (open_is_direct(flags)) {
		n->direct_opens++;
		return IO_DIRECT;
	}
	n->cached_opens++;
	n->page_cached = true;
	return IO_CACHED;
}

static void open_io_end(struct dnode *n, enum open_io io)
{
	uint32_t unused = 0;

	node_lock(n);
	if (io == IO_CACHED && n->cached_opens)
		n->cached_opens--;
	if (io == IO_DIRECT && n->direct_opens)
		n->direct_opens--;
	if (io == IO_PASSTHROUGH && n->passthrough_opens && !--n->passthrough_opens) {
		unused = n->backing_id;
		n->backing_id = 0;
	}
	node_unlock(n);
	/* The kernel let go of its files before it sent the last RELEASE. */
	if (unused)
		passthrough_backing_close(unused);
}

/* Under n's lock: a passthrough open that can read and write may map the
 * upper file shared and writable (mmap_guard.c). A write-only open cannot
 * map at all, a read-only one only for reading. */
static int open_passthrough_guard(struct dnode *n, int fd, int flags)
{
	if ((flags & O_ACCMODE) != O_RDWR)
		return 0;
	return mmap_guard_open(n, fd);
}

/* Test switch (CVMFS_DISK_TEST_DIE_AT_OPEN=NAME, tests/disk/test_survive_open.py):
 * the server dies between journaling an open of NAME and replying, once
 * per daemon, as a crash there would: the kernel resends the request. */
static void test_die_before_reply(struct dnode *n)
{
	static const char *name;
	static int state; /* 0: not read, 1: read */
	bool hit;

	if (!__atomic_load_n(&state, __ATOMIC_ACQUIRE)) {
		name = getenv("CVMFS_DISK_TEST_DIE_AT_OPEN");
		__atomic_store_n(&state, 1, __ATOMIC_RELEASE);
	}
	if (!name || !*name)
		return;
	node_lock(n);
	hit = n->name && !strcmp(n->name, name);
	node_unlock(n);
	if (hit && journal_test_once())
		raise(SIGKILL);
}

/* Answers an OPEN (e NULL) or CREATE of n, already counted in its
 * open_count, on fd. On failure (the opener was interrupted, or no room
 * to make a writable passthrough file whole) the open is undone and false
 * returned. */
bool reply_opened(fuse_req_t req, struct dnode *n, int fd, struct fuse_file_info *fi,
		  const struct fuse_entry_param *e)
{
	enum open_io io;
	int r = 0;

	node_lock(n);
	io = open_io_choose(n, fd, fi->flags);
	if (io == IO_PASSTHROUGH)
		r = open_passthrough_guard(n, fd, fi->flags);
	if (io == IO_PASSTHROUGH && r == 0)
		passthrough_reply_arm(n->backing_id);
	node_unlock(n);
	fi->fh = (uint64_t)(uint32_t)fd | (uint64_t)io << 32;
	/* Before the reply: a server taking over counts it again. */
	journal_open(fd, n->ino, io, io == IO_PASSTHROUGH ? n->backing_id : 0, req_unique(req));
	test_die_before_reply(n);
	fi->direct_io = io == IO_DIRECT || (io == IO_PASSTHROUGH && !open_is_reader(fi->flags));
	fi->keep_cache = io == IO_CACHED;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		r = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	passthrough_reply_disarm();
	if (r == 0)
		return true;
	open_released(n, fi);
	return false;
}

/* The kernel released fi (or never got it): close and uncount. */
void open_released(struct dnode *n, struct fuse_file_info *fi)
{
	journal_release(fh_fd(fi)); /* before the number can be reused */
	close(fh_fd(fi));
	if (!n)
		return;
	open_io_end(n, fh_io(fi));
	charge_released(n);
}

/* An open file a dead server knew unlinked (no name left): a node of its
 * own again under the kernel's id, reached through the fd as before, and
 * counted open once (orphan_adopt). Uncharged: the take-over's recount
 * did not see it either, so its last close uncharges nothing. */
static struct dnode *orphan_restore(int fd, uint64_t ino)
{
	struct stat st;
	struct dnode *n;

	if (fstat(fd, &st) < 0 || st.st_nlink != 0 || !S_ISREG(st.st_mode))
		return NULL;
	n = node_obtain_as(disk_ctx->root, "(deleted)", 0, 0, &st, backing_gen(fd, ""), ino,
			   false);
	if (!n)
		return NULL;
	if (n->ino != ino || orphan_adopt(n, fd) < 0) {
		node_forget(n, 1);
		return NULL;
	}
	node_drop_real(n);
	node_lock(n);
	n->charged_bytes = 0;
	n->charged_inode = false;
	n->orphan_restored = true;
	node_unlock(n);
	node_count_unknown(n);
	return n;
}

/* A server taking the connection over: the open file fd (a dead server's,
 * kept in the fd table) counted on its node again, as reply_opened did. */
void open_restore(int fd)
{
	NS_READ();
	uint64_t ino;
	unsigned io;
	uint32_t backing_id;
	struct dnode *n;

	if (!journal_open_get(fd, &ino, &io, &backing_id))
		return;
	journal_kept(fd);
	n = node_kget(ino);
	if (!n && !(n = orphan_restore(fd, ino)))
		return; /* the fd stays: the kernel's RELEASE closes it */
	node_lock(n);
	if (!n->orphan_restored)
		n->open_count++;
	n->orphan_restored = false;
	if (io == IO_PASSTHROUGH) {
		n->passthrough_opens++;
		n->backing_id = backing_id;
	} else if (io == IO_DIRECT) {
		n->direct_opens++;
	} else {
		n->cached_opens++;
		n->page_cached = true;
	}
	node_unlock(n);
}

void open_drop_unanswered(fuse_req_t req)
{
	int fd = journal_unanswered(req_unique(req));
	struct fuse_file_info fi = { 0 };
	uint64_t ino;
	unsigned io;
	uint32_t backing_id;

	if (fd < 0 || !journal_open_get(fd, &ino, &io, &backing_id))
		return;
	fi.fh = (uint64_t)(uint32_t)fd | (uint64_t)io << 32;
	open_released(node_get(ino), &fi);
}
