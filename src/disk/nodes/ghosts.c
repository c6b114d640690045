/* Ghosts: where the nodes the kernel forgot were (parent id, name), in a
 * bounded first-in first-out table, and the generation of a backing
 * object. The union layer (union/reconnect.c) walks from a ghost to find a
 * forgotten node again when the kernel decodes a file handle; a clean stop
 * keeps the table in RUN_DIR/disk/NAME.handles and the next start reads it
 * back. */
#include "nodes/nodes.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* GHOST_MAX ghosts (nodes.h), first in, first out: the handles of the
 * most recently forgotten objects stay decodable (the node table gives the
 * rest of its memory back, see nodes_maintain). */
struct ghost {
	struct cds_lfht_node hnode;
	struct rcu_head rcu;
	uint64_t ino, parent;
	uint32_t seq; /* of its newest slot in the ring (atomic) */
	uint32_t gen; /* the object's backing generation, if has_gen */
	bool has_gen; /* (atomic, both) */
	char name[];
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
	__atomic_sub_fetch(&disk_ctx->ghosts, 1, __ATOMIC_RELAXED);
}

static void ghost_del(struct cds_lfht_node *hn)
{
	if (cds_lfht_del(disk_ctx->by_ghost, hn) == 0)
		urcu_memb_call_rcu(&caa_container_of(hn, struct ghost, hnode)->rcu, ghost_free);
}

void ghost_drop(uint64_t ino)
{
	struct cds_lfht_iter it;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ghost, hash64(ino), match_ghost, &ino, &it);
	if (cds_lfht_iter_get_node(&it))
		ghost_del(cds_lfht_iter_get_node(&it));
	urcu_memb_read_unlock();
}

/* Ids in the order their ghosts were last forgotten. A ghost forgotten
 * again takes a new slot and its seq; the slot it leaves behind is stale
 * and drops nothing when its turn comes. */
static struct {
	pthread_mutex_t lock;
	struct {
		uint64_t ino;
		uint32_t seq;
	} slot[GHOST_MAX];
	uint64_t count;
} ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The seq of the new slot; *old: the slot it pushes out (ino 0: none). */
static uint32_t ghost_queue(uint64_t ino, uint64_t *old_ino, uint32_t *old_seq)
{
	uint32_t seq;
	unsigned i;

	pthread_mutex_lock(&ring.lock);
	i = (unsigned)(ring.count % GHOST_MAX);
	*old_ino = ring.count >= GHOST_MAX ? ring.slot[i].ino : 0;
	*old_seq = ring.slot[i].seq;
	seq = (uint32_t)ring.count++;
	ring.slot[i].ino = ino;
	ring.slot[i].seq = seq;
	pthread_mutex_unlock(&ring.lock);
	return seq;
}

/* The ghost of ino if its newest slot is seq's. */
static void ghost_expire(uint64_t ino, uint32_t seq)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ghost, hash64(ino), match_ghost, &ino, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn && __atomic_load_n(&caa_container_of(hn, struct ghost, hnode)->seq,
				  __ATOMIC_RELAXED) == seq)
		ghost_del(hn);
	urcu_memb_read_unlock();
}

static void ghost_add(uint64_t ino, uint64_t parent, const char *name, const uint32_t *gen);

static void ghost_set_gen(struct ghost *g, const uint32_t *gen)
{
	if (gen)
		__atomic_store_n(&g->gen, *gen, __ATOMIC_RELAXED);
	__atomic_store_n(&g->has_gen, gen != NULL, __ATOMIC_RELEASE);
}

/* The same place forgotten again (every object of a tree after each cache
 * drop): the ghost it has is only made younger, without a new one. */
static bool ghost_renew(uint64_t ino, uint64_t parent, const char *name, const uint32_t *gen)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	struct ghost *g;
	uint64_t old_ino;
	uint32_t old_seq;
	bool same;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ghost, hash64(ino), match_ghost, &ino, &it);
	hn = cds_lfht_iter_get_node(&it);
	g = hn ? caa_container_of(hn, struct ghost, hnode) : NULL;
	same = g && g->parent == parent && !strcmp(g->name, name);
	if (same) {
		__atomic_store_n(&g->seq, ghost_queue(ino, &old_ino, &old_seq), __ATOMIC_RELAXED);
		ghost_set_gen(g, gen);
	}
	urcu_memb_read_unlock();
	if (same && old_ino)
		ghost_expire(old_ino, old_seq);
	return same;
}

void ghost_remember(struct dnode *n)
{
	/* A copy-up keeps its image object's generation (the kernel holds
	 * that), which is not its backing object's. */
	const uint32_t *gen = n->image_gen ? NULL : &n->gen;

	if (!n->parent || n->unlinked) {
		ghost_drop(n->ino);
		return;
	}
	if (!ghost_renew(n->ino, n->parent->ino, n->name, gen))
		ghost_add(n->ino, n->parent->ino, n->name, gen);
}

/* The ghost of ino: its parent's id and a copy of its name. */
int ghost_find(uint64_t ino, uint64_t *parent, char **name)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	int r = -ESTALE;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ghost, hash64(ino), match_ghost, &ino, &it);
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

