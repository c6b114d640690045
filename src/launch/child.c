/* Step "start": clone the inner child into new mount, PID, UTS, IPC (and
 * unless --net host, network; with --userns, user) namespaces; with --userns
 * the parent maps its ids, with --net private it wires the network
 * (net.c); then the parent forwards signals and waits. The
 * child reports a setup failure through a close-on-exec pipe: EOF without
 * a report means CMD was exec'ed. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <linux/openat2.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct child_report {
	int err;       /* negative errno */
	int exit_code; /* what the launcher exits with */
};

static int err_pipe = -EBADF; /* parent: read end; child: write end */
/* --userns or --net private: the parent writes one byte once the id maps
 * are written and the network is wired, and keeps its end open until the
 * CVM is gone; child: read end. */
static int sync_pipe = -EBADF;

static int loopback_up(struct launch *L)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };

	if (s < 0)
		return step_error(L, -errno, "socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return step_error(L, -errno, "SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return step_error(L, -errno, "SIOCSIFFLAGS lo up");
	return 0;
}

/* CMD's environment: nothing of the host's but TERM. */
static int set_env(struct launch *L)
{
	if (env_fresh("/root") < 0 || setenv("container", "cvmfs", 1) < 0)
		return step_error(L, -ENOMEM, "environment");
	return 0;
}

/* --console pty: a session of our own whose controlling terminal is the
 * slave (also /dev/console), on stdin/stdout/stderr. */
static int console_attach(struct launch *L)
{
	int fd = L->console_slave;

	if (fd < 0)
		return 0;
	if (setsid() < 0)
		return step_error(L, -errno, "setsid");
	if (ioctl(fd, TIOCSCTTY, 0) < 0)
		return step_error(L, -errno, "TIOCSCTTY %s", L->console_path);
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) < 0)
			return step_error(L, -errno, "dup2 console");
	if (fd > 2)
		close(fd);
	L->console_slave = -EBADF;
	return 0;
}

static int child_setup(struct launch *L)
{
	sigset_t none;
	int r;

	L->step = "cgroup";
	/* Join first: the new cgroup namespace is rooted where we stand. */
	if ((r = L->cg->join(L)) < 0)
		return r;
	L->step = "namespaces";
	if (unshare(CLONE_NEWCGROUP) < 0)
		return step_error(L, -errno, "unshare cgroup namespace");
	if ((r = lcg_enter_leaf(L)) < 0)
		return r;
	if (net_own_ns(L) && (r = loopback_up(L)) < 0)
		return r;
	L->step = "mounts";
	if ((r = child_mounts(L)) < 0 || (r = net_child(L)) < 0 || (r = child_pivot(L)) < 0)
		return r;
	L->step = "hostname";
	if (sethostname(L->o.hostname, strlen(L->o.hostname)) < 0)
		return step_error(L, -errno, "%s", L->o.hostname);
	L->step = "capabilities";
	if ((r = caps_drop(L->o.caps)) < 0)
		return step_error(L, r, "drop to '%s'", L->o.caps);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return step_error(L, -errno, "no_new_privs");
	L->step = "exec";
	if ((r = set_env(L)) < 0 || (r = console_attach(L)) < 0)
		return r;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Last before exec: the seccomp filter (seccomp.c). */
	L->step = "seccomp";
	if ((r = seccomp_install(L)) < 0)
		return r;
	return 0;
}

/* Whether the launcher is gone: its end of the sync pipe closed. */
static bool parent_gone(void)
{
	struct pollfd p = { sync_pipe, POLLIN, 0 };

	return poll(&p, 1, 0) != 0 && (p.revents & (POLLHUP | POLLERR));
}

/* --userns: the child starts as the unmapped host root of a fresh user
 * namespace. Once the parent has written the maps it becomes uid/gid 0
 * inside (the mapped range's first id outside), without the host's
 * supplementary groups, still with every capability of its namespace. */
