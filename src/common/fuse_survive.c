/* See include/cvmfs/fuse_survive.h. One thread, poll over a signalfd and
 * the keeper socket its servers report on; it never touches the mounts
 * itself, so it cannot block on a server that is gone. */
#include "cvmfs/fuse_survive.h"
#include "cvmfs/cleanup.h"
#include "cvmfs/daemon.h"
#include "cvmfs/fuse_takeover.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define BASE_FDS 65536
#define ENV_TAKEOVER "CVMFS_FUSE_SURVIVE_TAKEOVER"

struct keeper_msg {
	char kind; /* 'F': connection idx mounted on fd, 'R': serving, else the daemon's */
	unsigned idx;
	int fd;
	char data[FUSE_SURVIVE_MSG];
};

/* The last 64 crash times. */
struct crash_ring {
	uint64_t ns[64];
	unsigned n;
};

static struct {
	pid_t child;
	int sigfd, keeper, notify_fd;
	bool stopping, done, ever_ready;
	int status;
	uint64_t died_ns;
	struct crash_ring crashes;
	uint8_t base[BASE_FDS / 8]; /* fds open in the supervisor at the clone */
	bool upgraded;
	char exe[PATH_MAX];
} P = { .sigfd = -1, .keeper = -1, .notify_fd = -1 };

static uint64_t survive_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Record a crash at now; false (after one error line) when max crashes
 * fell within window_s. */
static bool crash_budget_left(struct crash_ring *r, uint64_t now, uint64_t max, uint64_t window_s)
{
	const unsigned ring = sizeof(r->ns) / sizeof(r->ns[0]);
	uint64_t window = window_s * 1000000000ull;
	unsigned n = 0;

	r->ns[r->n++ % ring] = now;
	for (unsigned i = 0; i < ring && i < r->n; i++)
		if (now - r->ns[i] <= window)
			n++;
	if (max > ring)
		max = ring;
	if (n < max)
		return true;
	log_error("server crashed %u times within %llu s: giving up (the mounts end with this "
		  "process)", n, (unsigned long long)window_s);
	return false;
}

/* ---- server side ---- */

/* m, with copies of fds for the supervisor. */
static void keeper_send(struct fuse_survive *s, const struct keeper_msg *m, const int *fds,
			int nfds)
{
	char cbuf[CMSG_SPACE(FUSE_SURVIVE_MSG_FDS * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)m, sizeof(*m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds > 0 && nfds <= FUSE_SURVIVE_MSG_FDS) {
		h.msg_control = cbuf;
		h.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&h);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	if (s->keeper >= 0 && sendmsg(s->keeper, &h, MSG_NOSIGNAL) < 0)
		log_warn("telling the supervisor (%c): %s", m->kind, strerror(errno));
}

void fuse_survive_send(struct fuse_survive *s, char kind, const void *data, size_t len,
		       const int *fds, int nfds)
{
	struct keeper_msg m = { .kind = kind };

	memcpy(m.data, data, MIN(len, sizeof(m.data)));
	keeper_send(s, &m, fds, nfds);
}

/* A forked server hands the supervisor a copy; a clone shares the fd. */
void fuse_survive_mounted_at(struct fuse_survive *s, unsigned i, int fd)
{
	struct keeper_msg m = { .kind = 'F', .idx = i, .fd = fd };

	s->fuse_fds[i] = fd;
	keeper_send(s, &m, &fd, s->fork_servers ? 1 : 0);
}

void fuse_survive_mounted(struct fuse_survive *s, int fd)
{
	fuse_survive_mounted_at(s, 0, fd);
}

/* Daemonised, the server lets go of the starter's stdio too (its
 * starter waits for the end of its output). */
void fuse_survive_ready(struct fuse_survive *s, bool foreground)
{
	struct keeper_msg m = { .kind = 'R' };
	int null;

	keeper_send(s, &m, NULL, 0);
	if (foreground || (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		return;
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	close(null);
}

/* One of the connections' fds? */
static bool conn_fd(const struct fuse_survive *s, int fd)
{
	for (unsigned i = 0; i < s->nconns; i++)
		if (fd == s->fuse_fds[i] || fd == s->init_stores[i])
			return true;
	return false;
}

/* Was fd open in the supervisor (its own, kept by every server)? */
static bool base_fd(int fd)
{
	return fd >= 0 && fd < BASE_FDS && (P.base[fd / 8] & (1u << (fd % 8)));
}

/* A new clone, first thing: close every fd a dead server left but the
 * supervisor's, the connections and those keep wants. The count. */
static unsigned close_leftovers(const struct fuse_survive *s, bool (*keep)(int fd))
{
	_cleanup_closedir_ DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;
	struct dirent *e;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd == dirfd(d) || fd <= 2 || conn_fd(s, fd) ||
		    base_fd(fd) || (keep && keep(fd)))
			continue;
		close(fd);
		n++;
	}
	return n;
}

/* ---- supervisor ---- */

static void note_base_fds(const struct fuse_survive *s)
{
	_cleanup_closedir_ DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(P.base, 0, sizeof(P.base));
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);

		/* Files an upgrade carried over are the kernel's, not ours. */
		if (e->d_name[0] != '.' && fd != dirfd(d) && fd < BASE_FDS &&
		    !(s->carry_fd && s->carry_fd(fd)))
			P.base[fd / 8] |= (uint8_t)(1u << (fd % 8));
	}
}

