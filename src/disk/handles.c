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
#include "disk.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* FILEID_INO32_GEN (include/linux/exportfs.h): { u32 ino, u32 gen }. */
#define FH_INO32_GEN 1
#define FH_INO32_GEN_BYTES 8
/* About 80 bytes each, kept first in, first out: the handles of this many
 * most recently forgotten objects stay decodable (2.6 MiB at most; the
 * node table gives the rest of its memory back, see nodes_maintain). */
#define GHOST_MAX 32768u

struct ghost {
	struct cds_lfht_node hnode;
	struct rcu_head rcu;
	uint64_t ino, parent;
	char name[];
};

union fh_buf {
	struct file_handle fh;
	char space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
};

uint32_t backing_gen(int dirfd, const char *name)
{
	union fh_buf b = { .fh.handle_bytes = MAX_HANDLE_SZ };
	uint32_t w[2];
	int mount_id;

	if (name_to_handle_at(dirfd, name, &b.fh, &mount_id, *name ? 0 : AT_EMPTY_PATH) < 0 ||
	    b.fh.handle_type != FH_INO32_GEN || b.fh.handle_bytes != FH_INO32_GEN_BYTES)
		return 0;
	memcpy(w, b.fh.f_handle, sizeof(w));
	return w[1];
}

/* ---- ghosts ---- */

static int match_ghost(struct cds_lfht_node *node, const void *key)
{
	return caa_container_of(node, struct ghost, hnode)->ino == *(const uint64_t *)key;
}

static void ghost_free(struct rcu_head *h)
{
	free(caa_container_of(h, struct ghost, rcu));
	__atomic_sub_fetch(&D->ghosts, 1, __ATOMIC_RELAXED);
}

static void ghost_del(struct cds_lfht_node *hn)
{
	if (cds_lfht_del(D->by_ghost, hn) == 0)
		urcu_memb_call_rcu(&caa_container_of(hn, struct ghost, hnode)->rcu, ghost_free);
}

void ghost_drop(uint64_t ino)
{
	struct cds_lfht_iter it;

	urcu_memb_read_lock();
	cds_lfht_lookup(D->by_ghost, hash64(ino), match_ghost, &ino, &it);
	if (cds_lfht_iter_get_node(&it))
		ghost_del(cds_lfht_iter_get_node(&it));
	urcu_memb_read_unlock();
}

/* Ids in the order their ghosts came (an id made again may be in it twice:
 * its older slot then drops the newer ghost a little early). */
static struct {
	pthread_mutex_t lock;
	uint64_t ino[GHOST_MAX];
	unsigned next;
	bool full;
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void ghost_queue(uint64_t ino)
{
	uint64_t oldest = 0;

	pthread_mutex_lock(&ring.lock);
	if (ring.full)
		oldest = ring.ino[ring.next];
	ring.ino[ring.next] = ino;
	ring.next = (ring.next + 1) % GHOST_MAX;
	ring.full |= ring.next == 0;
	pthread_mutex_unlock(&ring.lock);
	if (oldest)
		ghost_drop(oldest);
}

static void ghost_add(uint64_t ino, uint64_t parent, const char *name);

void ghost_remember(struct dnode *n)
{
	if (!n->parent || n->unlinked) {
		ghost_drop(n->ino);
		return;
	}
	ghost_add(n->ino, n->parent->ino, n->name);
}

/* The ghost of ino: its parent's id and a copy of its name. */
static int ghost_find(uint64_t ino, uint64_t *parent, char **name)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	int r = -ESTALE;

	urcu_memb_read_lock();
	cds_lfht_lookup(D->by_ghost, hash64(ino), match_ghost, &ino, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn) {
		struct ghost *g = caa_container_of(hn, struct ghost, hnode);

		*parent = g->parent;
		*name = strdup(g->name);
		r = *name ? 0 : -ENOMEM;
	}
	urcu_memb_read_unlock();
	return r;
}

int ghosts_init(void)
{
	/* Resized by nodes_maintain(), as the node tables are. */
	D->ghost_buckets = 1024;
	D->by_ghost = cds_lfht_new_flavor(1024, 1024, 0, 0, &urcu_memb_flavor, NULL);
	return D->by_ghost ? 0 : -ENOMEM;
}

void ghosts_fini(void)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	if (!D->by_ghost)
		return;
	urcu_memb_read_lock();
	cds_lfht_first(D->by_ghost, &it);
	while ((hn = cds_lfht_iter_get_node(&it))) {
		cds_lfht_next(D->by_ghost, &it);
		ghost_del(hn);
	}
	urcu_memb_read_unlock();
	urcu_memb_barrier();
	cds_lfht_destroy(D->by_ghost, NULL);
	D->by_ghost = NULL;
}

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

/* rel ("a/b/c") walked down from the root; the result is held. */
static struct dnode *walk_path(char *rel, int *err)
{
	struct dnode *cur = D->root, *next;
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
	if (layer >= D->nlayers || real > UINT32_MAX || D->layers[layer].handle_mnt_fd < 0)
		return NULL;
	*err = handle_rel_path(&D->layers[layer], (uint32_t)real, &rel);
	return *err < 0 ? NULL : walk_path(rel, err);
}

static struct dnode *find_node(uint64_t ino, unsigned depth, int *err)
{
	struct dnode *n = node_get(ino);