static int become_userns_root(struct launch *L)
{
	char go;

	L->step = "userns";
	if (read(sync_pipe, &go, 1) != 1)
		return step_error(L, -EPIPE, "no uid/gid map from the launcher");
	if (setresgid(0, 0, 0) < 0)
		return step_error(L, -errno, "setresgid 0");
	if (setgroups(0, NULL) < 0)
		return step_error(L, -errno, "setgroups");
	if (setresuid(0, 0, 0) < 0)
		return step_error(L, -errno, "setresuid 0");
	/* A change of euid clears the parent-death signal: set it again, then
	 * make sure the launcher did not die in between. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return step_error(L, -errno, "PDEATHSIG");
	if (parent_gone())
		return step_error(L, -ESRCH, "the launcher is gone");
	close(sync_pipe);
	sync_pipe = -EBADF;
	return 0;
}

/* --net private without --userns: CMD starts once its network is wired. */
static int wait_network(struct launch *L)
{
	char go;

	L->step = "net";
	if (read(sync_pipe, &go, 1) != 1)
		return step_error(L, -EPIPE, "no network from the launcher");
	close(sync_pipe);
	sync_pipe = -EBADF;
	return 0;
}

static _Noreturn void child_fail(int r, int code)
{
	struct child_report rep = { r, code };

	if (write(err_pipe, &rep, sizeof(rep)) < 0)
		_exit(code);
	_exit(code);
}

/* Runs in: the inner child, PID 1 of the new PID namespace, in new mount,
 * UTS, IPC (and net) namespaces, still with full root capabilities and the
 * host's cgroup namespace and root directory. Ends in exec of CMD or in
 * _exit after reporting on err_pipe. */
static _Noreturn void child_main(struct launch *L)
{
	int r;

	/* If the launcher dies, the CVM dies with it (PID 1 takes the rest). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(LAUNCH_EXIT_FAIL);
	r = L->o.userns ? become_userns_root(L) : sync_pipe >= 0 ? wait_network(L) : 0;
	if (r == 0)
		r = child_setup(L);
	if (r < 0)
		child_fail(r, LAUNCH_EXIT_FAIL);
	execvp(L->cmd[0], L->cmd);
	r = -errno;
	log_error_errno(r, "exec: %s", L->cmd[0]);
	child_fail(r, r == -ENOENT ? 127 : 126);
}

/* "0 BASE COUNT" into /proc/PID/{uid,gid}_map. As root of the initial
 * namespace (CAP_SETGID there) we may write gid_map without denying
 * setgroups first. */
static int write_map(struct launch *L, const char *file, uint64_t base)
{
	char path[64], map[64];
	_cleanup_close_ int fd = -EBADF;
	int len;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)L->child_pid, file);
	len = snprintf(map, sizeof(map), "0 %llu %llu\n", (unsigned long long)base,
		       (unsigned long long)L->o.userns_count);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return step_error(L, -errno, "open %s", path);
	if (write(fd, map, (size_t)len) != len)
		return step_error(L, -errno, "write '%.*s' to %s", len - 1, map, path);
	return 0;
}

static int map_ids(struct launch *L)
{
	int r;

	if ((r = write_map(L, "uid_map", L->o.userns_uid)) < 0 ||
	    (r = write_map(L, "gid_map", L->o.userns_gid)) < 0)
		return r;
	return 0;
}

/* Once mapped and wired, the child goes on (become_userns_root,
 * wait_network). */
static int release_child(struct launch *L)
{
	int r;

	if (L->o.userns && (r = map_ids(L)) < 0)
		return r;
	if ((r = net_attach(L)) < 0)
		return r;
	L->step = "start";
	if (sync_pipe >= 0 && write(sync_pipe, "1", 1) != 1)
		return step_error(L, -errno, "release the child");
	return 0;
}

static void close_pair(int fds[2])
{
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
}

/* --console pty: the master stays with the launcher, which copies what
 * CMD writes to its own stdout; opened O_NOCTTY, it never becomes the
 * launcher's terminal. The slave goes to the child (stdio, /dev/console). */
