/* cvmfsd disk: internal interfaces of the quota union.
 *
 * Layers: 0 is DATA/upper (writable), 1..nlower are the --image dirs,
 * leftmost on top. Every object is reached from a layer root by its union
 * path, one component at a time with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), so no symlink or ".." in any layer
 * can lead outside it. Upper objects with several hard links are reached by
 * file handle (open_by_handle_at), since their union path may be gone.
 * fds are kept only for open files and directories (see the 20,000 fd limit
 * in DESIGN.md §3).
 *
 * Locking (outermost first):
 *   D->ns_lock   read by every request, write by rename: protects every
 *                node's parent, name and area, i.e. the shape of the union
 *                namespace, and the union paths built from it;
 *   node->lock   one node at a time (recursively by its holder):
 *                protects layer, lmask, fh, the charge and the open count.
 * The inode tables are liburcu lock-free hash tables (urcu-memb flavor);
 * FUSE worker threads register on first use (threads.c). */
#pragma once

#include "core.h"

#include <fcntl.h>
#include <limits.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#define MAX_LOWER 32
#define UNSET UINT64_MAX

struct disk_config {
	char *config;
	char *name;
	char *data;
	char *image;
	char *run_dir;
	char *fuse_opts;
	char *stat_group;
	char *image_idmap; /* "UID:GID:COUNT": image ids 0..COUNT-1 appear shifted */
	char *volume;       /* loop, block:PATH, none (volume.h) */
	char *volume_dir;
	char *volume_alloc; /* sparse, full */
	char *lanes;        /* ':'-separated union paths bound from the volume */
	char *persist;      /* --discard-upper keeps these (and the lanes) */
	uint64_t limit;
	uint64_t inodes;     /* effective: set, or the default for the limit */
	uint64_t inodes_cli; /* --inodes on the command line, UNSET if none */
	bool foreground;
	bool debug;
	bool no_passthrough; /* every read through the daemon (passthrough.c) */
	bool discard_upper;  /* empty DATA/upper before serving (--rebuild) */
};

struct layer {
	char *path;
	int fd; /* O_PATH directory, the root every path is resolved beneath */
	dev_t dev;
	/* handles.c: the root opened for open_by_handle_at (-1: the layer's
	 * handles are not (ino32, gen)) and the kernel's path of it. */
	int handle_mnt_fd;
	char *kpath;
};

struct rlink;

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
	struct cds_lfht_node ino_node; /* in D->by_ino */
	uint64_t ino;
	uint64_t refs; /* kernel lookups + children + 1 while in use (atomic) */

	/* protected by D->ns_lock */
	struct dnode *parent;
	char *name; /* name_buf, or an allocation of its own after a rename */

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
	uint32_t gen;           /* the backing inode's generation (handles.c) */
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
	uint8_t area;      /* enum area; protected by D->ns_lock */
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

struct disk {
	struct disk_config cfg;
	struct layer layers[MAX_LOWER + 1];
	unsigned nlayers; /* 1 + number of image layers */
	int data_fd, work_fd, lock_fd; /* DATA (read-only dir fd), DATA/work (O_PATH), DATA/lock */
	int handle_fd;     /* DATA/upper opened for reading: open_by_handle_at wants no O_PATH fd */
	uint64_t blksize; /* upper filesystem block size, for reservations */
	uint32_t idmap_uid, idmap_gid, idmap_count; /* --image-idmap; count 0: none */
	struct cds_lfht *by_ino, *by_real;
	uint64_t nodes, aliases;   /* entries of by_ino and by_real (atomic) */
	unsigned long ino_buckets, real_buckets, trim_peak; /* nodes_maintain() */
	struct dnode *root;
	struct fuse_session *se; /* for cache invalidations */
	pthread_rwlock_t ns_lock;
	uint64_t next_ino; /* fallback numbers when the stable one is taken */
	struct cds_lfht *by_ghost; /* handles.c: forgotten nodes' places */
	uint64_t ghosts;           /* entries of by_ghost (atomic) */
	uint32_t upper_fds;        /* dnode.upper_fd kept (atomic), path.c */
	unsigned long ghost_buckets;
	uint64_t tmp_seq;
	struct acct acct;
	uint64_t image_inodes;
	/* publisher */
	pthread_mutex_t pub_lock;
	pthread_cond_t pub_cond;
	bool pub_kick, pub_stop;
	int level; /* 0 below 90 %, 1 at 90 %, 2 at 100 % (atomic) */
	bool stopping;
};

