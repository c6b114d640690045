/* A FUSE daemon that outlives its server process (issue 17): the process
 * started is a small single-threaded supervisor that holds what must
 * outlive a server (the /dev/fuse connections, their INIT kept in memfds:
 * fuse_takeover.h) and starts servers; a server that dies is replaced and
 * takes the connections over. Both daemons use it, in one of two ways:
 * - `cvmfsd disk`, whose state lives in open files: each server is a
 *   clone that SHARES THE SUPERVISOR'S FD TABLE (CLONE_FILES). Every fd a
 *   server opens (the connection, the files the kernel has open through
 *   it, their backing files) stays open when the server dies, at the same
 *   number, and the next server (a clone of the supervisor again, with the
 *   memory the supervisor had before any server ran) finds it there: a
 *   file handle that is an fd number keeps its meaning, at no cost on the
 *   request path.
 * - `cvmfsd views` (fork_servers): each server is forked and hands the
 *   supervisor copies of the fds that must outlive it (SCM_RIGHTS).
 *
 * Restart within restart_ms; after max_crashes crashes within
 * crash_window_s the supervisor gives up with one error line. SIGTERM and
 * SIGINT go to the server (which stops as before), then the supervisor
 * ends with its status; SIGHUP is passed on. A supervisor killed with
 * SIGKILL takes its server along (PR_SET_PDEATHSIG). SIGUSR2 upgrades in
 * place (can_upgrade): the supervisor execs its binary again keeping the
 * connections (doc/cvmfsd-disk.md, *Surviving the server*). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { FUSE_SURVIVE_CONNS = 2, FUSE_SURVIVE_EXTRA = 2 };
enum { FUSE_SURVIVE_MSG_FDS = 3, FUSE_SURVIVE_MSG = 128 }; /* a message's fds, bytes */

struct fuse_survive {
	/* Set by the caller. */
	const char *prog; /* "cvmfsd disk", for the log */
	uint64_t restart_ms, max_crashes, crash_window_s;
	/* A server after the first closes, before anything else, every fd
	 * its predecessor left open but the connection and those keep_fd
	 * (optional) wants. */
	bool (*keep_fd)(int fd);
	/* Upgrade (SIGUSR2: exec the binary again, keeping the connections):
	 * allowed at all, up to FUSE_SURVIVE_EXTRA more fds of the daemon's
	 * to carry over (their numbers are in extra_fds after the exec; -1:
	 * none), which other fds the exec keeps (optional; no side effects),
	 * and what to do just before the exec (optional; 0 or -errno). */
	bool can_upgrade;
	union {
		int extra_fd;
		int extra_fds[FUSE_SURVIVE_EXTRA];
	};
	bool (*carry_fd)(int fd);
	int (*before_exec)(void);
	/* Fork servers (see above); nconns connections (0: one). A message
	 * of the daemon's own (fuse_survive_send) is handed to on_message,
	 * which owns the fds. */
	bool fork_servers;
	unsigned nconns;
	void (*on_message)(char kind, const void *data, int *fds, int nfds);
	/* Filled in; servers read them. */
	int keeper; /* the servers' end of the supervisor's socket */
	union {     /* the connections' /dev/fuse fds, -1 until mounted */
		int fuse_fd;
		int fuse_fds[FUSE_SURVIVE_CONNS];
	};
	union { /* their INIT (fuse_takeover.h) */
		int init_store;
		int init_stores[FUSE_SURVIVE_CONNS];
	};
	unsigned gen;   /* server generation, from 1 */
	bool no_resend; /* test switch: act as on a kernel without resend */
};

/* Before anything else: true when this process was exec'd by a running
 * supervisor for an upgrade (nconns, the fds and gen are then filled in;
 * the mounts are live and ours, nothing is to daemonise). */
bool fuse_survive_inherited(struct fuse_survive *s);
/* Supervisor: the INIT stores (kept after an upgrade), the keeper socket,
 * the signals. 0 or -errno. The fds open when fuse_survive_run starts
 * are the supervisor's own: every server keeps them. */
int fuse_survive_setup(struct fuse_survive *s);
/* Run the supervisor. Returns -1 in each server (the caller serves,
 * taking each fuse_fds[i] >= 0 over), else the supervisor's exit
 * status once it stops. */
int fuse_survive_run(struct fuse_survive *s, int notify_fd);
/* Server: connection 0 / i mounted on fd; serving (the supervisor reports
 * readiness and the take-over time), stdio then goes to /dev/null unless
 * foreground; a message of the daemon's own (a kind other than 'F', 'R';
 * len <= FUSE_SURVIVE_MSG; the supervisor gets copies of up to 3 fds). */
void fuse_survive_mounted(struct fuse_survive *s, int fd);
void fuse_survive_mounted_at(struct fuse_survive *s, unsigned i, int fd);
void fuse_survive_ready(struct fuse_survive *s, bool foreground);
void fuse_survive_send(struct fuse_survive *s, char kind, const void *data, size_t len,
		       const int *fds, int nfds);