static int console_open(struct launch *L)
{
	int m;

	if (strcmp(L->o.console, "pty"))
		return 0;
	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return step_error(L, -errno, "posix_openpt");
	L->console_master = m;
	if (grantpt(m) < 0 || unlockpt(m) < 0 ||
	    ptsname_r(m, L->console_path, sizeof(L->console_path)) != 0)
		return step_error(L, -errno, "pty");
	L->console_slave = open(L->console_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (L->console_slave < 0)
		return step_error(L, -errno, "open %s", L->console_path);
	if (L->o.userns && fchown(L->console_slave, (uid_t)L->o.userns_uid,
				  (gid_t)L->o.userns_gid) < 0)
		return step_error(L, -errno, "chown %s", L->console_path);
	return 0;
}

/* Is CMD, resolved inside the CVM's root (symlinks like /sbin/init ->
 * /lib/systemd/systemd followed there, not on the host), systemd? Then
 * it gets the pty console by default and SIGRTMIN+3 for SIGTERM. */
static int detect_systemd(struct launch *L)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	char link[64], target[PATH_MAX];
	const char *base;
	ssize_t n;
	int root, fd;

	if (!L->systemd && strchr(L->cmd[0], '/') &&
	    (root = open(L->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fd = (int)syscall(SYS_openat2, root, L->cmd[0], &how, sizeof(how));
		close(root);
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = fd >= 0 ? readlink(link, target, sizeof(target) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			target[n] = '\0';
			base = strrchr(target, '/');
			L->systemd = !strcmp(base ? base + 1 : target, "systemd");
		}
	}
	if (!L->o.console && !(L->o.console = strdup(L->systemd ? "pty" : "inherit")))
		return -ENOMEM;
	return 0;
}

int step_child(struct launch *L)
{
	int fds[2], sfds[2] = { -EBADF, -EBADF }, r;
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
	pid_t pid;

	if ((r = detect_systemd(L)) < 0 || (r = mounts_prepare(L)) < 0 ||
	    (r = inner_prepare(L)) < 0 ||
	    (r = console_open(L)) < 0 || (r = notif_prepare(L)) < 0 ||
	    (r = net_prepare(L)) < 0)
		return r;
	if (net_own_ns(L))
		flags |= CLONE_NEWNET;
	/* The user namespace is created first by the kernel and owns all the
	 * others, so root inside may mount proc, tmpfs, devpts there. */
	if (L->o.userns)
		flags |= CLONE_NEWUSER;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return step_error(L, -errno, "pipe");
	if ((L->o.userns || net_private(L)) && pipe2(sfds, O_CLOEXEC) < 0) {
		r = -errno;
		close_pair(fds);
		return step_error(L, r, "pipe");
	}
	fflush(NULL);
	/* Raw clone with fork semantics: the child continues on a copy of
	 * our stack, already in its new namespaces. */
	pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0UL);
	if (pid < 0) {
		r = -errno;
		close_pair(fds);
		close_pair(sfds);
		return step_error(L, r, "clone");
	}
	if (pid == 0) {
		close(fds[0]);
		err_pipe = fds[1];
		if (sfds[1] >= 0)
			close(sfds[1]);
		sync_pipe = sfds[0];
		child_main(L);
	}
	close(fds[1]);
	err_pipe = fds[0];
	/* Only the CVM holds the slave: the master sees EIO once it is gone. */
	if (L->console_slave >= 0)
		close(L->console_slave);
	L->console_slave = -EBADF;
	if (sfds[0] >= 0)
		close(sfds[0]);
	sync_pipe = sfds[1];
	L->child_pid = pid;
	if ((r = notif_start(L)) < 0)
		return r;
	return release_child(L);
}

/* Non-blocking look at the pipe: 1 with a report, 0 at EOF (exec'ed or
 * died), -EAGAIN while the child is still setting up. */
static int read_report(struct child_report *rep)
{
	ssize_t n = read(err_pipe, rep, sizeof(*rep));

	if (n == (ssize_t)sizeof(*rep))
		return 1;
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	return 0;
}

/* PID 1 of a PID namespace ignores signals it has no handler for, even
 * ours; it dies of SIGINT only when it calls reboot(2) to power off or
 * halt (systemd does with CAP_SYS_BOOT): a clean shutdown, exit 0. */
static int exit_code_of(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT)
		return 0;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return LAUNCH_EXIT_FAIL;
}

