/* cvmfsd disk's nodes and union layers, without FUSE or privileges: the
 * node table (ids from layer and inode, paths, areas, renames, the ghost a
 * forgotten node leaves) and lookups and listings across three layers
 * (an upper and two image layers with OCI whiteouts and an opaque
 * directory), on directories made in a temporary directory. */
#include "check.h"

#include "union/union.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct disk disk;
static char tmp[] = "/tmp/cvmfs-test-nodes-XXXXXX";

static void make(const char *rel, bool dir)
{
	char p[PATH_MAX];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	if (dir) {
		CHECK(mkdir(p, 0755) == 0);
		return;
	}
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

/* upper: x, d/; image 1 (top): .wh.y, d/ (opaque, with k); image 2: y,
 * w, d/z, home/. */
static void make_layers(void)
{
	static const char *const dirs[] = { "upper", "upper/d", "l1", "l1/d", "l2", "l2/d",
					    "l2/home" };
	static const char *const files[] = { "upper/x", "l1/.wh.y", "l1/d/.wh..wh..opq",
					     "l1/d/k", "l2/y", "l2/w", "l2/d/z" };

	CHECK(mkdtemp(tmp) != NULL);
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		make(dirs[i], true);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		make(files[i], false);
}

static int open_layers(void)
{
	static const char *const names[] = { "upper", "l1", "l2" };
	char p[PATH_MAX];

	disk_ctx = &disk;
	pthread_rwlock_init(&disk.ns_lock, NULL);
	for (unsigned i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmp, names[i]);
		disk.layers[i].fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
		disk.layers[i].handle_mnt_fd = -1;
		if (disk.layers[i].fd < 0)
			return -errno;
	}
	disk.nlayers = ARRAY_SIZE(names);
	disk_thread_enter();
	return ghosts_init() < 0 ? -ENOMEM : nodes_init(NULL);
}

static struct dnode *obtain(struct dnode *dir, const char *name)
{
	struct found f;
	int r = node_lookup(dir, name, &f);

	CHECK_EQ_INT(r, 0);
	return r == 0 ? node_obtain(dir, name, f.layer, f.lmask, &f.st, f.gen) : NULL;
}

static void check_path(struct dnode *n, const char *want)
{
	_cleanup_free_ char *path = NULL;

	pthread_rwlock_rdlock(&disk_ctx->ns_lock);
	CHECK_EQ_INT(node_path(n, &path), 0);
	pthread_rwlock_unlock(&disk_ctx->ns_lock);
	CHECK_STR(path ? path : "(none)", want);
}

static void test_lookups(void)
{
	struct found f;

	CHECK_EQ_INT(node_lookup(disk_ctx->root, "x", &f), 0);
	CHECK_EQ_INT((int)f.layer, 0);
	CHECK_EQ_INT(node_lookup(disk_ctx->root, "w", &f), 0);
	CHECK_EQ_INT((int)f.layer, 2);
	/* Whited out in image 1, so image 2's y never shows. */
	CHECK_EQ_INT(node_lookup(disk_ctx->root, "y", &f), -ENOENT);
	CHECK_EQ_INT(node_lookup(disk_ctx->root, ".wh.y", &f), -ENOENT);
	/* d: upper, and image 1 merged; image 1's d is opaque: not image 2. */
	CHECK_EQ_INT(node_lookup(disk_ctx->root, "d", &f), 0);
	CHECK_EQ_INT((int)f.layer, 0);
	CHECK_EQ_INT((int)f.lmask, 1);
}

static void test_listing(void)
{
	struct dlist l = { 0 };
	bool k = false, z = false;

	CHECK_EQ_INT(dir_list(NULL, "d", true, 1, &l), 0);
	for (size_t i = 0; i < l.n; i++) {
		k |= strcmp(l.ents[i].name, "k") == 0;
		z |= strcmp(l.ents[i].name, "z") == 0;
		CHECK(strncmp(l.ents[i].name, ".wh.", 4) != 0);
	}
	CHECK(k);
	CHECK(!z);
	dlist_free(&l);
}

static void test_nodes(void)
{
	struct dnode *x = obtain(disk_ctx->root, "x"), *d = obtain(disk_ctx->root, "d");
	struct dnode *home = obtain(disk_ctx->root, "home"), *k = d ? obtain(d, "k") : NULL;
	if (!x || !d || !home || !k)
		return;
	CHECK(node_get(x->ino) == x);
	CHECK(x->ino == ino_for(0, x->real_ino));
	CHECK(k->ino == ino_for(1, k->real_ino));
	CHECK(node_get(ROOT_ID) == disk_ctx->root);
	check_path(k, "d/k");
	CHECK_EQ_INT(home->area, AREA_HOME);
	CHECK_EQ_INT(x->area, AREA_OTHER);
	/* A second lookup is the same node, one more kernel reference. */
	CHECK(obtain(disk_ctx->root, "x") == x);
	node_forget(x, 1);

	pthread_rwlock_wrlock(&disk_ctx->ns_lock);
	CHECK_EQ_INT(node_move(k, home, "k2"), 0);
	pthread_rwlock_unlock(&disk_ctx->ns_lock);
	check_path(k, "home/k2");
	CHECK_EQ_INT(node_area_of(home, "k2"), AREA_HOME);
}