extern struct disk *D;

/* config.c */
int disk_config_load(struct disk_config *c, int argc, char **argv, char **mountpoint);
/* Re-read the config file: new limit and inodes, if it sets them. */
int disk_config_reload(struct disk_config *c, uint64_t *limit, uint64_t *inodes);
void disk_config_free(struct disk_config *c);
/* The inode limit: inodes if set (0: none), else one per 16 KiB of limit. */
uint64_t disk_inode_limit(uint64_t limit, uint64_t inodes);

/* threads.c */
void disk_thread_enter(void);

/* inode.c: the node table */
int nodes_init(void);
void nodes_fini(void);
struct dnode *node_get(fuse_ino_t ino);
/* Find or make the node for an object found under parent; takes one
 * kernel reference (a lookup) on the result. */
struct dnode *node_obtain(struct dnode *parent, const char *name, unsigned layer,
			  uint32_t lmask, const struct stat *st, uint32_t gen);
/* One more reference on n, unless it is already dying (refs 0). */
bool node_hold(struct dnode *n);
/* Wait (briefly) until a dying node with number ino has left the table. */
void node_wait_gone(uint64_t ino);
uint64_t hash64(uint64_t x);
void node_forget(struct dnode *n, uint64_t nlookup);
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

/* handles.c: handles that outlive the kernel's caches */
/* The generation in the backing handle of name below dirfd ("": dirfd
 * itself); 0 where handles are not (ino32, gen). */
uint32_t backing_gen(int dirfd, const char *name);
/* Make l's objects findable by handle (after open_layer). */
void layer_handles_open(struct layer *l);
void layer_handles_close(struct layer *l);
int ghosts_init(void);
void ghosts_fini(void);
/* At INIT, with the kernel's FUSE minor version; and where we mount. */
void handles_init(unsigned proto_minor);
void handles_set_mountpoint(const char *mnt);
/* Before answering LOOKUP(id, ".") for n: see handles.c. */
void handles_connect(struct dnode *n);
/* A node leaves the table: keep where it was, for a later LOOKUP(id, "."). */
void ghost_remember(struct dnode *n);
/* RUN_DIR/disk/NAME.handles: kept at a clean stop, read at start. */
void handles_save(void);
void handles_load(void);
void ghost_drop(uint64_t ino);
/* The node with kernel id ino, held, whether or not the kernel still has it:
 * NULL and *err (-ESTALE: gone or never known) when not found. */
struct dnode *node_by_id(uint64_t ino, int *err);

/* path.c: resolution beneath layer roots */
/* n's union path ("a/b/c", "." for the root) on the heap, of any length:
 * *out is the caller's to free. ns_lock held. */
int node_path(struct dnode *n, char **out);
/* Where a directory's entries are looked for: its union path, whether the
 * upper layer has it, and the image layers merged in. ns_lock held. */
struct dir_where {
	bool upper;
	uint32_t lmask;
	char *path; /* node_path's */
};
int node_dir_where(struct dnode *dir, struct dir_where *w);
void dir_where_done(struct dir_where *w);
int layer_open(unsigned layer, const char *rel, int flags);
/* --image-idmap: the owner an image file shows (and keeps when copied up). */
void image_owner(struct stat *st);
int image_idmap_parse(const char *s);
int upper_root_adopt(void);
/* The node's current object (upper by handle or path, else its layer). */
int node_open(struct dnode *n, int flags);
/* A new O_PATH fd of dir's upper directory through the fd kept for it, or
 * -ENOENT (none kept: not upper, gone, or at the bound). ns_lock held, no
 * node lock, dir held. */
int node_upper_dirfd(struct dnode *dir);
int node_stat(struct dnode *n, struct stat *st);
/* Open the node's upper directory, copying it up first. */
int node_upper_dir(struct dnode *n);
int fd_chmod(int fd, mode_t mode);
int fd_utimens(int fd, const struct timespec ts[2]);
int fd_getxattr(int fd, const char *name, void *buf, size_t size);
int fd_setxattr(int fd, const char *name, const void *val, size_t size, int flags);
int fd_listxattr(int fd, char *buf, size_t size);
int fd_removexattr(int fd, const char *name);