static int open_signalfd(void)
{
	sigset_t set;

	launch_signals(&set);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

struct waiter {
	struct launch *L;
	bool reported; /* a setup failure was reported */
	int report_code;
	double kill_at; /* 0: no stop requested */
};

static void on_pipe(struct waiter *w)
{
	struct child_report rep;
	int r = read_report(&rep);

	if (r == -EAGAIN)
		return;
	if (r == 1) {
		w->reported = true;
		w->report_code = rep.exit_code;
	} else {
		log_debug("CMD exec'ed %.1f ms after start", (now_s() - w->L->t_start) * 1e3);
		record_write(w->L); /* the CVM is up: cvmctl's record (record.c) */
	}
	close(err_pipe);
	err_pipe = -EBADF;
}

/* Forward to PID 1. PID 1 ignores signals it has no handler for (sleep,
 * sh): after SIGTERM or SIGINT it gets stop-timeout seconds, then SIGKILL. */
static void on_signal(struct waiter *w, int sig)
{
	/* systemd halts on SIGRTMIN+3 (SIGTERM would make it re-execute). */
	kill(w->L->child_pid, sig == SIGTERM && w->L->systemd ? SIGRTMIN + 3 : sig);
	if ((sig == SIGTERM || sig == SIGINT) && !w->kill_at)
		w->kill_at = now_s() + (double)w->L->o.stop_timeout;
}

/* Master to our stdout until nothing is buffered. Returns -EIO while no
 * slave is open (systemd closes and hangs up /dev/console as it sets it
 * up): the master stays ours, CMD may open the console again. */
static int console_copy(struct launch *L)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(L->console_master, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -EIO;
		for (ssize_t off = 0; off < n;) {
			ssize_t k = write(STDOUT_FILENO, buf + off, (size_t)(n - off));

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break; /* stdout gone: the console output is lost */
			off += k;
		}
	}
}

/* Sets L->exit_status: CMD's, or the child's setup failure code. */
int launch_wait(struct launch *L)
{
	_cleanup_close_ int sfd = open_signalfd();
	struct waiter w = { L, false, 0, 0 };
	double console_retry = 0; /* no slave open: look again at this time */
	struct signalfd_siginfo si;
	int status;

	if (sfd < 0)
		return step_error(L, -errno, "signalfd");
	fcntl(err_pipe, F_SETFL, O_NONBLOCK);
	if (L->console_master >= 0)
		fcntl(L->console_master, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p[3] = { { sfd, POLLIN, 0 },
				       { console_retry ? -1 : L->console_master, POLLIN, 0 },
				       { err_pipe, POLLIN, 0 } };
		int timeout = -1;

		if (w.kill_at)
			timeout = MAX(0, (int)((w.kill_at - now_s()) * 1000));
		if (console_retry && (timeout < 0 || timeout > 100))
			timeout = 100;
		/* a negative fd is skipped by poll */
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			return step_error(L, -errno, "poll");
		if (err_pipe >= 0 && p[2].revents)
			on_pipe(&w);
		if (console_retry && now_s() >= console_retry)
			console_retry = 0;
		if (L->console_master >= 0 && !console_retry && p[1].revents &&
		    console_copy(L) < 0)
			console_retry = now_s() + 0.1;
		while (read(sfd, &si, sizeof(si)) == sizeof(si))
			if (si.ssi_signo != SIGCHLD)
				on_signal(&w, (int)si.ssi_signo);
		if (waitpid(L->child_pid, &status, WNOHANG) == L->child_pid)
			break;
		if (w.kill_at && now_s() >= w.kill_at) {
			log_warn("stop: %s did not exit %llu s after the signal; killing it",
				 L->cmd[0], (unsigned long long)L->o.stop_timeout);
			kill(L->child_pid, SIGKILL);
			w.kill_at = 0;
		}
	}
	L->child_pid = 0;
	if (L->console_master >= 0)
		console_copy(L);
	if (err_pipe >= 0)
		on_pipe(&w);
	L->exit_status = w.reported ? w.report_code : exit_code_of(status);
	return 0;
}

void undo_child(struct launch *L)
{
	if (L->child_pid > 0) {
		kill(L->child_pid, SIGKILL);
		waitpid(L->child_pid, NULL, 0);
	}
	L->child_pid = 0;
	notif_stop(L);
	net_undo(L); /* the CVM is gone: its network goes */
	if (err_pipe >= 0)
		close(err_pipe);
	err_pipe = -EBADF;
	if (sync_pipe >= 0)
		close(sync_pipe);
	sync_pipe = -EBADF;
	if (L->console_master >= 0)
		close(L->console_master);
	L->console_master = -EBADF;
	if (L->console_slave >= 0)
		close(L->console_slave);
	L->console_slave = -EBADF;
}
