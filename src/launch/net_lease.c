/* Address leases for --net private as root: NET_DIR/BRIDGE/A.B.C.D holds the
 * CVM's name and is flock'ed by its launcher for the CVM's life. The lock
 * is the lease: the kernel drops it when a launcher dies, however it
 * dies, so an unlocked file is free to take (concurrent launchers race on
 * the lock, never on the file's content). After taking the lock the file
 * must still be the one at the path: a launcher that just gave it up
 * unlinked it first. */
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

static void lease_path(struct launch *L, uint32_t addr, char *buf, size_t size)
{
	char a[16];

	net_ntoa(addr, a);
	snprintf(buf, size, NET_DIR "/%s/%s", L->o.bridge, a);
}

/* The locked file at path, or -EAGAIN (held, or replaced meanwhile). */
static int lock_at(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	struct stat a, b;

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		return -EAGAIN;
	return TAKE_FD(fd);
}

/* NET_DIR/NAME.lock for the CVM's life: its nft tables and veth are named
 * after NAME alone, so two launchers of one name with different --run-dir
 * (whose launch locks differ) must not both wire, nor clean up, NAME. */
int name_lock(struct launch *L)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), NET_DIR "/%s.lock", L->o.name);
	fd = lock_at(path);
	if (fd == -EAGAIN)
		return step_error(L, -EBUSY, "--name %s: another launcher has its network (%s)",
				  L->o.name, path);
	if (fd < 0)
		return step_error(L, fd, "%s", path);
	L->net_lock_fd = fd;
	return 0;
}

void name_unlock(struct launch *L)
{
	char path[PATH_MAX];

	if (L->net_lock_fd < 0)
		return;
	snprintf(path, sizeof(path), NET_DIR "/%s.lock", L->o.name);
	unlink(path);
	close(L->net_lock_fd);
	L->net_lock_fd = -EBADF;
}

int lease_take(struct launch *L, const struct net_range *r)
{
	char path[PATH_MAX], line[80];
	int len = snprintf(line, sizeof(line), "%s\n", L->o.name);

	for (uint32_t a = net_gateway(r) + 1; a <= net_last(r); a++) {
		int fd;

		lease_path(L, a, path, sizeof(path));
		fd = lock_at(path);
		if (fd == -EAGAIN)
			continue;
		if (fd < 0)
			return step_error(L, fd, "lease %s", path);
		if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len) {
			int e = -errno;

			unlink(path);
			close(fd);
			return step_error(L, e, "lease %s", path);
		}
		L->lease_fd = fd;
		L->addr = a;
		return 0;
	}
	return step_error(L, -EADDRNOTAVAIL, "--net-range %s: every address is leased",
			  L->o.net_range);
}

void lease_drop(struct launch *L)
{
	char path[PATH_MAX];

	if (L->lease_fd < 0)
		return;
	lease_path(L, L->addr, path, sizeof(path));
	unlink(path); /* still locked: nobody takes it half-gone */
	close(L->lease_fd);
	L->lease_fd = -EBADF;
	L->addr = 0;
}

/* A lease file naming NAME whose launcher is gone (kill -9). */
static void reclaim_one(struct launch *L, int dfd, const char *entry)
{
	char path[PATH_MAX], buf[80];
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	snprintf(path, sizeof(path), NET_DIR "/%s/%s", L->o.bridge, entry);
	n = read_regular_buf(dfd, entry, buf, sizeof(buf));
	if (n <= 0 || strcspn(buf, "\n") != strlen(L->o.name) ||
	    strncmp(buf, L->o.name, strlen(L->o.name)))
		return;
	fd = lock_at(path);
	if (fd < 0)
		return;
	log_debug("net: reclaiming %s, left by a launcher of %s", path, L->o.name);
	unlink(path);
}

void lease_reclaim_name(struct launch *L)
{
	char dir[PATH_MAX];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;

	snprintf(dir, sizeof(dir), NET_DIR "/%s", L->o.bridge);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		unsigned a, b, c, x;
		char tail;

		if (sscanf(e->d_name, "%u.%u.%u.%u%c", &a, &b, &c, &x, &tail) == 4)
			reclaim_one(L, dirfd(d), e->d_name);
	}
}
