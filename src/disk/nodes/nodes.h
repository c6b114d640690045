/* cvmfsd disk, nodes layer: the objects the kernel knows (struct dnode),
 * their table (inode.c), the ghosts of forgotten ones (ghosts.c) and their
 * resolution to objects of the layers (path.c). */
#pragma once

#include "disk.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct rlink;
struct lower_fds;

/* See nlock.c: a recursive lock in 8 bytes. */
struct nlock {
	uint32_t word;  /* 0 free, 1 held, 2 held with waiters (futex) */
	uint32_t owner; /* holder's tid | depth << 22, 0 when free */
};
void nlock_lock(struct nlock *l);
void nlock_unlock(struct nlock *l);

/* One per object the kernel knows: kept small (doc/cvmfsd-disk.md, memory
 * per known inode), so rarely used state hangs off pointers, the name is
 * stored inline, and most nodes are found through by_ino alone. */
struct dnode {
	struct cds_lfht_node ino_node; /* in disk_ctx->by_ino */
	uint64_t ino;
	uint64_t refs; /* kernel lookups + children + 1 while in use (atomic) */

	/* protected by disk_ctx->ns_lock */
	struct dnode *parent;
	char *name; /* name_buf, or an allocation of its own after a rename */

	/* Directories in image layers: lower_fds->fd[j] an O_PATH fd of the
	 * directory in lower layer j (>= 3; 0 none yet), kept while the kernel
	 * knows it (path.c, node_lower_dirfd); set under lock, read without.
	 * NULL until first needed, so nodes without image presence carry only
	 * this pointer (8 bytes, here where it needs no padding). */
	struct lower_fds *lower_fds;

	/* protected by lock */
	uint64_t real_ino;
	int64_t charged_bytes;  /* upper objects: st_blocks * 512 last charged */
	union {
		struct {
			struct rlink *rl; /* by_real entry when ino != ino_for(layer, real_ino) */
			struct file_handle *fh; /* upper objects with more than one link */
		};
		/* Once the node is out of the tables nothing reads rl or fh
		 * (every path to a node takes a reference first), so the grace
		 * period's bookkeeping reuses their room. */
		struct rcu_head rcu;
	};
	uint32_t lmask;         /* directories: lower layers merged in (bit j) */
	uint32_t gen;           /* the backing inode's generation (ghosts.c) */
	uint32_t jrec;          /* its last take-over journal record (journal.c; atomic) */
	uint32_t open_count;
	/* Open files by the kernel's I/O mode for them (open_io.c): through
	 * its page cache, direct, or passing through to backing_id. */
	uint32_t cached_opens, direct_opens, passthrough_opens, backing_id;
	/* Unlinked while open: an O_PATH fd of the object (>= 3; 0 for none),
	 * through which node_open() still reaches it until its last close. */
	int orphan_fd;
	/* Upper directories: an O_PATH fd of the directory itself (>= 3; 0 for
	 * none), kept while the kernel knows it (path.c, node_upper_dirfd). */
	int upper_fd;
	struct nlock lock;
	uint16_t type;     /* S_IFMT bits, immutable */
	uint8_t layer;     /* topmost presence: 0 upper, j + 1 lower layer j */
	uint8_t area;      /* enum area; protected by disk_ctx->ns_lock */
	/* The kernel forgot this node's unknown count while something held
	 * it (inode.c, node_forget): it goes with the last hold (atomic). */
	uint8_t forgot_unknown;
	bool charged_inode : 1;
	bool unlinked : 1;    /* last link gone: uncharge at last close */
	bool real_direct : 1; /* found by (layer, real_ino) through by_ino */
	bool written : 1;     /* blocks may have changed since made: measure at forget */
	bool page_cached : 1; /* opened through the kernel's page cache at least once */
	bool no_probed_xattrs : 1; /* none of the names the kernel probes (ops_xattr.c) */
	/* Given a passthrough open that can write once: a shared writable
	 * mapping may write the upper file behind our back, so [0, size)
	 * is kept allocated from then on (mmap_guard.c). */
	bool mapped_writable : 1;
	bool orphan_restored : 1; /* fuse/open_io.c, at a take-over only */
	/* A copy-up: gen is still the image object's, which the kernel holds
	 * with the id, not the upper copy's (journal records say so). */
	bool image_gen : 1;
	char name_buf[];
};

static inline void node_lock(struct dnode *n)
{
	nlock_lock(&n->lock);
}

static inline void node_unlock(struct dnode *n)
{
	nlock_unlock(&n->lock);
}

/* inode.c: the node table */
/* The root's id: the kernel's (FUSE_ROOT_ID). */
#define ROOT_ID 1
/* What the quota layer does for a node about to die (nodes_init's
 * argument): settle the blocks its upper file may have gained. */
