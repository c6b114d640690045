/* The take-over journal (issue 17, doc/cvmfsd-disk.md): what a server
 * that takes the connection over from a dead one needs to answer for the
 * kernel's node ids and file handles, in one memfd that the supervisor
 * holds and every server maps shared (made before the first server, so
 * each inherits the mapping):
 *  - the open files: a slot per fd number (the file handle is the fd,
 *    which survives in the fd table the servers share with the
 *    supervisor) with its node id, I/O mode and passthrough backing id;
 *  - the node names: an append-only log of (id, parent id, name) written
 *    when a node is made or renamed. A new server indexes it and finds a
 *    node the kernel holds by walking from its parent, as for a ghost;
 *  - per open-file slot, the request the open answered (its unique): an
 *    OPEN or CREATE the kernel resends was never answered, so a kept fd
 *    journaled for it is nobody's file and is closed (journal_unanswered).
 * Both are plain stores into shared memory on the request path: no
 * system call; the log's appends take a read lock for compaction.
 *
 * Compaction: the log has two regions, one appended to (active). Once the
 * active one has grown past twice what the last compaction left plus
 * SLACK, the publisher copies into the other the last record of every
 * node this server knows (dnode.jrec) and of every id a dead server left
 * that no node has taken up yet (the kernel may still hold it), makes that
 * region the active one and gives the old one's memory back: the log
 * holds what the kernel may hold, not its history. Appends wait meanwhile
 * (about 0.1 s per million records). A server that dies in the middle
 * leaves the active region as it was: a new server reads only that one.
 * A region is bounded (LOG_CAP): once full, later nodes are found again
 * only through ghosts and handles (one warning line). */
#include "nodes/nodes.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOTS (1u << 20) /* fds below this are journaled */
#define LOG_CAP (512ull << 20)
#define SLACK (16ull << 20)
#define MAGIC 0x636a6e6cu

struct slot {
	uint64_t ino; /* 0: free */
	uint32_t backing_id;
	uint32_t io;
};

struct head {
	uint64_t tail; /* bytes used in the log (atomic) */
	uint32_t magic;
	uint32_t full;
	/* The fallback ids (inode.c): every server goes on from the last
	 * one's, so that no id comes back with another meaning. */
	uint64_t next_ino;
	uint32_t test_died; /* journal_test_once */
	/* Zero in a journal an older binary made: region 0 active. */
	uint32_t active; /* the log region appended to, 0 or 1 */
	uint64_t tail1;  /* bytes used in region 1 (atomic) */
};

struct rec {
	uint32_t len;  /* the whole record, 8-aligned; written first */
	uint32_t name_len;
	uint64_t parent;
	uint64_t real; /* the object: layer, inode, generation */
	uint32_t layer, gen;
	uint64_t ino;  /* written last: 0 while incomplete */
	char name[];
};

/* The uniques, then the second log region come last: a journal an older
 * binary made (an upgrade from it) is grown to hold them, the rest of its
 * layout unchanged. */
#define SLOTS_OFF 4096ull
#define LOG_OFF (SLOTS_OFF + (uint64_t)SLOTS * sizeof(struct slot))
#define UNIQ_OFF (LOG_OFF + LOG_CAP)
#define LOG1_OFF (UNIQ_OFF + (uint64_t)SLOTS * sizeof(uint64_t))
#define MAP_LEN (LOG1_OFF + LOG_CAP)
_Static_assert(MAP_LEN <= UINT32_MAX, "a record's offset fits dnode.jrec");

static struct head *H;
static struct slot *slots;
static uint64_t *uniques;
static char *map; /* records are found by their offset from here */
static int map_fd = -1;
/* Appends (read) against compaction (write); also guards idx. */
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static uint64_t slack = SLACK, compacted; /* bytes the last compaction left */

/* The open files this server took over (open_restore), until the kernel
 * releases them or resends the OPEN that made one. */
