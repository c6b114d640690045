/* cvmfs-runc: an OCI runtime wrapper (doc/cvmfs-hook.md). For `create`
 * and `run` it adds cvmfs-hook (the one next to it) to the bundle's
 * config.json as a createContainer and a poststop hook, then execs the real
 * runc with the same arguments; every other command goes to runc as it is.
 * A CVM's dockerd runs its containers through it (cvm-launch makes it the
 * default runtime), so that each inner container sees the views of its
 * own cgroup rather than the kernel's /proc files.
 *
 * Static, on libc and jansson only: cvm-launch binds it into CVMs whose
 * images have their own libraries. Hence no shared code beyond the header
 * of cleanup helpers. */
#include "cvmfs/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* runc's global options that take a value (runc --help, 1.1). */
static const char *const valued[] = { "--log", "--log-format", "--root", "--criu",
				      "--rootless", NULL };

static int fail(const char *what, int err)
{
	fprintf(stderr, "cvmfs-runc: %s: %s\n", what, strerror(err));
	return 1;
}

static bool takes_value(const char *a)
{
	for (int i = 0; valued[i]; i++)
		if (!strcmp(a, valued[i]))
			return true;
	return false;
}

/* The index of the command word (after the global options), or argc. */
static int command_index(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-')
		i += takes_value(argv[i]) ? 2 : 1;
	return i < argc ? i : argc;
}

/* create/run's --bundle (-b), else the working directory ("."). */
static const char *bundle_arg(int argc, char **argv, int cmd)
{
	for (int i = cmd + 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--bundle") || !strcmp(argv[i], "-b")) && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "--bundle=", 9))
			return argv[i] + 9;
		if (!strncmp(argv[i], "-b=", 3))
			return argv[i] + 3;
	}
	return ".";
}

/* This program's directory (the hook and, in a CVM, ../views are beside
 * it). */
static int self_dir(char *dir, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	dir[n] = '\0';
	if (!(slash = strrchr(dir, '/')))
		return -EINVAL;
	*slash = '\0';
	return 0;
}

/* {"path": DIR/cvmfs-hook, "args": ["cvmfs-hook", [--views DIR/../views,]
 * STAGE]}: the views' per-reader files beside us in a CVM (/dev/.cvmfs/bin
 * and /dev/.cvmfs/views/.generic), else the hook's own default (its config
 * file, /var/lib/cvmfs/views). */
static json_t *hook_entry(const char *dir, const char *stage)
{
	char path[PATH_MAX + 16], views[PATH_MAX + 16], probe[PATH_MAX + 32];
	const char *slash = strrchr(dir, '/');
	struct stat st;
	json_t *args = json_array(), *e;

	snprintf(path, sizeof(path), "%s/cvmfs-hook", dir);
	snprintf(views, sizeof(views), "%.*s/views", slash ? (int)(slash - dir) : 0, dir);
	json_array_append_new(args, json_string("cvmfs-hook"));
	snprintf(probe, sizeof(probe), "%s/.generic", views);
	if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
		json_array_append_new(args, json_string("--views"));
		json_array_append_new(args, json_string(views));
	}
	json_array_append_new(args, json_string(stage));
	e = json_pack("{s:s, s:o}", "path", path, "args", args);
	return e;
}

/* Append the entry to hooks[stage] unless a hook of that path is there. */
static int add_hook(json_t *hooks, const char *stage, json_t *entry)
{
	json_t *list = json_object_get(hooks, stage), *h;
	const char *path = json_string_value(json_object_get(entry, "path"));
	size_t i;

	if (!list) {
		list = json_array();
		if (json_object_set_new(hooks, stage, list) < 0)
			return -ENOMEM;
	}
	if (!json_is_array(list))
		return -EINVAL;
	json_array_foreach(list, i, h)
		if (json_is_object(h) && json_string_value(json_object_get(h, "path")) &&
		    !strcmp(json_string_value(json_object_get(h, "path")), path))
			return 0;
	return json_array_append(list, entry) < 0 ? -ENOMEM : 0;
}

static int add_hooks(json_t *cfg, const char *dir)
{
	static const char *const stages[][2] = { { "createContainer", "create" },
						 { "poststop", "poststop" } };
	json_t *hooks = json_object_get(cfg, "hooks");
	int r = 0;

	if (!json_is_object(cfg))
		return -EINVAL;
	if (!hooks) {
		hooks = json_object();
		if (json_object_set_new(cfg, "hooks", hooks) < 0)
			return -ENOMEM;
	}
	if (!json_is_object(hooks))
		return -EINVAL;
	for (size_t i = 0; r == 0 && i < 2; i++) {
		json_t *e = hook_entry(dir, stages[i][1]);

		r = e ? add_hook(hooks, stages[i][0], e) : -ENOMEM;
		json_decref(e);
	}
	return r;
}

/* BUNDLE/config.json with the hooks, replaced by rename (same mode). */
static int edit_config(const char *bundle, const char *dir)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16], what[PATH_MAX + 64];
	json_error_t jerr;
	struct stat st;
	json_t *cfg;
	int r;

	snprintf(path, sizeof(path), "%s/config.json", bundle);
	snprintf(tmp, sizeof(tmp), "%s.cvmfs-tmp", path);
	if (stat(path, &st) < 0)
		return fail(path, errno);
	if (!(cfg = json_load_file(path, 0, &jerr))) {
		fprintf(stderr, "cvmfs-runc: %s: %s\n", path, jerr.text);
		return 1;
	}
	r = add_hooks(cfg, dir);
	if (r == 0 && json_dump_file(cfg, tmp, JSON_COMPACT) < 0)
		r = -EIO;
	json_decref(cfg);
	if (r == 0 && (chmod(tmp, st.st_mode & 07777) < 0 || rename(tmp, path) < 0))
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		snprintf(what, sizeof(what), "%s: add the cvmfs-hook hooks", path);
		return fail(what, -r);
	}
	return 0;
}

/* The real runc: $CVMFS_RUNC, else the first runc on PATH. */
static int find_runc(char *out, size_t size)
{
	const char *env = getenv("CVMFS_RUNC"), *path = getenv("PATH");
	_cleanup_free_ char *copy = NULL;
	char *dir, *save = NULL;

	if (env && *env) {
		snprintf(out, size, "%s", env);
		return 0;
	}
	copy = strdup(path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	if (!copy)
		return -ENOMEM;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/runc", dir);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

int main(int argc, char **argv)
{
	char runc[PATH_MAX], dir[PATH_MAX];
	int cmd = command_index(argc, argv), r;

	if ((r = find_runc(runc, sizeof(runc))) < 0)
		return fail("runc (not on PATH; or set CVMFS_RUNC)", -r);
	if (cmd < argc && (!strcmp(argv[cmd], "create") || !strcmp(argv[cmd], "run"))) {
		if ((r = self_dir(dir, sizeof(dir))) < 0)
			return fail("/proc/self/exe", -r);
		if (edit_config(bundle_arg(argc, argv, cmd), dir) != 0)
			return 1;
	}
	argv[0] = runc;
	execv(runc, argv);
	return fail(runc, errno);
}
