/* cvm-launch: the parent's ordered list of setup steps. Each step either
 * completes or logs one line "cvm-launch: STEP: ...: strerror" and leaves
 * nothing of itself; then the undos of the steps before it run in reverse
 * order. After CMD exits, every undo runs the same way. See
 * doc/cvm-launch.md. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/sealed_exe.h"

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

/* validate.c's checks and lock, then the security policy: the caps a
 * CVM without a user namespace may keep, and the CVM's id range. */
static int validate_and_secure(struct launch *L)
{
	int r = step_validate(L);

	if (r < 0 || (r = caps_policy(L)) < 0 || (r = idrange_assign(L)) < 0)
		return r;
	if (!L->o.userns)
		log_warn("warning: --no-userns: root in CVM %s is host root (uid 0 outside)",
			 L->o.name);
	return 0;
}

static const struct step steps[] = {
	{ "validate", validate_and_secure, undo_validate },
	{ "cgroup", step_cgroup, undo_cgroup },
	{ "views", step_views, undo_views },
	{ "rebuild", step_rebuild, NULL },
	{ "disk", step_disk, undo_disk },
	{ "image", step_image, NULL }, /* the workspace's layers, in the store */
	{ "io", step_io, NULL }, /* cgroup.c: needs the disk's device */
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
			    .console_slave = -EBADF, .lease_fd = -EBADF,
			    .net_lock_fd = -EBADF, .t_start = now_s() };
	int r;

	log_setup("cvm-launch", false, false);
	r = launch_parse(&L, argc, argv);
	if (r != 0) { /* an error, or the help printed (OPTS_HELP) */
		launch_free(&L);
		return r < 0 ? LAUNCH_EXIT_FAIL : 0;
	}
	log_setup("cvm-launch", false, L.o.debug);
	/* CVM root is host root here: the process that becomes its init runs
	 * our binary inside until it execs CMD, so from a sealed copy
	 * (sealed_exe.c); refuse if none can be made. */
	if (!L.o.userns && !exe_is_sealed() && (r = exe_reexec_sealed(argv)) < 0) {
		log_error("--no-userns: cannot run from a sealed copy of cvm-launch (memfd): %s: "
			  "refusing (CVE-2019-5736)", strerror(-r));
		launch_free(&L);
		return LAUNCH_EXIT_FAIL;
	}
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
