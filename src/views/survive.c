/* The views' supervisor (survive.h). One thread, poll over a signalfd and
 * the keeper socket its servers report on; it never touches the mounts
 * itself, so it cannot block on a server that is gone. */
#include "survive.h"
#include "survive_conns.h"
#include "supervise.h"
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/daemon.h"
#include "cvmfs/fuse_survive.h"
#include "cvmfs/fuse_takeover.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENV_TAKEOVER "CVMFS_VIEWS_TAKEOVER"

struct survive views_sv = { -1, { -1, -1 }, { -1, -1 }, -1, -1, 0, false, NULL, 0 };

struct keeper_msg {
	char kind; /* 'F': a tree's fd (idx), 'R': serving, 'K': keep, 'D': drop */
	int idx;
	struct survive_conn c; /* 'K', 'D' (key) */
};

static struct {
	pid_t child;
	int sigfd, keeper; /* keeper: our end; views_sv.keeper the servers' */
	int notify_fd;
	bool stopping, done, ever_ready;
	int status;
	uint64_t died_ns; /* when the last server died, for the take-over time */
	struct crash_ring crashes;
	char exe[PATH_MAX];
} P = { .sigfd = -1, .keeper = -1, .notify_fd = -1 };

bool survive_inherited(void)
{
	const char *e = getenv(ENV_TAKEOVER);
	int *fds[] = { &views_sv.fuse[0], &views_sv.fuse[1], &views_sv.init[0],
		       &views_sv.init[1], &views_sv.ids, &views_sv.sock };

	if (!e || sscanf(e, "%d,%d,%d,%d,%d,%d,%u", fds[0], fds[1], fds[2], fds[3], fds[4],
			 fds[5], &views_sv.gen) != 7)
		return false;
	unsetenv(ENV_TAKEOVER);
	conns_from_env();
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			fcntl(*fds[i], F_SETFD, FD_CLOEXEC);
	views_sv.upgraded = true;
	return true;
}

/* Server side. */
static void keeper_send(const struct keeper_msg *m, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)m, sizeof(*m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > 0) {
		struct cmsghdr *c;

		h.msg_control = cbuf;
		h.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&h);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	if (views_sv.keeper >= 0 && sendmsg(views_sv.keeper, &h, MSG_NOSIGNAL) < 0)
		log_warn("telling the supervisor (%c): %s", m->kind, strerror(errno));
}

void survive_send_fuse(int idx, int fd)
{
	struct keeper_msg m = { .kind = 'F', .idx = idx };

	keeper_send(&m, &fd, 1);
}

/* Daemonised, the server lets go of the starter's stdio too (its
 * starter waits for the end of its output). */
void survive_ready(void)
{
	struct keeper_msg m = { .kind = 'R' };
	int null;

	keeper_send(&m, NULL, 0);
	if (views_ctx->cfg.foreground || (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		return;
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	close(null);
}

void survive_keep_conn(const struct survive_conn *c)
{
	struct keeper_msg m = { .kind = 'K', .c = *c };
	int fds[3] = { c->conn, c->listener, c->page };

	keeper_send(&m, fds, 3);
}

void survive_drop_conn(uint64_t key)
{
	struct keeper_msg m = { .kind = 'D', .c.key = key };

	keeper_send(&m, NULL, 0);
}

/* ---- supervisor ---- */

static const int sup_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR2 };

static int setup_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sup_signals) / sizeof(sup_signals[0]); i++)
		sigaddset(&set, sup_signals[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	P.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	return P.sigfd < 0 ? log_error_errno(-errno, "signalfd") : 0;
}

static int setup(const char *mnt)
{
	int pair[2];

	if (!realpath("/proc/self/exe", P.exe))
		return log_error_errno(-errno, "/proc/self/exe");
	if (!views_sv.upgraded) {
		views_sv.init[SV_SHARED] = fuse_takeover_store_new("cvmfs-views-init");
		views_sv.init[SV_CT] = fuse_takeover_store_new("cvmfs-views-ct-init");
		views_sv.ids = fuse_takeover_store_new("cvmfs-views-ids");
		if (views_sv.init[0] < 0 || views_sv.init[1] < 0 || views_sv.ids < 0)
			return log_error_errno(-ENOMEM, "memfd");
		views_sv.sock = supervise_sock_open(mnt);
	} else {
		supervise_sock_adopt(mnt, views_sv.sock);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return log_error_errno(-errno, "socketpair");
	P.keeper = pair[0];
	views_sv.keeper = pair[1];
	return setup_signals();
}

/* Returns true in the new server. */
static bool spawn(void)
{
	pid_t parent = getpid(), pid;

	views_sv.gen++;
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s: retrying in 100 ms", strerror(errno));
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
	close(P.keeper);
	close(P.sigfd);
	if (P.notify_fd >= 0) /* the supervisor reports readiness */
		close(P.notify_fd);
	return true;
}

static void on_ready(void)
{
	if (!P.ever_ready) {
		log_info("cvmfsd views %s (build %s): supervisor pid %d, server pid %d",
			 CVMFS_VERSION, daemon_build_id(), (int)getpid(), (int)P.child);
		daemon_ready(P.notify_fd);
		P.notify_fd = -1;
		P.ever_ready = true;
		return;
	}
	if (P.died_ns)
		log_info("server pid %d (generation %u) took over in %.1f ms", (int)P.child,
			 views_sv.gen, (double)(now_ns() - P.died_ns) / 1e6);
	P.died_ns = 0;
}

static void on_keeper(void)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))] = { 0 };
	struct keeper_msg m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fds[3] = { -1, -1, -1 }, n = 0;

	if (recvmsg(P.keeper, &h, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) != sizeof(m))
		return;
	c = CMSG_FIRSTHDR(&h);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(c), (size_t)MIN(n, 3) * sizeof(int));
	}
	if (m.kind == 'F' && n == 1 && m.idx >= 0 && m.idx < SV_NFUSE) {
		if (views_sv.fuse[m.idx] >= 0)
			close(views_sv.fuse[m.idx]);
		views_sv.fuse[m.idx] = fds[0];
		return;
	}
	if (m.kind == 'K' && n == 3) {
		m.c.conn = fds[0], m.c.listener = fds[1], m.c.page = fds[2];
		m.c.name[sizeof(m.c.name) - 1] = '\0';
		conns_keep(&m.c);
		return;
	}
	for (int i = 0; i < MIN(n, 3); i++)
		close(fds[i]);
	if (m.kind == 'D')
		conns_drop(m.c.key);
	else if (m.kind == 'R')
		on_ready();
}

