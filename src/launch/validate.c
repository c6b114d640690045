/* Step "validate": everything that can be checked without touching the
 * system, then the per-name lock. A failure here leaves nothing behind. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
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

static int check_images(struct launch *L)
{
	_cleanup_free_ char *list = strdup(L->o.image);
	char *save = NULL;
	struct stat st;

	if (!list)
		return -ENOMEM;
	for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (stat(d, &st) < 0)
			return step_error(L, -errno, "--image %s", d);
		if (!S_ISDIR(st.st_mode))
			return step_error(L, -ENOTDIR, "--image %s", d);
	}
	return 0;
}

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
	if (strcmp(L->o.net, "host") && strcmp(L->o.net, "none"))
		return step_error(L, -EINVAL, "--net '%s': use host or none", L->o.net);
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
	char pid[32];
	int r, n;

	if (asprintf(&dir, "%s/launch", L->o.run_dir) < 0 ||
	    asprintf(&L->lock_path, "%s/%s.lock", dir, L->o.name) < 0)
		return -ENOMEM;
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return step_error(L, r, "%s", dir);
	fd = open(L->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return step_error(L, -errno, "%s", L->lock_path);
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

	if ((r = check_simple(L)) < 0 || (r = check_images(L)) < 0 ||
	    (r = check_cpus(L)) < 0 || (r = check_cpuset(L)) < 0)
		return r;
	return take_lock(L);
}

/* Unlink while still holding the lock, so a waiting launcher never takes a
 * lock on a file that is about to disappear. */
void undo_validate(struct launch *L)
{
	if (L->lock_fd < 0)
		return;
	if (L->lock_path)
		unlink(L->lock_path);
	close(L->lock_fd);
	L->lock_fd = -EBADF;
}
