/* A FUSE daemon that outlives its server process (issue 17), for daemons
 * whose state lives in open files: the process started is a small
 * single-threaded supervisor; each server is a clone of it that SHARES
 * ITS FILE DESCRIPTOR TABLE (CLONE_FILES). Every fd a server opens (the
 * /dev/fuse connection, the files the kernel has open through it, their
 * backing files) therefore stays open when the server dies, at the same
 * number, and the next server (a clone of the supervisor again, with the
 * memory the supervisor had before any server ran) finds it there: a
 * file handle that is an fd number keeps its meaning, at no cost on the
 * request path. The server tells the supervisor its /dev/fuse fd number;
 * the connection's INIT is kept in a memfd (fuse_takeover.h).
 *
 * Restart within restart_ms; after max_crashes crashes within
 * crash_window_s the supervisor gives up with one error line. SIGTERM and
 * SIGINT go to the server (which stops as before), then the supervisor
 * ends with its status; SIGHUP is passed on. A supervisor killed with
 * SIGKILL takes its server along (PR_SET_PDEATHSIG). SIGUSR2 upgrades in
 * place (can_upgrade): the supervisor execs its binary again keeping the
 * connection (doc/cvmfsd-disk.md, *Surviving the server*). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct fuse_survive {
	/* Set by the caller. */
	const char *prog;          /* "cvmfsd disk", for the log */
	uint64_t restart_ms, max_crashes, crash_window_s;
	/* A server after the first closes, before anything else, every fd
	 * its predecessor left open but the connection and those keep_fd
	 * (optional) wants. */
	bool (*keep_fd)(int fd);
	/* Upgrade (SIGUSR2: exec the binary again, keeping the connection):
	 * allowed at all, one more fd of the daemon's to carry over (its
	 * number is in extra_fd after the exec; -1: none), and which other
	 * fds the exec keeps (optional; no side effects). */
	bool can_upgrade;
	int extra_fd;
	bool (*carry_fd)(int fd);
	/* Filled in; servers read them. */
	int keeper;      /* the servers' end of the supervisor's socket */
	int fuse_fd;     /* the connection's /dev/fuse fd, -1 until mounted */
	int init_store;  /* its INIT (fuse_takeover.h) */
	unsigned gen;    /* server generation, from 1 */
	bool no_resend;  /* test switch: act as on a kernel without resend */
};

/* Before anything else: true when this process was exec'd by a running
 * supervisor for an upgrade (fuse_fd, init_store, extra_fd and gen are
 * then filled in; the mount is live and ours, nothing is to daemonise). */
bool fuse_survive_inherited(struct fuse_survive *s);
/* Supervisor: the INIT store (kept after an upgrade), the keeper socket,
 * the signals. 0 or -errno. The fds open when fuse_survive_run starts
 * are the supervisor's own: every server keeps them. */
int fuse_survive_setup(struct fuse_survive *s);
/* Run the supervisor. Returns -1 in each server (the caller serves,
 * taking s->fuse_fd over if it is >= 0), else the supervisor's exit
 * status once it stops. */
int fuse_survive_run(struct fuse_survive *s, int notify_fd);
/* Server: mounted on fd / serving (the supervisor reports readiness and
 * the take-over time); stdio then goes to /dev/null unless foreground. */
void fuse_survive_mounted(struct fuse_survive *s, int fd);
void fuse_survive_ready(struct fuse_survive *s, bool foreground);
/* Shared with the views' supervisor. */
/* Record a crash at now_ns; false (after one error line) when max crashes
 * fell within window_s. The ring holds the last 64 crash times. */
struct crash_ring {
	uint64_t ns[64];
	unsigned n;
};
bool crash_budget_left(struct crash_ring *r, uint64_t now_ns, uint64_t max, uint64_t window_s);
uint64_t survive_now_ns(void);
/* Our own command line (/proc/self/cmdline), for the exec of an upgrade;
 * NULL if it does not fit. */
char **survive_own_argv(void);