/* Only a connection whose kernel resends what the dead server had read
 * can be taken over with no caller seeing an error. Else the supervisor
 * ends like the daemon used to (doc/cvmfsd-views.md). */
static bool can_take_over(void)
{
	const char *no = getenv("CVMFS_VIEWS_TEST_NO_RESEND");

	for (int i = 0; i < SV_NFUSE; i++)
		if (views_sv.fuse[i] < 0 || (no && *no) ||
		    !fuse_takeover_can_resend(views_sv.init[i])) {
			log_error("%s: cannot take the connection over (%s): not restarting",
				  i ? "ct" : "shared tree",
				  views_sv.fuse[i] < 0 ? "not mounted"
						       : "no FUSE_NOTIFY_RESEND, Linux < 6.9");
			return false;
		}
	return true;
}

static void on_child_exit(int st)
{
	char how[64];

	P.child = 0;
	if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(st));
	if (P.stopping || (WIFEXITED(st) && WEXITSTATUS(st) == 0) || !P.ever_ready) {
		P.status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
		P.done = true;
		return;
	}
	P.died_ns = now_ns();
	log_warn("server died (%s): restarting", how);
	if (!crash_budget_left(&P.crashes, P.died_ns, views_ctx->cfg.max_crashes, views_ctx->cfg.crash_window_s) ||
	    !can_take_over()) {
		P.status = 1;
		P.done = true;
	}
}

static void reap(void)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		if (pid == P.child)
			on_child_exit(st);
}

static void set_cloexec(bool on)
{
	int fds[] = { views_sv.fuse[0], views_sv.fuse[1], views_sv.init[0],
		      views_sv.init[1], views_sv.ids, views_sv.sock };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, on ? FD_CLOEXEC : 0);
}

/* SIGUSR2: exec the binary at our path (a package upgrade replaced it)
 * with the connections; the new supervisor starts a new server, which
 * takes them over. */
static void upgrade(void)
{
	char **argv = survive_own_argv();
	char env[128];

	if (!argv || !can_take_over()) {
		log_error("SIGUSR2: cannot upgrade in place: keeping this version");
		return;
	}
	log_info("SIGUSR2: upgrading: exec %s, keeping the connections", P.exe);
	if (P.child) {
		kill(P.child, SIGKILL);
		waitpid(P.child, NULL, 0);
		P.child = 0;
	}
	snprintf(env, sizeof(env), "%d,%d,%d,%d,%d,%d,%u", views_sv.fuse[0], views_sv.fuse[1],
		 views_sv.init[0], views_sv.init[1], views_sv.ids, views_sv.sock, views_sv.gen);
	set_cloexec(false);
	setenv(ENV_TAKEOVER, env, 1);
	if (conns_to_env() == 0)
		execv(P.exe, argv);
	log_error("SIGUSR2: exec %s: %s: keeping this version", P.exe, strerror(errno));
	unsetenv(ENV_TAKEOVER);
	set_cloexec(true);
}

static void on_signal(void)
{
	struct signalfd_siginfo si;

	if (read(P.sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	switch (si.ssi_signo) {
	case SIGCHLD:
		reap();
		break;
	case SIGHUP:
		if (P.child)
			kill(P.child, SIGHUP);
		break;
	case SIGUSR2:
		upgrade();
		break;
	default: /* SIGTERM, SIGINT: the server stops (unmounts), then we do */
		P.stopping = true;
		if (P.child)
			kill(P.child, SIGTERM);
		else
			P.done = true;
	}
}

static void wait_event(void)
{
	struct pollfd p[2] = { { P.sigfd, POLLIN, 0 }, { P.keeper, POLLIN, 0 } };

	if (poll(p, 2, -1) < 0)
		return;
	if (p[1].revents & POLLIN)
		on_keeper();
	if (p[0].revents & POLLIN)
		on_signal();
}

static void finish(void)
{
	for (int i = 0; i < SV_NFUSE; i++)
		if (views_sv.fuse[i] >= 0)
			close(views_sv.fuse[i]); /* no server: the connection ends here */
	supervise_sock_close();
}

int survive_run(const char *mnt, int notify_fd)
{
	uint64_t restart_ms = views_ctx->cfg.restart_ms;

	P.notify_fd = notify_fd;
	if (setup(mnt) < 0)
		return 1;
	while (!P.done) {
		if (!P.child && !P.stopping) {
			if (P.died_ns && restart_ms)
				nanosleep(&(struct timespec){ (time_t)(restart_ms / 1000),
							      (long)(restart_ms % 1000) * 1000000 },
					  NULL);
			if (spawn())
				return -1;
		}
		wait_event();
	}
	finish();
	return P.status;
}