static int setup_signals(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR2 };
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	P.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	return P.sigfd < 0 ? log_error_errno(-errno, "signalfd") : 0;
}

/* What the exec keeps: the connections, their INIT, the daemon's extra
 * fds and the fds carry_fd names (no server runs: the table is still). */
static void set_carried_cloexec(const struct fuse_survive *s, bool on)
{
	_cleanup_closedir_ DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (conn_fd(s, fd) || fd == s->extra_fds[0] || fd == s->extra_fds[1] ||
		    (s->carry_fd && s->carry_fd(fd)))
			fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0);
	}
}

/* The upgrade's environment: "gen,extra,extra" then ",fuse,init" for each
 * connection. */
static void takeover_env(const struct fuse_survive *s, char *env, size_t len)
{
	size_t off =
	    (size_t)snprintf(env, len, "%u,%d,%d", s->gen, s->extra_fds[0], s->extra_fds[1]);

	for (unsigned i = 0; i < s->nconns && off < len; i++)
		off += (size_t)snprintf(env + off, len - off, ",%d,%d", s->fuse_fds[i],
					s->init_stores[i]);
}

bool fuse_survive_inherited(struct fuse_survive *s)
{
	const char *e = getenv(ENV_TAKEOVER);
	int off = 0, n = 0;

	if (!e || sscanf(e, "%u,%d,%d%n", &s->gen, &s->extra_fds[0], &s->extra_fds[1], &off) != 3)
		return false;
	for (s->nconns = 0; s->nconns < FUSE_SURVIVE_CONNS; s->nconns++, off += n)
		if (sscanf(e + off, ",%d,%d%n", &s->fuse_fds[s->nconns],
			   &s->init_stores[s->nconns], &n) != 2)
			break;
	unsetenv(ENV_TAKEOVER);
	set_carried_cloexec(s, true);
	P.upgraded = s->nconns > 0;
	return P.upgraded;
}

