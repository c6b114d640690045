/* The list of view files the launcher binds (include/cvmfs/view_files.h)
 * against what cvmfsd views serves in a per-container tree: its node
 * table (src/views/fs_tree.c) walked from the root, without ct/ and
 * .generic/ (fs_ops_ct.c hides both inside a per-container tree). Every file
 * the views serve is in the list (a per-object directory's children as
 * '*', the cpu directory whole), and every entry is served: a file added to
 * the views cannot be forgotten by the launcher. */
#include "check.h"

#include "cvmfs/view_files.h"
#include "fs.h"

#include <stdio.h>

#define N_VIEW_FILES (sizeof(cvmfs_view_files) / sizeof(cvmfs_view_files[0]))

/* The path of node t under the root ('*' for a per-object directory), or
 * false if it is not in a per-container tree. */
static bool node_path(int t, char *buf, size_t size)
{
	char rest[256];

	if (t == T_ROOT) {
		buf[0] = '\0';
		return true;
	}
	if (t == T_CTMOUNT || t == T_GENERIC || !node_path(views_tree[t].parent, rest, sizeof(rest)))
		return false;
	snprintf(buf, size, "%s%s%s", rest, rest[0] ? "/" : "",
		 views_tree[t].kind == TN_OBJDIR ? "*" : views_tree[t].name);
	return true;
}

/* Bound as one entry: a file, or the cpu directory (its children are the
 * views' files and the host's passthrough entries). */
static bool is_bound_whole(int t)
{
	return views_tree[t].kind == TN_FILE || views_tree[t].kind == TN_CPUDIR;
}

static bool inside_cpudir(int t)
{
	for (t = views_tree[t].parent; t > T_ROOT; t = views_tree[t].parent)
		if (views_tree[t].kind == TN_CPUDIR)
			return true;
	return false;
}

static int listed(const char *path)
{
	for (size_t i = 0; i < N_VIEW_FILES; i++)
		if (!strcmp(cvmfs_view_files[i].path, path))
			return (int)i;
	return -1;
}

int main(void)
{
	bool served[N_VIEW_FILES] = { false };
	char path[512];
	unsigned n = 0;

	for (int t = 1; t < T_COUNT; t++) {
		int i;

		if (!is_bound_whole(t) || inside_cpudir(t) || !node_path(t, path, sizeof(path)))
			continue;
		n++;
		i = listed(path);
		if (!CHECK(i >= 0))
			fprintf(stderr, "  served by the views, missing from view_files.h: %s\n", path);
		else
			served[i] = true;
	}
	for (size_t i = 0; i < N_VIEW_FILES; i++)
		if (!CHECK(served[i]))
			fprintf(stderr, "  in view_files.h, not served by the views: %s\n",
				cvmfs_view_files[i].path);
	CHECK_EQ_U64(n, N_VIEW_FILES);
	/* The launcher waits for the first one (step views): it is always there. */
	CHECK_STR(cvmfs_view_files[0].path, "proc/meminfo");
	CHECK(!cvmfs_view_files[0].optional);
	return check_done();
}
