/* Node layout of the view trees, the passthrough table for real cpu sysfs
 * entries, and the per-container tree registry. Passthrough nodes and ct
 * entries live until the daemon exits: both are bounded (sysfs entries per
 * view; one ct per container name). */
#include "fs.h"
#include "ids.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file added under proc/ or sys/ here is one more the launcher binds:
 * it goes into include/cvmfs/view_files.h too (test_view_files fails
 * until it does). */
const struct tnode views_tree[T_COUNT] = {
	{ "", -1, TN_DIR, 0 },
	{ "proc", 0, TN_DIR, 0 },
	{ "meminfo", 1, TN_FILE, VF_MEMINFO },
	{ "cpuinfo", 1, TN_FILE, VF_CPUINFO },
	{ "stat", 1, TN_FILE, VF_STAT },
	{ "uptime", 1, TN_FILE, VF_UPTIME },
	{ "loadavg", 1, TN_FILE, VF_LOADAVG },
	{ "swaps", 1, TN_FILE, VF_SWAPS },
	{ "diskstats", 1, TN_FILE, VF_DISKSTATS },
	{ "pressure", 1, TN_DIR, 0 },
	{ "cpu", 9, TN_FILE, VF_PSI_CPU },
	{ "memory", 9, TN_FILE, VF_PSI_MEM },
	{ "io", 9, TN_FILE, VF_PSI_IO },
	{ "sys", 0, TN_DIR, 0 },
	{ "devices", 13, TN_DIR, 0 },
	{ "system", 14, TN_DIR, 0 },
	{ "cpu", 15, TN_CPUDIR, 0 },
	{ "online", 16, TN_FILE, VF_CPU_ONLINE },
	{ "possible", 16, TN_FILE, VF_CPU_POSSIBLE },
	{ "present", 16, TN_FILE, VF_CPU_PRESENT },
	{ "ct", 0, TN_CTROOT, 0 },
	/* The shared tree's generic files: the targets of proc/ links for
	 * readers without limits, and what a bind mount made by them holds. */
	{ ".generic", 0, TN_DIR, 0 },
	{ "meminfo", T_GENERIC, TN_FILE, VF_MEMINFO },
	{ "cpuinfo", T_GENERIC, TN_FILE, VF_CPUINFO },
	{ "stat", T_GENERIC, TN_FILE, VF_STAT },
	{ "uptime", T_GENERIC, TN_FILE, VF_UPTIME },
	{ "loadavg", T_GENERIC, TN_FILE, VF_LOADAVG },
	{ "swaps", T_GENERIC, TN_FILE, VF_SWAPS },
	{ "diskstats", T_GENERIC, TN_FILE, VF_DISKSTATS },
	{ "cpu", T_GENERIC, TN_CPUDIR, 0 },
	{ "online", T_GENCPU, TN_FILE, VF_CPU_ONLINE },
	{ "possible", T_GENCPU, TN_FILE, VF_CPU_POSSIBLE },
	{ "present", T_GENCPU, TN_FILE, VF_CPU_PRESENT },
	/* Added later: new numbers, so that older node ids keep their meaning. */
	{ "vmstat", T_PROC, TN_FILE, VF_VMSTAT },
	{ "vmstat", T_GENERIC, TN_FILE, VF_VMSTAT },
	{ "block", 13, TN_BLOCKDIR, 0 },
	{ "", 35, TN_OBJDIR, 0 },		/* sys/block/NAME (T_BLOCKDEV) */
	{ "stat", T_BLOCKDEV, TN_FILE, VF_BLOCK_STAT },
	{ "node", 15, TN_NODEDIR, 0 },
	{ "", 38, TN_OBJDIR, 0 },		/* nodeN (T_NODEN) */
	{ "cpulist", T_NODEN, TN_FILE, VF_NODE_CPULIST },
	{ "cpumap", T_NODEN, TN_FILE, VF_NODE_CPUMAP },
	{ "meminfo", T_NODEN, TN_FILE, VF_NODE_MEMINFO },
};

_Static_assert(sizeof(views_tree) / sizeof(views_tree[0]) == T_COUNT, "T_COUNT");

