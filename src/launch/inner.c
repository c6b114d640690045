/* The CVM's own containers (dockerd's, inside): their views. runc mounts a
 * fresh procfs in each, so procps free/top/vmstat there would read the
 * kernel's figures. The CVM gets, in /dev/.cvmfs (the launcher's tmpfs, not
 * the user's disk):
 *   views/.generic, views/sys  the views' per-reader files, which render
 *                              for the cgroup of whoever opens them (not
 *                              ct/: it lists the other CVMs' trees);
 *   bin/cvmfs-runc, cvmfs-hook the runtime wrapper and the OCI hook, static;
 * and, where the image has /etc/docker, a daemon.json that makes the wrapper
 * dockerd's default runtime: the image's own settings with "runtimes.cvmfs"
 * and "default-runtime" added, bound read-only over it (the file on the
 * disk is never written but for an empty "{}" where there was none). Runs
 * in the inner child before pivot_root, like mounts.c. doc/cvmfs-hook.md,
 * "Inside a CVM", says why it is done this way. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CVMFS_HOOK_DIR
#define CVMFS_HOOK_DIR "."
#endif
#define INNER_DIR "/dev/.cvmfs"
#define RUNTIME_PATH INNER_DIR "/bin/cvmfs-runc"
#define DAEMON_JSON_MAX (1 << 20)

static const char *const helpers[] = { "cvmfs-runc", "cvmfs-hook" };

static void json_putp(json_t **j)
{
	json_decref(*j);
}

/* Installed: beside cvm-launch; a build's: its src/hook. */
static int helper_dir(char *dir, size_t size)
{
	char path[PATH_MAX + 16], *slash;
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);

	if (n > 0 && (dir[n] = '\0', slash = strrchr(dir, '/'))) {
		*slash = '\0';
		snprintf(path, sizeof(path), "%s/%s", dir, helpers[0]);
		if (access(path, X_OK) == 0)
			return 0;
	}
	snprintf(dir, size, "%s", CVMFS_HOOK_DIR);
	snprintf(path, sizeof(path), "%s/%s", dir, helpers[0]);
	return access(path, X_OK) == 0 ? 0 : -ENOENT;
}

/* What the CVM's containers get, opened by the parent (host root, before
 * the clone) as detached read-only mounts: a user-namespaced child may
 * not even pass through the directories that hold them (a build in a
 * private directory, the views below a 0700 one). */
static const struct inner_src {
	const char *rel; /* under /dev/.cvmfs */
	bool dir, exec;
} inner_srcs[] = {
	{ "bin/cvmfs-runc", false, true },
	{ "bin/cvmfs-hook", false, true },
	{ "views/.generic", true, false },
	{ "views/sys", true, false },
};
static int inner_fds[ARRAY_SIZE(inner_srcs)] = { -EBADF, -EBADF, -EBADF, -EBADF };

static int clone_ro(const char *path, bool exec)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			    (exec ? 0 : MOUNT_ATTR_NOEXEC),
	};
	int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int inner_prepare(struct launch *L)
{
	char dir[PATH_MAX], src[PATH_MAX + 32];
	const char *from[ARRAY_SIZE(inner_srcs)];
	int r = 0;

	snprintf(src, sizeof(src), "%s/.generic/meminfo", L->o.views);
	if (helper_dir(dir, sizeof(dir)) < 0 || access(src, R_OK) < 0) {
		log_info("no %s/cvmfs-runc or views without .generic: the CVM's own containers "
			 "see the kernel's /proc", dir);
		return 0;
	}
	from[0] = from[1] = dir;
	from[2] = from[3] = L->o.views;
	for (size_t i = 0; i < ARRAY_SIZE(inner_srcs) && r >= 0; i++) {
		snprintf(src, sizeof(src), "%s/%s", from[i], strchr(inner_srcs[i].rel, '/') + 1);
		r = inner_fds[i] = clone_ro(src, inner_srcs[i].exec);
		if (r < 0)
			r = step_error(L, r, "clone %s", src);
	}
	return r;
}

/* An empty file or directory at MNT/dev/.cvmfs/rel, and the parent's
 * clone moved onto it. */