static struct {
	pthread_mutex_t lock;
	int *fd;
	size_t n, cap;
} kept = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The replayed log's index: id -> offset of its last record; and
 * (parent id, name) -> offset + 1 of the last record made there (names);
 * offsets from map. */
struct index {
	uint64_t *ino, *off, *names;
	size_t cap;
};
static struct index idx;

int journal_create(void)
{
	int fd = memfd_create("cvmfs-disk-journal", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)MAP_LEN) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

int journal_attach(int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0 || (st.st_size < (off_t)MAP_LEN && ftruncate(fd, (off_t)MAP_LEN) < 0))
		return -errno;
	p = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	H = p;
	map = p;
	map_fd = fd;
	slots = (struct slot *)(map + SLOTS_OFF);
	uniques = (uint64_t *)(map + UNIQ_OFF);
	if (getenv("CVMFS_DISK_TEST_JOURNAL_SLACK"))
		slack = strtoull(getenv("CVMFS_DISK_TEST_JOURNAL_SLACK"), NULL, 0);
	if (H->magic != MAGIC) {
		H->tail = H->tail1 = 0;
		H->active = 0;
		H->next_ino = 0;
		H->magic = MAGIC;
	}
	return 0;
}

uint64_t journal_next_ino(uint64_t *local)
{
	uint64_t first = __atomic_load_n(local, __ATOMIC_RELAXED), zero = 0;

	if (!H)
		return __atomic_fetch_add(local, 1, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&H->next_ino, &zero, first, false, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
	return __atomic_fetch_add(&H->next_ino, 1, __ATOMIC_RELAXED);
}

static uint64_t *tail_of(unsigned region)
{
	return region ? &H->tail1 : &H->tail;
}

static uint64_t region_off(unsigned region)
{
	return region ? LOG1_OFF : LOG_OFF;
}

/* Room for len bytes in a region (log_lock held): the record's offset
 * from map, or 0 when the region is full. */
static uint64_t rec_reserve(unsigned region, size_t len)
{
	uint64_t off = __atomic_fetch_add(tail_of(region), len, __ATOMIC_RELAXED);

	if (off + len <= LOG_CAP)
		return region_off(region) + off;
	if (!__atomic_exchange_n(&H->full, 1, __ATOMIC_RELAXED))
		log_warn("take-over journal full (%llu MiB): nodes made from now on are "
			 "found again after a restart only through ghosts and handles",
			 (unsigned long long)(LOG_CAP >> 20));
	return 0;
}

void journal_node(uint64_t ino, uint64_t parent, const char *name, unsigned layer,
		  uint64_t real, uint32_t gen, uint32_t *jrec)
{
	size_t nl = strlen(name), len = (sizeof(struct rec) + nl + 1 + 7) & ~(size_t)7;
	uint64_t off;
	struct rec *r;

	if (!H)
		return;
	pthread_rwlock_rdlock(&log_lock);
	off = rec_reserve(__atomic_load_n(&H->active, __ATOMIC_RELAXED) & 1, len);
	/* None when full: a stale record must not be copied for it. */
	__atomic_store_n(jrec, (uint32_t)off, __ATOMIC_RELAXED);
	if (off) {
		r = (struct rec *)(map + off);
		__atomic_store_n(&r->len, (uint32_t)len, __ATOMIC_RELAXED);
		r->name_len = (uint32_t)nl;
		r->parent = parent;
		r->real = real;
		r->layer = layer;
		r->gen = gen;
		memcpy(r->name, name, nl + 1);
		__atomic_store_n(&r->ino, ino, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&log_lock);
}

void journal_open(int fd, uint64_t ino, unsigned io, uint32_t backing_id, uint64_t unique)
{
	if (!H || fd < 0 || (unsigned)fd >= SLOTS)
		return;
	uniques[fd] = unique;
	slots[fd].backing_id = backing_id;
	slots[fd].io = io;
	__atomic_store_n(&slots[fd].ino, ino, __ATOMIC_RELEASE);
}

void journal_release(int fd)
{
	if (H && fd >= 0 && (unsigned)fd < SLOTS)
		__atomic_store_n(&slots[fd].ino, 0, __ATOMIC_RELEASE);
}

bool journal_open_get(int fd, uint64_t *ino, unsigned *io, uint32_t *backing_id)
{
	if (!H || fd < 0 || (unsigned)fd >= SLOTS || !slots[fd].ino)
		return false;
	*ino = slots[fd].ino;
	*io = slots[fd].io;
	*backing_id = slots[fd].backing_id;
	return true;
}

void journal_kept(int fd)
{
	int *grown;

	pthread_mutex_lock(&kept.lock);
	if (kept.n == kept.cap) {
		grown = realloc(kept.fd, (kept.cap * 2 + 64) * sizeof(*grown));
		if (grown) {
			kept.fd = grown;
			kept.cap = kept.cap * 2 + 64;
		}
	}
	if (kept.n < kept.cap)
		kept.fd[kept.n++] = fd;
	pthread_mutex_unlock(&kept.lock);
}

/* A kept fd's slot names the request that opened it as long as the fd is
 * that file: a RELEASE clears the slot, a later open of the number
 * journals another unique (the kernel never repeats one). */
int journal_unanswered(uint64_t unique)
{
	int fd = -ENOENT;

	pthread_mutex_lock(&kept.lock);
	for (size_t i = 0; i < kept.n && fd < 0; i++) {
		int k = kept.fd[i];

		if ((unsigned)k < SLOTS && __atomic_load_n(&slots[k].ino, __ATOMIC_ACQUIRE) &&
		    uniques[k] == unique) {
			fd = k;
			kept.fd[i] = kept.fd[--kept.n];
		}
	}
	pthread_mutex_unlock(&kept.lock);
	return fd;
}

bool journal_test_once(void)
{
	return H && !__atomic_exchange_n(&H->test_died, 1, __ATOMIC_RELAXED);
}

static size_t idx_pos(uint64_t ino)
{
	return (size_t)hash64(ino) & (idx.cap - 1);
}

static void idx_put(struct index *x, uint64_t ino, uint64_t off)
{
	size_t i = (size_t)hash64(ino) & (x->cap - 1);

	while (x->ino[i] && x->ino[i] != ino)
		i = (i + 1) & (x->cap - 1);
	x->ino[i] = ino;
	x->off[i] = off;
}

static bool rec_at(const struct rec *r, uint64_t parent, const char *name, size_t len)
{
	return r->parent == parent && r->name_len == len && !memcmp(r->name, name, len);
}

static size_t name_pos(struct index *x, uint64_t parent, const char *name, size_t len)
{
	uint64_t h = hash64(parent);

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
	return (size_t)hash64(h) & (x->cap - 1);
}

static void name_put(struct index *x, const struct rec *r, uint64_t off)
{
	size_t i = name_pos(x, r->parent, r->name, r->name_len);

	while (x->names[i] &&
	       !rec_at((const struct rec *)(map + x->names[i] - 1), r->parent, r->name,
		       r->name_len))
		i = (i + 1) & (x->cap - 1);
	x->names[i] = off + 1;
}

static void index_free(struct index *x)
{
	free(x->ino);
	free(x->off);
	free(x->names);
	*x = (struct index){ 0 };
}

/* Room for records at half load at most. */
static int index_alloc(struct index *x, uint64_t records)
{
	x->cap = 1024;
	while (x->cap < records * 2)
		x->cap <<= 1;
	x->ino = calloc(x->cap, sizeof(*x->ino));
	x->off = calloc(x->cap, sizeof(*x->off));
	x->names = calloc(x->cap, sizeof(*x->names));
	if (x->ino && x->off && x->names)
		return 0;
	index_free(x);
	return -ENOMEM;
}

/* Index the log a dead server left, its active region only (a record cut
 * by its death ends it; the other region is a compaction's, done or cut
 * short: what it holds is in the active one too). */
int journal_replay(void)
{
	unsigned region = H ? H->active & 1 : 0;
	uint64_t end = H ? MIN(*tail_of(region), LOG_CAP) : 0, off = 0, n = 0;

	if (index_alloc(&idx, end / 32) < 0)
		return -ENOMEM;
	while (off + sizeof(struct rec) <= end) {
		const struct rec *r = (const struct rec *)(map + region_off(region) + off);
		uint32_t len = __atomic_load_n(&r->len, __ATOMIC_ACQUIRE);

		if (len < sizeof(struct rec) || off + len > end)
			break;
		if (__atomic_load_n(&r->ino, __ATOMIC_ACQUIRE)) {
			idx_put(&idx, r->ino, region_off(region) + off);
			name_put(&idx, r, region_off(region) + off);
			n++;
		}
		off += len;
	}
	if (H)
		*tail_of(region) = off; /* appends go on after the last whole record */
	compacted = off;
	return (int)MIN(n, (uint64_t)INT32_MAX);
}

/* log_lock held. */
static const struct rec *journal_rec_of(uint64_t ino)
{
	if (!idx.cap)
		return NULL;
	for (size_t i = idx_pos(ino); idx.ino[i]; i = (i + 1) & (idx.cap - 1))
		if (idx.ino[i] == ino)
			return (const struct rec *)(map + idx.off[i]);
	return NULL;
}

/* The object a record names is this one, or this one is its copy-up
 * (found in the upper layer, recorded in an image layer: ids stay at
 * copy-up; a name made anew in upper has a newer record of its own). */
static bool rec_same(const struct rec *r, unsigned layer, uint64_t real, uint32_t gen)
{
	if (r->layer & JOURNAL_KGEN) /* a copy-up found again: its upper inode */
		return layer == 0 && r->real == real;
	return (r->layer == layer && r->real == real && r->gen == gen) ||
	       (layer == 0 && r->layer != 0);
}

/* The index is read under log_lock (compaction moves its records); a
 * server that took nothing over has none and takes no lock. */
static bool idx_lock(void)
{
	if (!__atomic_load_n(&idx.cap, __ATOMIC_RELAXED))
		return false;
	pthread_rwlock_rdlock(&log_lock);
	if (idx.cap)
		return true;
	pthread_rwlock_unlock(&log_lock);
	return false;
}

bool journal_id_other(uint64_t ino, unsigned layer, uint64_t real, uint32_t gen)
{
	const struct rec *r;
	bool other;

	if (!idx_lock())
		return false;
	r = journal_rec_of(ino);
	other = r && !rec_same(r, layer, real, gen);
	pthread_rwlock_unlock(&log_lock);
	return other;
}

/* log_lock held. */
static uint64_t id_at(uint64_t parent, const char *name, unsigned layer, uint64_t real,
		      uint32_t *gen)
{
	size_t len = strlen(name);
	const struct rec *r;

	for (size_t i = name_pos(&idx, parent, name, len); idx.names[i]; i = (i + 1) & (idx.cap - 1)) {
		r = (const struct rec *)(map + idx.names[i] - 1);
		if (!rec_at(r, parent, name, len))
			continue;
		/* The id still there (not moved by a later rename) and meaning this object. */
		if (journal_rec_of(r->ino) != r || !rec_same(r, layer, real, *gen))
			return 0;
		*gen = r->gen; /* a copy-up's: the generation the kernel holds */
		return r->ino;
	}
	return 0;
}

uint64_t journal_id_at(uint64_t parent, const char *name, unsigned layer, uint64_t real,
		       uint32_t *gen)
{
	uint64_t ino;

	if (!idx_lock())
		return 0;
	ino = id_at(parent, name, layer, real, gen);
	pthread_rwlock_unlock(&log_lock);
	return ino;
}

int journal_find(uint64_t ino, struct journal_rec *j)
{
	const struct rec *r;
	int ret = -ESTALE;

	if (!idx_lock())
		return -ESTALE;
	r = journal_rec_of(ino);
	if (r) {
		j->parent = r->parent;
		j->real = r->real;
		j->layer = r->layer;
		j->gen = r->gen;
		j->name = strndup(r->name, r->name_len);
		ret = j->name ? 0 : -ENOMEM;
	}
	pthread_rwlock_unlock(&log_lock);
	return ret;
}

/* ---- compaction ---- */

/* A copy of r in region to (log_lock held for writing): its offset, or 0. */
static uint64_t rec_copy(unsigned to, const struct rec *r)
{
	uint64_t off = rec_reserve(to, r->len);

	if (off)
		memcpy(map + off, r, r->len);
	return off;
}

/* The last record of every node this server knows, into region to. */
static uint64_t copy_nodes(unsigned to)
{
	struct cds_lfht_iter it;
	struct dnode *n;
	uint64_t count = 0;

	urcu_memb_read_lock();
	cds_lfht_for_each_entry(disk_ctx->by_ino, &it, n, ino_node) {
		uint32_t from = __atomic_load_n(&n->jrec, __ATOMIC_RELAXED);

		if (from) {
			__atomic_store_n(&n->jrec,
					 (uint32_t)rec_copy(to, (const struct rec *)(map + from)),
					 __ATOMIC_RELAXED);
			count++;
		}
	}
	urcu_memb_read_unlock();
	return count;
}

static bool inherited(const struct index *x, size_t i)
{
	return x->ino[i] && !node_get(x->ino[i]);
}

/* The dead servers' ids no node has taken up yet (the kernel may hold
 * them), copied into region to and indexed there (into fresh); the others
 * leave the index: a node of this server's own stands for them. */
static int copy_inherited(unsigned to, struct index *fresh, uint64_t *count)
{
	*count = 0;
	for (size_t i = 0; i < idx.cap; i++)
		*count += inherited(&idx, i);
	if (!*count)
		return 0;
	if (index_alloc(fresh, *count) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < idx.cap; i++) {
		uint64_t at;

		if (!inherited(&idx, i))
			continue;
		at = rec_copy(to, (const struct rec *)(map + idx.off[i]));
		if (at) {
			idx_put(fresh, idx.ino[i], at);
			name_put(fresh, (const struct rec *)(map + at), at);
		}
	}
	return 0;
}

static void compact(void)
{
	unsigned from = H->active & 1, to = !from;
	uint64_t before = *tail_of(from), nodes, ids;
	struct index fresh = { 0 };
	struct timespec t0, t1;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_rwlock_wrlock(&log_lock);
	*tail_of(to) = 0;
	/* The inherited ones first: on failure, nothing has moved yet. */
	r = copy_inherited(to, &fresh, &ids);
	if (r < 0) {
		pthread_rwlock_unlock(&log_lock);
		log_warn("take-over journal: compaction: %s", strerror(-r));
		return;
	}
	nodes = copy_nodes(to);
	index_free(&idx);
	idx = fresh;
	__atomic_store_n(&H->active, to, __ATOMIC_RELEASE);
	*tail_of(from) = 0;
	H->full = 0;
	compacted = *tail_of(to);
	pthread_rwlock_unlock(&log_lock);
	/* The old region's pages go back to the system. */
	if (fallocate(map_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)region_off(from),
		      (off_t)LOG_CAP) < 0)
		log_warn("take-over journal: giving memory back: %s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("%s: take-over journal compacted: %.1f MiB -> %.1f MiB (%llu nodes, %llu "
		 "inherited ids) in %.1f ms", disk_ctx->cfg.name, (double)before / (1 << 20),
		 (double)compacted / (1 << 20), (unsigned long long)nodes,
		 (unsigned long long)ids,
		 (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

void journal_maintain(void)
{
	if (H && __atomic_load_n(tail_of(H->active & 1), __ATOMIC_RELAXED) > 2 * compacted + slack)
		compact();
}

void journal_fini(void)
{
	index_free(&idx);
	free(kept.fd);
	kept.fd = NULL;
	kept.n = kept.cap = 0;
}
