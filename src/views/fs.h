/* The views' FUSE trees. Two sessions share one node layout:
 *  - the shared tree at MOUNTPOINT answers every open for its caller
 *    (content rendered at open, served with direct_io);
 *  - the per-container trees at MOUNTPOINT/ct/NAME belong to the cgroup
 *    CT_PARENT/NAME; they let the kernel keep content in the page cache
 *    for at most ct_ttl (no open round trip, attributes time out).
 * Node ids: bit 63 set = passthrough of a real sysfs entry (index below);
 * otherwise (arg << 32) | (view << 8) | (template index + 1), view 0 = the
 * shared tree, arg the object of a per-object node (a block device's
 * block_index(), a NUMA node's number), else 0. */
#pragma once

#include "views.h"

#include <fuse_lowlevel.h>
#include <sys/stat.h>

enum tnode_kind {
	TN_DIR, TN_FILE, TN_CPUDIR, TN_CTROOT,
	TN_BLOCKDIR, /* sys/block: one TN_OBJDIR per host block device */
	TN_NODEDIR,  /* sys/devices/system/node: one TN_OBJDIR per host node */
	TN_OBJDIR,   /* the directory of one object; its children share its arg */
};

struct tnode {
	const char *name;
	int parent;
	enum tnode_kind kind;
	enum vfile file;
};

enum {
	T_ROOT = 0, T_PROC = 1, T_CPUDIR = 16, T_CTMOUNT = 20, T_GENERIC = 21, T_GENCPU = 29,
	T_BLOCKDEV = 36, T_NODEN = 39, T_COUNT = 43
};
extern const struct tnode views_tree[T_COUNT];

#define PASS_BIT (1ULL << 63)


struct pnode {
	unsigned view;
	char *rel; /* path below the real cpu sysfs dir */
};

struct ct_file {
	char *data;
	size_t len;
	uint64_t rendered_ns;
	uint64_t asked_ns;  /* last attribute request or READ (live files) */
	uint64_t mtime_ns; /* CLOCK_REALTIME of the render, for attributes */
};

struct ct {
	unsigned id;
	bool anon;            /* "@ID": made for a shared-tree caller */
	char name[256];
	struct cg_paths paths;
	uint64_t pidns_start; /* anon: fixed; named: PIDNS_UNKNOWN (from the reader) */
	pthread_mutex_t lock; /* protects files and obj_files */
	struct ct_file files[VF_NFILES];
	/* Per-object files (vfile_has_arg), indexed by arg, grown on use. */
	struct ct_file *obj_files[VF_NFILES];
	unsigned n_obj_files[VF_NFILES];
	struct ct *anon_next; /* in its container's list, under its stat_lock */
	struct rcu_head rcu;
};

static inline fuse_ino_t tnode_ino_arg(unsigned view, int t, unsigned arg)
{
	return ((fuse_ino_t)arg << 32) | ((fuse_ino_t)view << 8) | (fuse_ino_t)(t + 1);
}

static inline fuse_ino_t tnode_ino(unsigned view, int t)
{
	return tnode_ino_arg(view, t, 0);
}

/* fs_tree.c */
struct pnode *pnode_get(fuse_ino_t ino);
fuse_ino_t pnode_intern(unsigned view, const char *rel);
/* Anonymous trees are freed with their container: call inside an RCU
 * read-side section and do not keep the pointer past it. */
struct ct *ct_get(unsigned id);
void ct_tables_init(void);
struct ct *ct_intern(const char *name);
unsigned ct_skip_id(void);
/* The anonymous per-container tree for a container and PID namespace. */
unsigned ct_for_container(struct container *c, uint64_t pidns_start);
/* Relative symlink target from shared-tree template t into tree ct_id, or
 * into .generic/ for ct_id 0. */
void sym_target(unsigned ct_id, int t, char *buf, size_t size);
/* In the shared tree, proc/FILE and sys/devices/system/cpu are links whose
 * target depends on the reader. Only the shared tree has view 0 below its
 * root, so the view tells. */
static inline bool tnode_is_link(unsigned view, int t)
{
	return view == 0 &&
	       ((views_tree[t].parent == T_PROC && views_tree[t].kind == TN_FILE) || t == T_CPUDIR);
}
/* The cgroup CT_PARENT/NAME in the first hierarchy that has it: 0 and its
 * stat, or -ENOENT (also for a name no cgroup can have). */