int tnode_child(int parent, const char *name)
{
	for (int t = 1; t < T_COUNT; t++)
		if (views_tree[t].parent == parent && views_tree[t].name[0] &&
		    !strcmp(views_tree[t].name, name))
			return t;
	return -1;
}

/* ---- per-object directories: the host's block devices and NUMA nodes ---- */

static bool plain_name(const char *name)
{
	return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 64;
}

/* "nodeN" with N in canonical decimal. */
static int node_number(const char *name)
{
	char *end;
	unsigned long n;

	if (strncmp(name, "node", 4) || !isdigit((unsigned char)name[4]) ||
	    (name[4] == '0' && name[5]))
		return -ENOENT;
	n = strtoul(name + 4, &end, 10);
	return *end || n > 65535 ? -ENOENT : (int)n;
}

int obj_lookup(int dir, const char *name)
{
	char rel[96];
	struct stat st;
	int n;

	if (views_tree[dir].kind == TN_NODEDIR) {
		n = node_number(name);
		return n >= 0 && host_node_exists((unsigned)n) ? n : -ENOENT;
	}
	if (views_tree[dir].kind != TN_BLOCKDIR || !plain_name(name) || host_sys_fd() < 0)
		return -ENOENT;
	snprintf(rel, sizeof(rel), "block/%s", name);
	if (fstatat(host_sys_fd(), rel, &st, 0) < 0 || !S_ISDIR(st.st_mode))
		return -ENOENT;
	return block_index(name);
}

void obj_list(int dir, void (*fn)(const char *name, unsigned arg, void *ctx), void *ctx)
{
	const char *rel = views_tree[dir].kind == TN_NODEDIR ? "devices/system/node" : "block";
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	int fd;

	if (host_sys_fd() < 0)
		return;
	fd = openat(host_sys_fd(), rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		int arg = views_tree[dir].kind == TN_NODEDIR ? node_number(e->d_name)
						       : plain_name(e->d_name) ? block_index(e->d_name)
									       : -ENOENT;

		if (arg >= 0)
			fn(e->d_name, (unsigned)arg, ctx);
	}
}

void tnode_attr(fuse_ino_t ino, int t, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (views_tree[t].kind == TN_FILE) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	} else {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	}
}

bool cpu_entry_visible(const struct view_caller *who, const char *name)
{
	uint8_t set[CG_MAX_CPUS / 8];
	const char *p = name + 3;

	if (strncmp(name, "cpu", 3) || !*p)
		return true;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return true; /* cpufreq, cpuidle */
	caller_visible_cpus(who, set);
	return cpuset_has(set, (unsigned)atoi(name + 3));
}

/* Passthrough nodes: a chained hash under one mutex. Lookups of real sysfs
 * entries are rare (long entry timeouts), so this is not on the hot path. */
#define PN_BUCKETS 1024
struct pn_link {
	struct pn_link *next;
	uint64_t idx;
};
static pthread_mutex_t pn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pnode **pn_all;
static size_t pn_count, pn_cap;
static struct pn_link *pn_hash[PN_BUCKETS];

static unsigned pn_bucket(unsigned view, const char *rel)
{
	unsigned h = view * 31u;

	for (; *rel; rel++)
		h = h * 131u + (unsigned char)*rel;
	return h % PN_BUCKETS;
}

struct pnode *pnode_get(fuse_ino_t ino)
{
	uint64_t idx = ino & ~PASS_BIT;
	struct pnode *p = NULL;

	pthread_mutex_lock(&pn_lock);
	if (idx < pn_count)
		p = pn_all[idx];
	pthread_mutex_unlock(&pn_lock);
	return p;
}

