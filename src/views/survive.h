/* cvmfsd views survives its server process (issue 17, doc/cvmfsd-views.md):
 * the process started as `cvmfsd views` is a small supervisor that holds
 * what must outlive a server (the /dev/fuse fds of both trees, their INIT,
 * the ids journal, the system-call supervisor's socket) and forks the
 * server; a server that dies is replaced and takes the connections over;
 * SIGUSR2 makes the supervisor exec its binary again (an upgrade) keeping
 * all of it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum { SV_SHARED, SV_CT, SV_NFUSE };

/* A launcher's connection to the system-call supervisor with its CVM's
 * seccomp listener and in-flight page: kept by the supervisor, so that the
 * launcher never sees a server die. */
struct survive_conn {
	uint64_t key;
	int conn, listener, page;
	char name[64];
};

/* What a server inherits from its supervisor. */
struct survive {
	int keeper;          /* socket to the supervisor */
	int fuse[SV_NFUSE];  /* /dev/fuse of each tree, -1 until mounted */
	int init[SV_NFUSE];  /* their INIT stores */
	int ids;             /* ids journal (ids.h) */
	int sock;            /* the system-call supervisor's listening socket, -1: none */
	unsigned gen;        /* server generation, from 1 */
	bool upgraded;       /* exec'd by a running supervisor: all above inherited */
	struct survive_conn *conns; /* the kept connections */
	unsigned nconns;
};
extern struct survive views_sv;

/* Called from `cvmfsd views` before daemonising: true when this process
 * was exec'd by a running supervisor (views_sv is filled in: no stale-mount
 * check, no fork). */
bool survive_inherited(void);
/* Run the supervisor. Returns -1 in each server process (the caller
 * serves), else the supervisor's exit status once it stops. */
int survive_run(const char *mnt, int notify_fd);
/* Server: a tree was mounted on fd (the supervisor keeps a copy). */
void survive_send_fuse(int idx, int fd);
/* Server: keep (a copy of) this connection / forget it. */
void survive_keep_conn(const struct survive_conn *c);
void survive_drop_conn(uint64_t key);
/* Server: serving; the supervisor reports readiness. */
void survive_ready(void);