typedef void node_dying_fn(struct dnode *n);
int nodes_init(node_dying_fn *dying);
void nodes_fini(void);
struct dnode *node_get(uint64_t ino);
/* node_get with a reference taken (node_unref), NULL if none or dying. */
struct dnode *node_get_held(uint64_t ino);
/* Find or make the node for an object found under parent; takes one
 * kernel reference (a lookup) on the result. */
struct dnode *node_obtain(struct dnode *parent, const char *name, unsigned layer,
			  uint32_t lmask, const struct stat *st, uint32_t gen);
/* The same, a new node numbered want if that is free (a dead server's id).
 * image_gen: gen is not the upper object's but the image object's the
 * kernel holds with want (a copy-up; journaled as JOURNAL_KGEN). */
struct dnode *node_obtain_as(struct dnode *parent, const char *name, unsigned layer,
			     uint32_t lmask, const struct stat *st, uint32_t gen, uint64_t want,
			     bool image_gen);
/* One more reference on n, unless it is already dying (refs 0). */
bool node_hold(struct dnode *n);
/* Wait (briefly) until a dying node with number ino has left the table. */
void node_wait_gone(uint64_t ino);
uint64_t hash64(uint64_t x);
/* The kernel forgot nlookup lookups of n; for a node with an unknown
 * count (node_count_unknown) it forgot n altogether: n goes if nothing
 * else holds it, else stays. */
void node_forget(struct dnode *n, uint64_t nlookup);
/* The kernel holds n with a count a dead server knew (inode.c). */
void node_count_unknown(struct dnode *n);
/* Before an answer gives the kernel n with the reference the caller took
 * (what it needs of n copied out: n may go at once): true if n's count is
 * unknown, and the reference went (not counted on top); false if it is
 * the kernel's lookup now, or the caller's to drop if the answer fails.
 * Never after the answer: the kernel may have forgotten n by then. */
bool node_kernel_absorb(struct dnode *n);
/* Resize the tables to their population, return freed memory to the
 * system; called once a second and when the table outgrows its buckets. */
void nodes_maintain(void);
/* The node now lives at (p, name) (rename); ns_lock held for writing. */
int node_move(struct dnode *n, struct dnode *p, const char *name);
/* The area a name below parent is in (ns_lock held). */
enum area node_area_of(struct dnode *parent, const char *name);
void node_unref(struct dnode *n);
/* Re-key a node after its object changed (copy-up) or died (unlink). */
void node_set_real(struct dnode *n, unsigned layer, uint64_t real_ino);
void node_drop_real(struct dnode *n);
struct dnode *node_find_real(unsigned layer, uint64_t real_ino);
/* Call fn for every node below dir (not dir itself); ns_lock held for writing. */
void node_for_each_below(struct dnode *dir, void (*fn)(struct dnode *, void *), void *arg);
bool node_is_below(struct dnode *n, struct dnode *dir);
/* Remember a file handle for n (it gained a second link). */
void node_keep_handle(struct dnode *n);
uint64_t ino_for(unsigned layer, uint64_t real_ino);

/* ghosts.c: where forgotten nodes were (file handles, union/reconnect.c) */
/* The ghosts of this many most recent forgets are kept (about 80 bytes
 * each: 2.6 MiB at most). */
#define GHOST_MAX 32768u
/* FILEID_INO32_GEN (include/linux/exportfs.h): { u32 ino, u32 gen }. */
#define FH_INO32_GEN 1
#define FH_INO32_GEN_BYTES 8
union fh_buf {
	struct file_handle fh;
	char space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
};
/* The ghost of ino: its parent's id and its name (*name the caller's). */
int ghost_find(uint64_t ino, uint64_t *parent, char **name);
/* The generation in the backing handle of name below dirfd ("": dirfd
 * itself); 0 where handles are not (ino32, gen). */
uint32_t backing_gen(int dirfd, const char *name);
/* The same, without a system call, from the ghost the object numbered ino
 * left at parent/name (a cold walk finds every object so). Sound while
 * this server runs: an object goes away only through a request on its
 * node, and charge_unlinked then drops the ghost of its natural id, so no
 * other object can have taken its inode number meanwhile. Ghosts read
 * back at a start (handles_load) and a copy-up's (it keeps its image
 * object's generation) carry none: false. */
bool ghost_gen(uint64_t ino, uint64_t parent, const char *name, uint32_t *gen);
int ghosts_init(void);
void ghosts_fini(void);
/* A node leaves the table: keep where it was, for a later LOOKUP(id, "."). */
void ghost_remember(struct dnode *n);
/* RUN_DIR/disk/NAME.handles: kept at a clean stop, read at start. */
void handles_save(void);
void handles_load(void);
void ghost_drop(uint64_t ino);

/* journal.c: what a server taking the connection over needs (node names,
 * open files), in a memfd the supervisor holds. */
/* The memfd (supervisor, before the first server), or -errno. */
int journal_create(void);
int journal_attach(int fd);
/* Index what a dead server left; the number of node records. */
int journal_replay(void);
void journal_fini(void);
/* A record of where node ino is now; *jrec (the node's) is set to it, for
 * compaction to copy. */
