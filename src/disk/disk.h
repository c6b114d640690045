/* cvmfsd disk: the base every layer of the quota union builds on.
 *
 * The daemon is built in layers, each in a folder with one header, each
 * using only those below it (tests/unit/disk_layers.py checks this on the
 * built objects):
 *   core/    pure logic shared with cvmfs-stat: areas, accounting, figures
 *   (this)   the daemon's state (struct disk, its config), request scope
 *   volume/  the workspace volume (ext4 on a loop or block device)
 *   nodes/   the node table, ghosts, resolution of nodes to layer objects
 *   quota/   charging upper objects against the limit
 *   union/   lookup across layers, whiteouts, listings, copy-up, recount,
 *            finding forgotten nodes again (file handles)
 *   fuse/    the FUSE operations, the session's I/O, passthrough
 *   top      disk_main.c (start, stop, signals), disk_config.c, publish.c
 *
 * Layers: 0 is DATA/upper (writable), 1..nlower are the --image dirs,
 * leftmost on top. Every object is reached from a layer root by its union
 * path, one component at a time with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), so no symlink or ".." in any layer
 * can lead outside it.
 *
 * Locking (outermost first):
 *   disk_ctx->ns_lock   read by every request, write by rename: protects every
 *                node's parent, name and area, i.e. the shape of the union
 *                namespace, and the union paths built from it;
 *   node->lock   one node at a time (recursively by its holder):
 *                protects layer, lmask, fh, the charge and the open count.
 * The inode tables are liburcu lock-free hash tables (urcu-memb flavor);
 * FUSE worker threads register on first use (disk.c). */
#pragma once

#include "core/core.h"

#include <fcntl.h>
#include <limits.h>
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
	uint64_t restart_ms, max_crashes, crash_window_s; /* disk_survive.c */
	bool foreground;
	bool debug;
	bool no_passthrough; /* every read through the daemon (passthrough.c) */
	bool discard_upper;  /* empty DATA/upper before serving (--rebuild) */
};

struct layer {
	char *path;
	int fd; /* O_PATH directory, the root every path is resolved beneath */
	dev_t dev;
	/* union/reconnect.c: the root opened for open_by_handle_at (-1: the layer's
	 * handles are not (ino32, gen)) and the kernel's path of it. */
	int handle_mnt_fd;
	char *kpath;
};

struct dnode;
struct fuse_session;

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
	struct cds_lfht *by_ghost; /* nodes/ghosts.c: forgotten nodes' places */
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
	pid_t daemon_pid; /* the supervisor's: the pid file's and the status's */
};

extern struct disk *disk_ctx;

/* disk.c */
void disk_thread_enter(void);
/* Wake the publisher (publish.c) now rather than at its next tick: a
 * figure or the node table changed enough to be worth it. */
static inline void publish_kick(void)
{
	pthread_mutex_lock(&disk_ctx->pub_lock);
	disk_ctx->pub_kick = true;
	pthread_cond_signal(&disk_ctx->pub_cond);
	pthread_mutex_unlock(&disk_ctx->pub_lock);
}

/* disk_config.c */
int disk_config_load(struct disk_config *c, int argc, char **argv, char **mountpoint);
/* Re-read the config file and a launcher's request: new limit and inodes,
 * if they set them; *request tells whether a request was there (answered
 * or not, the publisher removes it: publish_answer()). */
int disk_config_reload(struct disk_config *c, uint64_t *limit, uint64_t *inodes, bool *request);
void disk_config_free(struct disk_config *c);
/* The inode limit: inodes if set (0: none), else one per 16 KiB of limit. */
uint64_t disk_inode_limit(uint64_t limit, uint64_t inodes);


/* Request scope: register the thread and hold ns_lock for reading. */
static inline void ns_unlockp(pthread_rwlock_t **l)
{
	if (*l)
		pthread_rwlock_unlock(*l);
}
#define NS_READ()                                                              \
	pthread_rwlock_t *_ns __attribute__((cleanup(ns_unlockp))) = &disk_ctx->ns_lock; \
	disk_thread_enter();                                                   \
	pthread_rwlock_rdlock(_ns)
#define NS_WRITE()                                                             \
	pthread_rwlock_t *_ns __attribute__((cleanup(ns_unlockp))) = &disk_ctx->ns_lock; \
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
