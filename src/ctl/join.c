/* cvmctl exec, inside: the joiner and CMD's process (exec.c has the
 * overview). Runs in: the joiner, a child of cvmctl, host root in every
 * namespace of the host. Joins, in order: the cgroups of the CVM's init
 * (through the host's cgroup file systems, so before the mount namespace
 * changes), then with one setns on init's pidfd its user namespace (when it
 * has one: the kernel enters it first), mount, PID, UTS, IPC, network and
 * cgroup namespaces. The PID namespace applies to children: CMD's process
 * is forked after, takes the CVM's bounding set, USER's ids (CVM root's:
 * the same capabilities as the CVM's init), no_new_privs and the CVM's
 * seccomp filter as init has them, and execs. */
#include "ctl.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXIT_SETUP 126
#define MAX_GROUPS 64

struct user {
	uid_t uid;
	gid_t gid;
	char name[64], home[256], shell[256];
	gid_t groups[MAX_GROUPS];
	int n_groups;
};

static _Noreturn void fail(const char *what, int err)
{
	log_error("exec: %s: %s", what, strerror(err));
	_exit(EXIT_SETUP);
}

/* Does the super-options field (",rw,memory" or ",rw,name=systemd") name
 * every controller of ctrls ("cpu,cpuacct")? */
static bool opts_have(const char *super, const char *ctrls)
{
	char want[128], *save = NULL;

	snprintf(want, sizeof(want), "%s", ctrls);
	for (char *w = strtok_r(want, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		char pat[80];
		const char *p = super;
		bool found = false;

		snprintf(pat, sizeof(pat), "%s", w);
		while ((p = strstr(p, pat))) {
			size_t n = strlen(pat);

			if ((p == super || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
				found = true;
				break;
			}
			p += n;
		}
		if (!found)
			return false;
	}
	return true;
}

/* The host's mount of the hierarchy of ctrls ("" for cgroup2), from
 * mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS - TYPE SOURCE SUPER". */
static int hierarchy_mount(const char *ctrls, char *out, size_t size)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], root[1024], mnt[1024], type[64], super[1024];

	while (f && fgets(line, sizeof(line), f)) {
		const char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2 ||
		    sscanf(dash + 3, "%63s %*s %1023s", type, super) != 2 || strcmp(root, "/"))
			continue;
		if (*ctrls ? strcmp(type, "cgroup") || !opts_have(super, ctrls)
			   : strcmp(type, "cgroup2"))
			continue;
		snprintf(out, size, "%s", mnt);
		return 0;
	}
	return -ENOENT;
}

/* Every hierarchy init is in (v1: memory, cpu... name=systemd; the
 * unified or pure v2 one), at init's own cgroup there. */
static void join_cgroups(pid_t init)
{
	char path[64], line[4096], mnt[1024], procs[PATH_MAX + 1100], pid[16];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)init);
	if (!(f = fopen(path, "re")))
		fail(path, errno);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	while (fgets(line, sizeof(line), f)) {
		char *ctrls = strchr(line, ':'), *cg = ctrls ? strchr(ctrls + 1, ':') : NULL;
		_cleanup_close_ int fd = -EBADF;

		if (!cg)
			continue;
		*ctrls++ = '\0';
		*cg++ = '\0';
		cg[strcspn(cg, "\n")] = '\0';
		if (hierarchy_mount(ctrls, mnt, sizeof(mnt)) < 0) {
			if (!strcmp(cg, "/"))
				continue; /* not mounted here, and init is at its root */
			log_error("exec: cgroup hierarchy '%s' of the CVM is not mounted", ctrls);
			_exit(EXIT_SETUP);
		}
		snprintf(procs, sizeof(procs), "%s%s/cgroup.procs", mnt, cg);
		fd = open(procs, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || write(fd, pid, strlen(pid)) < 0)
			fail(procs, errno);
	}
}

static void user_groups(struct user *u)
{
	_cleanup_fclose_ FILE *f = fopen("/etc/group", "re");
	struct group *g;

	u->groups[u->n_groups++] = u->gid;
	while (f && (g = fgetgrent(f)) && u->n_groups < MAX_GROUPS)
		for (char **m = g->gr_mem; m && *m; m++)
			if (!strcmp(*m, u->name) && g->gr_gid != u->gid)
				u->groups[u->n_groups++] = g->gr_gid;
}

/* USER (a name, or a uid) in the CVM's /etc/passwd: we are in its mount
 * namespace, at its root. A uid it does not list runs with gid = uid and
 * HOME=/, as docker exec -u does; root is root even without the file. */
