/* Node ids that mean the same after a restart (issue 17): every id the
 * views hand out by first use (a per-container tree, a block device, a
 * passthrough sysfs entry) is noted in a journal the supervisor keeps
 * (survive.c); a restarted server replays it before it serves, so that
 * the kernel's ids and the new process's tables agree. */
#pragma once

enum ids_kind { IDS_CT = 'C', IDS_ANON = 'A', IDS_BLOCK = 'B', IDS_PASS = 'P' };

/* The journal (a memfd), or -1: nothing noted. */
void ids_attach(int fd);
/* Note an id handed out; call under the lock that orders its kind. */
void ids_note(enum ids_kind kind, unsigned arg, const char *name);
/* Hand the journal's ids out again, in order. 0 or -errno. */
int ids_replay(void);
