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
 * system call. The log is bounded (LOG_CAP): once full, later nodes are
 * found again only through ghosts and handles (one warning line). */
#include "nodes/nodes.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOTS (1u << 20) /* fds below this are journaled */
#define LOG_CAP (512ull << 20)
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

/* The uniques come last: a journal an older binary made (an upgrade
 * from it) is grown to hold them, the rest of its layout unchanged. */
#define SLOTS_OFF 4096ull
#define LOG_OFF (SLOTS_OFF + (uint64_t)SLOTS * sizeof(struct slot))
#define UNIQ_OFF (LOG_OFF + LOG_CAP)
#define MAP_LEN (UNIQ_OFF + (uint64_t)SLOTS * sizeof(uint64_t))

static struct head *H;
static struct slot *slots;
static uint64_t *uniques;
static char *log_base;

/* The open files this server took over (open_restore), until the kernel
 * releases them or resends the OPEN that made one. */
static struct {
	pthread_mutex_t lock;
	int *fd;
	size_t n, cap;
} kept = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The replayed log's index: id -> offset of its last record; and
 * (parent id, name) -> offset + 1 of the last record made there (names). */
static struct {
	uint64_t *ino, *off, *names;
	size_t cap;
} idx;

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
	slots = (struct slot *)((char *)p + SLOTS_OFF);
	uniques = (uint64_t *)((char *)p + UNIQ_OFF);
	log_base = (char *)p + LOG_OFF;
	if (H->magic != MAGIC) {
		H->tail = 0;
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

void journal_node(uint64_t ino, uint64_t parent, const char *name, unsigned layer,
		  uint64_t real, uint32_t gen)
{
	size_t nl = strlen(name), len = (sizeof(struct rec) + nl + 1 + 7) & ~(size_t)7;
	uint64_t off;
	struct rec *r;

	if (!H)
		return;
	off = __atomic_fetch_add(&H->tail, len, __ATOMIC_RELAXED);
	if (off + len > LOG_CAP) {
		if (!__atomic_exchange_n(&H->full, 1, __ATOMIC_RELAXED))
			log_warn("take-over journal full (%llu MiB): nodes made from now on are "
				 "found again after a restart only through ghosts and handles",
				 (unsigned long long)(LOG_CAP >> 20));
		return;
	}
	r = (struct rec *)(log_base + off);
	__atomic_store_n(&r->len, (uint32_t)len, __ATOMIC_RELAXED);
	r->name_len = (uint32_t)nl;
	r->parent = parent;
	r->real = real;
	r->layer = layer;
	r->gen = gen;
	memcpy(r->name, name, nl + 1);
	__atomic_store_n(&r->ino, ino, __ATOMIC_RELEASE);
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

static void idx_put(uint64_t ino, uint64_t off)
{
	size_t i = idx_pos(ino);

	while (idx.ino[i] && idx.ino[i] != ino)
		i = (i + 1) & (idx.cap - 1);
	idx.ino[i] = ino;
	idx.off[i] = off;
}

static size_t name_pos(uint64_t parent, const char *name, size_t len)
{
	uint64_t h = hash64(parent);

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
	return (size_t)hash64(h) & (idx.cap - 1);
}

static bool rec_at(const struct rec *r, uint64_t parent, const char *name, size_t len)
{
	return r->parent == parent && r->name_len == len && !memcmp(r->name, name, len);
}

static void name_put(const struct rec *r, uint64_t off)
{
	size_t i = name_pos(r->parent, r->name, r->name_len);

	while (idx.names[i] &&
	       !rec_at((const struct rec *)(log_base + idx.names[i] - 1), r->parent, r->name,
		       r->name_len))
		i = (i + 1) & (idx.cap - 1);
	idx.names[i] = off + 1;
}

/* Index the log a dead server left (a record cut by its death ends it). */
int journal_replay(void)
{
	uint64_t end = H ? MIN(H->tail, LOG_CAP) : 0, off = 0, n = 0;

	idx.cap = 1024;
	while (idx.cap < end / 16)
		idx.cap <<= 1;
	idx.ino = calloc(idx.cap, sizeof(*idx.ino));
	idx.off = calloc(idx.cap, sizeof(*idx.off));
	idx.names = calloc(idx.cap, sizeof(*idx.names));
	if (!idx.ino || !idx.off || !idx.names)
		return -ENOMEM;
	while (off + sizeof(struct rec) <= end) {
		const struct rec *r = (const struct rec *)(log_base + off);
		uint32_t len = __atomic_load_n(&r->len, __ATOMIC_ACQUIRE);

		if (len < sizeof(struct rec) || off + len > end)
			break;
		if (__atomic_load_n(&r->ino, __ATOMIC_ACQUIRE)) {
			idx_put(r->ino, off);
			name_put(r, off);
			n++;
		}
		off += len;
	}
	H->tail = off; /* appends go on after the last whole record */
	return (int)MIN(n, (uint64_t)INT32_MAX);
}

static const struct rec *journal_rec_of(uint64_t ino)
{
	if (!idx.cap)
		return NULL;
	for (size_t i = idx_pos(ino); idx.ino[i]; i = (i + 1) & (idx.cap - 1))
		if (idx.ino[i] == ino)
			return (const struct rec *)(log_base + idx.off[i]);
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

bool journal_id_other(uint64_t ino, unsigned layer, uint64_t real, uint32_t gen)
{
	const struct rec *r = journal_rec_of(ino);

	return r && !rec_same(r, layer, real, gen);
}

uint64_t journal_id_at(uint64_t parent, const char *name, unsigned layer, uint64_t real,
		       uint32_t *gen)
{
	size_t len = strlen(name);
	const struct rec *r;

	if (!idx.cap)
		return 0;
	for (size_t i = name_pos(parent, name, len); idx.names[i]; i = (i + 1) & (idx.cap - 1)) {
		r = (const struct rec *)(log_base + idx.names[i] - 1);
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

int journal_find(uint64_t ino, struct journal_rec *j)
{
	size_t i;

	if (!idx.cap)
		return -ESTALE;
	for (i = idx_pos(ino); idx.ino[i]; i = (i + 1) & (idx.cap - 1)) {
		const struct rec *r;

		if (idx.ino[i] != ino)
			continue;
		r = (const struct rec *)(log_base + idx.off[i]);
		j->parent = r->parent;
		j->real = r->real;
		j->layer = r->layer;
		j->gen = r->gen;
		j->name = strndup(r->name, r->name_len);
		return j->name ? 0 : -ENOMEM;
	}
	return -ESTALE;
}

void journal_fini(void)
{
	free(idx.ino);
	free(idx.off);
	free(idx.names);
	idx.ino = idx.off = idx.names = NULL;
	idx.cap = 0;
	free(kept.fd);
	kept.fd = NULL;
	kept.n = kept.cap = 0;
}
