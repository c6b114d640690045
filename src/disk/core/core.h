/* cvmfsd disk: the pure logic that the daemon, cvmfs-stat and the unit
 * tests share. Nothing here touches FUSE or the layers.
 *
 *  - areas: which accounting area a union path belongs to;
 *  - acct: the used/limit counters with reserve-then-settle enforcement;
 *  - whiteout names (OCI) and the xattr names the union keeps private;
 *  - figures: the numbers published under RUN_DIR and persisted in
 *    DATA/state, with their text formats. */
#pragma once

#include "cvmfs/discard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* The bytes an object occupies, as charged. */
static inline int64_t blocks_bytes(const struct stat *st)
{
	return (int64_t)st->st_blocks * 512;
}

/* ---- areas ---- */
enum area { AREA_IMAGE, AREA_DOCKER, AREA_HOME, AREA_OTHER, AREA_N };

/* rel: a union path without the leading '/' ("" is the root). */
enum area area_of_path(const char *rel);
/* Components of the deepest area root area_of_path knows (var/lib/docker). */
#define AREA_ROOT_DEPTH 3
const char *area_name(enum area a);

/* ---- accounting ---- */

/* Two counters per resource: `commit` (settled usage + outstanding
 * reservations) is what admission compares with the limit; `used` is the
 * settled figure that is published. Both move with atomic operations only;
 * a limit of 0 means unlimited. */
struct acct {
	int64_t commit_bytes, used_bytes;
	int64_t commit_inodes, used_inodes;
	int64_t area_bytes[AREA_N];
	int64_t area_inodes[AREA_N];
	uint64_t limit_bytes, limit_inodes;
};

/* Admit a request that may grow usage by up to bytes/inodes, or fail with
 * -ENOSPC leaving the counters as they were. Negative amounts never fail. */
int acct_reserve(struct acct *a, int64_t bytes, int64_t inodes);
/* Return a reservation unused (the operation failed). */
void acct_unreserve(struct acct *a, int64_t bytes, int64_t inodes);
/* Replace a reservation by the real change measured after the operation.
 * The real change may exceed the reservation (metadata blocks); it is then
 * charged anyway so that the figures stay exact. */
void acct_settle(struct acct *a, enum area ar, int64_t reserved_bytes, int64_t delta_bytes,
		 int64_t reserved_inodes, int64_t delta_inodes);
/* Move settled figures between areas (rename across areas). */
void acct_move(struct acct *a, enum area from, enum area to, int64_t bytes, int64_t inodes);
/* Bytes still available under the limit (0 when at or over it). */
uint64_t acct_avail(const struct acct *a);
/* Worst-case growth of writing len bytes at off into a file: the block-
 * rounded range plus one block of metadata headroom (extent tree, indirect
 * blocks). */
int64_t write_worst_case(uint64_t off, uint64_t len, uint64_t blksize);

/* ---- whiteouts ---- */
#define OCI_WH_PREFIX ".wh."
#define OCI_OPAQUE ".wh..wh..opq"
/* The union's own markers in DATA/upper; users can neither see nor set them. */
#define XATTR_PRIV_PREFIX "trusted.cvmfs."
#define XATTR_WHITEOUT "trusted.cvmfs.whiteout"
#define XATTR_OPAQUE UPPER_OPAQUE_XATTR
/* Lower layers' overlayfs markers: metadata of the image, hidden. */
#define XATTR_OVL_PREFIX "trusted.overlay."
#define XATTR_OVL_OPAQUE "trusted.overlay.opaque"

/* ".wh.NAME" (not the opaque marker): the hidden NAME, else NULL. */
const char *oci_whiteout_target(const char *name);
bool oci_is_meta(const char *name);
/* Names the union keeps from users: private xattrs always; overlayfs
 * markers when they come from an image layer. */
bool xattr_hidden(const char *name, bool from_lower);
/* Remove hidden names from a listxattr buffer in place; returns new size. */
size_t xattr_list_filter(char *list, size_t size, bool from_lower);

/* ---- figures ---- */
struct figures {
	char name[256];
	char state[16]; /* running, stopped, crashed */
	uint64_t limit_bytes, used_bytes, avail_bytes;
	uint64_t area_bytes[AREA_N];
	uint64_t inodes_used, inodes_limit;
	long pid;
	uint64_t known_inodes; /* daemon's node table: inodes the kernel holds */
	/* Written only, when set: what the daemon serves, so that a launcher
	 * can tell whether it serves its CVM (any characters, escaped). */
	const char *data, *image, *image_idmap;
	/* Written only: JSON members (",\"k\":v...") put before the closing
	 * brace (the volume's mountpoint and lanes). */
	const char *extra_json;
};

/* Snapshot of the counters as published. */
void figures_from_acct(struct figures *f, const struct acct *a);
/* One JSON object, newline-terminated; returns length or -ENOSPC. */
int figures_to_json(const struct figures *f, char *buf, size_t size);
/* (Read by every other program through include/cvmfs/disk_status.h.) */

/* DATA/state: "key value" lines. clean says the figures were persisted by
 * a clean stop and can be trusted without a rescan. */
struct disk_state {
	bool clean;
	uint64_t used_bytes, used_inodes;
	uint64_t area_bytes[AREA_N], area_inodes[AREA_N];
	char image[4096]; /* the --image list the figures were counted with */
};

int state_format(const struct disk_state *s, char *buf, size_t size);
int state_parse(const char *text, struct disk_state *s);

/* A name the union accepts for one entry (no "/", ".", ".." or empty, at
 * most 255 bytes). */
bool name_valid(const char *name);
/* buf = dir "/" name (dir "." gives name alone); buf may be dir itself.
 * -ENAMETOOLONG when it does not fit in size. */
int path_join(char *buf, size_t size, const char *dir, const char *name);
/* The same on the heap, of any length (NULL: out of memory). */
char *path_join_dup(const char *dir, const char *name);
