/* cvmfsd disk, quota layer: every upper object's blocks and inode charged
 * against the limit (charge.c), and files a writable mapping could grow
 * behind the daemon's back kept allocated (mmap_guard.c). */
#pragma once

#include "nodes/nodes.h"

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
/* The worst-case reservation for one more directory entry. */
int64_t dirent_growth(void);

/* What inode.c calls for a node about to die (nodes_init). */
void charge_settle_writeback(struct dnode *n);

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
