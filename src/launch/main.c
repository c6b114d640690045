/* cvm-launch: the parent's ordered list of setup steps. Each step either
 * completes or logs one line "cvm-launch: STEP: ...: strerror" and leaves
 * nothing of itself; then the undos of the steps before it run in reverse
 * order. After CMD exits, every undo runs the same way. See
 * doc/cvm-launch.md. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct step {
	const char *name;
	int (*run)(struct launch *L);
	void (*undo)(struct launch *L);
};

static const struct step steps[] = {
	{ "validate", step_validate, undo_validate },
	{ "cgroup", step_cgroup, undo_cgroup },
	{ "views", step_views, undo_views },
	{ "rebuild", step_rebuild, NULL },
	{ "disk", step_disk, undo_disk },
	{ "start", step_child, undo_child },
};

static void undo_from(struct launch *L, int last)
{
	for (int i = last; i >= 0; i--) {
		L->step = steps[i].name;
		if (steps[i].undo)
			steps[i].undo(L);
	}
}

static int run_steps(struct launch *L)
{
	for (int i = 0; i < (int)ARRAY_SIZE(steps); i++) {
		double t0 = now_s();
		int r;

		L->step = steps[i].name;
		r = steps[i].run(L);
		log_debug("step %s: %.1f ms", steps[i].name, (now_s() - t0) * 1e3);
		if (r < 0) {
			undo_from(L, i); /* a failed step may have half-done state */
			return r;
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: cvm-launch [-c FILE] --name NAME --image DIR[:DIR...] [--data DATA]\n"
		"         [--disk SIZE] [--memory SIZE] [--cpus N] [--cpuset LIST] [--pids N]\n"
		"         [--hostname H] [--net host|none] [--userns] [--userns-uid UID]\n"
		"         [--userns-gid GID] [--userns-count N] [--views MOUNT] [--run-dir DIR]\n"
		"         [--mnt-dir DIR] [--console pty|inherit] [--rebuild] [-- CMD [ARG...]]\n");
}

/* Signals stay blocked in the parent for its whole life: they are taken
 * from a signalfd while the CVM runs, and during setup they wait, so an
 * early SIGTERM still reaches the undo path instead of killing us midway. */
static void block_signals(void)
{
	sigset_t set;

	launch_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int main(int argc, char **argv)
{
	struct launch L = { .lock_fd = -EBADF, .console_master = -EBADF,
			    .console_slave = -EBADF, .t_start = now_s() };
	int r;

	log_setup("cvm-launch", false, false);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage();
		return 0;
	}
	r = launch_parse(&L, argc, argv);
	if (r < 0) {
		launch_free(&L);
		return LAUNCH_EXIT_FAIL;
	}
	log_setup("cvm-launch", false, L.o.debug);
	block_signals();
	if (run_steps(&L) < 0) {
		launch_free(&L);
		return LAUNCH_EXIT_FAIL;
	}
	L.step = "wait";
	r = launch_wait(&L);
	undo_from(&L, (int)ARRAY_SIZE(steps) - 1);
	log_debug("exit %d after %.1f ms", L.exit_status, (now_s() - L.t_start) * 1e3);
	launch_free(&L);
	return r < 0 ? LAUNCH_EXIT_FAIL : L.exit_status;
}
