/* Step "validate": everything that can be checked without touching the
 * system, then the per-name lock. A failure here leaves nothing behind. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same rule as cvmfsd disk: the name becomes a cgroup and path component. */
static bool name_valid(const char *n)
{
	size_t len = strlen(n);

	if (!len || len > 64 || n[0] == '.' || n[0] == '-')
		return false;
	for (const char *p = n; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		      ('0' <= *p && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* Every layer must be an existing directory; an empty element ("", "a::b",
 * a trailing ':') is a mistake, never "no layer". */
static int check_images(struct launch *L)
{
	const char *p = L->o.image;
	struct stat st;

	for (;;) {
		size_t len = strcspn(p, ":");
		_cleanup_free_ char *d = strndup(p, len);

		if (!d)
			return -ENOMEM;
		if (!len)
			return step_error(L, -EINVAL, "--image '%s': an empty layer path",
					  L->o.image);
		if (stat(d, &st) < 0)
			return step_error(L, -errno, "--image %s", d);
		if (!S_ISDIR(st.st_mode))
			return step_error(L, -ENOTDIR, "--image %s", d);
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

/* Append the components of TAIL to the absolute path in buf, "." and ".."
 * taken lexically (they follow no symlink: TAIL does not exist yet). */
static int append_lexically(char *buf, size_t size, char *tail)
{
	char *save = NULL;

	for (char *c = strtok_r(tail, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		size_t n = strlen(buf);

		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			char *slash = strrchr(buf, '/');

			slash[slash == buf] = '\0'; /* "/a" -> "/", "/" stays */
			continue;
		}
		if (snprintf(buf + n, size - n, "%s%s", buf[n - 1] == '/' ? "" : "/", c) >=
		    (int)(size - n))
			return -ENAMETOOLONG;
	}
	return 0;
}

/* PATH absolute and free of symlinks, "." and "..", also when its end does
 * not exist yet (DATA is made later): the realpath of its nearest existing
 * ancestor, then the rest. */
static int resolve_path(const char *path, char *out, size_t size)
{
	_cleanup_free_ char *abs = NULL, *head = NULL, *real = NULL;
	char cwd[PATH_MAX];

	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (asprintf(&abs, "%s/%s", path[0] == '/' ? "" : cwd, path) < 0 ||
	    !(head = strdup(abs)))
		return -ENOMEM;
	while (!(real = realpath(head, NULL))) {
		char *slash = strrchr(head, '/');

		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		slash[slash == head] = '\0'; /* "/" always resolves */
	}
	if (snprintf(out, size, "%s", real) >= (int)size)
		return -ENAMETOOLONG;
	return append_lexically(out, size, abs + strlen(head));
}

/* a is b or below it. */
static bool path_within(const char *a, const char *b)
{
	size_t n = strlen(b);

	if (!strcmp(b, "/"))
		return true;
	return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

/* DATA holds the writable layer: inside (or over) a read-only image layer
 * the CVM would write into the image; inside RUN_DIR or MNT_DIR it would
 * live on a tmpfs or under the disk's own mountpoints. */
static int check_data(struct launch *L)
{
	const char *const dirs[][2] = { { "--run-dir", L->o.run_dir },
					{ "--mnt-dir", L->o.mnt_dir } };
	_cleanup_free_ char *list = strdup(L->o.image);
	char data[PATH_MAX], other[PATH_MAX], *save = NULL;
	int r = resolve_path(L->o.data, data, sizeof(data));

	if (r < 0)
		return step_error(L, r, "--data %s", L->o.data);
	if (!list)
		return -ENOMEM;
	for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if ((r = resolve_path(d, other, sizeof(other))) < 0)
			return step_error(L, r, "--image %s", d);
		if (path_within(data, other) || path_within(other, data))
			return step_error(L, -EINVAL,
					  "--data %s %s --image layer %s: the CVM would write into its read-only image",
					  L->o.data, path_within(data, other) ? "is inside" : "contains", d);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(dirs); i++) {
		if ((r = resolve_path(dirs[i][1], other, sizeof(other))) < 0)
			return step_error(L, r, "%s %s", dirs[i][0], dirs[i][1]);
		if (path_within(data, other))
			return step_error(L, -EINVAL, "--data %s is inside %s %s", L->o.data,
					  dirs[i][0], dirs[i][1]);
	}
	return 0;
}

#define CPUS_MIN 0.01

static int check_cpus(struct launch *L)
{
	char *end;

	if (!L->o.cpus)
		return 0;
	errno = 0;
	L->cpus = strtod(L->o.cpus, &end);
	if (errno || end == L->o.cpus || *end || !isfinite(L->cpus) || L->cpus <= 0 ||
	    L->cpus > CG_MAX_CPUS)
		return step_error(L, -EINVAL, "--cpus '%s'", L->o.cpus);
	/* The kernel's smallest quota is 1 ms, of the 100 ms period we use:
	 * below that the quota would silently be more than asked for. */
	if (L->cpus < CPUS_MIN)
		return step_error(L, -EINVAL, "--cpus '%s': below the smallest quota, %g CPU",
				  L->o.cpus, CPUS_MIN);
	return 0;
}

/* --cpuset must be a subset of the host's online CPUs: the kernel would
 * refuse it later with a less helpful EINVAL. */
static int check_cpuset(struct launch *L)
{
	uint8_t want[CG_MAX_CPUS / 8] = { 0 }, online[CG_MAX_CPUS / 8] = { 0 };
	char buf[4096];
	ssize_t n;

	if (!L->o.cpuset)
		return 0;
	if (cpulist_parse(L->o.cpuset, want) < 0 || !cpuset_count(want))
		return step_error(L, -EINVAL, "--cpuset '%s'", L->o.cpuset);
	n = read_at_buf(AT_FDCWD, "/sys/devices/system/cpu/online", buf, sizeof(buf));
	if (n < 0)
		return step_error(L, (int)n, "/sys/devices/system/cpu/online");
	if (cpulist_parse(buf, online) < 0)
		return step_error(L, -EINVAL, "/sys/devices/system/cpu/online");
	for (unsigned c = 0; c < CG_MAX_CPUS; c++)
		if (cpuset_has(want, c) && !cpuset_has(online, c))
			return step_error(L, -EINVAL,
					  "--cpuset %s: CPU %u is not online on this host (online: %s)",
					  L->o.cpuset, c, strtok(buf, "\n"));
	L->cpuset_given = true;
	return 0;
}

/* The mapped range must fit in 32-bit ids and leave out (uid_t)-1. */
static int check_userns(struct launch *L)
{
	const uint64_t max = UINT32_MAX;

	if (L->o.userns_count > max || L->o.userns_uid > max - L->o.userns_count ||
	    L->o.userns_gid > max - L->o.userns_count)
		return step_error(L, -EINVAL,
				  "--userns-uid %llu / --userns-gid %llu + --userns-count %llu: beyond 32-bit ids",
				  (unsigned long long)L->o.userns_uid,
				  (unsigned long long)L->o.userns_gid,
				  (unsigned long long)L->o.userns_count);
	return 0;
}

/* Every capability asked for must be one the launcher can pass on. A new
 * user namespace grants the full set within it, bounding set or not. */
static int check_caps(struct launch *L)
{
	char missing[64];
	int r = caps_check(L->o.caps, missing, sizeof(missing));

	if (r == -EPERM && !L->o.userns)
		return step_error(L, r, "--caps: %s is not in this process's bounding set",
				  missing);
	if (r < 0 && r != -EPERM)
		return step_error(L, -EINVAL, "--caps '%s'", L->o.caps);
	return 0;
}

static int check_simple(struct launch *L)
{
	int r;

	if (!name_valid(L->o.name))
		return step_error(L, -EINVAL,
				  "--name '%s': use letters, digits, '.', '_', '-' (not first)",
				  L->o.name);
	if (L->o.userns && (r = check_userns(L)) < 0)
		return r;
	if ((r = net_validate(L)) < 0)
		return r;
	if (L->o.console && strcmp(L->o.console, "pty") && strcmp(L->o.console, "inherit"))
		return step_error(L, -EINVAL, "--console '%s': use pty or inherit", L->o.console);
	if (L->o.hostname[0] == '\0' || strlen(L->o.hostname) > 64)
		return step_error(L, -EINVAL, "--hostname '%s'", L->o.hostname);
	if (access(L->o.cvmfsd, X_OK) < 0)
		return step_error(L, -errno, "cvmfsd binary %s", L->o.cvmfsd);
	return check_caps(L);
}

/* RUN_DIR/launch/NAME.lock, flock'ed for the launcher's lifetime and holding
 * its pid: one launcher per name. The lock, not the file, is the truth, so a
 * file left by a crash does not block the next start. */
static int take_lock(struct launch *L)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	char pid[32];
	int r, n;

	if (asprintf(&dir, "%s/" CVMFS_LAUNCH_DIR, L->o.run_dir) < 0 ||
	    asprintf(&L->lock_path, "%s/%s.lock", dir, L->o.name) < 0)
		return -ENOMEM;
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return step_error(L, r, "%s", dir);
	fd = open(L->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		  0644);
	if (fd < 0)
		r = -errno;
	else
		r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (r < 0) {
		step_error(L, r, "%s%s", L->lock_path, r == -EINVAL ? ": not a regular file" : "");
		free(L->lock_path);
		L->lock_path = NULL; /* not ours: never unlink it */
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		free(L->lock_path);
		L->lock_path = NULL; /* not ours: never unlink it */
		return step_error(L, r, "%s is already running", L->o.name);
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || write_all(fd, pid, (size_t)n) < 0)
		log_warn("%s: cannot write pid", L->lock_path);
	L->lock_fd = TAKE_FD(fd);
	return 0;
}

int step_validate(struct launch *L)
{
	int r;

	if ((r = check_simple(L)) < 0 || (r = image_resolve(L)) < 0 || (r = check_images(L)) < 0 ||
	    (r = check_data(L)) < 0 || (r = check_cpus(L)) < 0 || (r = check_cpuset(L)) < 0)
		return r;
	/* The device allow-list and the seccomp mode (devices.c, seccomp.c). */
	if ((r = devices_parse(L)) < 0 || (r = seccomp_parse(L)) < 0)
		return r;
	/* --volume, --volume-dir, --lanes (volume.c) */
	if ((r = volume_validate(L)) < 0)
		return r;
	return take_lock(L);
}

/* Unlink while still holding the lock, so a waiting launcher never takes a
 * lock on a file that is about to disappear. */
void undo_validate(struct launch *L)
{
	image_release(L);
	if (L->lock_fd < 0)
		return;
	if (L->lock_path)
		unlink(L->lock_path);
	close(L->lock_fd);
	L->lock_fd = -EBADF;
}
