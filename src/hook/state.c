/* The OCI state on stdin, the bundle's root, and the container's process:
 * where the hook acts from. */
#include "hook.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_MAX (1 << 20)

static int member_string(const char *obj, const char *key, char *out, size_t size)
{
	const char *v;
	size_t len;
	int r = json_member(obj, key, &v, &len);

	return r < 0 ? r : json_string(v, len, out, size);
}

/* Only what a file name may hold: the id names the record. */
static bool id_ok(const char *id)
{
	if (!id[0] || id[0] == '.' || strlen(id) > 128)
		return false;
	for (const char *p = id; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
			return false;
	return true;
}

/* BUNDLE/config.json's root.path, relative to the bundle unless absolute. */
int oci_rootfs_read(struct oci_state *s)
{
	char path[PATH_MAX + 16], rel[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	const char *root;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "%s/config.json", s->bundle);
	r = read_regular_alloc(AT_FDCWD, path, JSON_MAX, &text, &len);
	if (r < 0)
		return log_error_errno(r, "%s", path);
	if ((r = json_member(text, "root", &root, &len)) < 0 ||
	    (r = member_string(root, "path", rel, sizeof(rel))) < 0)
		return log_error_errno(r, "%s: root.path", path);
	if (snprintf(s->rootfs, sizeof(s->rootfs), "%s%s%s", rel[0] == '/' ? "" : s->bundle,
		     rel[0] == '/' ? "" : "/", rel) >= (int)sizeof(s->rootfs))
		return log_error_errno(-ENAMETOOLONG, "%s: root.path", path);
	return 0;
}

/* All of a pipe (the runtime's), NUL-terminated: its length or -errno. */
static ssize_t read_stream(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			buf[got] = '\0';
			return (ssize_t)got;
		}
		got += (size_t)n;
	}
	return -EFBIG;
}

int oci_state_read(int fd, struct oci_state *s)
{
	char text[65536];
	const char *v;
	size_t len;
	ssize_t n = read_stream(fd, text, sizeof(text));
	int r;

	if (n < 0)
		return log_error_errno((int)n, "the OCI state on stdin");
	if ((r = member_string(text, "id", s->id, sizeof(s->id))) < 0 || !id_ok(s->id))
		return log_error_errno(r < 0 ? r : -EINVAL, "the OCI state on stdin: id");
	if ((r = json_member(text, "pid", &v, &len)) == 0)
		s->pid = strtol(v, NULL, 10);
	r = member_string(text, "bundle", s->bundle, sizeof(s->bundle));
	if (r < 0)
		return log_error_errno(r, "the OCI state on stdin: bundle");
	return 0;
}

/* In the container's PID namespace, /proc (the host's) numbers us
 * differently than getpid() does: the runtime runs us inside (runc). */
static bool inside_container(void)
{
	char self[32];
	ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);

	if (n <= 0)
		return false;
	self[n] = '\0';
	return atol(self) != (long)getpid();
}

/* The v1 memory controller's path, else the v2 one's ("0::"). */
static int read_cgroup(const char *proc_pid, char *cg, size_t size)
{
	char path[64], buf[16384], *line, *save = NULL;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%s/cgroup", proc_pid);
	n = read_regular_buf(AT_FDCWD, path, buf, sizeof(buf));
	if (n < 0)
		return log_error_errno((int)n, "%s", path);
	cg[0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *ctrl = strchr(line, ':'), *p = ctrl ? strchr(ctrl + 1, ':') : NULL;
		bool memory = ctrl && !strncmp(ctrl, ":memory:", 8);

		if (p && (memory || (!cg[0] && !strncmp(line, "0::", 3))))
			snprintf(cg, size, "%s", p + 1);
		if (memory)
			break;
	}
	return cg[0] ? 0 : log_error_errno(-ENOENT, "%s: no memory or v2 cgroup", path);
}

int container_enter(const struct oci_state *s, char *cg, size_t size, bool *inside)
{
	char pid[32], ns[64];
	_cleanup_close_ int fd = -EBADF;

	*inside = inside_container();
	if (*inside)
		return read_cgroup("self", cg, size);
	if (s->pid <= 0)
		return log_error_errno(-EINVAL, "the OCI state on stdin: no pid");
	snprintf(pid, sizeof(pid), "%ld", s->pid);
	if (read_cgroup(pid, cg, size) < 0)
		return -ESRCH;
	snprintf(ns, sizeof(ns), "/proc/%ld/ns/mnt", s->pid);
	fd = open(ns, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0)
		return log_error_errno(-errno, "enter %s", ns);
	return 0;
}
