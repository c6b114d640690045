/* Daemon lifecycle shared by cvmfsd's subcommands. */
#pragma once

#include <stdbool.h>

/* Fork; the parent waits for one status byte from the child and exits with
 * it (1 if the child dies first). In the child, *notify_fd is the pipe to
 * report on. Returns 0 in the child or a negative errno. */
/* Soft RLIMIT_NOFILE up to the hard limit. A daemon holds an fd per file
 * open through it (the disk) or per container (the views); services start
 * with a soft limit of 1,024 whatever their hard limit. */
void daemon_raise_nofile(void);
int daemon_fork(int *notify_fd);
/* Unless foreground, daemon_fork; then log (to syslog unless foreground)
 * as PROG and daemon_block_signals. *notify_fd is -1 in the foreground. */
int daemon_start(const char *prog, bool foreground, bool debug, int *notify_fd);
/* Tell the waiting parent that start-up succeeded, then detach stdio. A
 * negative fd (foreground run) is ignored. */
void daemon_ready(int notify_fd);
/* Block SIGTERM, SIGINT and SIGHUP in every thread (call before starting
 * any) and ignore SIGPIPE; the main thread then waits for them. */
void daemon_block_signals(void);
/* Wait for SIGTERM or SIGINT and return it; on SIGHUP call on_hup (may be
 * NULL) and keep waiting. */
int daemon_wait_stop(void (*on_hup)(void));
/* The running binary's GNU build id (hex), "unknown" without one: logged
 * at start so that an upgrade shows which build serves. */
const char *daemon_build_id(void);