	if (n && node_hold(n))
		return n;
	if (n) { /* being forgotten: its ghost comes as it goes */
		node_wait_gone(ino);
		n = node_get(ino);
		if (n && node_hold(n))
			return n;
	}
	if (depth > FIND_DEPTH_MAX) {
		*err = -ESTALE;
		return NULL;
	}
	n = find_by_ghost(ino, depth, err);
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

/* ---- across a clean restart ---- */

/* RUN_DIR/disk/NAME.handles: where the objects the kernel may still hold
 * handles to were, written at a clean stop and read at the next start:
 * records of (u64 id, u64 parent id, u16 name length, name), newest first.
 * Hints only: whatever they lead to is checked as any ghost is. In the run
 * directory, not in DATA: it must never take the workspace's space (a full
 * volume keeps room for DATA/state only), and a reboot forgets every
 * handle the kernel had anyway. */
#define HANDLES_SUFFIX ".handles"
#define HANDLES_MAGIC "cvmfs-handles-1\n"

struct ghost_rec {
	uint64_t ino, parent;
	uint16_t len;
} __attribute__((packed));

/* Never a FIFO to block on, a device or a symlink's target. */
static int open_regular(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0600);
	struct stat st;

	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

static bool rec_write(FILE *f, uint64_t ino, uint64_t parent, const char *name)
{
	struct ghost_rec r = { ino, parent, (uint16_t)strlen(name) };

	return fwrite(&r, sizeof(r), 1, f) == 1 && fwrite(name, 1, r.len, f) == r.len;
}

/* Live nodes first (the kernel knew them last), then ghosts, up to the
 * ghost table's size. Called after the session ended: no request runs. */
static unsigned save_table(FILE *f, struct cds_lfht *t, bool nodes, unsigned left)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	unsigned n = 0;

	urcu_memb_read_lock();
	for (cds_lfht_first(t, &it); n < left && (hn = cds_lfht_iter_get_node(&it));
	     cds_lfht_next(t, &it)) {
		if (nodes) {
			struct dnode *d = caa_container_of(hn, struct dnode, ino_node);

			if (d->parent && !d->unlinked && rec_write(f, d->ino, d->parent->ino, d->name))
				n++;
		} else {
			struct ghost *g = caa_container_of(hn, struct ghost, hnode);

			if (!node_get(g->ino) && rec_write(f, g->ino, g->parent, g->name))
				n++;
		}
	}
	urcu_memb_read_unlock();
	return n;
}

static int handles_paths(char *path, char *tmp, size_t size)
{
	int n = snprintf(path, size, "%s/disk/%s" HANDLES_SUFFIX, D->cfg.run_dir, D->cfg.name);

	if (n < 0 || (size_t)n >= size - 4)
		return -ENAMETOOLONG;
	memcpy(tmp, path, (size_t)n);
	memcpy(tmp + n, ".tmp", 5);
	return 0;
}

void handles_save(void)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = handles_paths(path, tmp, sizeof(path)) < 0
			 ? -1
			 : open_regular(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	unsigned n;

	if (!f) {
		if (fd >= 0)
			close(fd);
		log_warn("%s: %s: file handles will not survive the restart", tmp, strerror(errno));
		return;
	}
	fputs(HANDLES_MAGIC, f);
	n = save_table(f, D->by_ino, true, GHOST_MAX);
	n += save_table(f, D->by_ghost, false, GHOST_MAX - n);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		log_warn("%s: %s", path, strerror(errno));
		unlink(tmp);
	} else {
		log_debug("%s: %u file handle places kept for the next start", D->cfg.name, n);
	}
}

static void ghost_add(uint64_t ino, uint64_t parent, const char *name)
{
	struct cds_lfht_node *old;
	size_t len = strlen(name) + 1;
	struct ghost *g = malloc(sizeof(*g) + len);

	if (!g)
		return;
	g->ino = ino;
	g->parent = parent;
	memcpy(g->name, name, len);
	urcu_memb_read_lock();
	old = cds_lfht_add_replace(D->by_ghost, hash64(ino), match_ghost, &g->ino, &g->hnode);
	if (old)
		urcu_memb_call_rcu(&caa_container_of(old, struct ghost, hnode)->rcu, ghost_free);
	urcu_memb_read_unlock();
	__atomic_add_fetch(&D->ghosts, 1, __ATOMIC_RELAXED);
	ghost_queue(ino);
}

void handles_load(void)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = handles_paths(path, tmp, sizeof(path)) < 0 ? -1
							    : open_regular(AT_FDCWD, path, O_RDONLY);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
	char magic[sizeof(HANDLES_MAGIC)] = "", name[NAME_MAX + 1];
	struct ghost_rec r;
	unsigned n = 0;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fread(magic, 1, strlen(HANDLES_MAGIC), f) == strlen(HANDLES_MAGIC) &&
	    !strcmp(magic, HANDLES_MAGIC))
		while (n < GHOST_MAX && fread(&r, sizeof(r), 1, f) == 1 && r.len <= NAME_MAX &&
		       fread(name, 1, r.len, f) == r.len) {
			name[r.len] = '\0';
			if (name_valid(name))
				ghost_add(r.ino, r.parent, name);
			n++;
		}
	fclose(f);
}