bool ghost_gen(uint64_t ino, uint64_t parent, const char *name, uint32_t *gen)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	struct ghost *g;
	bool known = false;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ghost, hash64(ino), match_ghost, &ino, &it);
	hn = cds_lfht_iter_get_node(&it);
	g = hn ? caa_container_of(hn, struct ghost, hnode) : NULL;
	if (g && __atomic_load_n(&g->has_gen, __ATOMIC_ACQUIRE) && g->parent == parent &&
	    !strcmp(g->name, name)) {
		*gen = __atomic_load_n(&g->gen, __ATOMIC_RELAXED);
		known = true;
	}
	urcu_memb_read_unlock();
	return known;
}

int ghosts_init(void)
{
	/* Resized by nodes_maintain(), as the node tables are. */
	disk_ctx->ghost_buckets = 1024;
	disk_ctx->by_ghost = cds_lfht_new_flavor(1024, 1024, 0, 0, &urcu_memb_flavor, NULL);
	return disk_ctx->by_ghost ? 0 : -ENOMEM;
}

void ghosts_fini(void)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	if (!disk_ctx->by_ghost)
		return;
	urcu_memb_read_lock();
	cds_lfht_first(disk_ctx->by_ghost, &it);
	while ((hn = cds_lfht_iter_get_node(&it))) {
		cds_lfht_next(disk_ctx->by_ghost, &it);
		ghost_del(hn);
	}
	urcu_memb_read_unlock();
	urcu_memb_barrier();
	cds_lfht_destroy(disk_ctx->by_ghost, NULL);
	disk_ctx->by_ghost = NULL;
}

/* ---- across a clean restart ---- */

/* RUN_DIR/disk/NAME.handles: where the objects the kernel may still hold
 * handles to were, written at a clean stop and read at the next start:
 * records of (u64 id, u64 parent id, u16 name length, name), newest first.
 * Hints only: whatever they lead to is checked as any ghost is. In the run
 * directory, not in DATA: it must never take the workspace's space (a full
 * volume keeps room for DATA/state only), and a reboot forgets every
 * handle the kernel had anyway. */
#define HANDLES_MAGIC "cvmfs-handles-1\n"

struct ghost_rec {
	uint64_t ino, parent;
	uint16_t len;
} __attribute__((packed));

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
	int n = snprintf(path, size, "%s/" CVMFS_DISK_DIR "/%s" CVMFS_DISK_HANDLES, disk_ctx->cfg.run_dir,
			 disk_ctx->cfg.name);

	if (n < 0 || (size_t)n >= size - 4)
		return -ENAMETOOLONG;
	memcpy(tmp, path, (size_t)n);
	memcpy(tmp + n, ".tmp", 5);
	return 0;
}

void handles_save(void)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = handles_paths(path, tmp, sizeof(path));
	FILE *f;
	unsigned n;

	if (fd == 0)
		fd = open_regular_flags(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW);
	f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f) {
		int r = fd < 0 ? fd : -errno;

		if (fd >= 0)
			close(fd);
		log_warn("%s: %s: file handles will not survive the restart", tmp,
			 file_strerror(r));
		return;
	}
	fputs(HANDLES_MAGIC, f);
	n = save_table(f, disk_ctx->by_ino, true, GHOST_MAX);
	n += save_table(f, disk_ctx->by_ghost, false, GHOST_MAX - n);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		log_warn("%s: %s", path, strerror(errno));
		unlink(tmp);
	} else {
		log_debug("%s: %u file handle places kept for the next start", disk_ctx->cfg.name, n);
	}
}

static void ghost_add(uint64_t ino, uint64_t parent, const char *name, const uint32_t *gen)
{
	struct cds_lfht_node *old;
	size_t len = strlen(name) + 1;
	struct ghost *g = malloc(sizeof(*g) + len);
	uint64_t old_ino;
	uint32_t old_seq;

	if (!g)
		return;
	g->ino = ino;
	g->parent = parent;
	ghost_set_gen(g, gen);
	memcpy(g->name, name, len);
	g->seq = ghost_queue(ino, &old_ino, &old_seq);
	urcu_memb_read_lock();
	old = cds_lfht_add_replace(disk_ctx->by_ghost, hash64(ino), match_ghost, &g->ino, &g->hnode);
	if (old)
		urcu_memb_call_rcu(&caa_container_of(old, struct ghost, hnode)->rcu, ghost_free);
	urcu_memb_read_unlock();
	__atomic_add_fetch(&disk_ctx->ghosts, 1, __ATOMIC_RELAXED);
	if (old_ino)
		ghost_expire(old_ino, old_seq);
}

void handles_load(void)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = handles_paths(path, tmp, sizeof(path));
	char magic[sizeof(HANDLES_MAGIC)] = "", name[NAME_MAX + 1];
	struct ghost_rec r;
	unsigned n = 0;
	FILE *f;

	if (fd == 0)
		fd = open_regular_flags(AT_FDCWD, path, O_RDONLY | O_NOFOLLOW);
	f = fd < 0 ? NULL : fdopen(fd, "r");
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
				ghost_add(r.ino, r.parent, name, NULL); /* checked when used */
			n++;
		}
	fclose(f);
}
