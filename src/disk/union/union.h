/* cvmfsd disk, union layer: lookups across the layers, whiteouts and
 * opaque directories (layer.c), merged listings (dir.c), copy-up
 * (copyup.c), the full recount (scan.c), and finding a node the kernel
 * forgot when it decodes a file handle (reconnect.c). */
#pragma once

#include "quota/quota.h"

/* layer.c: lookup across layers */
struct found {
	unsigned layer;
	uint32_t lmask;
	uint32_t gen; /* backing_gen() of the object found */
	struct stat st;
};
/* Does an image layer below directory node parent show name (so that
 * removing or renaming it away needs a whiteout)? Through its kept fds. */
bool node_lower_has(struct dnode *parent, const char *name);
/* Look name up below a directory given by its union path and presences.
 * Returns 0 and fills f, -ENOENT, or another -errno. */
int union_lookup(const char *prel, bool upper, uint32_t lmask, const char *name,
		 struct found *f);
/* The same directory of every layer, opened on first use: for many
 * lookups in one directory (readdirplus). For a directory node (dir) its
 * image layers' directories are the fds it keeps (node_lower_dirfd),
 * borrowed inside an RCU read-side section from the first borrow until
 * layer_dirs_close, not opened by path. */
#define LAYER_DIR_UNOPENED (-1000000)
struct layer_dirs {
	const char *prel;  /* NULL for a node's: built from dir when needed */
	char *prel_own;    /* that path, freed by layer_dirs_close */
	struct dnode *dir;
	uint64_t borrowed; /* bit i: fd[i] is dir's, not closed here */
	bool rcu;          /* in a read-side section (urcu_memb_read_lock) */
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
/* dir: the directory's node when the caller has it (its kept fds are
 * used; rel may then be NULL: its path is built where no fd is kept),
 * else NULL (rel opened by path). */
int dir_list(struct dnode *dir, const char *rel, bool upper, uint32_t lmask, struct dlist *l);
void dlist_free(struct dlist *l);

/* copyup.c */
/* Copy the object at rel in layer src into upper dir upfd as name. */
int copy_obj(unsigned src, const char *rel, int upfd, const char *name, enum area ar,
	     struct stat *out);
int copy_up(struct dnode *n);
/* Copy a whole directory tree up and make it opaque (before a rename). */
int copy_up_tree(struct dnode *dir);

/* Open the node's upper directory, copying it up first. */
int node_upper_dir(struct dnode *n);

/* scan.c: full recount, and area moves of renamed trees */
int scan_all(struct acct *a, uint64_t *image_inodes);
/* Could an object (or tree) at oldrel and at newrel count in different areas? */
bool area_paths_differ(const char *oldrel, const char *newrel);
/* Move the charges of the object at dirfd/name (a whole tree for a
 * directory) from the areas of its old paths to those of its new ones. */
void area_move_object(int dirfd, const char *name, const char *oldrel, const char *newrel);
/* Does the object at dirfd/name hold a file with several links (itself, or
 * anywhere in its tree)? Such an object stays in its area: link and rename
 * answer EXDEV, as across ext4 project quotas (and across the volume's
 * lanes, which are mounts of their own), so that every link of a file is
 * in the area its charge is in, whichever name the kernel looks it up by. */
bool area_move_splits_links(int dirfd, const char *name);

/* reconnect.c: file handles that outlive the kernel's caches */
/* Make l's objects findable by handle (after open_layer). */
void layer_handles_open(struct layer *l);
void layer_handles_close(struct layer *l);
/* At INIT, with the kernel's FUSE minor version; and where we mount. */
void handles_init(unsigned proto_minor);
void handles_set_mountpoint(const char *mnt);
/* Before answering LOOKUP(id, ".") for n: see reconnect.c. */
void handles_connect(struct dnode *n);
/* The node with kernel id ino, held, whether or not the kernel still has it:
 * NULL and *err (-ESTALE: gone or never known) when not found. */
struct dnode *node_by_id(uint64_t ino, int *err);
/* The node of an id the kernel sent in a request: node_get, and after a
 * take-over (a dead server gave the id) found again through the journal,
 * ghosts or handles. ns_lock held. */
struct dnode *node_kget(uint64_t ino);
/* Lets go of what node_kget held for the request just answered. */
void node_request_done(void);
void reconnect_after_takeover(void);