void journal_node(uint64_t ino, uint64_t parent, const char *name, unsigned layer,
		  uint64_t real, uint32_t gen, uint32_t *jrec);
/* The publisher's: compact the log once it has grown enough. */
void journal_maintain(void);
/* Where a dead server's node was, and its object then; name the caller's. */
struct journal_rec {
	uint64_t parent, real;
	unsigned layer;
	uint32_t gen;
	char *name;
};
int journal_find(uint64_t ino, struct journal_rec *j);
/* A dead server gave ino to another object (an inode number used again):
 * the kernel may still hold it with that meaning, so it is not given. */
bool journal_id_other(uint64_t ino, unsigned layer, uint64_t real, uint32_t gen);
/* The id a dead server gave name below parent, if the object found there
 * now is the one it meant (or its copy-up); else 0. The kernel holds that
 * id for the name: another would make it drop the dentry (and detach what
 * is mounted on it, a lane) or mark the inode bad. *gen (the object's) is
 * set to the generation the kernel holds with it: a copy-up keeps the
 * image object's, as its id. */
uint64_t journal_id_at(uint64_t parent, const char *name, unsigned layer, uint64_t real,
		       uint32_t *gen);
/* A record's layer flag: an upper object (a copy-up) whose node has the
 * generation of the image object it was copied from (the record's gen). */
#define JOURNAL_KGEN 0x100u
/* The next fallback id, from *local or, with a journal, from the one all
 * servers share (first set from *local). */
uint64_t journal_next_ino(uint64_t *local);
/* Open file fd (the file handle): its node, I/O mode, backing id, and
 * the unique of the request it answers. */
void journal_open(int fd, uint64_t ino, unsigned io, uint32_t backing_id, uint64_t unique);
void journal_release(int fd);
bool journal_open_get(int fd, uint64_t *ino, unsigned *io, uint32_t *backing_id);
/* A dead server's open file this server took over; the one of them that
 * answered request unique (which the kernel resent: it never got the
 * reply), taken off the list, or -ENOENT. */
void journal_kept(int fd);
int journal_unanswered(uint64_t unique);
/* Test switch: true once per daemon (all its servers). */
bool journal_test_once(void);

/* path.c: resolution beneath layer roots */
/* n's union path ("a/b/c", "." for the root) on the heap, of any length:
 * *out is the caller's to free. ns_lock held. */
int node_path(struct dnode *n, char **out);
/* Where a directory's entries are looked for: whether the upper layer has
 * it, and the image layers merged in. Its union path is built only where a
 * layer's directory is not reached through a kept fd (layer_dirs). */
struct dir_where {
	bool upper;
	uint32_t lmask;
};
void node_dir_where(struct dnode *dir, struct dir_where *w);
int layer_open(unsigned layer, const char *rel, int flags);
/* --image-idmap: the owner an image file shows (and keeps when copied up). */
void image_owner(struct stat *st);
int image_idmap_parse(const char *s);
int upper_root_adopt(void);
/* The node's current object: through the fd an unlinked one keeps, its
 * handle (upper, several links), its name beneath its parent's kept fd, else
 * its union path. May be called with n locked (no other node lock). */
int node_open(struct dnode *n, int flags);
/* node_open, and one more open file counted with it under the node's lock
 * (an unlink then sees it: charge_unlinked). */
int node_open_counted(struct dnode *n, int flags);
/* The O_PATH fd kept for dir's upper directory, borrowed: valid while the
 * caller holds dir (a request naming it, node_kget, or a child of it),
 * since only node_retire closes it; or -ENOENT (none kept: not upper,
 * removed, or at the bound). ns_lock held, no node lock. */
int node_upper_dirfd(struct dnode *dir);
/* dir's directory in image layer i (1..nlayers-1): the O_PATH fd kept for
 * it (*owned false: borrowed, valid until the caller's RCU read-side
 * section ends), else a new one (*owned true: the caller closes it),
 * opened by its name beneath its parent's kept fd; -EAGAIN where neither
 * is kept (open it by its union path), or -errno. ns_lock held, no node
 * lock, inside urcu_memb_read_lock(). */
int node_lower_dirfd(struct dnode *dir, unsigned i, bool *owned);
/* n leaves the table (node_retire), or its image directories are hidden
 * (lmask 0: copied up and made opaque); n locked: its image layers' fds
 * are closed after a grace period. */
void node_lower_fds_release(struct dnode *n);
int node_stat(struct dnode *n, struct stat *st);
int fd_chmod(int fd, mode_t mode);
int fd_utimens(int fd, const struct timespec ts[2]);
int fd_getxattr(int fd, const char *name, void *buf, size_t size);
int fd_setxattr(int fd, const char *name, const void *val, size_t size, int flags);
int fd_listxattr(int fd, char *buf, size_t size);
int fd_removexattr(int fd, const char *name);