fuse_ino_t pnode_intern(unsigned view, const char *rel)
{
	unsigned b = pn_bucket(view, rel);
	fuse_ino_t ino = 0;
	struct pn_link *l;

	pthread_mutex_lock(&pn_lock);
	for (l = pn_hash[b]; l; l = l->next) {
		struct pnode *p = pn_all[l->idx];

		if (p->view == view && !strcmp(p->rel, rel)) {
			ino = PASS_BIT | l->idx;
			goto out;
		}
	}
	if (pn_count == pn_cap) {
		size_t cap = pn_cap ? pn_cap * 2 : 256;
		struct pnode **n = realloc(pn_all, cap * sizeof(*n));

		if (!n)
			goto out;
		pn_all = n;
		pn_cap = cap;
	}
	struct pnode *p = malloc(sizeof(*p));

	l = malloc(sizeof(*l));
	if (!p || !l || !(p->rel = strdup(rel))) {
		free(p);
		free(l);
		goto out;
	}
	p->view = view;
	pn_all[pn_count] = p;
	l->idx = pn_count++;
	l->next = pn_hash[b];
	pn_hash[b] = l;
	ino = PASS_BIT | l->idx;
	ids_note(IDS_PASS, view, rel);
out:
	pthread_mutex_unlock(&pn_lock);
	return ino;
}

/* Per-container trees, in fixed chunks so lookups by id need no lock. */
#define CT_CHUNK 256
#define CT_CHUNKS 4096
static struct ct **ct_chunks[CT_CHUNKS];
static pthread_mutex_t ct_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned ct_next = 1; /* id 0 is the shared tree */

struct ct *ct_get(unsigned id)
{
	struct ct **chunk;

	if (id == 0 || id >= CT_CHUNK * CT_CHUNKS)
		return NULL;
	chunk = __atomic_load_n(&ct_chunks[id / CT_CHUNK], __ATOMIC_ACQUIRE);
	return chunk ? __atomic_load_n(&chunk[id % CT_CHUNK], __ATOMIC_ACQUIRE) : NULL;
}

int ct_cgroup_stat(const char *name, struct stat *st)
{
	char rel[600];

	if (!name[0] || name[0] == '.' || strchr(name, '/') || strlen(name) > 255)
		return -ENOENT;
	snprintf(rel, sizeof(rel), "%s/%s", views_ctx->cfg.ct_parent, name);
	for (int r = 0; r < CG_NRES; r++) {
		int fd = views_ctx->layout.hier_fd[r];

		if (fd >= 0 && fstatat(fd, rel, st, 0) == 0)
			return 0;
	}
	return -ENOENT;
}

/* Allocate the next id; caller holds ct_lock. */
static struct ct *ct_alloc(void)
{
	struct ct *c;

