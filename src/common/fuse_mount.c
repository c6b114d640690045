/* What the kernel says about a daemon's FUSE mount: /proc/self/mountinfo,
 * stale mounts left by a killed daemon, and fusectl's abort. */
#include "cvmfs/cleanup.h"
#include "cvmfs/fuse_daemon.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fuse_mount.h"

#define FUSECTL_DIR "/sys/fs/fuse/connections"
#define FUSECTL_MAGIC 0x65735543 /* FUSE_CTL_SUPER_MAGIC */

/* Mountpoint fields of /proc/self/mountinfo escape ' ', '\t', '\n' and
 * '\\' as \ooo; decoded in place. */
static void mountinfo_unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* The last one mounted: what a lookup of PATH reaches when !fuse_only. */
bool fuse_daemon_mount_at(const char *path, bool fuse_only, char *fstype, size_t size,
			  dev_t *dev)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	bool found = false;

	while (f && getline(&line, &cap, f) > 0) {
		char *save = NULL, *fld[5] = { 0 }, *sep = strstr(line, " - "), *type;
		unsigned maj, min;

		for (int i = 0; i < 5; i++)
			fld[i] = strtok_r(i ? NULL : line, " ", &save);
		if (!fld[4] || !sep || !(type = strtok_r(sep + 3, " ", &save)) ||
		    sscanf(fld[2], "%u:%u", &maj, &min) != 2)
			continue;
		mountinfo_unescape(fld[4]);
		if (strcmp(fld[4], path) || (fuse_only && strncmp(type, "fuse", 4)))
			continue;
		snprintf(fstype, size, "%s", type);
		if (dev)
			*dev = makedev(maj, min);
		found = true;
	}
	return found;
}

/* stat() may still succeed from cached attributes on a dead mount, and
 * once a daemon has answered OPENDIR with ENOSYS the kernel opens its
 * directories without asking; STATFS always asks (ENOTCONN). Detached, so
 * that the new mount is not stacked on the dead one. */
int fuse_daemon_recover_stale(const char *path)
{
	char real[PATH_MAX], fstype[256];

	for (int tries = 0; tries < 8; tries++) {
		struct statfs sf;

		if (statfs(path, &sf) == 0) {
			if (realpath(path, real) &&
			    fuse_daemon_mount_at(real, true, fstype, sizeof(fstype), NULL)) {
				log_error("%s: already mounted (%s) by a running daemon: %s", path,
					  fstype, strerror(EBUSY));
				return -EBUSY;
			}
			return 0;
		}
		/* ECONNABORTED: asked while the daemon's last process was going
		 * (a supervisor's server follows it within moments). */
		if (errno != ENOTCONN && errno != ECONNABORTED)
			return log_error_errno(-errno, "%s", path);
		log_warn("%s: stale mount from a previous run, detaching it", path);
		if (umount2(path, MNT_DETACH) < 0)
			return log_error_errno(-errno, "%s: detaching the stale mount", path);
	}
	log_error("%s: still a stale mount after 8 detaches: %s", path, strerror(EBUSY));
	return -EBUSY;
}

/* Does a lookup of MNT reach our mount? Not once it was unmounted from
 * outside (MNT may then hold anything) or something was mounted over it. */
bool fuse_mount_is_ours(const struct fuse_daemon *d)
{
	char type[256];
	dev_t dev;

	return d->conn_dev && fuse_daemon_mount_at(d->mnt_real, false, type, sizeof(type), &dev) &&
	       dev == d->conn_dev;
}

/* False once the connection has ended: /dev/fuse polls POLLERR when the
 * last mount of it went or it was aborted. */
bool fuse_conn_alive(const struct fuse_daemon *d)
{
	struct pollfd p = { .fd = fuse_session_fd(d->se) };

	return p.fd >= 0 && !(poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)));
}

/* Opened while the connection is alive, the abort file is ours (its name,
 * the minor of our st_dev, is not given to another mount before our
 * connection ends); written after it ended, it does nothing. */
static int conn_abort_at(const struct fuse_daemon *d)
{
	char path[PATH_MAX];
	_cleanup_close_ int fd = -EBADF;

	snprintf(path, sizeof(path), "%s/%u/abort", FUSECTL_DIR, minor(d->conn_dev));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fuse_conn_alive(d) ? -errno : 0; /* no entry: the connection has ended */
	if (fuse_conn_alive(d) && write(fd, "1", 1) < 0)
		return -errno;
	return 0;
}

struct abort_call {
	const struct fuse_daemon *d;
	int r;
};

/* fusectl is not mounted on a fresh machine: this thread mounts it in a
 * mount namespace of its own, private (nothing shows or propagates
 * outside), which goes away with the thread. unshare(CLONE_NEWNS) takes
 * the calling thread alone into it. */
static void *conn_abort_private(void *arg)
{
	struct abort_call *c = arg;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL) < 0)
		c->r = -errno;
	else
		c->r = conn_abort_at(c->d);
	return NULL;
}

/* Requests not yet read fail, later ones get ENOTCONN, reads of /dev/fuse
 * ENODEV, so the loop ends; requests already read complete, their replies
 * failing harmlessly. (umount2(MNT_FORCE) aborts too, but only a mount
 * still attached here.) */
int fuse_conn_abort(const struct fuse_daemon *d)
{
	struct abort_call c = { d, -ENOENT };
	struct statfs sf;
	pthread_t t;
	int e;

	if (!d->conn_dev)
		return c.r;
	if (statfs(FUSECTL_DIR, &sf) == 0 && sf.f_type == FUSECTL_MAGIC)
		return conn_abort_at(d);
	e = pthread_create(&t, NULL, conn_abort_private, &c);
	if (e)
		return -e;
	pthread_join(t, NULL);
	return c.r;
}
