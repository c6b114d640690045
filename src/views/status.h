/* The views' request counts: counted in the sessions' custom I/O and
 * published at MOUNT.json, next to the mountpoint as MOUNT.sock is
 * (doc/metrics.md). */
#pragma once

#include <fuse_lowlevel.h>

/* After fuse_session_mount: the session's replies are counted. A failure
 * is logged and leaves the session as it was (uncounted). */
void views_count_replies(struct fuse_session *se);
/* Write MOUNT.json now and then every second while the counts move. */
int views_status_start(const char *mnt);
/* Stop writing and remove the file (a stopped daemon counts nothing). */
void views_status_stop(void);