/* charge.c: accounting of upper objects */
int charge_reserve(int64_t bytes, int64_t inodes);
void charge_unreserve(int64_t bytes, int64_t inodes);
void charge_settle(enum area ar, int64_t res_b, int64_t delta_b, int64_t res_i, int64_t delta_i);
/* Re-measure n's upper object (through fd if >= 0) and charge the change. */
int charge_node(struct dnode *n, int fd, int64_t res_b, int64_t res_i);
/* The same with the object's stat taken after the operation. */
int charge_node_stat(struct dnode *n, const struct stat *now, int fd, int64_t res_b,
		     int64_t res_i);
/* n's object lost a link: uncharge now or at its last close. */
void charge_unlinked(struct dnode *n, const struct stat *after, int fd);
int orphan_adopt(struct dnode *n, int fd);
void orphan_linked(struct dnode *n);
/* An object without a node left the upper layer. */
void charge_gone(enum area ar, const struct stat *st);
void charge_released(struct dnode *n);
int64_t blocks_bytes(const struct stat *st);
/* The worst-case reservation for one more directory entry. */
int64_t dirent_growth(void);

/* layer.c: lookup across layers */
struct found {
	unsigned layer;
	uint32_t lmask;
	uint32_t gen; /* backing_gen() of the object found */
	struct stat st;
};
/* Look name up below a directory given by its union path and presences.
 * Returns 0 and fills f, -ENOENT, or another -errno. */
int union_lookup(const char *prel, bool upper, uint32_t lmask, const char *name,
		 struct found *f);
/* The same directory of every layer, opened on first use: for many
 * lookups in one directory (readdirplus). */
#define LAYER_DIR_UNOPENED (-1000000)
struct layer_dirs {
	const char *prel;
	int fd[MAX_LOWER + 1];
};
void layer_dirs_init(struct layer_dirs *ld, const char *prel);
/* The same for a directory node (its upper one through its kept fd). */
struct dir_where;
void layer_dirs_init_dir(struct layer_dirs *ld, const struct dir_where *w, struct dnode *dir);
void layer_dirs_close(struct layer_dirs *ld);
int union_lookup_in(struct layer_dirs *ld, bool upper, uint32_t lmask, const char *name,
		    struct found *f);
int node_lookup(struct dnode *parent, const char *name, struct found *f);
bool is_union_whiteout(int dirfd, const char *name, const struct stat *st);
bool lower_dir_opaque(int dirfd, const char *name);
/* Put a marked whiteout at dirfd/name (replacing what is there if
 * replace) and charge it to ar. */
int whiteout_make(int dirfd, const char *name, bool replace, enum area ar);
/* The steps of whiteout_make, for callers that place the whiteout with an
 * exchange: a marked whiteout at DATA/work/tmp, reserved; then settled
 * (charged to ar) once placed, or aborted (removed, unreserved). */
int whiteout_prepare(char *tmp, size_t size, struct stat *st);
void whiteout_settle(enum area ar, const struct stat *st);
void whiteout_abort(const char *tmp);
/* Replace the empty upper directory dirfd/name by a whiteout atomically. */
int rmdir_hiding(int dirfd, const char *name, enum area ar);
/* Remove the union's whiteouts in an upper directory (it became opaque or
 * is about to be removed), uncharging them. */
int whiteouts_clear(int dirfd, enum area ar);
int tmp_name(char *buf, size_t size);

/* dir.c: merged listings */
struct dent {
	char *name;
	unsigned char type; /* DT_* */
	unsigned layer;
	uint64_t ino;
};
struct dlist {
	struct dent *ents;
	size_t n, cap;
};
int dir_list(const char *rel, bool upper, uint32_t lmask, struct dlist *l);
void dlist_free(struct dlist *l);

/* copyup.c */
/* Copy the object at rel in layer src into upper dir upfd as name. */
int copy_obj(unsigned src, const char *rel, int upfd, const char *name, enum area ar,
	     struct stat *out);
int copy_up(struct dnode *n);
/* Copy a whole directory tree up and make it opaque (before a rename). */
int copy_up_tree(struct dnode *dir);

