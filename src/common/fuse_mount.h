/* fuse_daemon.c's view of the mount (fuse_mount.c). */
#pragma once

#include "cvmfs/fuse_daemon.h"

bool fuse_mount_is_ours(const struct fuse_daemon *d);
bool fuse_conn_alive(const struct fuse_daemon *d);
/* Ends the connection for every mount of it, in every namespace (what
 * fusermount3 -u or a detach cannot do). */
int fuse_conn_abort(const struct fuse_daemon *d);