	if (ct_next >= CT_CHUNK * CT_CHUNKS)
		return NULL;
	if (!ct_chunks[ct_next / CT_CHUNK]) {
		struct ct **chunk = calloc(CT_CHUNK, sizeof(*chunk));

		if (!chunk)
			return NULL;
		__atomic_store_n(&ct_chunks[ct_next / CT_CHUNK], chunk, __ATOMIC_RELEASE);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->id = ct_next;
	c->pidns_start = PIDNS_UNKNOWN;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void ct_publish(struct ct *c)
{
	__atomic_store_n(&ct_chunks[c->id / CT_CHUNK][c->id % CT_CHUNK], c, __ATOMIC_RELEASE);
	ct_next++;
}

struct ct *ct_intern(const char *name)
{
	char path[300];
	struct ct *c = NULL;

	pthread_mutex_lock(&ct_lock);
	for (unsigned id = 1; id < ct_next; id++) {
		c = ct_get(id);
		if (c && !c->anon && !strcmp(c->name, name))
			goto out;
	}
	c = ct_alloc();
	if (!c)
		goto out;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(path, sizeof(path), "/%s/%s", views_ctx->cfg.ct_parent, name);
	cg_paths_uniform(&views_ctx->layout, path, &c->paths);
	ids_note(IDS_CT, c->id, name);
	ct_publish(c);
out:
	pthread_mutex_unlock(&ct_lock);
	return c;
}

unsigned ct_for_container(struct container *cont, uint64_t pidns_start)
{
	struct ct *c;
	unsigned id = 0;

	pthread_mutex_lock(&cont->stat_lock);
	if (cont->anon_ct && cont->anon_pidns == pidns_start)
		id = cont->anon_ct;
	pthread_mutex_unlock(&cont->stat_lock);
	if (id)
		return id;
	pthread_mutex_lock(&ct_lock);
	c = ct_alloc();
	if (c) {
		c->anon = true;
		c->paths = cont->paths;
		c->pidns_start = pidns_start;
		snprintf(c->name, sizeof(c->name), "@%u", c->id);
		id = c->id;
		ids_note(IDS_ANON, id, "");
		ct_publish(c);
	}
	pthread_mutex_unlock(&ct_lock);
	if (!id)
		return 0;
	pthread_mutex_lock(&cont->stat_lock);
	cont->anon_ct = id;
	cont->anon_pidns = pidns_start;
	c->anon_next = cont->anon_cts;
	cont->anon_cts = c;
	pthread_mutex_unlock(&cont->stat_lock);
	return id;
}

/* Replaying the ids journal: an anonymous tree's id, which died with the
 * server that made it (its container is found again under a new id). */
unsigned ct_skip_id(void)
{
	unsigned id;

	pthread_mutex_lock(&ct_lock);
	id = ct_next < CT_CHUNK * CT_CHUNKS ? ct_next++ : 0;
	pthread_mutex_unlock(&ct_lock);
	return id;
}

struct ct_file *ct_file_slot(struct ct *c, enum vfile f, unsigned arg)
{
	struct ct_file *grown;
	unsigned n;

	if (!vfile_has_arg(f))
		return &c->files[f];
	if (arg < c->n_obj_files[f])
		return &c->obj_files[f][arg];
	if (arg >= 65536)
		return NULL;
	n = MAX(arg + 1, 2 * c->n_obj_files[f]);
	grown = realloc(c->obj_files[f], n * sizeof(*grown));
	if (!grown)
		return NULL;
	memset(grown + c->n_obj_files[f], 0, (n - c->n_obj_files[f]) * sizeof(*grown));
	c->obj_files[f] = grown;
	c->n_obj_files[f] = n;
	return &grown[arg];
}

static void ct_free_rcu(struct rcu_head *h)
{
	struct ct *c = caa_container_of(h, struct ct, rcu);

	for (int f = 0; f < VF_NFILES; f++) {
		free(c->files[f].data);
		for (unsigned i = 0; i < c->n_obj_files[f]; i++)
			free(c->obj_files[f][i].data);
		free(c->obj_files[f]);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* A container is going: unpublish its anonymous trees. Their ids are not
 * reused, so a stale kernel reference only ever finds ESTALE. */
static void ct_container_dead(struct container *cont)
{
	struct ct *c, *next;

	pthread_mutex_lock(&cont->stat_lock);
	c = cont->anon_cts;
	cont->anon_cts = NULL;
	cont->anon_ct = 0;
	pthread_mutex_unlock(&cont->stat_lock);
	for (; c; c = next) {
		next = c->anon_next;
		__atomic_store_n(&ct_chunks[c->id / CT_CHUNK][c->id % CT_CHUNK], NULL,
				 __ATOMIC_RELEASE);
		urcu_memb_call_rcu(&c->rcu, ct_free_rcu);
	}
}

void ct_tables_init(void)
{
	container_dead_hook = ct_container_dead;
}

void sym_target(unsigned ct_id, int t, char *buf, size_t size)
{
	const char *parts[8];
	int n = 0, depth = 0;
	size_t off = 0;

	for (int p = views_tree[t].parent; p > 0; p = views_tree[p].parent)
		depth++;
	for (int i = 0; i < depth; i++)
		off += (size_t)snprintf(buf + off, size - off, "../");
	if (!ct_id) { /* the generic node of the same name */
		snprintf(buf + off, size - off, "%s/%s", views_tree[T_GENERIC].name,
			 views_tree[t].name);
		return;
	}
	off += (size_t)snprintf(buf + off, size - off, "ct/@%u", ct_id);
	for (int p = t; p > 0 && n < 8; p = views_tree[p].parent)
		parts[n++] = views_tree[p].name;
	while (n-- > 0 && off < size)
		off += (size_t)snprintf(buf + off, size - off, "/%s", parts[n]);
}
