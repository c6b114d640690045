/* File handles that outlive the kernel's caches.
 *
 * The kernel encodes a handle to the disk as (node id, generation) and,
 * once it has forgotten the node, asks LOOKUP(id, ".") to find it again
 * (and LOOKUP(id, "..") for a directory's parent). Node ids are
 * (layer << 48 | real inode) and generations the backing inode's, so a
 * handle keeps its meaning for as long as its object lives, across cache
 * drops and daemon restarts. To answer, the daemon walks the union down to
 * the object again, from where it can find it:
 *  - ghosts: for each node the kernel forgot, (parent id, name), kept in a
 *    bounded table. Any object type, any backing filesystem.
 *  - otherwise, for directories of layers whose handles are (ino32, gen),
 *    like ext4's: open_by_handle_at with generation 0 (ext4 then skips the
 *    generation check; the kernel checks ours) gives the directory and the
 *    kernel's path of it, which survives a daemon restart.
 * Whatever is found is what a lookup by name gives, and it must carry the
 * asked id: a forged id reaches nothing a path walk would not. */
#include "union.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/rcu_thread.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- layers ---- */

void layer_handles_open(struct layer *l)
{
	union fh_buf b = { .fh.handle_bytes = MAX_HANDLE_SZ };
	char proc[64], buf[PATH_MAX];
	ssize_t len;
	int mount_id;

	l->handle_mnt_fd = -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", l->fd);
	len = readlink(proc, buf, sizeof(buf) - 1);
	if (len <= 0 || name_to_handle_at(l->fd, "", &b.fh, &mount_id, AT_EMPTY_PATH) < 0 ||
	    b.fh.handle_type != FH_INO32_GEN || b.fh.handle_bytes != FH_INO32_GEN_BYTES)
		return; /* ghosts only */
	buf[len] = '\0';
	l->kpath = strdup(buf);
	/* open_by_handle_at takes no O_PATH fd for its mount. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", l->fd);
	if (l->kpath)
		l->handle_mnt_fd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

void layer_handles_close(struct layer *l)
{
	if (l->handle_mnt_fd >= 0)
		close(l->handle_mnt_fd);
	l->handle_mnt_fd = -1;
	free(l->kpath);
	l->kpath = NULL;
}

/* ---- which handles ---- */

/* Kernels with FUSE 7.44+ (Linux 6.16+) judge a dentry by a per-connection
 * epoch, and the dentry they make for a decoded handle of a non-directory
 * (d_obtain_alias) never gets one: its first revalidation calls it stale
 * without asking us. Overlayfs keeps such a dentry as the copy-up origin
 * of every file it copied up and revalidates it on each access, so every
 * later access to the file would fail with ESTALE (Docker's overlay2,
 * index=off included). d_obtain_alias() returns a connected dentry of the
 * inode where one exists, so before answering we look the object up by
 * its path through our own mount (connect_by_path): the kernel then holds
 * the inode with a dentry that a lookup made, epoch and all. Directories
 * need none of this: the kernel reconnects them by name itself. */
static bool files_need_alias;
static char *self_mnt; /* our mountpoint, absolute, as this process sees it */

void handles_init(unsigned proto_minor)
{
	files_need_alias = proto_minor >= 44;
}

void handles_set_mountpoint(const char *mnt)
{
	free(self_mnt);
	self_mnt = realpath(mnt, NULL);
}

struct self_walk {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int refs;
	char *path;
};

static void self_walk_put(struct self_walk *w)
{
	bool last;

	pthread_mutex_lock(&w->lock);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (last) {
		free(w->path);
		free(w);
	}
}

/* A thread of its own: our lookups are served by the other workers, and
 * the requester gives up waiting after a while (a kernel lock held across
 * the decode could make the walk wait on the requester itself). */
static void *self_walk_run(void *arg)
{
	struct self_walk *w = arg;
	int fd = open(w->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	self_walk_put(w);
	return NULL;
}

static void self_walk_wait(struct self_walk *w)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	pthread_mutex_lock(&w->lock);
	while (!w->done && pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0)
		;
	pthread_mutex_unlock(&w->lock);
}

void handles_connect(struct dnode *n)
{
	_cleanup_free_ char *rel = NULL;
	struct self_walk *w;
	pthread_t t;

	if (!files_need_alias || n->type == S_IFDIR || !self_mnt || node_path(n, &rel) < 0)
		return;
	w = calloc(1, sizeof(*w));
	if (!w || asprintf(&w->path, "%s/%s", self_mnt, rel) < 0) {
		free(w);
		return;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->refs = 2;
	if (pthread_create(&t, NULL, self_walk_run, w) != 0) {
		free(w->path);
		free(w);
		return;
	}
	pthread_detach(t);
	self_walk_wait(w);
	self_walk_put(w);
}

/* ---- finding a node again ---- */

/* Nodes found again are what a path walk finds: ghosts of ghosts may
 * form a cycle once stale, so the walk up is bounded. */
#define FIND_DEPTH_MAX 8192

static struct dnode *find_node(uint64_t ino, unsigned depth, int *err);

/* name below dir (held), as LOOKUP finds it; the result is held. */
static struct dnode *walk_step(struct dnode *dir, const char *name, int *err)
{
	struct found f;
	struct dnode *n;
	int r;

	if (dir->type != S_IFDIR || !name_valid(name)) {
		*err = -ESTALE;
		return NULL;
	}
	r = node_lookup(dir, name, &f);
	if (r < 0) {
		*err = r == -ENOENT || r == -ENOTDIR ? -ESTALE : r;
		return NULL;
	}
	n = node_obtain(dir, name, f.layer, f.lmask, &f.st, f.gen);
	if (!n)
		*err = -ENOMEM;
	return n;
}

static struct dnode *find_by_ghost(uint64_t ino, unsigned depth, int *err)
{
	_cleanup_free_ char *name = NULL;
	struct dnode *dir, *n;
	uint64_t parent;

	*err = ghost_find(ino, &parent, &name);
	if (*err < 0)
		return NULL;
	dir = find_node(parent, depth + 1, err);
	if (!dir)
		return NULL;
	n = walk_step(dir, name, err);
	node_unref(dir);
	return n;
}

/* Is the object found at a dead server's place of ino the one it meant?
 * Its own id, or the object the journal names (a number given because
 * the natural one was taken), or a copy-up of it (ids stay at copy-up). */
static bool journal_same(uint64_t ino, const struct journal_rec *j, const struct found *f)
{
	if (f->layer == j->layer && f->st.st_ino == j->real)
		return f->gen == j->gen; /* not an inode number used again */
	/* A copy-up keeps the id; an id that is the object's own means it. */
	return (f->layer == 0 && j->layer != 0) || ino_for(f->layer, f->st.st_ino) == ino;
}

/* A node a dead server gave ino (nodes/journal.c), under that id. */
static struct dnode *find_by_journal(uint64_t ino, unsigned depth, int *err)
{
	struct journal_rec j = { 0 };
	struct dnode *dir, *n = NULL;
	bool parent_known;
	struct found f;
	int r;

	*err = journal_find(ino, &j);
	if (*err < 0)
		return NULL;
	/* The kernel holds the parent of what it holds (its dentry pins the
	 * parent's): a parent made again here carries the kernel's unknown
	 * count too, or the kernel's FORGET of it would free it under its
	 * children (ASan: a READDIRPLUS walking up to a freed parent). */
	parent_known = node_get(j.parent) != NULL;
	dir = find_node(j.parent, depth + 1, err);
	if (dir && !parent_known)
		node_count_unknown(dir);
	if (dir) {
		r = dir->type == S_IFDIR && name_valid(j.name) ? node_lookup(dir, j.name, &f) : -ENOENT;
		*err = r < 0 || !journal_same(ino, &j, &f) ? -ESTALE : 0;
		/* A copy-up keeps the generation the kernel holds, the image's. */
		if (!*err)
			n = node_obtain_as(dir, j.name, f.layer, f.lmask, &f.st,
					   f.layer == j.layer ? f.gen : j.gen, ino,
					   f.layer != j.layer && j.gen != f.gen);
		if (n && n->ino == ino)
			node_count_unknown(n); /* the kernel may hold ino: see node_kget */
		if (!*err && !n)
			*err = -ENOMEM;
		node_unref(dir);
	}
	free(j.name);
	return n;
}

/* rel ("a/b/c") walked down from the root; the result is held. */
static struct dnode *walk_path(char *rel, int *err)
{
	struct dnode *cur = disk_ctx->root, *next;
	char *save = NULL;

	node_hold(cur);
	for (char *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		next = walk_step(cur, c, err);
		node_unref(cur);
		if (!next)
			return NULL;
		cur = next;
	}
	return cur;
}

/* The kernel's path of a layer object opened by (ino32, generation 0). */
static int handle_rel_path(const struct layer *l, uint32_t real, char **rel)
{
	union fh_buf b = { .fh.handle_bytes = FH_INO32_GEN_BYTES, .fh.handle_type = FH_INO32_GEN };
	uint32_t w[2] = { real, 0 };
	_cleanup_close_ int fd = -EBADF;
	char proc[64], buf[PATH_MAX];
	size_t root_len = strlen(l->kpath);
	ssize_t len;

	memcpy(b.fh.f_handle, w, sizeof(w));
	fd = open_by_handle_at(l->handle_mnt_fd, &b.fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -ESTALE;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	len = readlink(proc, buf, sizeof(buf) - 1);
	if (len <= 0)
		return -ESTALE;
	buf[len] = '\0';
	/* Below the layer's root, or not ours (a disconnected file shows "/name"). */
	if (strncmp(buf, l->kpath, root_len) || buf[root_len] != '/')
		return -ESTALE;
	*rel = strdup(buf + root_len + 1);
	return *rel ? 0 : -ENOMEM;
}

static struct dnode *find_by_handle(uint64_t ino, int *err)
{
	_cleanup_free_ char *rel = NULL;
	unsigned layer = (unsigned)(ino >> 48);
	uint64_t real = ino & ((1ULL << 48) - 1);

	*err = -ESTALE;
	if (layer >= disk_ctx->nlayers || real > UINT32_MAX || disk_ctx->layers[layer].handle_mnt_fd < 0)
		return NULL;
	*err = handle_rel_path(&disk_ctx->layers[layer], (uint32_t)real, &rel);
	return *err < 0 ? NULL : walk_path(rel, err);
}

static struct dnode *find_node(uint64_t ino, unsigned depth, int *err)
{
	struct dnode *n = node_get_held(ino);

	if (n)
		return n;
	if (node_get(ino)) { /* being forgotten: its ghost comes as it goes */
		node_wait_gone(ino);
		n = node_get_held(ino);
		if (n)
			return n;
	}
	if (depth > FIND_DEPTH_MAX) {
		*err = -ESTALE;
		return NULL;
	}
	n = find_by_ghost(ino, depth, err);
	if (!n && *err == -ESTALE)
		n = find_by_journal(ino, depth, err);
	if (!n && *err == -ESTALE)
		n = find_by_handle(ino, err);
	return n;
}

struct dnode *node_by_id(uint64_t ino, int *err)
{
	struct dnode *n = find_node(ino, 0, err);

	if (n && n->ino != ino) {
		/* The object there now is another one. */
		node_unref(n);
		*err = -ESTALE;
		return NULL;
	}
	return n;
}

/* ---- after a take-over ---- */

static bool took_over;

void reconnect_after_takeover(void)
{
	/* libfuse retires idle workers: what their last request held goes. */
	rcu_thread_on_exit(node_request_done);
	__atomic_store_n(&took_over, true, __ATOMIC_RELEASE);
}

/* The node of the very object (layer, inode, generation) a dead server
 * gave ino, under whatever id this server has for it: the kernel may hold
 * one object under two ids (the one a dead server made because the
 * natural one was taken by an unlinked object, and the natural one). */
static struct dnode *journal_object(uint64_t ino)
{
	struct journal_rec j = { 0 };
	struct dnode *dir, *n = NULL;
	struct found f;
	int err;

	if (journal_find(ino, &j) < 0)
		return NULL;
	dir = find_node(j.parent, 1, &err);
	if (dir) {
		if (dir->type == S_IFDIR && name_valid(j.name) && node_lookup(dir, j.name, &f) == 0 &&
		    f.layer == j.layer && f.st.st_ino == j.real && f.gen == j.gen)
			n = node_obtain(dir, j.name, f.layer, f.lmask, &f.st, f.gen);
		node_unref(dir);
	}
	free(j.name);
	return n;
}

/* The nodes this thread's request got from node_kget after a take-over,
 * each with a reference, let go once it is answered (node_request_done).
 * A request uses at most three. */
#define REQUEST_HOLDS_MAX 8
static __thread struct dnode *request_holds[REQUEST_HOLDS_MAX];
static __thread unsigned request_nholds;

void node_request_done(void)
{
	while (request_nholds)
		node_unref(request_holds[--request_nholds]);
}

/* Before a take-over the kernel's lookup count keeps every node it names
 * in a request alive through the request. After one, a node with the
 * unknown count of a dead server (nodes/inode.c, KERNEL_COUNT_UNKNOWN)
 * goes at a FORGET which may be an older inode's of the same id than the
 * one the request names: so the request holds it. */
struct dnode *node_kget(uint64_t ino)
{
	struct dnode *n;
	int err;

	if (!__atomic_load_n(&took_over, __ATOMIC_ACQUIRE))
		return node_get(ino);
	n = node_get_held(ino);
	if (!n) {
		n = node_by_id(ino, &err);
		if (!n && !(n = journal_object(ino)))
			return NULL;
		/* Found again: the kernel holds ino, with a count of lookups a
		 * dead server gave, so the node stays until it forgets it. */
		node_count_unknown(n);
	}
	if (request_nholds < REQUEST_HOLDS_MAX) {
		request_holds[request_nholds++] = n;
		return n;
	}
	log_error("node_kget: more than %d nodes in one request", REQUEST_HOLDS_MAX);
	node_unref(n);
	return n;
}