static void resolve_user(const char *spec, struct user *u)
{
	_cleanup_fclose_ FILE *f = fopen("/etc/passwd", "re");
	char *end;
	unsigned long id = strtoul(spec, &end, 10);
	bool numeric = *spec && !*end && isdigit((unsigned char)*spec);
	struct passwd *pw;

	while (f && (pw = fgetpwent(f))) {
		if (numeric ? pw->pw_uid != id : strcmp(pw->pw_name, spec))
			continue;
		*u = (struct user){ pw->pw_uid, pw->pw_gid, "", "", "", { 0 }, 0 };
		snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
		snprintf(u->home, sizeof(u->home), "%s", *pw->pw_dir ? pw->pw_dir : "/");
		snprintf(u->shell, sizeof(u->shell), "%s", *pw->pw_shell ? pw->pw_shell : "/bin/sh");
		user_groups(u);
		return;
	}
	if (!numeric && strcmp(spec, "root")) {
		log_error("exec: -u %s: no such user in the CVM's /etc/passwd", spec);
		_exit(EXIT_SETUP);
	}
	*u = (struct user){ (uid_t)id, (gid_t)id, "", "/", "/bin/sh", { (gid_t)id }, 1 };
	snprintf(u->name, sizeof(u->name), "%s", spec);
	if (id == 0)
		snprintf(u->home, sizeof(u->home), "/root");
}

/* A login's environment, then -e. */
static void set_env(struct exec_ctx *x, const struct user *u)
{
	if (env_fresh(u->home) < 0 || setenv("USER", u->name, 1) < 0 ||
	    setenv("LOGNAME", u->name, 1) < 0 || setenv("SHELL", u->shell, 1) < 0)
		fail("environment", ENOMEM);
	for (char **e = x->env; e && *e; e++)
		if (putenv(*e) != 0)
			fail("environment", ENOMEM);
}

/* The CVM's bounding set (and E, P, I to it: what the CVM's root holds),
 * then USER's ids: a uid other than 0 loses E and P as with any setuid. */
static void set_creds(struct exec_ctx *x, const struct user *u)
{
	int r = caps_drop_mask(x->capbnd);

	if (r < 0)
		fail("capabilities", -r);
	if (setgroups((size_t)u->n_groups, u->groups) < 0)
		fail("setgroups", errno);
	if (setresgid(u->gid, u->gid, u->gid) < 0)
		fail("setresgid", errno);
	if (setresuid(u->uid, u->uid, u->uid) < 0)
		fail("setresuid", errno);
	if (x->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("no_new_privs", errno);
}

static void attach_pty(struct exec_ctx *x)
{
	if (x->slave < 0)
		return;
	if (setsid() < 0 || ioctl(x->slave, TIOCSCTTY, 0) < 0)
		fail("controlling terminal", errno);
	for (int i = 0; i < 3; i++)
		if (dup2(x->slave, i) < 0)
			fail("dup2 pty", errno);
}

/* No fd of cvmctl's reaches CMD; keep (the listener's way out, -1: none)
 * is close-on-exec and is closed once the filter is in. */
static void close_all_but(int keep)
{
	if (keep < 3) {
		syscall(SYS_close_range, 3U, ~0U, 0U);
		return;
	}
	if (keep > 3)
		syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U);
	syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U);
}

static _Noreturn void run_cmd(struct exec_ctx *x, const struct user *u)
{
	const char *dir = x->o->workdir ? x->o->workdir : u->home;
	sigset_t none;
	int err;

	attach_pty(x);
	set_creds(x, u);
	set_env(x, u);
	if (chdir(dir) < 0) {
		if (x->o->workdir)
			fail(x->o->workdir, errno);
		if (chdir("/") < 0)
			fail("/", errno);
	}
	close_all_but(notif_child_fd());
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Last before exec, as the launcher does for init. */
	if (x->seccomp && (err = -seccomp_install_filter(!x->own_userns, x->cvm.name)) > 0)
		fail("seccomp filter", err);
	execvp(x->cmd[0], x->cmd);
	err = errno;
	log_error("exec: %s: %s", x->cmd[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

_Noreturn void join_and_spawn(struct exec_ctx *x)
{
	int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
		    CLONE_NEWCGROUP;
	struct user u;
	pid_t pid;

	join_cgroups(x->cvm.init_pid);
	if (x->own_userns)
		flags |= CLONE_NEWUSER;
	if (setns(x->pidfd, flags) < 0)
		fail("setns into the CVM's namespaces", errno);
	resolve_user(x->o->user ? x->o->user : "root", &u);
	if (x->slave >= 0 && (fchown(x->slave, u.uid, u.gid) < 0 || fchmod(x->slave, 0620) < 0))
		fail("chown of the pty", errno);
	pid = fork();
	if (pid < 0)
		fail("fork", errno);
	if (pid == 0) {
		close(x->report);
		run_cmd(x, &u);
	}
	if (write(x->report, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		_exit(EXIT_SETUP);
	_exit(0);
}
