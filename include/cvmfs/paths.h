/* The default places of cvmfs on a host, in one header for every program
 * (doc/architecture.md, Files): each is a string literal, so that help
 * texts can name them ("default " CVMFS_RUN_DIR). */
#pragma once

#define CVMFS_CONFIG_FILE "/etc/cvmfs/cvmfs.conf" /* every program's -c default */
#define CVMFS_RUN_DIR "/run/cvmfs"                /* live figures, pid files, records */
#define CVMFS_STATE_DIR "/var/lib/cvmfs"          /* workspaces, volumes, id ranges */

/* A disk daemon's files under RUN_DIR/disk/ (doc/cvmfsd-disk.md, Files):
 * RUN_DIR/CVMFS_DISK_DIR/NAME followed by one of these suffixes. */
#define CVMFS_DISK_DIR "disk"
#define CVMFS_DISK_STATUS ".json"  /* its status: include/cvmfs/disk_status.h */
#define CVMFS_DISK_PID ".pid"      /* its pid, for SIGHUP */
#define CVMFS_DISK_HANDLES ".handles"
#define CVMFS_DISK_LIMIT ".limit"  /* a new limit asked of it (cvm-launch --disk) */

#include <stdio.h>

/* RUN_DIR/disk/NAME SUFFIX in malloc'ed memory, or NULL (no memory). */
static inline char *cvmfs_disk_file(const char *run_dir, const char *name, const char *suffix)
{
	char *path;

	return asprintf(&path, "%s/" CVMFS_DISK_DIR "/%s%s", run_dir, name, suffix) < 0 ? NULL
											 : path;
}

/* A launcher's record of its CVM, which cvmctl reads:
 * RUN_DIR/CVMFS_LAUNCH_DIR/NAME CVMFS_RECORD. */
#define CVMFS_LAUNCH_DIR "launch"
#define CVMFS_RECORD ".json"
/* The views daemon's counts beside its mountpoint (MOUNT.json), which
 * cvmfs-stat --prometheus reads. */
#define CVMFS_VIEWS_STATUS ".json"
