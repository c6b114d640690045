/* The node table: kernel inode number -> node (by_ino), and the object a
 * node stands for, (layer, real inode) -> node (by_real), so that hard links
 * and repeated lookups of one object share one node. Both are lock-free
 * hash tables read under the RCU read lock.
 *
 * Inode numbers are stable where possible: the upper object's own number,
 * or (layer << 48 | real) for an image object; a number already taken (a
 * dying node, a huge real number) falls back to a counter.
 *
 * A node whose number is ino_for(layer, real) -- nearly all of them -- is
 * found by its object through by_ino alone (real_direct); only the others
 * (copied up after their number was given out, fallback numbers) have an
 * entry in by_real. That saves an allocation and a hash bucket per node.
 *
 * Both tables are resized by nodes_maintain(), not by liburcu's lazy
 * auto-resize: in liburcu 0.13 the resize worker can finish before the
 * launcher marks the resize as initiated, and from then on no resize is ever
 * launched again (seen here: 2,048 buckets under 330,000 nodes, every lookup
 * walking chains of ~160).
 *
 * Lifetime: refs = kernel lookups + child nodes + 1 for the root; a node is
 * unlinked from both tables and freed after a grace period at refs == 0.
 * The kernel keeps a node referenced while any request for it is in flight,
 * so a node found by number needs no extra hold. */
#include "nodes/nodes.h"

#include "cvmfs/cleanup.h"

#include "cvmfs/log.h"

#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct rlink {
	struct cds_lfht_node hnode;
	struct rcu_head rcu;
	unsigned layer;
	uint64_t ino;
	struct dnode *n;
};

struct rkey {
	unsigned layer;
	uint64_t ino;
};

uint64_t hash64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int match_ino(struct cds_lfht_node *node, const void *key)
{
	return caa_container_of(node, struct dnode, ino_node)->ino == *(const uint64_t *)key;
}

static int match_real(struct cds_lfht_node *node, const void *key)
{
	const struct rlink *l = caa_container_of(node, struct rlink, hnode);
	const struct rkey *k = key;

	return l->layer == k->layer && l->ino == k->ino;
}

static uint64_t real_hash(unsigned layer, uint64_t ino)
{
	return hash64(ino ^ ((uint64_t)layer << 56));
}

uint64_t ino_for(unsigned layer, uint64_t real_ino)
{
	if (real_ino >> 48)
		return 0;
	return ((uint64_t)layer << 48) | real_ino;
}

struct dnode *node_get(uint64_t ino)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	uint64_t key = ino;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ino, hash64(key), match_ino, &key, &it);
	hn = cds_lfht_iter_get_node(&it);
	urcu_memb_read_unlock();
	return hn ? caa_container_of(hn, struct dnode, ino_node) : NULL;
}

/* The reference is taken inside the read-side section: a node found
 * there is not freed before it (node_retire), even if being forgotten. */
struct dnode *node_get_held(uint64_t ino)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	struct dnode *n = NULL;
	uint64_t key = ino;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ino, hash64(key), match_ino, &key, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn && node_hold(caa_container_of(hn, struct dnode, ino_node)))
		n = caa_container_of(hn, struct dnode, ino_node);
	urcu_memb_read_unlock();
	return n;
}

