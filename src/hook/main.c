/* cvmfs-hook create|poststop: the OCI hook (doc/cvmfs-hook.md). The
 * runtime gives the container's state on stdin. create (createContainer
 * stage) binds the container's views tree into its root and records it
 * under RUN_DIR/hook/ID; poststop removes the record. A non-zero exit
 * makes the runtime fail the container: nothing is half-bound in a
 * container that runs. */
#include "hook.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define O(f) offsetof(struct hook_opts, f)
static const struct opt_def hook_defs[] = {
	{ "config", 'c', OPT_STR, O(config), true, "FILE",
	  "config file, section [hook] (default " CVMFS_CONFIG_FILE ", read if present)" },
	{ "views", 0, OPT_STR, O(views), false, "MOUNT",
	  "the views daemon's mountpoint (default " CVMFS_STATE_DIR "/views)" },
	{ "ct-parent", 0, OPT_STR, O(ct_parent), false, "NAME",
	  "the views daemon's --ct-parent (default cvmfs)" },
	{ "run-dir", 0, OPT_STR, O(run_dir), false, "DIR",
	  "records of hooked containers in DIR/hook (default " CVMFS_RUN_DIR ")" },
	OPT_END,
};
static const char *const hook_sections[] = { "hook", NULL };

static int record_path(const struct hook_opts *o, const char *id, char *path, size_t size)
{
	if (snprintf(path, size, "%s/hook/%s", o->run_dir, id) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static int record_write(const struct hook_opts *o, const char *id, const char *tree)
{
	char path[PATH_MAX], dir[PATH_MAX];
	_cleanup_close_ int fd = -EBADF;

	snprintf(dir, sizeof(dir), "%s/hook", o->run_dir);
	if ((mkdir(o->run_dir, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(dir, 0755) < 0 && errno != EEXIST))
		return log_error_errno(-errno, "mkdir %s", dir);
	if (record_path(o, id, path, sizeof(path)) < 0)
		return log_error_errno(-ENAMETOOLONG, "%s/%s", dir, id);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, tree, strlen(tree)) < 0 || write_all(fd, "\n", 1) < 0)
		return log_error_errno(-errno, "%s", path);
	return 0;
}

static int hook_create(const struct hook_opts *o, struct oci_state *s)
{
	char cg[4096], tree[PATH_MAX];
	bool inside, generic;
	int r;

	if ((r = oci_rootfs_read(s)) < 0 || (r = container_enter(s, cg, sizeof(cg), &inside)) < 0)
		return r;
	r = views_tree(o, cg, inside, tree, sizeof(tree), &generic);
	if (r == 1)
		return 0; /* no limit: the host's files are the container's */
	if (r < 0 || (r = bind_tree(tree, generic, s->rootfs)) < 0)
		return r;
	return record_write(o, s->id, tree);
}

static int hook_poststop(const struct hook_opts *o, const struct oci_state *s)
{
	char path[PATH_MAX];

	if (record_path(o, s->id, path, sizeof(path)) < 0)
		return log_error_errno(-ENAMETOOLONG, "record of %s", s->id);
	if (unlink(path) < 0 && errno != ENOENT)
		return log_error_errno(-errno, "%s", path);
	return 0;
}

static int set_defaults(struct hook_opts *o)
{
	if ((!o->views && !(o->views = strdup(CVMFS_STATE_DIR "/views"))) ||
	    (!o->ct_parent && !(o->ct_parent = strdup("cvmfs"))) ||
	    (!o->run_dir && !(o->run_dir = strdup(CVMFS_RUN_DIR))))
		return -ENOMEM;
	return 0;
}

int main(int argc, char **argv)
{
	struct opt_spec spec = {
		"cvmfs-hook", hook_defs, hook_sections, CVMFS_CONFIG_FILE,
		"[OPTION...] create|poststop",
		"OCI hook: the OCI state on stdin. create (createContainer stage) binds the\n"
		"container's views tree over its /proc files and /sys/devices/system/cpu;\n"
		"poststop (poststop stage) removes its record. See doc/cvmfs-hook.md.\n",
	};
	struct hook_opts o = { 0 };
	struct oci_state s = { 0 };
	int pos, r;

	log_setup("cvmfs-hook", false, false);
	r = opts_parse(&spec, &o, argc, argv, &pos, NULL);
	if (r != 0) {
		opts_free(hook_defs, &o);
		return r < 0 ? 2 : 0;
	}
	if (pos != argc - 1 || (strcmp(argv[pos], "create") && strcmp(argv[pos], "poststop"))) {
		fprintf(stderr, "cvmfs-hook: want one stage, create or poststop (got %s)\n",
			pos < argc ? argv[pos] : "none");
		opts_free(hook_defs, &o);
		return 2;
	}
	r = set_defaults(&o);
	if (r == 0)
		r = oci_state_read(STDIN_FILENO, &s);
	if (r == 0)
		r = !strcmp(argv[pos], "create") ? hook_create(&o, &s) : hook_poststop(&o, &s);
	opts_free(hook_defs, &o);
	return r < 0 ? 1 : 0;
}
