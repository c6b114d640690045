/* Per-CVM sysctls (fs_sysctl.c): the directory ct/NAME/sysctl of the
 * per-container tree holds one file per kernel knob that dockerd, systemd
 * or kubelet write at start and that the kernel does not namespace. The
 * launcher binds each over the same /proc/sys entry of its CVM.
 *  - emulated: a per-CVM value, validated as the kernel does, that reads
 *    back; never applied to the host (until written: the host's value);
 *  - refused: the host's value, read-only; a write is logged and fails
 *    with EACCES, as for a read-only sysctl.
 * Node ids: SYSCTL_BIT | (ct id << 16) | (index + 1), the directory index
 * SYSCTL_DIR_IDX. Values live per CVM instance (the cgroup directory's
 * inode): a relaunch starts from the host's values, as a reboot does. */
#pragma once

#include "fs.h"

#define SYSCTL_BIT (1ULL << 62)
#define SYSCTL_DIR_NAME "sysctl"

static inline bool sysctl_node(fuse_ino_t ino)
{
	return (ino & SYSCTL_BIT) && !(ino & PASS_BIT);
}

fuse_ino_t sysctl_dir_ino(unsigned ct_id);
/* A file of the directory PARENT: 0 and *ino set, or -ENOENT. */
int sysctl_lookup(fuse_ino_t parent, const char *name, fuse_ino_t *ino);
int sysctl_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st);
/* The file's content (NUL-terminated) into buf; its length or -errno. */
int sysctl_read(fuse_req_t req, fuse_ino_t ino, char *buf, size_t size);
/* Bytes taken, or -errno (-EINVAL: out of range or not a number). */
int sysctl_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off);
void sysctl_list(fuse_ino_t dir, void (*add)(void *ctx, const char *name, fuse_ino_t ino,
					     mode_t mode), void *ctx);
