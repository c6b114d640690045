/* A daemon's FUSE session: start (new, mount, loop thread) and stop
 * (detach, wait for the requests read, abort what other namespaces keep
 * alive). */
#include "cvmfs/fuse_daemon.h"
#include "cvmfs/fuse_takeover.h"
#include "cvmfs/log.h"

#include "fuse_mount.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

static void *session_loop(void *arg)
{
	struct fuse_daemon *d = arg;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();

	fuse_loop_cfg_set_max_threads(cfg, d->max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, 8);
	fuse_session_loop_mt(d->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	/* The connection ended without us: its last mount went (fusermount3 -u
	 * with no copy left in another namespace) or it was aborted. Stop. */
	if (!__atomic_load_n(d->stopping, __ATOMIC_ACQUIRE))
		kill(getpid(), SIGTERM);
	return NULL;
}

/* Our mount and connection as the kernel names them (MNT canonical before
 * it is mounted: no lookup into the mount before the loop answers INIT).
 * A connection taken over is mounted already. */
static int session_mount(struct fuse_daemon *d, const char *mnt)
{
	bool takeover = d->survive && d->takeover_fd >= 0;
	char type[256];

	if (takeover || !realpath(mnt, d->mnt_real))
		snprintf(d->mnt_real, sizeof(d->mnt_real), "%s", mnt);
	if (!takeover && fuse_session_mount(d->se, mnt) != 0)
		return -EIO;
	if (d->survive &&
	    fuse_takeover_attach(d->se, takeover ? d->takeover_fd : fuse_session_fd(d->se),
				 d->init_store, d->io) < 0)
		return -EIO;
	if (!fuse_daemon_mount_at(d->mnt_real, true, type, sizeof(type), &d->conn_dev))
		log_warn("%s: not in /proc/self/mountinfo: a stop cannot end its copies elsewhere",
			 mnt);
	return 0;
}

int fuse_daemon_start(struct fuse_daemon *d, const struct fuse_lowlevel_ops *ops,
		      size_t ops_size, const char *mnt)
{
	char opts[4096];
	char *argv[] = { "cvmfsd", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int r;

	snprintf(opts, sizeof(opts), "allow_other,default_permissions,fsname=%s,subtype=%s%s%s",
		 d->fsname, d->subtype, d->extra_opts ? "," : "",
		 d->extra_opts ? d->extra_opts : "");
	snprintf(d->mnt_path, sizeof(d->mnt_path), "%s", mnt);
	d->se = fuse_session_new(&args, ops, ops_size, d->userdata);
	fuse_opt_free_args(&args);
	if (!d->se) {
		log_error("-o %s: cannot start a FUSE session", opts);
		return -EINVAL;
	}
	if (session_mount(d, mnt) < 0) {
		log_error("%s: cannot mount", mnt);
		fuse_session_destroy(d->se);
		d->se = NULL;
		return -EIO;
	}
	if (d->setup)
		d->setup(d->se);
	r = pthread_create(&d->thread, NULL, session_loop, d);
	if (r) {
		fuse_session_unmount(d->se);
		return -r;
	}
	d->running = true;
	return 0;
}

/* Waits up to S seconds for the loop thread (all its workers joined). */
static bool loop_join(struct fuse_daemon *d, unsigned s)
{
	struct timespec ts;

	if (!d->running)
		return true;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += s;
	if (pthread_timedjoin_np(d->thread, NULL, &ts) != 0)
		return false;
	d->running = false;
	return true;
}

/* Detaches our mount (MNT_DETACH: what is open in it stays usable; CVMs
 * may hold binds of it) with /dev/fuse still open, so that requests in
 * flight get their replies. With no other user the connection ends. */
static void session_detach(const struct fuse_daemon *d)
{
	if (!fuse_mount_is_ours(d))
		return; /* unmounted from outside: what is at MNT is not ours */
	if (umount2(d->mnt_real, MNT_DETACH) < 0)
		log_warn("%s: detaching: %s", d->mnt_path, strerror(errno));
}

/* Copies of the mount in other mount namespaces or files open in the
 * detached mount keep the connection alive, and the daemon cannot see
 * their users: with abort_s, after the grace the connection is aborted for
 * all of them (they get ENOTCONN), which ends the loop once the requests
 * it read are done. */
static bool wait_loop(struct fuse_daemon *d)
{
	int r;

	if (loop_join(d, d->grace_s))
		return true;
	if (!d->abort_s)
		return false;
	if ((r = fuse_conn_abort(d)) < 0)
		log_warn("%s: cannot abort the FUSE connection (fusectl): %s", d->mnt_path,
			 strerror(-r));
	return loop_join(d, d->abort_s > d->grace_s ? d->abort_s - d->grace_s : 0);
}

bool fuse_daemon_stop(struct fuse_daemon *d)
{
	if (!d->se)
		return true;
	__atomic_store_n(d->stopping, true, __ATOMIC_RELEASE);
	fuse_session_exit(d->se);
	session_detach(d);
	if (!wait_loop(d))
		return false;
	/* The loop also ends after a request answered once stopping, the
	 * connection maybe still alive: end it before libfuse looks at MNT
	 * (or leave it to the exit). */
	if (fuse_conn_alive(d)) {
		if (!d->abort_s)
			return false;
		if (fuse_conn_abort(d) < 0 && !fuse_mount_is_ours(d))
			return true; /* closed at exit; MNT is not ours to unmount */
	}
	fuse_session_unmount(d->se); /* closes /dev/fuse; unmounts only a live connection */
	fuse_session_destroy(d->se);
	d->se = NULL;
	return true;
}
