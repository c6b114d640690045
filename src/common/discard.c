#include "cvmfs/discard.h"
#include "cvmfs/cleanup.h"
#include "cvmfs/pathlist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* A directory stream of our own on dfd (the caller keeps dfd). */
static DIR *dir_of(int dfd)
{
	int fd = dup(dfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);

	if (!d && fd >= 0)
		close(fd);
	return d;
}

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

int rm_tree_at(int dfd, const char *name)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return -errno;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = dir_of(fd)))
		return -errno;
	while ((de = readdir(d)))
		if (!is_dot(de->d_name) && (r = rm_tree_at(dirfd(d), de->d_name)) < 0)
			return r;
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* A directory above a kept path: kept, unmarked, and emptied in turn. */
static int discard_above(int dfd, const char *name, const char *sub, const char *keep,
			 char *failed, size_t size)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	fremovexattr(fd, UPPER_OPAQUE_XATTR); /* absent is fine */
	return upper_discard(fd, sub, keep, failed, size);
}

int upper_discard(int dfd, const char *rel, const char *keep, char *failed, size_t size)
{
	_cleanup_closedir_ DIR *d = dir_of(dfd);
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	while (r == 0 && (de = readdir(d))) {
		char sub[PATH_MAX];
		enum path_list_match m;
		struct stat st;

		if (is_dot(de->d_name))
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		m = path_list_match(keep, sub);
		if (m == PATH_LIST_EXACT)
			continue;
		if (m == PATH_LIST_ABOVE && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			r = discard_above(dfd, de->d_name, sub, keep, failed, size);
		else if ((r = rm_tree_at(dfd, de->d_name)) < 0)
			snprintf(failed, size, "%s", sub);
	}
	if (r < 0 && !*failed)
		snprintf(failed, size, "%s", *rel ? rel : ".");
	return r;
}
