/* The shared part of --net private as root, made by the first CVM and
 * undone by the last: the bridge (when a launcher made it) and the host's
 * ip_forward (when a launcher turned it on). "Last" is decided under
 * NET_DIR/bridge.lock, which every launch also holds from making the
 * bridge to taking its lease: a lease held (net_lease.c) is a CVM using
 * its bridge; one whose lock can be taken is a dead launcher's, removed. */
#include "net.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int lock_fd = -EBADF;

int bridge_lock(struct launch *L)
{
	lock_fd = open(NET_DIR "/bridge.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0)
		return step_error(L, -errno, NET_DIR "/bridge.lock");
	return 0;
}

void bridge_unlock(void)
{
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -EBADF;
}

void bridge_mark(struct launch *L, const char *what)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), NET_DIR "/%s.made", what);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		log_warn("warning: %s: %s (%s stays after the last CVM)", path, strerror(errno),
			 what);
	else
		close(fd);
	(void)L;
}

/* Whether a live launcher holds a lease in NET_DIR/DIR; dead ones' are
 * removed on the way. */
static bool leases_held(int dfd, const char *dir)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *e;
	bool held = false;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((e = readdir(d))) {
		int lfd;

		if (e->d_name[0] == '.')
			continue;
		lfd = openat(dirfd(d), e->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0)
			held = true;
		else if (lfd >= 0)
			unlinkat(dirfd(d), e->d_name, 0);
		if (lfd >= 0)
			close(lfd);
	}
	unlinkat(dfd, dir, AT_REMOVEDIR); /* fails while leases are in it */
	return held;
}

static bool any_lease_held(void)
{
	_cleanup_closedir_ DIR *d = opendir(NET_DIR);
	struct dirent *e;
	bool held = false;

	while (d && (e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.' && leases_held(dirfd(d), e->d_name))
			held = true;
	return held;
}

static bool unmark(const char *what)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), NET_DIR "/%s.made", what);
	return unlink(path) == 0;
}

void bridge_release(struct launch *L)
{
	char dir[PATH_MAX];
	_cleanup_close_ int dfd = open(NET_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	snprintf(dir, sizeof(dir), "%s", L->o.bridge);
	if (dfd < 0 || bridge_lock(L) < 0) {
		bridge_unlock();
		return;
	}
	if (!leases_held(dfd, dir) && unmark(L->o.bridge))
		net_run(NULL, true, (const char *const[]){ "ip", "link", "del", L->o.bridge, NULL });
	if (!any_lease_held() && unmark("ip_forward")) {
		_cleanup_close_ int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1)
			log_warn("warning: ip_forward stays on: %s", strerror(errno));
	}
	bridge_unlock();
}
