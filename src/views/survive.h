/* cvmfsd views survives its server process (issue 17, doc/cvmfsd-views.md)
 * on the common supervisor (cvmfs/fuse_survive.h) with forked servers: it
 * holds both trees' connections, the ids journal, the system-call
 * supervisor's socket and copies of the launchers' connections, and
 * carries them all over an upgrade's exec. */
#pragma once

#include "cvmfs/fuse_survive.h"

#include <stdbool.h>
#include <stdint.h>

enum { SV_SHARED, SV_CT }; /* views_sv.fuse_fds, init_stores */
enum { SV_IDS, SV_SOCK };  /* views_sv.extra_fds: ids.h, supervise.h (-1: none) */

/* A launcher's connection to the system-call supervisor with its CVM's
 * seccomp listener and in-flight page: kept by the supervisor, so that the
 * launcher never sees a server die. */
struct survive_conn {
	uint64_t key;
	int conn, listener, page;
	char name[64];
};

extern struct fuse_survive views_sv;
/* The supervisor's copies of the launchers' connections, inherited by
 * each server. */
extern struct survive_conn *views_conns;
extern unsigned views_nconns;

/* Called from `cvmfsd views` before daemonising: true when this process
 * was exec'd by a running supervisor (views_sv is filled in: no stale-mount
 * check, no fork). */
bool survive_inherited(void);
/* Run the supervisor. Returns -1 in each server process (the caller
 * serves), else the supervisor's exit status once it stops. */
int survive_run(const char *mnt, int notify_fd);
/* Server: keep (a copy of) this connection / forget it. */
void survive_keep_conn(const struct survive_conn *c);
void survive_drop_conn(uint64_t key);