bool node_hold(struct dnode *n)
{
	uint64_t cur = __atomic_load_n(&n->refs, __ATOMIC_RELAXED);

	do {
		if (!cur)
			return false;
	} while (!__atomic_compare_exchange_n(&n->refs, &cur, cur + 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return true;
}

static void rlink_free(struct rcu_head *h)
{
	free(caa_container_of(h, struct rlink, rcu));
}

static void node_free(struct rcu_head *h)
{
	struct dnode *n = caa_container_of(h, struct dnode, rcu);

	if (n->name != n->name_buf)
		free(n->name);
	free(n);
	/* Counted when the memory is gone, so that nodes_maintain() trims
	 * after the frees. */
	__atomic_sub_fetch(&disk_ctx->nodes, 1, __ATOMIC_RELAXED);
}

static void alias_del(struct rlink *l)
{
	urcu_memb_read_lock();
	if (cds_lfht_del(disk_ctx->by_real, &l->hnode) == 0)
		__atomic_sub_fetch(&disk_ctx->aliases, 1, __ATOMIC_RELAXED);
	urcu_memb_read_unlock();
}

void node_drop_real(struct dnode *n)
{
	node_lock(n);
	n->real_direct = false;
	if (n->rl) {
		/* Fails harmlessly if a newer object with the same key already
		 * took the entry out (node_set_real); we still own the memory. */
		alias_del(n->rl);
		urcu_memb_call_rcu(&n->rl->rcu, rlink_free);
		n->rl = NULL;
	}
	node_unlock(n);
}

/* An entry with this key belongs to an object that died without us
 * noticing (its number was reused): the newest object wins. */
static void alias_add(struct dnode *n, struct rlink *l)
{
	struct rkey k = { l->layer, l->ino };
	struct cds_lfht_node *got;

	urcu_memb_read_lock();
	while ((got = cds_lfht_add_unique(disk_ctx->by_real, real_hash(k.layer, k.ino), match_real, &k,
					  &l->hnode)) != &l->hnode) {
		if (cds_lfht_del(disk_ctx->by_real, got) == 0)
			__atomic_sub_fetch(&disk_ctx->aliases, 1, __ATOMIC_RELAXED);
	}
	urcu_memb_read_unlock();
	__atomic_add_fetch(&disk_ctx->aliases, 1, __ATOMIC_RELAXED);
	n->rl = l;
}

static void alias_del_key(unsigned layer, uint64_t real_ino)
{
	struct rkey k = { layer, real_ino };
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_real, real_hash(layer, real_ino), match_real, &k, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn && cds_lfht_del(disk_ctx->by_real, hn) == 0)
		__atomic_sub_fetch(&disk_ctx->aliases, 1, __ATOMIC_RELAXED);
	urcu_memb_read_unlock();
}

void node_set_real(struct dnode *n, unsigned layer, uint64_t real_ino)
{
	struct rlink *l = NULL;

	node_drop_real(n);
	node_lock(n);
	if (n->layer != 0 && layer == 0)
		n->image_gen = true;
	n->layer = (uint8_t)layer;
	n->real_ino = real_ino;
	if (n->ino && n->ino == ino_for(layer, real_ino)) {
		alias_del_key(layer, real_ino); /* the newest object wins */
		n->real_direct = true;
	} else if ((l = calloc(1, sizeof(*l)))) {
		*l = (struct rlink){ .layer = layer, .ino = real_ino, .n = n };
		alias_add(n, l);
	}
	node_unlock(n);
}

static struct dnode *alias_find(unsigned layer, uint64_t real_ino)
{
	struct rkey k = { layer, real_ino };
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	struct dnode *n = NULL;

	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_real, real_hash(layer, real_ino), match_real, &k, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn) {
		n = caa_container_of(hn, struct rlink, hnode)->n;
		if (!node_hold(n))
			n = NULL;
	}
	urcu_memb_read_unlock();
	return n;
}

/* The node numbered ino_for(layer, real_ino), if it still stands for that
 * object (it may have been unlinked or copied up since). */
static struct dnode *direct_find(unsigned layer, uint64_t real_ino)
{
	uint64_t key = ino_for(layer, real_ino);
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	struct dnode *n = NULL;
	bool same;

	if (!key)
		return NULL;
	urcu_memb_read_lock();
	cds_lfht_lookup(disk_ctx->by_ino, hash64(key), match_ino, &key, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn) {
		n = caa_container_of(hn, struct dnode, ino_node);
		if (!node_hold(n))
			n = NULL;
	}
	urcu_memb_read_unlock();
	if (!n)
		return NULL;
	node_lock(n);
	same = n->real_direct && n->layer == layer && n->real_ino == real_ino;
	node_unlock(n);
	if (same)
		return n;
	node_unref(n);
	return NULL;
}

