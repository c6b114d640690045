/* cvmctl: exec in, list and stop the running CVMs of cvm-launch
 * (doc/cvmctl.md). One option table per verb, parsed by the shared
 * opts_parse (config section [ctl]); the verbs are in exec.c, list.c,
 * stop.c. */
#include "ctl.h"
#include "image.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"
#include "cvmfs/sealed_exe.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define O(f) offsetof(struct ctl_opts, f)
#define COMMON_OPTS                                                            \
	{ "config", 'c', OPT_STR, O(config), true, "FILE",                     \
	  "config file, section [ctl] (default " CVMFS_CONFIG_FILE ", read if present)" }, \
	{ "run-dir", 0, OPT_STR, O(run_dir), false, "DIR",                     \
	  "the launchers' records are in DIR/launch (default " CVMFS_RUN_DIR ")" }

static const struct opt_def exec_defs[] = {
	COMMON_OPTS,
	{ "user", 'u', OPT_STR, O(user), true, "USER",
	  "run as USER (name or uid) of the CVM's /etc/passwd (default root)" },
	{ "workdir", 'w', OPT_STR, O(workdir), true, "DIR",
	  "working directory inside (default the user's HOME, else /)" },
	{ "env", 'e', OPT_STRV, O(env), true, "K=V", "set K in CMD's environment; repeatable" },
	{ "tty", 't', OPT_BOOL, O(tty), true, NULL,
	  "give CMD a new pty of the CVM; cvmctl relays it and the window size" },
	OPT_END,
};

static const struct opt_def list_defs[] = {
	COMMON_OPTS,
	{ "json", 0, OPT_BOOL, O(json), true, NULL, "one JSON array instead of the table" },
	OPT_END,
};

static const struct opt_def stop_defs[] = {
	COMMON_OPTS,
	{ "timeout", 0, OPT_UINT, O(timeout), true, "S",
	  "SIGKILL to init if the CVM has not stopped after S seconds (default 30)" },
	OPT_END,
};
static const struct opt_def images_defs[] = {
	COMMON_OPTS,
	{ "layer-store", 0, OPT_STR, O(layer_store), true, "DIR",
	  "the layer store (default " IMAGE_STORE_DEFAULT ")" },
	{ "json", 0, OPT_BOOL, O(json), true, NULL, "one JSON array instead of the table" },
	{ "prune", 0, OPT_BOOL, O(prune), true, NULL,
	  "remove the layers no workspace's ref names" },
	{ "forget", 0, OPT_STR, O(forget), true, "NAME",
	  "drop workspace NAME's ref (its layers become prunable)" },
	OPT_END,
};
#undef O

struct verb {
	const char *name;
	const struct opt_def *defs;
	const char *usage;
	const char *about;
	bool takes_name, takes_cmd;
};

static const struct verb verbs[] = {
	{ "exec", exec_defs, "[OPTION...] NAME [OPTION...] [--] CMD [ARG...]",
	  "Run CMD in the running CVM NAME: its cgroups, namespaces, capability\n"
	  "bounding set, seccomp filter and no_new_privs; a login's environment.\n"
	  "Exit status: CMD's (128+N if killed by signal N); 126 when the setup\n"
	  "inside failed or CMD cannot run, 127 when CMD is not found; 1 for a bad\n"
	  "option or a CVM that is not running. See doc/cvmctl.md.\n", true, true },
	{ "list", list_defs, "[OPTION...]",
	  "List the CVMs: name, init pid, state, limits, uptime. A record whose\n"
	  "launcher is gone is listed once as stopped, then removed.\n", false, false },
	{ "stop", stop_defs, "[OPTION...] NAME [OPTION...]",
	  "Stop CVM NAME: poweroff (SIGRTMIN+4) to systemd as init, SIGTERM to any\n"
	  "other init; SIGKILL after the timeout. Returns once the launcher has\n"
	  "exited and cleaned up.\n", true, false },
	{ "images", images_defs, "[OPTION...]",
	  "List the layer store of image references (oci:, docker-archive:): each\n"
	  "layer's digest, size and the workspaces using it (stopped ones too);\n"
	  "--prune removes the layers none uses, --forget NAME a deleted\n"
	  "workspace's record of its layers.\n", false, false },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: cvmctl exec NAME [-u USER] [-w DIR] [-e K=V]... [-t] [--] CMD [ARG...]\n"
		   "       cvmctl list [--json]\n"
		   "       cvmctl stop NAME [--timeout S]\n"
		   "       cvmctl images [--json] [--prune] [--forget NAME] [--layer-store DIR]\n"
		   "       cvmctl VERB --help\n"
		   "Common options: -c FILE, --run-dir DIR. See doc/cvmctl.md.\n");
}

