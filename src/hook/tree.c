/* Which views tree is the container's, and binding it into its root: the
 * files cvm-launch binds (include/cvmfs/view_files.h), from the same trees. */
#include "hook.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/view_files.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

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

/* Only the per-reader part of a views mount: VIEWS/.generic and VIEWS/sys,
 * which cvm-launch gives a CVM in /dev/.cvmfs/views (its proc/ links lead
 * into ct/, which a CVM must not list: the other CVMs' trees). */
static bool generic_only(const char *views)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/proc", views);
	if (access(path, F_OK) == 0)
		return false;
	snprintf(path, sizeof(path), "%s/.generic/meminfo", views);
	return access(path, R_OK) == 0;
}

int views_tree(const struct hook_opts *o, const char *cg, bool inside, char *tree, size_t size,
	       bool *generic)
{
	const char *name = name_under(cg, o->ct_parent);
	char probe[PATH_MAX];
	int r;

	*generic = generic_only(o->views);
	if (*generic) {
		snprintf(tree, size, "%s", o->views);
		return 0;
	}
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

/* Where the tree has rel: at rel in a per-container tree; for the generic
 * files, proc/FILE is .generic/FILE (there are no generic pressure files)
 * and sys/devices/system/cpu is .generic/cpu (the shared tree's is a link
 * into ct/ for a limited reader). */
static void tree_path(const char *tree, bool generic, const char *rel, char *out, size_t size)
{
	if (generic && !strncmp(rel, "proc/", 5))
		snprintf(out, size, "%s/.generic/%s", tree, rel + 5);
	else if (generic && !strcmp(rel, "sys/devices/system/cpu"))
		snprintf(out, size, "%s/.generic/cpu", tree);
	else
		snprintf(out, size, "%s/%s", tree, rel);
}

static int bind_one(const char *tree, bool generic, const char *rootfs, const char *rel,
		    bool optional)
{
	char src[PATH_MAX], dst[PATH_MAX];

	tree_path(tree, generic, rel, src, sizeof(src));
	snprintf(dst, sizeof(dst), "%s/%s", rootfs, rel);
	if (optional && (access(src, F_OK) < 0 || access(dst, F_OK) < 0))
		return 0;
	return bind_ro(src, dst);
}

/* A cvmfs_view_files entry: its one '*' replaced by each entry of the
 * tree's directory there. */
static int bind_each(const char *tree, bool generic, const char *rootfs,
		     const struct cvmfs_view_file *f)
{
	const char *star = strchr(f->path, '*');
	int len = star ? (int)(star - f->path) : 0;
	char dir[PATH_MAX], rel[PATH_MAX];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	int r = 0;

	if (!star)
		return bind_one(tree, generic, rootfs, f->path, f->optional);
	snprintf(rel, sizeof(rel), "%.*s", len, f->path);
	tree_path(tree, generic, rel, dir, sizeof(dir));
	if (!(d = opendir(dir)))
		return f->optional ? 0 : log_error_errno(-errno, "open %s", dir);
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%.*s%s%s", len, f->path, e->d_name, star + 1);
		r = bind_one(tree, generic, rootfs, rel, f->optional);
	}
	return r;
}

int bind_tree(const char *tree, bool generic, const char *rootfs)
{
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(cvmfs_view_files); i++)
		if ((r = bind_each(tree, generic, rootfs, &cvmfs_view_files[i])) < 0)
			return r;
	return 0;
}