/* A forgotten node leaves the table and a ghost that says where it was. */
static void test_ghost(void)
{
	struct dnode *d = obtain(disk_ctx->root, "d");
	struct dnode *k;
	_cleanup_free_ char *name = NULL;
	uint64_t ino, parent = 0;

	if (!d)
		return;
	k = obtain(disk_ctx->root, "w");
	if (!k)
		return;
	ino = k->ino;
	node_forget(k, 1);
	urcu_memb_synchronize_rcu();
	CHECK(node_get(ino) == NULL);
	CHECK_EQ_INT(ghost_find(ino, &parent, &name), 0);
	CHECK(parent == ROOT_ID);
	CHECK_STR(name ? name : "(none)", "w");
	CHECK_EQ_INT(ghost_find(ino + 12345, &parent, &name), -ESTALE);
}

/* A node with a dead server's unknown lookup count (after a take-over):
 * answers do not count on top of it; a FORGET while a request holds it
 * lets it go with that request, not under it; an answer after such a
 * FORGET gives the kernel the id afresh, so the node stays. */
static void test_unknown_count(void)
{
	struct dnode *n, *held;
	uint64_t ino;

	make("upper/u", false);
	n = obtain(disk_ctx->root, "u");
	if (!n)
		return;
	ino = n->ino;
	CHECK(!node_kernel_absorb(n)); /* a known count: the lookup is the kernel's */
	node_count_unknown(n); /* as after a take-over: that lookup is in the count */
	CHECK(node_kernel_absorb(n));
	CHECK(obtain(disk_ctx->root, "u") == n);
	CHECK(node_kernel_absorb(n)); /* not counted on top */

	held = node_get_held(ino); /* a request names it */
	CHECK(held == n);
	node_forget(n, 7); /* an older inode's FORGET: n stays for the request */
	CHECK(node_get(ino) == n);
	node_unref(held); /* the request answered: n goes */
	CHECK(node_get(ino) == NULL);
	urcu_memb_synchronize_rcu();

	n = obtain(disk_ctx->root, "u");
	if (!n)
		return;
	ino = n->ino;
	node_count_unknown(n);
	node_kernel_absorb(n);
	held = node_get_held(ino);
	node_forget(n, 1);
	CHECK(obtain(disk_ctx->root, "u") == n); /* a LOOKUP answered afresh */
	CHECK(node_kernel_absorb(n));
	node_unref(held);
	CHECK(node_get(ino) == n); /* the kernel holds it again */
	node_forget(n, 1);
	CHECK(node_get(ino) == NULL);
}

/* Ghosts leave in the order they were last forgotten: one forgotten
 * again (every object of a tree after each cache drop) stays the
 * youngest, and the table never holds more than GHOST_MAX. */
static void test_ghost_ring(void)
{
	struct dnode parent = { .ino = ROOT_ID };
	struct dnode n = { .parent = &parent, .name = "g" };
	const uint64_t first = 1ull << 40, again = first + 1;
	_cleanup_free_ char *name = NULL;
	uint64_t p;

	for (uint64_t i = 0; i < GHOST_MAX; i++) {
		n.ino = first + i;
		ghost_remember(&n);
	}
	n.ino = again; /* its first slot is the oldest but one now */
	ghost_remember(&n);
	n.ino = first + GHOST_MAX; /* pushes out first, then again's stale slot */
	ghost_remember(&n);
	n.ino = first + GHOST_MAX + 1;
	ghost_remember(&n);
	CHECK_EQ_INT(ghost_find(first, &p, &name), -ESTALE);
	CHECK_EQ_INT(ghost_find(again, &p, &name), 0);
	for (uint64_t i = 0; i < GHOST_MAX; i++) {
		n.ino = first + GHOST_MAX + 2 + i;
		ghost_remember(&n);
	}
	free(name);
	name = NULL;
	CHECK_EQ_INT(ghost_find(again, &p, &name), -ESTALE);
	urcu_memb_barrier();
	CHECK(__atomic_load_n(&disk_ctx->ghosts, __ATOMIC_RELAXED) <= GHOST_MAX);
}

int main(void)
{
	int r;

	make_layers();
	r = open_layers();
	CHECK_EQ_INT(r, 0);
	if (r == 0) {
		test_lookups();
		test_listing();
		test_nodes();
		test_ghost();
		test_ghost_ring();
		test_unknown_count();
		nodes_fini();
		ghosts_fini();
	}
	for (unsigned i = 0; i < disk.nlayers; i++)
		close(disk.layers[i].fd);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
		CHECK(system(cmd) == 0);
	}
	return check_done();
}