int ct_cgroup_stat(const char *name, struct stat *st);
int tnode_child(int parent, const char *name);
void tnode_attr(fuse_ino_t ino, int t, struct stat *st);
/* cpuN: visible to this caller? Names that are not cpuN are always visible. */
bool cpu_entry_visible(const struct view_caller *who, const char *name);
/* The object a name of a TN_BLOCKDIR or TN_NODEDIR directory stands for
 * (its arg), -ENOENT if the host has none of that name. */
int obj_lookup(int dir, const char *name);
/* Call fn for each object of such a directory. */
void obj_list(int dir, void (*fn)(const char *name, unsigned arg, void *ctx), void *ctx);
/* The per-container tree's cached render of (f, arg), NULL on ENOMEM;
 * call with ct->lock held. */
struct ct_file *ct_file_slot(struct ct *c, enum vfile f, unsigned arg);

static inline unsigned ino_view(fuse_ino_t ino)
{
	return (unsigned)((ino >> 8) & 0xffffff);
}

static inline int ino_tnode(fuse_ino_t ino)
{
	return (int)(ino & 0xff) - 1;
}

static inline unsigned ino_arg(fuse_ino_t ino)
{
	return (unsigned)((ino & ~PASS_BIT) >> 32);
}

/* A rendered file (not a passthrough node: check PASS_BIT first). */
static inline bool ino_is_file(fuse_ino_t ino)
{
	int t = ino_tnode(ino);

	return t >= 0 && t < T_COUNT && views_tree[t].kind == TN_FILE;
}

/* fs_core.c: what both trees' operations share. */
#define LONG_TIMEOUT 86400.0

/* An open file or directory of either tree (first member of its struct). */
struct fs_handle {
	struct fs_handle *prev, *next;
	void (*free_fn)(struct fs_handle *);
};

struct dirbuf;

/* What differs between the trees in the operations they share. */
struct fs_tree {
	/* The node's attributes: the tree's own nodes, else fs_attr. */
	int (*attr)(fuse_req_t req, fuse_ino_t ino, struct stat *st);
	double (*attr_timeout)(fuse_ino_t ino);
	/* Directory entries after . and ..: the tree's own, else fs_list. */
	void (*list)(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b);
	double pass_entry_s; /* dentry lifetime of a real sysfs entry */
	double cpu_entry_s;  /* ... of a cpuN the reader sees */
	double cpu_noent_s;  /* ... of the absence of a cpuN it does not see */
};

/* Frees the handles the kernel never released (their readers still held
 * them at stop). Only once no session thread runs. */
void fs_handles_free_all(void);
/* The server generation that tags its file handles (0: the only one). */
void fs_set_generation(unsigned gen);
/* The handle of fi->fh, NULL if another server made it. */
void *fs_fh_ptr(uint64_t fh);
/* Track h and reply to OPEN/OPENDIR with it. */
void fs_reply_open(fuse_req_t req, struct fuse_file_info *fi, struct fs_handle *h,
		   void (*free_fn)(struct fs_handle *));
/* RELEASE and RELEASEDIR of any handle. */
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Who a request on view is answered for; call inside an RCU read-side
 * section. */
void fs_caller(fuse_req_t req, unsigned view, struct view_caller *who);
int fs_render(fuse_req_t req, unsigned view, enum vfile f, unsigned arg, struct sbuf *out);
/* Attributes of a passthrough or template node. */
int fs_attr(fuse_ino_t ino, struct stat *st);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, const struct fs_tree *tr);
void fs_reply_entry(fuse_req_t req, fuse_ino_t ino, double entry_timeout,
		    const struct fs_tree *tr);
void fs_reply_noent(fuse_req_t req, double timeout);
/* --debug traces every lookup, before the tree decides. */
#define fs_log_lookup(req, parent, name)                                               \
	log_debug("lookup %s in %#llx by pid %d", name, (unsigned long long)(parent), \
		  fuse_req_ctx(req)->pid)
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name, const struct fs_tree *tr);
/* READLINK of a passthrough node. */
void fs_readlink(fuse_req_t req, fuse_ino_t ino);
/* An fd of a passthrough node's real file, or -errno. */
int fs_open_pass(fuse_ino_t ino);
void fs_read_pass(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);
void fs_reply_pread(fuse_req_t req, int fd, size_t size, off_t off);
void fs_reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off);
void fs_dir_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t mode);
/* The entries of a passthrough, per-object or template directory. */
void fs_list(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b);
/* OPENDIR, READDIR of the session's tree (its userdata). */
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);

/* fs_ops_shared.c, fs_ops_ct.c: the two sessions' operations and trees. */
extern const struct fuse_lowlevel_ops views_shared_ops;
extern const struct fuse_lowlevel_ops views_ct_ops;
extern struct fs_tree views_shared_tree, views_ct_tree;