/* Does option word a ("--user", "-u", "-tu") take the next word as its
 * value? Not when it carries it ("--user=U", "-uU", "-tuU"). */
static bool takes_next(const struct opt_def *defs, const char *a)
{
	size_t n = strcspn(a, "=");

	for (const struct opt_def *d = defs; a[1] == '-' && d->name; d++)
		if (strlen(d->name) == n - 2 && !strncmp(d->name, a + 2, n - 2))
			return d->type != OPT_BOOL && !a[n];
	for (const char *c = a + 1; a[1] != '-' && *c; c++)
		for (const struct opt_def *d = defs; d->name; d++)
			if (d->short_name == *c && d->type != OPT_BOOL)
				return !c[1];
	return false;
}

/* Where NAME is: the first word that is neither an option nor an
 * option's value; -1 if none comes before "--" or the end. */
static int find_name(const struct opt_def *defs, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return -1;
		if (argv[i][0] != '-' || !argv[i][1])
			return i;
		i += takes_next(defs, argv[i]);
	}
	return -1;
}

/* Options on either side of NAME, parsed once (so a config file's value
 * never overrides one given on the command line): NAME is taken out of
 * argv first. Sets *name to it (NULL if none) and *rest to the first word
 * after the options (CMD). Returns 0, 1 after --help, -1 on an error. */
static int parse(const struct verb *v, struct ctl_opts *o, int argc, char **argv,
		 const char **name, int *rest)
{
	char prog[32];
	struct opt_spec spec = { prog, v->defs, (const char *const[]){ "ctl", NULL },
				 CVMFS_CONFIG_FILE, v->usage, v->about };
	int at = v->takes_name ? find_name(v->defs, argc, argv) : -1, first = argc, r;

	snprintf(prog, sizeof(prog), "cvmctl %s", v->name);
	*name = at > 0 ? argv[at] : NULL;
	if (at > 0) {
		memmove(argv + at, argv + at + 1, (size_t)(argc - at - 1) * sizeof(char *));
		argv[--argc] = NULL;
	}
	r = opts_parse(&spec, o, argc, argv, &first, NULL);
	if (r != 0)
		return r == OPTS_HELP ? 1 : -1;
	*rest = first;
	return 0;
}

static int run_verb(const struct verb *v, struct ctl_opts *o, int argc, char **argv)
{
	const char *name = NULL;
	int rest = argc, r = parse(v, o, argc, argv, &name, &rest);

	if (r != 0)
		return r > 0 ? 0 : CTL_EXIT_FAIL;
	if (!o->run_dir && !(o->run_dir = strdup(CVMFS_RUN_DIR)))
		return CTL_EXIT_FAIL;
	argc -= v->takes_name && name; /* parse took NAME out */
	if (v->takes_name && !name) {
		log_error("%s: missing NAME", v->name);
		return CTL_EXIT_FAIL;
	}
	if (v->takes_cmd && rest >= argc) {
		log_error("%s: missing CMD", v->name);
		return CTL_EXIT_FAIL;
	}
	if (!v->takes_cmd && rest < argc) {
		log_error("%s: unexpected argument '%s'", v->name, argv[rest]);
		return CTL_EXIT_FAIL;
	}
	if (!strcmp(v->name, "exec"))
		return ctl_exec(o, name, argv + rest);
	if (!strcmp(v->name, "stop"))
		return ctl_stop(o, name);
	if (!strcmp(v->name, "images"))
		return ctl_images(o);
	return ctl_list(o);
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { 0 };
	int r = CTL_EXIT_FAIL;

	log_setup("cvmctl", false, false);
	if (argc < 2) {
		usage(stderr);
		return CTL_EXIT_FAIL;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	/* exec starts a process inside a CVM: from a sealed copy of us
	 * (sealed_exe.c); exec.c refuses a CVM without a user namespace if
	 * that failed. */
	if (!strcmp(argv[1], "exec") && (r = exe_reexec_sealed(argv)) < 0)
		log_debug("exec: running from a sealed copy: %s", strerror(-r));
	r = CTL_EXIT_FAIL;
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		if (strcmp(argv[1], verbs[i].name))
			continue;
		r = run_verb(&verbs[i], &o, argc - 1, argv + 1);
		opts_free(verbs[i].defs, &o);
		return r;
	}
	log_error("unknown command '%s' (exec, list, stop, images; --help)", argv[1]);
	return CTL_EXIT_FAIL;
}