/* scan.c: full recount, and area moves of renamed trees */
int scan_all(struct acct *a, uint64_t *image_inodes);
/* Could an object (or tree) at oldrel and at newrel count in different areas? */
bool area_paths_differ(const char *oldrel, const char *newrel);
/* Move the charges of the object at dirfd/name (a whole tree for a
 * directory) from the areas of its old paths to those of its new ones. */
void area_move_object(int dirfd, const char *name, const char *oldrel, const char *newrel);

/* publish.c */
int publish_start(void);
void publish_stop(void);
void publish_kick(void);
int publish_group(const char *group);
int publish_pidfile(bool create);
int publish_write(const char *state);
int state_load(struct disk_state *s);
int state_save(bool clean);

/* session_io.c: the session's reads and writes, and INIT flags that
 * libfuse 3.14 would not pass on (op_init says which the kernel offers). */
void session_io_init_flags(bool killpriv, bool parallel_dirops);
int session_io_attach(struct fuse_session *se);

/* passthrough.c: reads of upper files straight from DATA/upper. */
void passthrough_note_init_request(const void *buf, size_t len);
void passthrough_patch_init_reply(void *init_out, size_t len);
void passthrough_patch_reply(struct iovec *iov, int count);
bool passthrough_enabled(void);
int passthrough_backing_open(int fd);
void passthrough_backing_close(uint32_t id);
void passthrough_reply_arm(uint32_t backing_id);
void passthrough_reply_disarm(void);

/* mmap_guard.c: no hole inside a file that a passthrough open can map
 * for writing (its mapping writes DATA/upper without asking us). */
/* Before the first such open (n locked): allocate all of [0, size). */
int mmap_guard_open(struct dnode *n, int fd);
/* n locked: the gap [*end, off) an operation reaching off would leave
 * past the end of a guarded file, as worst-case growth (0: none). */
int64_t mmap_guard_gap(struct dnode *n, int fd, off_t off, off_t *end);
/* Allocate [from, to) without changing the size. */
int mmap_guard_alloc(int fd, off_t from, off_t to);
/* n locked: a hole punched in a guarded file becomes a zeroed range that
 * stays allocated (*mode changed); its worst-case growth. */
int64_t mmap_guard_punch(struct dnode *n, int fd, int *mode, off_t off, off_t len);

/* ops */
extern const struct fuse_lowlevel_ops disk_ops;
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags);
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
		  struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		  struct fuse_file_info *fi);
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
/* ops_dir.c: the kernel may open directories without asking. */
void dir_listings_init(bool kernel_skips_opendir);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* open_io.c: the kernel's I/O mode for each open file (page cache,
 * direct, passthrough), kept with the fd in fh. */
bool open_is_direct(int flags);
bool reply_opened(fuse_req_t req, struct dnode *n, int fd, struct fuse_file_info *fi,
		  const struct fuse_entry_param *e);
void open_released(struct dnode *n, struct fuse_file_info *fi);
static inline int fh_fd(const struct fuse_file_info *fi)
{
	return (int)(uint32_t)fi->fh;
}

/* Reply helpers shared by the op files (ops_meta.c). */
void fill_attr(struct dnode *n, struct stat *st);
void reply_entry(fuse_req_t req, struct dnode *n, const struct stat *st);
double entry_timeout(void);

/* Request scope: register the thread and hold ns_lock for reading. */
static inline void ns_unlockp(pthread_rwlock_t **l)
{
	if (*l)
		pthread_rwlock_unlock(*l);
}
#define NS_READ()                                                              \
	pthread_rwlock_t *_ns __attribute__((cleanup(ns_unlockp))) = &D->ns_lock; \
	disk_thread_enter();                                                   \
	pthread_rwlock_rdlock(_ns)
#define NS_WRITE()                                                             \
	pthread_rwlock_t *_ns __attribute__((cleanup(ns_unlockp))) = &D->ns_lock; \
	disk_thread_enter();                                                   \
	pthread_rwlock_wrlock(_ns)

static inline void mutex_unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}
#define LOCK_GUARD(m)                                                          \
	pthread_mutex_t *_guard __attribute__((cleanup(mutex_unlockp))) = (m); \
	pthread_mutex_lock(m)