struct dnode *node_find_real(unsigned layer, uint64_t real_ino)
{
	struct dnode *n = alias_find(layer, real_ino);

	/* with a reference the caller drops with node_unref */
	return n ? n : direct_find(layer, real_ino);
}

/* Out of both tables; freed after a grace period. */
static void node_retire(struct dnode *n)
{
	node_drop_real(n);
	node_lock(n);
	free(n->fh);
	n->fh = NULL;
	if (n->orphan_fd > 0)
		close(n->orphan_fd); /* forgotten before its last close: unmount */
	n->orphan_fd = 0;
	if (n->upper_fd > 0) {
		close(n->upper_fd);
		__atomic_sub_fetch(&disk_ctx->upper_fds, 1, __ATOMIC_RELAXED);
	}
	n->upper_fd = 0;
	node_lower_fds_release(n);
	node_unlock(n);
	urcu_memb_read_lock();
	cds_lfht_del(disk_ctx->by_ino, &n->ino_node);
	urcu_memb_read_unlock();
	urcu_memb_call_rcu(&n->rcu, node_free); /* overwrites rl and fh */
}

/* The quota layer's: settles a dying node's blocks (nodes_init). */
static node_dying_fn *node_dying_hook;

static void node_dying(struct dnode *n)
{
	if (node_dying_hook)
		node_dying_hook(n);
}

static bool ref_put(struct dnode *n, uint64_t k);

static void node_destroy(struct dnode *n)
{
	while (n) {
		struct dnode *parent = n->parent;

		ghost_remember(n);
		node_dying(n);
		node_retire(n);
		n = parent && ref_put(parent, 1) ? parent : NULL;
	}
}

void node_unref(struct dnode *n)
{
	if (n && ref_put(n, 1))
		node_destroy(n);
}

/* After a take-over the kernel holds some ids with a lookup count this
 * server never saw (a dead server's). Such a node carries this much more
 * in refs, and the lookups this server answers for it are not counted on
 * top (node_kernel_absorb): the kernel's FORGET of it, whatever its
 * count, means the kernel evicted the inode, so the node goes if nothing
 * else holds it (no child node, no request: refs is the bias alone). If
 * something does, it stays, marked, until the connection ends, as every
 * such node did before (such a node made by a LOOKUP used to start at 1
 * while the FORGET counted the dead server's lookups too: the count
 * wrapped and the node never went). Never less: a FORGET the kernel
 * queued before it took an answer of ours for the same id (an eviction
 * racing a lookup) may leave the kernel holding the id afresh, with a
 * count this node would not have; a node gone is found again on its next
 * use (node_kget), but one kept for its children would be freed under
 * them. The kernel evicts a child before its parent (a child's dentry
 * pins its parent's, and FUSE drops an inode with its last dentry), so a
 * directory's children are forgotten first. For the same reason a FORGET
 * may come while a request of the fresh inode uses the node (node_kget
 * holds it for the request): then the node goes when the last hold or
 * child lets go (forgot_unknown), not under the request. */
#define KERNEL_COUNT_UNKNOWN (1ull << 40)

/* The forgotten unknown count dropped: true if this took refs to 0. */
static bool unknown_drop(struct dnode *n)
{
	uint64_t cur = KERNEL_COUNT_UNKNOWN;

	return __atomic_compare_exchange_n(&n->refs, &cur, 0, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_RELAXED);
}

/* k references of n let go: true if n is to be destroyed by the caller.
 * Sequentially consistent with node_forget's flag-then-drop, so that of a
 * FORGET and a last hold racing, one of them sees the other. */
static bool ref_put(struct dnode *n, uint64_t k)
{
	uint64_t left = __atomic_sub_fetch(&n->refs, k, __ATOMIC_SEQ_CST);

	if (left == 0)
		return true;
	return left == KERNEL_COUNT_UNKNOWN &&
	       __atomic_load_n(&n->forgot_unknown, __ATOMIC_SEQ_CST) && unknown_drop(n);
}

