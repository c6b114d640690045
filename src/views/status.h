/* The views' request counts: counted in the sessions' custom I/O and
 * published at MOUNT.json, next to the mountpoint as MOUNT.sock is
 * (doc/metrics.md). */
#pragma once


/* Write MOUNT.json now and then every second while the counts move. */
int views_status_start(const char *mnt);
/* Stop writing and remove the file (a stopped daemon counts nothing). */
void views_status_stop(void);
