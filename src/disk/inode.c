/* The node table: kernel inode number -> node (by_ino), and the object a
 * node stands for, (layer, real inode) -> node (by_real), so that hard links
 * and repeated lookups of one object share one node. Both are lock-free
 * hash tables read under the RCU read lock.
 *
 * Inode numbers are stable where possible: the upper object's own number,
 * or (layer << 48 | real) for an image object; a number already taken (a
 * dying node, a huge real number) falls back to a counter.
 *
 * Lifetime: refs = kernel lookups + child nodes + 1 for the root; a node is
 * unlinked from both tables and freed after a grace period at refs == 0.
 * The kernel keeps a node referenced while any request for it is in flight,
 * so a node found by number needs no extra hold. */
#include "disk.h"

#include "cvmfs/log.h"

#include <errno.h>
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

static uint64_t mix64(uint64_t x)
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
	return mix64(ino ^ ((uint64_t)layer << 56));
}

uint64_t ino_for(unsigned layer, uint64_t real_ino)
{
	if (real_ino >> 48)
		return 0;
	return ((uint64_t)layer << 48) | real_ino;
}

struct dnode *node_get(fuse_ino_t ino)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	uint64_t key = ino;

	urcu_memb_read_lock();
	cds_lfht_lookup(D->by_ino, mix64(key), match_ino, &key, &it);
	hn = cds_lfht_iter_get_node(&it);
	urcu_memb_read_unlock();
	return hn ? caa_container_of(hn, struct dnode, ino_node) : NULL;
}

static bool ref_not_zero(struct dnode *n)
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

	pthread_mutex_destroy(&n->lock);
	free(n->name);
	free(n->fh);
	free(n);
}

void node_drop_real(struct dnode *n)
{
	pthread_mutex_lock(&n->lock);
	if (n->rl) {
		/* Fails harmlessly if a newer object with the same key already
		 * took the entry out (node_set_real); we still own the memory. */
		urcu_memb_read_lock();
		cds_lfht_del(D->by_real, &n->rl->hnode);
		urcu_memb_read_unlock();
		urcu_memb_call_rcu(&n->rl->rcu, rlink_free);
		n->rl = NULL;
	}
	pthread_mutex_unlock(&n->lock);
}

void node_set_real(struct dnode *n, unsigned layer, uint64_t real_ino)
{
	struct rlink *l = calloc(1, sizeof(*l));
	struct rkey k = { layer, real_ino };
	struct cds_lfht_node *got;

	node_drop_real(n);
	pthread_mutex_lock(&n->lock);
	n->layer = layer;
	n->real_ino = real_ino;
	if (l) {
		*l = (struct rlink){ .layer = layer, .ino = real_ino, .n = n };
		urcu_memb_read_lock();
		/* An entry with this key belongs to an object that died without
		 * us noticing (its number was reused): the newest object wins. */
		while ((got = cds_lfht_add_unique(D->by_real, real_hash(layer, real_ino), match_real,
						  &k, &l->hnode)) != &l->hnode)
			cds_lfht_del(D->by_real, got);
		urcu_memb_read_unlock();
		n->rl = l;
	}
	pthread_mutex_unlock(&n->lock);
}

struct dnode *node_find_real(unsigned layer, uint64_t real_ino)
{
	struct rkey k = { layer, real_ino };
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;
	struct dnode *n = NULL;

	urcu_memb_read_lock();
	cds_lfht_lookup(D->by_real, real_hash(layer, real_ino), match_real, &k, &it);
	hn = cds_lfht_iter_get_node(&it);
	if (hn) {
		n = caa_container_of(hn, struct rlink, hnode)->n;
		if (!ref_not_zero(n))
			n = NULL;
	}
	urcu_memb_read_unlock();
	return n; /* with a reference the caller drops with node_unref */
}

static void node_destroy(struct dnode *n)
{
	while (n) {
		struct dnode *parent = n->parent;

		/* A node made again later starts from the blocks it then has:
		 * settle what writeback added since its last measure first. */
		if (n->layer == 0 && S_ISREG(n->type) && n->charged_inode && !n->unlinked)
			charge_node(n, -1, 0, 0);

		node_drop_real(n);
		urcu_memb_read_lock();
		cds_lfht_del(D->by_ino, &n->ino_node);
		urcu_memb_read_unlock();
		urcu_memb_call_rcu(&n->rcu, node_free);
		n = parent && __atomic_sub_fetch(&parent->refs, 1, __ATOMIC_ACQ_REL) == 0 ? parent
											: NULL;
	}
}

void node_unref(struct dnode *n)
{
	if (n && __atomic_sub_fetch(&n->refs, 1, __ATOMIC_ACQ_REL) == 0)
		node_destroy(n);
}

void node_forget(struct dnode *n, uint64_t nlookup)
{
	__atomic_sub_fetch(&n->nlookup, nlookup, __ATOMIC_RELAXED);
	if (__atomic_sub_fetch(&n->refs, nlookup, __ATOMIC_ACQ_REL) == 0)
		node_destroy(n);
}

