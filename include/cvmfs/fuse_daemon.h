/* One FUSE session of a cvmfsd daemon: stale-mount recovery, start (new,
 * mount, loop thread), stop (detach, wait, maybe abort), shared by the
 * views and the disk. */
#pragma once

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

struct fuse_daemon {
	/* Set by the caller before fuse_daemon_start. */
	const char *fsname, *subtype; /* -o fsname=,subtype= */
	const char *extra_opts; /* the user's -o, or NULL */
	unsigned max_threads;
	unsigned grace_s; /* stop: wait this long for the loop once detached */
	unsigned abort_s; /* then abort the connection and wait up to this, in
			   * all; 0: never abort (the process exit ends it) */
	bool *stopping; /* atomic; set by stop; a loop ending without it stops the daemon */
	/* A connection that outlives the process (fuse_takeover.h): its INIT
	 * store, and the /dev/fuse fd to take over (-1: mount anew). */
	bool survive;
	int init_store, takeover_fd;
	const struct fuse_custom_io *io; /* the daemon's own I/O hooks, or NULL */
	void *userdata; /* the session's: fuse_req_userdata in the operations */
	/* After the mount, before the loop: hooks on the session (optional). */
	void (*setup)(struct fuse_session *se);
	/* Private. */
	struct fuse_session *se;
	pthread_t thread;
	bool running;
	char mnt_path[PATH_MAX]; /* as given, for messages */
	char mnt_real[PATH_MAX]; /* canonical, as /proc/self/mountinfo has it */
	dev_t conn_dev; /* the mount's st_dev: its minor names the connection in fusectl */
};

/* Before anything is touched: a stale mount at PATH (a daemon killed with
 * SIGKILL) is detached; a live FUSE mount there is refused with -EBUSY. */
int fuse_daemon_recover_stale(const char *path);
int fuse_daemon_start(struct fuse_daemon *d, const struct fuse_lowlevel_ops *ops,
		      size_t ops_size, const char *mnt);
/* True once every request read has been answered and the session is gone;
 * false when it is left for the process exit to close. */
bool fuse_daemon_stop(struct fuse_daemon *d);
/* The last mount at PATH (canonical) in /proc/self/mountinfo, of a FUSE type
 * if fuse_only: its type and device. False if there is none. */
bool fuse_daemon_mount_at(const char *path, bool fuse_only, char *fstype, size_t size,
			  dev_t *dev);
