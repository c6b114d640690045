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
extern const struct tnode tree[T_COUNT];

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
 * target depends on the reader. */
static inline bool is_proc_link(bool ct_session, unsigned view, int t)
{
	return !ct_session && view == 0 &&
	       ((tree[t].parent == T_PROC && tree[t].kind == TN_FILE) || t == T_CPUDIR);
}
bool ct_cgroup_exists(const char *name);
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

/* fs_ops.c */
extern const struct fuse_lowlevel_ops shared_ops;
extern const struct fuse_lowlevel_ops ct_ops;
/* Frees the handles the kernel never released (their readers still held
 * them at stop). Only once no session thread runs. */
void fs_handles_free_all(void);
/* The server generation that tags its file handles (0: the only one). */
void fs_set_generation(unsigned gen);
