/* Which views tree is the container's, and binding it into its root: the
 * files cvm-launch binds (src/launch/mounts.c), from the same trees. */
#include "hook.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static const struct {
	const char *path;
	bool optional; /* a kernel without PSI, an older views daemon */
} view_files[] = {
	{ "proc/meminfo" },	       { "proc/cpuinfo" },	     { "proc/stat" },
	{ "proc/uptime" },	       { "proc/loadavg" },	     { "proc/swaps" },
	{ "proc/diskstats" },	       { "proc/vmstat", true },	     { "proc/pressure/cpu", true },
	{ "proc/pressure/memory", true }, { "proc/pressure/io", true }, { "sys/devices/system/cpu" },
};

/* NAME of cgroup /PARENT/NAME, else NULL. */
static const char *name_under(const char *cg, const char *parent)
{
	size_t n = strlen(parent);

	if (cg[0] != '/' || strncmp(cg + 1, parent, n) || cg[1 + n] != '/' || !cg[2 + n] ||
	    strchr(cg + 2 + n, '/'))
		return NULL;
	return cg + 2 + n;
}

/* The anonymous tree of a limited reader: VIEWS/proc/meminfo links to
 * ../ct/@N/proc/meminfo for it (to ../.generic/meminfo for the others). */
static int anonymous_tree(const char *views, char *tree, size_t size)
{
	char link[PATH_MAX], path[PATH_MAX];
	const char *suffix = "/proc/meminfo";
	ssize_t n;

	snprintf(path, sizeof(path), "%s/proc/meminfo", views);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return log_error_errno(-errno, "readlink %s (is cvmfsd views serving %s?)", path,
				       views);
	link[n] = '\0';
	if (strncmp(link, "../ct/@", 7) || (size_t)n < strlen(suffix) + 7 ||
	    strcmp(link + n - strlen(suffix), suffix)) {
		log_info("the container has no memory or CPU limit: it sees the host's files");
		return 1;
	}
	link[n - strlen(suffix)] = '\0';
	snprintf(tree, size, "%s/%s", views, link + 3);
	return 0;
}

int views_tree(const struct hook_opts *o, const char *cg, bool inside, char *tree, size_t size)
{
	const char *name = name_under(cg, o->ct_parent);
	char probe[PATH_MAX];
	int r;

	if (name)
		snprintf(tree, size, "%s/ct/%s", o->views, name);
	else if (!inside)
		return log_error_errno(-EOPNOTSUPP,
				       "cgroup %s: not under /%s, and the runtime runs the hook "
				       "outside the container (run it with cgroup parent /%s)",
				       cg, o->ct_parent, o->ct_parent);
	else if ((r = anonymous_tree(o->views, tree, size)) != 0)
		return r;
	snprintf(probe, sizeof(probe), "%s/proc/meminfo", tree);
	if (access(probe, R_OK) < 0)
		return log_error_errno(-errno, "%s (is cvmfsd views serving %s?)", probe, o->views);
	return 0;
}

static int bind_ro(const char *src, const char *dst)
{
	unsigned long ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return log_error_errno(-errno, "bind %s on %s", src, dst);
	if (mount(NULL, dst, NULL, ro, NULL) < 0) {
		int r = -errno;

		umount2(dst, MNT_DETACH);
		return log_error_errno(r, "make %s read-only", dst);
	}
	return 0;
}

int bind_tree(const char *tree, const char *rootfs)
{
	char src[PATH_MAX], dst[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(view_files); i++) {
		snprintf(src, sizeof(src), "%s/%s", tree, view_files[i].path);
		snprintf(dst, sizeof(dst), "%s/%s", rootfs, view_files[i].path);
		if (view_files[i].optional && (access(src, F_OK) < 0 || access(dst, F_OK) < 0))
			continue;
		if ((r = bind_ro(src, dst)) < 0)
			return r;
	}
	return 0;
}
