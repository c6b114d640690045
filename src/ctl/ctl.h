/* cvmctl: commands on running CVMs (doc/cvmctl.md). A CVM is known by the
 * record its launcher keeps in RUN_DIR/launch/NAME.json (src/launch/record.c)
 * while it runs; one file per verb (exec.c, list.c, stop.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* cvmctl's own failures: a bad option, an unknown or stopped CVM. */
#define CTL_EXIT_FAIL 1

struct ctl_opts {
	char *config;
	char *run_dir;
	char *user;    /* exec -u */
	char *workdir; /* exec -w */
	char **env;    /* exec -e, repeated: one K=V each, as given */
	bool tty;      /* exec -t */
	bool json;     /* list --json */
	uint64_t timeout; /* stop --timeout */
	char *layer_store; /* images --layer-store */
	bool prune;        /* images --prune */
	char *forget;      /* images --forget NAME */
};

/* One record, as the launcher wrote it. */
struct cvm {
	char name[128];
	pid_t launcher_pid, init_pid;
	unsigned long long launcher_start, init_start; /* /proc/PID/stat field 22 */
	long long started; /* epoch seconds */
	bool systemd, userns;
	unsigned long long memory, disk, pids; /* 0: no limit */
	char cpus[32], cpuset[128], net[16];
	char trap[108]; /* the views supervisor's socket while its launcher traps, else "" */
	char address[16]; /* --net private with a bridge: the CVM's IPv4 address, else "" */
	bool running; /* launcher and init are the recorded processes */
};

/* cvm.c */
bool ctl_name_ok(const char *name);
/* Read RUN_DIR/launch/NAME.json: 0, -ENOENT without a record, -EINVAL for
 * a record that is not one. Sets running. */
int cvm_read(const char *run_dir, const char *name, struct cvm *c);
/* A running CVM NAME, else one line naming the problem and a negative
 * errno; a stale record (launcher gone) is removed. */
int cvm_find(const char *run_dir, const char *name, struct cvm *c);
void cvm_remove_record(const char *run_dir, const char *name);

/* The verbs: each returns cvmctl's exit status. */
int ctl_exec(const struct ctl_opts *o, const char *name, char **cmd);
int ctl_list(const struct ctl_opts *o);
int ctl_stop(const struct ctl_opts *o, const char *name);
int ctl_images(const struct ctl_opts *o);

/* pty.c: the exec side of -t: relays stdin -> master -> stdout, forwards
 * the window size, until child exits; returns its wait status. */
int pty_relay(int master, pid_t child, int sigfd);
int pty_winsize(int master);

/* exec.c / join.c: what the host side learns of the CVM before the fork,
 * and what the joiner and CMD's process use inside. */
struct exec_ctx {
	const struct ctl_opts *o;
	struct cvm cvm;
	char **cmd;
	char **env;        /* -e K=V (the options'), checked */
	int pidfd;         /* of the CVM's init */
	uint64_t capbnd;   /* init's bounding set */
	bool nnp;          /* init's no_new_privs */
	bool seccomp;      /* init runs under a seccomp filter (the CVM's) */
	bool own_userns;   /* the CVM has a user namespace of its own */
	int slave;         /* -t: the pty's slave (the CVM's devpts), else -1 */
	int report;        /* joiner: write end; CMD's pid goes to cvmctl */
};

/* join.c, in the joiner (a child of cvmctl): never returns. */
_Noreturn void join_and_spawn(struct exec_ctx *x);
