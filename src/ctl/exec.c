/* cvmctl exec: CMD in a running CVM, with no more privilege than the CVM's
 * own processes. Three processes:
 *   cvmctl (host)  finds the CVM, opens a pty of the CVM's devpts (-t),
 *                  forks the joiner; then relays the pty and forwards
 *                  signals to CMD, which it reaps as its subreaper.
 *   joiner         (join.c) joins the CVM's cgroups and namespaces, forks
 *                  CMD's process into its PID namespace, exits.
 *   CMD            takes the CVM's credentials and filter and execs.
 * cvmctl itself never enters the CVM: nothing inside can reach the host's
 * terminal or files through it. */
#include "ctl.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/sealed_exe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define EXIT_SETUP 126 /* the setup inside failed, or CMD cannot run */

/* The signals cvmctl takes from a signalfd while CMD runs. */
static void exec_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	sigaddset(set, SIGWINCH);
}

/* CapBnd, NoNewPrivs and Seccomp of the CVM's init: what CMD gets. */
static int init_status(struct exec_ctx *x)
{
	char path[64], buf[4096], *p;
	int mode = 0, nnp = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)x->cvm.init_pid);
	if (read_at_buf(AT_FDCWD, path, buf, sizeof(buf)) < 0 || !(p = strstr(buf, "\nCapBnd:")) ||
	    sscanf(p, "\nCapBnd: %" SCNx64, &x->capbnd) != 1 ||
	    !(p = strstr(buf, "\nNoNewPrivs:")) || sscanf(p, "\nNoNewPrivs: %d", &nnp) != 1 ||
	    !(p = strstr(buf, "\nSeccomp:")) || sscanf(p, "\nSeccomp: %d", &mode) != 1) {
		log_error("%s: %s: cannot read the CVM's init", x->cvm.name, path);
		return -EIO;
	}
	x->nnp = nnp != 0;
	x->seccomp = mode != 0;
	return 0;
}

static int own_userns(struct exec_ctx *x)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)x->cvm.init_pid);
	if (stat("/proc/self/ns/user", &a) < 0 || stat(path, &b) < 0) {
		log_error("%s: %s: %s", x->cvm.name, path, strerror(errno));
		return -errno;
	}
	x->own_userns = a.st_ino != b.st_ino || a.st_dev != b.st_dev;
	return 0;
}

/* The pidfd pins init; its start time says it is still the recorded one. */
static int open_init(struct exec_ctx *x)
{
	x->pidfd = (int)syscall(SYS_pidfd_open, x->cvm.init_pid, 0);
	if (x->pidfd < 0 || proc_start_ticks(x->cvm.init_pid) != x->cvm.init_start) {
		log_error("%s: stopped (its init, pid %d, is gone)", x->cvm.name,
			  (int)x->cvm.init_pid);
		return -ESRCH;
	}
	return 0;
}

/* -e entries: each a K=V of its own (a value may hold ':' or '='). */
static int check_env(struct exec_ctx *x)
{
	for (char **e = x->o->env; e && *e; e++) {
		if (!strchr(*e, '=') || (*e)[0] == '=') {
			log_error("exec: -e '%s': K=V expected", *e);
			return -EINVAL;
		}
	}
	x->env = x->o->env;
	return 0;
}

/* /dev/pts/ptmx of the CVM, resolved in its root (its symlinks stay in
 * it) and checked to be a devpts ptmx before it is opened. */
static int open_ptmx(struct exec_ctx *x)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	char root_path[64], fd_path[64];
	_cleanup_close_ int root = -EBADF, path_fd = -EBADF;
	struct statfs sfs;
	struct stat st;

	snprintf(root_path, sizeof(root_path), "/proc/%d/root", (int)x->cvm.init_pid);
	root = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	path_fd = root < 0 ? -1 : (int)syscall(SYS_openat2, root, "dev/pts/ptmx", &how, sizeof(how));
	if (path_fd < 0 || fstat(path_fd, &st) < 0 || fstatfs(path_fd, &sfs) < 0 ||
	    !S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2 ||
	    sfs.f_type != DEVPTS_SUPER_MAGIC) {
		log_error("exec -t: %s: no devpts ptmx at /dev/pts/ptmx in CVM %s", root_path,
			  x->cvm.name);
		return -ENODEV;
	}
	snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", path_fd);
	return open(fd_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
}

/* The host id that id 0 of the CVM is (its init's uid_map or gid_map). */
static int host_id_of_root(pid_t init, const char *file, unsigned long *out)
{
	char path[64], buf[4096];
	unsigned long in, host, count;
	int off = 0, n;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)init, file);
	if (read_at_buf(AT_FDCWD, path, buf, sizeof(buf)) < 0)
		return -EIO;
	while (sscanf(buf + off, "%lu %lu %lu%n", &in, &host, &count, &n) == 3) {
		if (in == 0 && count > 0) {
			*out = host;
			return 0;
		}
		off += n;
	}
	return -ENOENT;
}

/* The slave is made by us, host root, an id the CVM's user namespace does
 * not map: its root could not chown it to USER. Make it CVM root's. */