void node_count_unknown(struct dnode *n)
{
	uint64_t cur = __atomic_load_n(&n->refs, __ATOMIC_RELAXED);

	do {
		if (!cur || cur >= KERNEL_COUNT_UNKNOWN)
			return;
	} while (!__atomic_compare_exchange_n(&n->refs, &cur, cur + KERNEL_COUNT_UNKNOWN, true,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
}

bool node_kernel_absorb(struct dnode *n)
{
	uint64_t cur = __atomic_load_n(&n->refs, __ATOMIC_RELAXED);

	if (cur <= KERNEL_COUNT_UNKNOWN)
		return false; /* a count known to this server: the lookup counts */
	/* The kernel is given the id afresh: an earlier FORGET no longer
	 * says it let go. Cleared before our reference goes, after which n
	 * may be freed at any time. */
	__atomic_store_n(&n->forgot_unknown, 0, __ATOMIC_SEQ_CST);
	do {
		if (cur <= KERNEL_COUNT_UNKNOWN)
			return false;
	} while (!__atomic_compare_exchange_n(&n->refs, &cur, cur - 1, true, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	return true;
}

void node_forget(struct dnode *n, uint64_t nlookup)
{
	if (__atomic_load_n(&n->refs, __ATOMIC_ACQUIRE) >= KERNEL_COUNT_UNKNOWN) {
		__atomic_store_n(&n->forgot_unknown, 1, __ATOMIC_SEQ_CST);
		if (unknown_drop(n))
			node_destroy(n);
		return;
	}
	if (ref_put(n, nlookup))
		node_destroy(n);
}

/* A node the kernel just forgot leaves the table within microseconds
 * (node_destroy); wait for that rather than give its object another number
 * (or, for a handle, find it neither live nor as a ghost). */
void node_wait_gone(uint64_t ino)
{
	for (int i = 0; i < 10000; i++) {
		struct dnode *n = node_get(ino);

		if (!n || __atomic_load_n(&n->refs, __ATOMIC_ACQUIRE))
			return;
		sched_yield();
	}
}

static bool publish_at(struct dnode *n, uint64_t ino)
{
	struct cds_lfht_node *got;

	n->ino = ino;
	urcu_memb_read_lock();
	got = cds_lfht_add_unique(disk_ctx->by_ino, hash64(ino), match_ino, &ino, &n->ino_node);
	urcu_memb_read_unlock();
	return got == &n->ino_node;
}

static void node_publish_ino(struct dnode *n, uint64_t want, uint64_t real)
{
	uint64_t ino;

	if (want > ROOT_ID && !journal_id_other(want, n->layer, real, n->gen)) {
		if (publish_at(n, want))
			return;
		node_wait_gone(want); /* a dying node of the same object */
		if (publish_at(n, want))
			return;
	}
	do
		ino = journal_next_ino(&disk_ctx->next_ino);
	while (!publish_at(n, ino));
}

/* Is a child of parent deeper than every area's root? Then it is in its
 * parent's area (a cold walk of a deep tree builds no path per node). */
static bool below_area_roots(const struct dnode *parent)
{
	unsigned depth = 1;

	for (const struct dnode *m = parent; m && m->parent; m = m->parent)
		if (++depth > AREA_ROOT_DEPTH)
			return true;
	return false;
}

/* The area of name below parent: the parent's, unless the parent is in
 * no area, where the path may be an area's root (home, var/lib/docker). */
enum area node_area_of(struct dnode *parent, const char *name)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;

	if (parent != disk_ctx->root && parent->area != AREA_OTHER)
		return parent->area;
	if (below_area_roots(parent))
		return AREA_OTHER;
	if (node_path(parent, &dir) < 0 || !(path = path_join_dup(dir, name)))
		return AREA_OTHER;
	return area_of_path(path);
}

/* A node with its name stored inline, counted in disk_ctx->nodes. */
static struct dnode *node_alloc(const char *name)
{
	size_t len = strlen(name) + 1;
	struct dnode *n = calloc(1, offsetof(struct dnode, name_buf) + len);
	uint64_t count;

	if (!n)
		return NULL;
	memcpy(n->name_buf, name, len);
	n->name = n->name_buf;
	count = __atomic_add_fetch(&disk_ctx->nodes, 1, __ATOMIC_RELAXED);
	/* Far more nodes than buckets: resize now rather than at the next tick. */
	if (count == 4 * (uint64_t)__atomic_load_n(&disk_ctx->ino_buckets, __ATOMIC_RELAXED))
		publish_kick();
	return n;
}

static struct dnode *node_new(struct dnode *parent, const char *name, unsigned layer,
			      uint32_t lmask, const struct stat *st, uint32_t gen)
{
	struct dnode *n = node_alloc(name);

	if (!n)
		return NULL;
	n->parent = parent;
	n->type = (uint16_t)(st->st_mode & S_IFMT);
	n->layer = (uint8_t)layer;
	n->lmask = lmask;
	n->real_ino = st->st_ino;
	n->gen = gen;
	n->refs = 1;
	n->area = (uint8_t)node_area_of(parent, name);
	if (layer == 0) {
		n->charged_bytes = blocks_bytes(st);
		n->charged_inode = true;
	}
	return n;
}

/* Adopt an existing node for a repeated lookup: the reference taken by
 * node_find_real becomes the kernel's. */
static struct dnode *node_adopt(struct dnode *n, uint32_t lmask)
{
	node_lock(n);
	if (n->type == S_IFDIR)
		n->lmask = lmask;
	node_unlock(n);
	return n;
}

static struct dnode *obtain(struct dnode *parent, const char *name, unsigned layer,
			    uint32_t lmask, const struct stat *st, uint32_t gen, uint64_t want,
			    bool dead_id, bool image_gen);

struct dnode *node_obtain(struct dnode *parent, const char *name, unsigned layer,
			  uint32_t lmask, const struct stat *st, uint32_t gen)
{
	uint32_t kgen = gen;
	uint64_t want = journal_id_at(parent->ino, name, layer, st->st_ino, &kgen);

	/* A dead server's id of a copy-up comes with the image object's
	 * generation (kgen), which the kernel holds. */
	return obtain(parent, name, layer, lmask, st, kgen, want ? want : ino_for(layer, st->st_ino),
		      want != 0, want && kgen != gen);
}

struct dnode *node_obtain_as(struct dnode *parent, const char *name, unsigned layer,
			     uint32_t lmask, const struct stat *st, uint32_t gen, uint64_t want,
			     bool image_gen)
{
	return obtain(parent, name, layer, lmask, st, gen, want, false, image_gen);
}

/* n, a copy-up under its image object's id (want), keeps that object's
 * generation, not its upper copy's: flagged, and its records say so, so
 * that the next server finds it by its upper inode whatever that inode's
 * own generation. True if n was not flagged before. */
static bool mark_image_gen(struct dnode *n, uint64_t want, uint32_t gen)
{
	bool was;

	if (n->ino != want || n->gen != gen)
		return false; /* another id: the kernel holds no image generation */
	node_lock(n); /* bit fields share their bytes */
	was = n->image_gen;
	n->image_gen = true;
	node_unlock(n);
	return !was;
}

/* dead_id: want is an id a dead server gave this object, which the kernel
 * may hold with a count of its lookups (KERNEL_COUNT_UNKNOWN). image_gen:
 * see node_obtain_as. One journal record per node made, none for one
 * found (it was journaled when made or moved), unless only now known to
 * keep an image generation. */
static struct dnode *obtain(struct dnode *parent, const char *name, unsigned layer,
			    uint32_t lmask, const struct stat *st, uint32_t gen, uint64_t want,
			    bool dead_id, bool image_gen)
{
	struct dnode *n = node_find_real(layer, st->st_ino);

	if (n) {
		if (image_gen && mark_image_gen(n, want, gen))
			journal_node(n->ino, parent->ino, name, JOURNAL_KGEN, n->real_ino, gen,
				     &n->jrec);
		return node_adopt(n, lmask);
	}
	n = node_new(parent, name, layer, lmask, st, gen);
	if (!n)
		return NULL;
	__atomic_add_fetch(&parent->refs, 1, __ATOMIC_ACQ_REL);
	/* Before it can be found: a FORGET of the id may come at once. */
	if (dead_id)
		n->refs += KERNEL_COUNT_UNKNOWN;
	node_publish_ino(n, want, st->st_ino);
	if (dead_id && n->ino != want) /* a fresh id: the kernel holds none */
		__atomic_sub_fetch(&n->refs, KERNEL_COUNT_UNKNOWN, __ATOMIC_ACQ_REL);
	node_set_real(n, layer, st->st_ino);
	image_gen = image_gen && mark_image_gen(n, want, gen);
	journal_node(n->ino, parent->ino, name, image_gen ? JOURNAL_KGEN : layer, st->st_ino, gen,
		     &n->jrec);
	/* Several links: the path of this name may go, the handle stays. */
	if (layer == 0 && !S_ISDIR(st->st_mode) && st->st_nlink > 1)
		node_keep_handle(n);
	return n;
}

int node_move(struct dnode *n, struct dnode *p, const char *name)
{
	char *copy = NULL;

	if (n->parent == NULL)
		return -EINVAL;
	if (strcmp(n->name, name)) {
		copy = strdup(name);
		if (!copy)
			return -ENOMEM;
		if (n->name != n->name_buf)
			free(n->name);
		n->name = copy;
	}
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
	node_unref(n->parent);
	n->parent = p;
	/* A copy-up's record says its generation is the image object's. */
	journal_node(n->ino, p->ino, name, n->image_gen ? JOURNAL_KGEN : n->layer, n->real_ino,
		     n->gen, &n->jrec);
	return 0;
}

static bool node_wants_handle(struct dnode *n)
{
	bool wants;

	node_lock(n);
	wants = !n->fh && n->layer == 0;
	node_unlock(n);
	return wants;
}

/* The handle is made with no node lock held: opening n may take its
 * parent's (one node at a time, disk.h). */
void node_keep_handle(struct dnode *n)
{
	_cleanup_free_ struct file_handle *fh = NULL;
	_cleanup_close_ int fd = -EBADF;
	int mount_id;

	if (!node_wants_handle(n))
		return;
	fd = node_open(n, O_PATH | O_NOFOLLOW);
	fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	if (fd < 0 || !fh)
		return;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) < 0)
		return;
	node_lock(n);
	if (!n->fh && n->layer == 0)
		n->fh = TAKE_PTR(fh);
	node_unlock(n);
}

bool node_is_below(struct dnode *n, struct dnode *dir)
{
	for (n = n->parent; n; n = n->parent)
		if (n == dir)
			return true;
	return false;
}

void node_for_each_below(struct dnode *dir, void (*fn)(struct dnode *, void *), void *arg)
{
	struct cds_lfht_iter it;
	struct dnode *n;

	urcu_memb_read_lock();
	cds_lfht_for_each_entry(disk_ctx->by_ino, &it, n, ino_node) {
		/* A node being forgotten right now is left alone. */
		if (!node_is_below(n, dir) || !node_hold(n))
			continue;
		fn(n, arg);
		node_unref(n);
	}
	urcu_memb_read_unlock();
}

#define MIN_BUCKETS 1024UL

/* About two nodes per bucket: 8 bytes of bucket per node or less. */
static unsigned long buckets_for(uint64_t count)
{
	unsigned long b = MIN_BUCKETS;

	while (b < count / 2)
		b <<= 1;
	return b;
}

/* Resize when the average chain passes 4 or falls under 1/4. */
static void table_fit(struct cds_lfht *ht, unsigned long *buckets, uint64_t count)
{
	unsigned long want = buckets_for(count), cur = *buckets;

	if (want > 2 * cur || 4 * want < cur) {
		cds_lfht_resize(ht, want);
		__atomic_store_n(buckets, want, __ATOMIC_RELAXED);
	}
}

void nodes_maintain(void)
{
	uint64_t nodes = __atomic_load_n(&disk_ctx->nodes, __ATOMIC_RELAXED);

	table_fit(disk_ctx->by_ino, &disk_ctx->ino_buckets, nodes);
	table_fit(disk_ctx->by_real, &disk_ctx->real_buckets, __atomic_load_n(&disk_ctx->aliases, __ATOMIC_RELAXED));
	table_fit(disk_ctx->by_ghost, &disk_ctx->ghost_buckets, __atomic_load_n(&disk_ctx->ghosts, __ATOMIC_RELAXED));
	/* The kernel forgot many inodes: give the freed nodes' memory back
	 * (glibc keeps freed chunks in its arenas otherwise). */
	if (nodes > disk_ctx->trim_peak)
		disk_ctx->trim_peak = nodes;
	if (disk_ctx->trim_peak - nodes >= 16384 && nodes < disk_ctx->trim_peak / 4 * 3) {
		malloc_trim(0);
		disk_ctx->trim_peak = nodes;
	}
}

int nodes_init(node_dying_fn *dying)
{
	struct stat st;
	struct dnode *root;

	node_dying_hook = dying;

	/* No CDS_LFHT_AUTO_RESIZE: see nodes_maintain() and the top of this file. */
	disk_ctx->by_ino = cds_lfht_new_flavor(MIN_BUCKETS, MIN_BUCKETS, 0, 0, &urcu_memb_flavor, NULL);
	disk_ctx->by_real = cds_lfht_new_flavor(MIN_BUCKETS, MIN_BUCKETS, 0, 0, &urcu_memb_flavor, NULL);
	if (!disk_ctx->by_ino || !disk_ctx->by_real)
		return -ENOMEM;
	disk_ctx->ino_buckets = disk_ctx->real_buckets = MIN_BUCKETS;
	if (fstat(disk_ctx->layers[0].fd, &st) < 0)
		return -errno;
	disk_ctx->next_ino = 1ULL << 62;
	root = node_alloc("");
	if (!root)
		return -ENOMEM;
	root->ino = ROOT_ID;
	root->refs = 1;
	root->type = S_IFDIR;
	root->lmask = disk_ctx->nlayers > 1 ? (uint32_t)((1ULL << (disk_ctx->nlayers - 1)) - 1) : 0;
	root->real_ino = st.st_ino;
	root->charged_bytes = blocks_bytes(&st);
	root->charged_inode = true;
	root->area = AREA_OTHER;
	disk_ctx->root = root;
	urcu_memb_read_lock();
	cds_lfht_add(disk_ctx->by_ino, hash64(ROOT_ID), &root->ino_node);
	urcu_memb_read_unlock();
	return 0;
}

void nodes_fini(void)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	if (!disk_ctx->by_ino)
		return;
	/* Called after the session ended: no readers left. */
	urcu_memb_read_lock();
	cds_lfht_first(disk_ctx->by_ino, &it);
	while ((hn = cds_lfht_iter_get_node(&it))) {
		struct dnode *n = caa_container_of(hn, struct dnode, ino_node);

		node_retire(n);
		cds_lfht_next(disk_ctx->by_ino, &it);
	}
	urcu_memb_read_unlock();
	urcu_memb_barrier();
	cds_lfht_destroy(disk_ctx->by_ino, NULL);
	cds_lfht_destroy(disk_ctx->by_real, NULL);
	disk_ctx->by_ino = disk_ctx->by_real = NULL;
}