static void node_publish_ino(struct dnode *n, uint64_t want)
{
	struct cds_lfht_node *got;
	uint64_t ino = want;

	urcu_memb_read_lock();
	for (;;) {
		if (ino > FUSE_ROOT_ID) {
			n->ino = ino;
			got = cds_lfht_add_unique(D->by_ino, mix64(ino), match_ino, &ino,
						  &n->ino_node);
			if (got == &n->ino_node)
				break;
		}
		ino = __atomic_fetch_add(&D->next_ino, 1, __ATOMIC_RELAXED);
	}
	urcu_memb_read_unlock();
}

static struct dnode *node_new(struct dnode *parent, const char *name, unsigned layer,
			      uint32_t lmask, const struct stat *st)
{
	pthread_mutexattr_t ma;
	struct dnode *n = calloc(1, sizeof(*n));
	char path[PATH_MAX];

	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&n->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	n->parent = parent;
	n->type = st->st_mode & S_IFMT;
	n->layer = layer;
	n->lmask = lmask;
	n->real_ino = st->st_ino;
	n->refs = n->nlookup = 1;
	n->area = node_path(parent, path, sizeof(path)) < 0 ? AREA_OTHER : parent->area;
	if (parent == D->root || parent->area == AREA_OTHER) {
		if (path_join(path, sizeof(path), path, name) == 0)
			n->area = area_of_path(path);
	}
	if (layer == 0) {
		n->charged_bytes = blocks_bytes(st);
		n->charged_inode = true;
	}
	return n;
}

/* Adopt an existing node for a repeated lookup: one more kernel reference. */
static struct dnode *node_adopt(struct dnode *n, uint32_t lmask)
{
	__atomic_add_fetch(&n->nlookup, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&n->lock);
	if (n->type == S_IFDIR)
		n->lmask = lmask;
	pthread_mutex_unlock(&n->lock);
	return n;
}

struct dnode *node_obtain(struct dnode *parent, const char *name, unsigned layer,
			  uint32_t lmask, const struct stat *st)
{
	struct dnode *n = node_find_real(layer, st->st_ino);

	if (n)
		return node_adopt(n, lmask);
	n = node_new(parent, name, layer, lmask, st);
	if (!n)
		return NULL;
	__atomic_add_fetch(&parent->refs, 1, __ATOMIC_ACQ_REL);
	node_publish_ino(n, ino_for(layer, st->st_ino));
	node_set_real(n, layer, st->st_ino);
	/* Several links: the path of this name may go, the handle stays. */
	if (layer == 0 && !S_ISDIR(st->st_mode) && st->st_nlink > 1)
		node_keep_handle(n);
	return n;
}

void node_keep_handle(struct dnode *n)
{
	struct file_handle *fh;
	int mount_id, fd;

	pthread_mutex_lock(&n->lock);
	if (n->fh || n->layer != 0) {
		pthread_mutex_unlock(&n->lock);
		return;
	}
	fd = node_open(n, O_PATH | O_NOFOLLOW);
	fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	if (fd >= 0 && fh) {
		fh->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0) {
			n->fh = fh;
			fh = NULL;
		}
	}
	free(fh);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&n->lock);
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
	cds_lfht_for_each_entry(D->by_ino, &it, n, ino_node)
		if (node_is_below(n, dir))
			fn(n, arg);
	urcu_memb_read_unlock();
}

int nodes_init(void)
{
	struct stat st;
	struct dnode *root;

	D->by_ino = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
					&urcu_memb_flavor, NULL);
	D->by_real = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
					 &urcu_memb_flavor, NULL);
	if (!D->by_ino || !D->by_real)
		return -ENOMEM;
	if (fstat(D->layers[0].fd, &st) < 0)
		return -errno;
	D->next_ino = 1ULL << 62;
	root = calloc(1, sizeof(*root));
	if (!root || !(root->name = strdup("")))
		return -ENOMEM;
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&root->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	root->ino = FUSE_ROOT_ID;
	root->refs = 1;
	root->type = S_IFDIR;
	root->lmask = D->nlayers > 1 ? (uint32_t)((1ULL << (D->nlayers - 1)) - 1) : 0;
	root->real_ino = st.st_ino;
	root->charged_bytes = blocks_bytes(&st);
	root->charged_inode = true;
	root->area = AREA_OTHER;
	D->root = root;
	urcu_memb_read_lock();
	cds_lfht_add(D->by_ino, mix64(FUSE_ROOT_ID), &root->ino_node);
	urcu_memb_read_unlock();
	return 0;
}

void nodes_fini(void)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *hn;

	if (!D->by_ino)
		return;
	/* Called after the session ended: no readers left. */
	urcu_memb_read_lock();
	cds_lfht_first(D->by_ino, &it);
	while ((hn = cds_lfht_iter_get_node(&it))) {
		struct dnode *n = caa_container_of(hn, struct dnode, ino_node);

		node_drop_real(n);
		cds_lfht_del(D->by_ino, hn);
		urcu_memb_call_rcu(&n->rcu, node_free);
		cds_lfht_next(D->by_ino, &it);
	}
	urcu_memb_read_unlock();
	urcu_memb_barrier();
	cds_lfht_destroy(D->by_ino, NULL);
	cds_lfht_destroy(D->by_real, NULL);
	D->by_ino = D->by_real = NULL;
}