int fuse_survive_setup(struct fuse_survive *s)
{
	int pair[2];

	if (!realpath("/proc/self/exe", P.exe))
		return log_error_errno(-errno, "/proc/self/exe");
	if (!s->nconns)
		s->nconns = 1;
	for (unsigned i = 0; i < s->nconns; i++) {
		if (!P.upgraded) {
			s->fuse_fds[i] = -1;
			s->init_stores[i] = fuse_takeover_store_new("cvmfs-fuse-init");
		}
		if (s->init_stores[i] < 0)
			return log_error_errno(s->init_stores[i], "memfd");
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return log_error_errno(-errno, "socketpair");
	P.keeper = pair[0];
	s->keeper = pair[1];
	return setup_signals();
}

/* The offset of glibc's cached thread id in our thread descriptor, found
 * by its value: a clone made without glibc's fork() must have it set (as
 * fork() does) or the server's main thread would carry the supervisor's. */
static pid_t *self_tid_slot(void)
{
	pid_t *p = (pid_t *)(void *)pthread_self(), tid = (pid_t)syscall(SYS_gettid);

	for (int i = 0; i < 1024; i++)
		if (p[i] == tid)
			return &p[i];
	return NULL;
}

/* A fork() that shares the fd table: fork()'s own clone, plus CLONE_FILES.
 * The supervisor is single-threaded, so no lock is held at the clone. */
static pid_t clone_files(void)
{
	pid_t *tid = self_tid_slot();
	unsigned long flags = CLONE_FILES | SIGCHLD | (tid ? CLONE_CHILD_SETTID : 0);

	return (pid_t)syscall(SYS_clone, flags, NULL, NULL, tid, NULL);
}

/* Returns true in the new server. */
static bool spawn(struct fuse_survive *s)
{
	pid_t parent = getpid(), pid;

	s->gen++;
	pid = s->fork_servers ? fork() : clone_files();
	if (pid < 0) {
		log_error("starting a server: %s: retrying in 100 ms", strerror(errno));
		nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
		return false;
	}
	if (pid > 0) {
		P.child = pid;
		return false;
	}
	/* A supervisor killed with SIGKILL takes its server along: the
	 * connection then ends as it did without a supervisor. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (s->fork_servers) { /* the fds that are the supervisor's alone */
		close(P.keeper);
		close(P.sigfd);
		if (P.notify_fd >= 0)
			close(P.notify_fd);
	} else if (s->gen > 1) {
		close_leftovers(s, s->keep_fd);
	}
	return true;
}

static void on_ready(struct fuse_survive *s)
{
	if (!P.ever_ready) {
		log_info("%s %s (build %s): supervisor pid %d, server pid %d%s", s->prog,
			 CVMFS_VERSION, daemon_build_id(), (int)getpid(), (int)P.child,
			 P.upgraded ? " (upgraded in place: the connection taken over)" : "");
		daemon_ready(P.notify_fd);
		P.notify_fd = -1;
		P.ever_ready = true;
		return;
	}
	if (P.died_ns)
		log_info("server pid %d (generation %u) took over in %.1f ms", (int)P.child, s->gen,
			 (double)(survive_now_ns() - P.died_ns) / 1e6);
	P.died_ns = 0;
}

/* A connection mounted: our copy (forked servers) or its number. */
static void on_mounted(struct fuse_survive *s, unsigned i, int fd)
{
	if (s->fork_servers && s->fuse_fds[i] >= 0)
		close(s->fuse_fds[i]);
	s->fuse_fds[i] = fd;
}

static void on_keeper(struct fuse_survive *s)
{
	char cbuf[CMSG_SPACE(FUSE_SURVIVE_MSG_FDS * sizeof(int))] = { 0 };
	struct keeper_msg m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fds[FUSE_SURVIVE_MSG_FDS] = { -1, -1, -1 }, n = 0;

	if (recvmsg(P.keeper, &h, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) != sizeof(m))
		return;
	c = CMSG_FIRSTHDR(&h);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		n = MIN((int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)), FUSE_SURVIVE_MSG_FDS);
		memcpy(fds, CMSG_DATA(c), (size_t)n * sizeof(int));
	}
	if (m.kind == 'F' && m.idx < s->nconns && n == (s->fork_servers ? 1 : 0)) {
		on_mounted(s, m.idx, s->fork_servers ? fds[0] : m.fd);
		return;
	}
	if (m.kind != 'F' && m.kind != 'R' && s->on_message) {
		s->on_message(m.kind, m.data, fds, n);
		return;
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (m.kind == 'R')
		on_ready(s);
}

/* Only a connection whose kernel resends what the dead server had read
 * can be taken over with no caller seeing an error. */
static bool can_take_over(struct fuse_survive *s)
{
	for (unsigned i = 0; i < s->nconns; i++)
		if (s->fuse_fds[i] < 0 || s->no_resend ||
		    !fuse_takeover_can_resend(s->init_stores[i])) {
			log_error("cannot take the connection over (%s): not restarting",
				  s->fuse_fds[i] < 0 ? "not mounted"
						     : "no FUSE_NOTIFY_RESEND, Linux < 6.9");
			return false;
		}
	return true;
}