static int move_at(struct launch *L, const struct inner_src *s, int fd)
{
	char dst[PATH_MAX];
	int tfd = -EBADF;

	snprintf(dst, sizeof(dst), "%s" INNER_DIR "/%s", L->mnt, s->rel);
	if (s->dir ? mkdir(dst, 0755) < 0 && errno != EEXIST
		   : (tfd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0755)) < 0)
		return step_error(L, -errno, "create %s", dst);
	if (!s->dir)
		close(tfd);
	if (move_mount(fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return step_error(L, -errno, "move the clone of %s onto %s", s->rel, dst);
	return 0;
}

static int mkdirs(struct launch *L)
{
	static const char *const dirs[] = { INNER_DIR, INNER_DIR "/bin", INNER_DIR "/views" };
	char path[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s%s", L->mnt, dirs[i]);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return step_error(L, -errno, "mkdir %s", path);
	}
	return 0;
}

/* The image's daemon.json (fd, may be empty) with our runtime added, and
 * made the default unless the image names its own. */
static json_t *daemon_json(int fd, const struct stat *st, const char *shown)
{
	json_t *cfg, *rts, *rt;
	json_error_t err;

	if (st->st_size > DAEMON_JSON_MAX) {
		log_warn("%s: over 1 MiB: left as it is", shown);
		return NULL;
	}
	cfg = st->st_size ? json_loadfd(fd, 0, &err) : json_object();
	if (!json_is_object(cfg)) {
		log_warn("%s: %s: left as it is, dockerd's containers see the kernel's /proc",
			 shown, cfg ? "not a JSON object" : err.text);
		json_decref(cfg);
		return NULL;
	}
	if (!(rts = json_object_get(cfg, "runtimes")))
		json_object_set_new(cfg, "runtimes", rts = json_object());
	if (!json_is_object(rts)) {
		log_warn("%s: \"runtimes\" is not an object: left as it is", shown);
		json_decref(cfg);
		return NULL;
	}
	if (!json_object_get(rts, "cvmfs") &&
	    (rt = json_pack("{s:s}", "path", RUNTIME_PATH)))
		json_object_set_new(rts, "cvmfs", rt);
	if (!json_object_get(cfg, "default-runtime"))
		json_object_set_new(cfg, "default-runtime", json_string("cvmfs"));
	return cfg;
}

/* MNT/etc/docker/daemon.json, found without following a link out of MNT;
 * made ("{}") where the directory has none. -ENOENT: no /etc/docker. */
static int daemon_json_open(struct launch *L)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	_cleanup_close_ int root = open(L->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int dir = -EBADF;
	int fd;

	if (root < 0)
		return -errno;
	dir = (int)syscall(SYS_openat2, root, "etc/docker", &how, sizeof(how));
	if (dir < 0)
		return -errno;
	fd = openat(dir, "daemon.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd < 0 ? -errno : fd;
	fd = openat(dir, "daemon.json", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write_all(fd, "{}\n", 3) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Write cfg to MNT/dev/.cvmfs/docker-daemon.json, make that a read-only
 * mount of its own, and bind it over the image's through its fd (the path
 * is never resolved again; the new mount takes the source's flags). */
static int daemon_json_bind(struct launch *L, json_t *cfg, int target)
{
	char src[PATH_MAX], dst[64];

	snprintf(src, sizeof(src), "%s" INNER_DIR "/docker-daemon.json", L->mnt);
	if (json_dump_file(cfg, src, JSON_INDENT(2)) < 0)
		return step_error(L, -EIO, "write %s", src);
	if (mount(src, src, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, src, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
				  MS_NOEXEC, NULL) < 0)
		return step_error(L, -errno, "make %s read-only", src);
	snprintf(dst, sizeof(dst), "/proc/self/fd/%d", target);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return step_error(L, -errno, "bind %s on /etc/docker/daemon.json", src);
	return 0;
}

static int docker_runtime(struct launch *L)
{
	_cleanup_close_ int fd = daemon_json_open(L);
	_cleanup_(json_putp) json_t *cfg = NULL;
	struct stat st;

	if (fd == -ENOENT || fd == -ENOTDIR)
		return 0; /* no Docker in the image */
	/* A link, a read-only disk: the CVM still starts, its dockerd as is. */
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_warn("/etc/docker/daemon.json: %s: left as it is, dockerd's containers see "
			 "the kernel's /proc", fd < 0 ? strerror(-fd) : "not a regular file");
		return 0;
	}
	if (!(cfg = daemon_json(fd, &st, "/etc/docker/daemon.json")))
		return 0;
	return daemon_json_bind(L, cfg, fd);
}

int child_inner(struct launch *L)
{
	int r;

	if (inner_fds[0] < 0) /* inner_prepare said why */
		return 0;
	if ((r = mkdirs(L)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(inner_srcs); i++)
		if ((r = move_at(L, &inner_srcs[i], inner_fds[i])) < 0)
			return r;
	return docker_runtime(L);
}