static int pty_to_cvm_root(struct exec_ctx *x)
{
	unsigned long uid, gid;

	if (!x->own_userns)
		return 0;
	if (host_id_of_root(x->cvm.init_pid, "uid_map", &uid) < 0 ||
	    host_id_of_root(x->cvm.init_pid, "gid_map", &gid) < 0 ||
	    fchown(x->slave, (uid_t)uid, (gid_t)gid) < 0) {
		log_error("exec -t: %s: no root in the CVM's id map to give the pty to",
			  x->cvm.name);
		return -EPERM;
	}
	return 0;
}

static int open_pty(struct exec_ctx *x, int *master)
{
	int unlock = 0;

	if ((*master = open_ptmx(x)) < 0)
		return *master == -ENODEV ? -ENODEV : (log_error("exec -t: open ptmx: %s",
								 strerror(errno)), -errno);
	x->slave = ioctl(*master, TIOCSPTLCK, &unlock) < 0 ? -1 :
		   ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (x->slave < 0) {
		log_error("exec -t: pty slave: %s", strerror(errno));
		return -errno;
	}
	pty_winsize(*master);
	return pty_to_cvm_root(x);
}

/* Fork the joiner; it sends CMD's pid (ours to reap: we are the
 * subreaper) and exits 0, or says what failed and exits non-zero. */
static pid_t start(struct exec_ctx *x)
{
	int fds[2], status;
	pid_t joiner, cmd = -1;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 || pipe2(fds, O_CLOEXEC) < 0) {
		log_error("exec: %s", strerror(errno));
		return -1;
	}
	/* CMD's sysinfo and sched_getaffinity answered as the CVM's are
	 * (launch/notif.c), where its launcher traps them. */
	if (x->seccomp && x->cvm.trap[0] && notif_open(x->cvm.name, x->cvm.trap) < 0)
		log_warn("exec: %s: no system-call supervisor: sysinfo and sched_getaffinity "
			 "show the host's to CMD", x->cvm.trap);
	fflush(NULL);
	joiner = fork();
	if (joiner == 0) {
		close(fds[0]);
		x->report = fds[1];
		join_and_spawn(x);
	}
	close(fds[1]);
	if (joiner > 0 && notif_run() < 0)
		log_warn("exec: no supervisor thread: sysinfo and sched_getaffinity may fail "
			 "with ENOSYS in CMD once it runs alone");
	if (joiner < 0 || read(fds[0], &cmd, sizeof(cmd)) != (ssize_t)sizeof(cmd))
		cmd = -1;
	close(fds[0]);
	if (joiner > 0)
		waitpid(joiner, &status, 0);
	return cmd;
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : EXIT_SETUP;
}

/* Without a pty CMD shares our terminal: the signals the terminal sends
 * (si_code SI_KERNEL) reach it directly, those sent to cvmctl are passed on. */
static void forward(const struct signalfd_siginfo *si, pid_t cmd, bool pty)
{
	if (si->ssi_signo == SIGCHLD || si->ssi_signo == SIGWINCH)
		return;
	if (pty || si->ssi_code == SI_USER || si->ssi_code == SI_QUEUE)
		kill(cmd, (int)si->ssi_signo);
}

/* Without -t: forward signals until CMD ends. */
static int wait_plain(pid_t cmd, int sfd)
{
	struct signalfd_siginfo si;
	int status;

	for (;;) {
		struct pollfd p = { sfd, POLLIN, 0 };

		if (waitpid(cmd, &status, WNOHANG) == cmd)
			return status;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			forward(&si, cmd, false);
	}
}

static int prepare(struct exec_ctx *x, const char *name)
{
	int r = cvm_find(x->o->run_dir, name, &x->cvm);

	if (r < 0 || (r = open_init(x)) < 0 || (r = init_status(x)) < 0 ||
	    (r = own_userns(x)) < 0 || (r = check_env(x)) < 0)
		return r;
	if (geteuid() != 0) {
		log_error("exec: %s: must run as root (it joins the CVM's namespaces)", name);
		return -EPERM;
	}
	if (!x->own_userns && !exe_is_sealed()) {
		log_error("exec: %s: its root is host root and cvmctl could not run from a sealed "
			  "copy of itself (memfd): refusing (CVE-2019-5736)", name);
		return -EPERM;
	}
	return 0;
}

int ctl_exec(const struct ctl_opts *o, const char *name, char **cmd)
{
	struct exec_ctx x = { .o = o, .cmd = cmd, .pidfd = -EBADF, .slave = -EBADF };
	_cleanup_close_ int master = -EBADF, sfd = -EBADF;
	sigset_t set, old;
	int r, status = 0;
	pid_t child;

	r = prepare(&x, name);
	if (r == 0 && o->tty)
		r = open_pty(&x, &master);
	if (r < 0)
		return CTL_EXIT_FAIL;
	exec_signals(&set);
	sigprocmask(SIG_BLOCK, &set, &old);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	child = sfd < 0 ? -1 : start(&x);
	if (x.slave >= 0)
		close(x.slave); /* CMD's now: the master sees EIO once it is gone */
	close(x.pidfd);
	if (child < 0) {
		notif_end();
		return EXIT_SETUP; /* the joiner said why */
	}
	if (master >= 0)
		status = pty_relay(master, child, sfd);
	else
		status = wait_plain(child, sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	notif_end();
	return status < 0 ? EXIT_SETUP : exit_code(status);
}