static void on_child_exit(struct fuse_survive *s, int st)
{
	char how[64];

	P.child = 0;
	if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(st));
	/* A first server that dies before it serves: a start that failed
	 * (not after an upgrade, whose connection lives on). */
	if (P.stopping || (WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
	    (!P.ever_ready && !P.upgraded)) {
		/* One that exited said why itself; a signal says nothing. */
		if (!P.stopping && !P.ever_ready && WIFSIGNALED(st))
			log_error("server died (%s) before it served: a start that failed, "
				  "not restarted", how);
		P.status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
		P.done = true;
		return;
	}
	P.died_ns = survive_now_ns();
	log_warn("server died (%s): restarting", how);
	if (!crash_budget_left(&P.crashes, P.died_ns, s->max_crashes, s->crash_window_s) ||
	    !can_take_over(s)) {
		P.status = 1;
		P.done = true;
	}
}

/* Our own command line, for the exec of an upgrade; NULL if it does not
 * fit. */
static char **survive_own_argv(void)
{
	static char buf[8192];
	static char *argv[64];
	_cleanup_close_ int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	int argc = 0;

	if (n <= 0 || n == (ssize_t)sizeof(buf) - 1)
		return NULL;
	buf[n] = '\0';
	for (char *p = buf; p < buf + n && argc < 63; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	return argv;
}

/* SIGUSR2: exec the binary at our path (a package upgrade replaced it)
 * keeping the connections; the new supervisor's first server takes them
 * over as after a crash. */
static void upgrade(struct fuse_survive *s)
{
	char **argv = survive_own_argv();
	char env[160];

	if (!s->can_upgrade || !argv || !can_take_over(s)) {
		log_error("SIGUSR2: cannot upgrade in place%s: keeping this version",
			  s->can_upgrade ? "" : " (the daemon said why at its start)");
		return;
	}
	log_info("SIGUSR2: upgrading: exec %s, keeping the connections", P.exe);
	if (P.child) {
		kill(P.child, SIGKILL);
		waitpid(P.child, NULL, 0);
		P.child = 0;
		P.died_ns = survive_now_ns();
	}
	takeover_env(s, env, sizeof(env));
	set_carried_cloexec(s, false);
	setenv(ENV_TAKEOVER, env, 1);
	if (!s->before_exec || s->before_exec() == 0)
		execv(P.exe, argv);
	log_error("SIGUSR2: exec %s: %s: keeping this version", P.exe, strerror(errno));
	unsetenv(ENV_TAKEOVER);
	set_carried_cloexec(s, true);
}

static void on_signal(struct fuse_survive *s)
{
	struct signalfd_siginfo si;
	pid_t pid;
	int st;

	if (read(P.sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	switch (si.ssi_signo) {
	case SIGCHLD:
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (pid == P.child)
				on_child_exit(s, st);
		break;
	case SIGHUP:
		if (P.child)
			kill(P.child, SIGHUP);
		break;
	case SIGUSR2:
		upgrade(s);
		break;
	default: /* SIGTERM, SIGINT: the server stops (unmounts), then we do */
		P.stopping = true;
		if (P.child)
			kill(P.child, SIGTERM);
		else
			P.done = true;
	}
}

static void wait_event(struct fuse_survive *s)
{
	struct pollfd p[2] = { { P.sigfd, POLLIN, 0 }, { P.keeper, POLLIN, 0 } };

	if (poll(p, 2, -1) < 0)
		return;
	if (p[1].revents & POLLIN)
		on_keeper(s);
	if (p[0].revents & POLLIN)
		on_signal(s);
}

int fuse_survive_run(struct fuse_survive *s, int notify_fd)
{
	P.notify_fd = notify_fd;
	/* The syslog socket open now, among the supervisor's own fds (a server
	 * closes what is not). */
	openlog(s->prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	note_base_fds(s);
	while (!P.done) {
		if (!P.child && !P.stopping) {
			if (P.died_ns && s->restart_ms)
				nanosleep(&(struct timespec){ (time_t)(s->restart_ms / 1000),
							      (long)(s->restart_ms % 1000) * 1000000 },
					  NULL);
			if (spawn(s))
				return -1;
		}
		wait_event(s);
	}
	/* The connections end with this process (a clone that stopped closed
	 * them already, in the table we share; our copies here). */
	for (unsigned i = 0; s->fork_servers && i < s->nconns; i++)
		if (s->fuse_fds[i] >= 0)
			close(s->fuse_fds[i]);
	return P.status;
}
