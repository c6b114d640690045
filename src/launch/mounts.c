/* The inner child's file system: everything is mounted under the disk
 * mount MNT while the host paths (the views, /dev) are still reachable, then
 * pivot_root makes MNT the root. Runs in the inner child (see child.c). */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const view_files[] = { "meminfo", "cpuinfo", "stat", "uptime",
					  "loadavg", "swaps", "diskstats" };
static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
static const char *const dev_links[][2] = {
	{ "ptmx", "pts/ptmx" },	      { "fd", "/proc/self/fd" },
	{ "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
	{ "stderr", "/proc/self/fd/2" },
};

struct fs_mount {
	const char *target; /* under MNT */
	const char *type;
	unsigned long flags;
	const char *data;
};

/* In order: /dev before its submounts. */
static const struct fs_mount fs_mounts[] = {
	{ "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k" },
	{ "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620" },
	{ "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755" },
	{ "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
};

static void under(struct launch *L, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s%s", L->mnt, rel);
}

/* A missing mountpoint in the image is created (in the upper layer). */
static int ensure_dir(struct launch *L, const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "mkdir %s", path);
	return 0;
}

static int ensure_file(struct launch *L, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd < 0)
		return step_error(L, -errno, "create %s", path);
	close(fd);
	return 0;
}

static int bind(struct launch *L, const char *src, const char *dst, bool ro)
{
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return step_error(L, -errno, "bind %s on %s", src, dst);
	if (ro && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
				    MS_NODEV | MS_NOEXEC, NULL) < 0)
		return step_error(L, -errno, "remount %s read-only", dst);
	return 0;
}

/* A sysfs mount in a user namespace needs a network namespace owned by it:
 * with --net host the CVM gets the host's /sys, bound read-only with all
 * its submounts (nothing in it is writable to an unmapped owner anyway). */
static bool sys_from_host(struct launch *L, const struct fs_mount *m)
{
	return L->o.userns && !strcmp(m->type, "sysfs") && !strcmp(L->o.net, "host");
}

static int bind_host_sys(struct launch *L, const char *path)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					       MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC };

	if (mount("/sys", path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return step_error(L, -errno, "bind /sys on %s", path);
	if (mount_setattr(AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return step_error(L, -errno, "make %s read-only", path);
	return 0;
}

static int mount_fs(struct launch *L)
{
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(fs_mounts); i++) {
		const struct fs_mount *m = &fs_mounts[i];

		under(L, path, sizeof(path), m->target);
		if ((r = ensure_dir(L, path)) < 0)
			return r;
		if (sys_from_host(L, m)) {
			if ((r = bind_host_sys(L, path)) < 0)
				return r;
			continue;
		}
		if (mount(m->type, path, m->type, m->flags, m->data) < 0)
			return step_error(L, -errno, "mount %s on %s", m->type, path);
	}
	return 0;
}

/* Top-level mountpoints missing in the image are made by the parent, as
 * host root: the CVM's root in a user namespace has no say over the
 * image's root-owned "/". The ones under /dev are on the CVM's tmpfs. */
int mounts_prepare(struct launch *L)
{
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(fs_mounts); i++) {
		if (strchr(fs_mounts[i].target + 1, '/'))
			continue;
		under(L, path, sizeof(path), fs_mounts[i].target);
		if ((r = ensure_dir(L, path)) < 0)
			return r;
	}
	return 0;
}

/* Host device nodes bound onto empty files: works for any major/minor the
 * host has, and keeps working once CVMs run in a user namespace (no mknod). */
static int fill_dev(struct launch *L)
{
	char path[PATH_MAX], src[64];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(src, sizeof(src), "/dev/%s", dev_nodes[i]);
		snprintf(path, sizeof(path), "%s/dev/%s", L->mnt, dev_nodes[i]);
		if ((r = ensure_file(L, path)) < 0 || (r = bind(L, src, path, false)) < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
		snprintf(path, sizeof(path), "%s/dev/%s", L->mnt, dev_links[i][0]);
		if (symlink(dev_links[i][1], path) < 0)
			return step_error(L, -errno, "symlink %s", path);
	}
	return 0;
}

/* The per-container views tree of the cgroup cvmfs/NAME. */
static int bind_views(struct launch *L)
{
	char src[PATH_MAX], dst[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(view_files); i++) {
		snprintf(src, sizeof(src), "%s/ct/%s/proc/%s", L->o.views, L->o.name,
			 view_files[i]);
		snprintf(dst, sizeof(dst), "%s/proc/%s", L->mnt, view_files[i]);
		if ((r = bind(L, src, dst, true)) < 0)
			return r;
	}
	snprintf(src, sizeof(src), "%s/ct/%s/sys/devices/system/cpu", L->o.views, L->o.name);
	snprintf(dst, sizeof(dst), "%s/sys/devices/system/cpu", L->mnt);
	return bind(L, src, dst, true);
}

int child_mounts(struct launch *L)
{
	int r;

	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return step_error(L, -errno, "make / private");
	/* Our own mount of MNT: pivot_root needs a mount point whose parent
	 * is not shared, and the host's MNT stays untouched. */
	if (mount(L->mnt, L->mnt, NULL, MS_BIND | MS_REC, NULL) < 0)
		return step_error(L, -errno, "bind %s on itself", L->mnt);
	if ((r = mount_fs(L)) < 0 || (r = fill_dev(L)) < 0 || (r = bind_views(L)) < 0)
		return r;
	return 0;
}

/* pivot_root(".", "."): the old root ends up on top of the new one and is
 * detached at once, so no put_old directory is written into the disk. */
int child_pivot(struct launch *L)
{
	if (chdir(L->mnt) < 0)
		return step_error(L, -errno, "chdir %s", L->mnt);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return step_error(L, -errno, "pivot_root %s", L->mnt);
	if (umount2(".", MNT_DETACH) < 0)
		return step_error(L, -errno, "detach the old root");
	if (chdir("/") < 0)
		return step_error(L, -errno, "chdir /");
	return 0;
}
