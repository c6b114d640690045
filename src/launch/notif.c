/* sysinfo(2) and sched_getaffinity(2) answered for the CVM: the inner
 * child installs the seccomp filter with a listener (seccomp.c) and sends
 * the listener here over a socketpair; a thread of the launcher hands it
 * to the views daemon's supervisor (src/views/supervise.c) at VIEWS.sock
 * and keeps a copy while the CVM runs (doc/architecture.md, why).
 *
 * The copy matters: once the last listener fd closes, every trapped call
 * fails with ENOSYS. While no views daemon holds it (it stopped, or
 * crashed), this thread answers each notification with the native call
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE, logged once per outage) and tries the
 * socket again every second, handing the listener to the next daemon.
 * With the listener goes a shared page where the daemon keeps the id of
 * the call it is answering: a daemon that dies in the middle leaves that
 * id there, and this thread answers the call (the caller's wait is
 * killable only once the daemon took it: it would wait for SIGKILL).
 *
 * Nothing is trapped when no views daemon answers at VIEWS.sock at start
 * (an older one, or none): the CVM then runs the plain filter.
 *
 * cvmctl exec does the same for the process it starts in a CVM (it gets
 * a filter of its own, with its own listener), for as long as it waits
 * for it; then the views daemon keeps answering for what that process
 * left running, until no task uses the filter (supervise.c). */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* src/views/supervise.h: SUPERVISE_SOCK_SUFFIX */
#define VIEWS_SOCK_SUFFIX ".sock"

static struct {
	int views;      /* connection to the views daemon, -EBADF: none */
	int child[2];   /* [0] ours, [1] the inner child's (the listener comes on it) */
	int stop[2];    /* pipe: notif_stop ends the thread */
	int page_fd;    /* memfd of the in-flight page, sent with the listener */
	uint64_t *inflight; /* its first word: the id the daemon is answering */
	pthread_t thread;
	bool running;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *name;
} N = { -EBADF, { -EBADF, -EBADF }, { -EBADF, -EBADF }, -EBADF, NULL };

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -EBADF;
}

static int views_connect(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	memcpy(a.sun_path, N.path, sizeof(N.path));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* name and n fds (SCM_RIGHTS) in one message. */
static int send_fds(int sock, const int *fds, int n, const char *name)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)name, strlen(name) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int)) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
	return sendmsg(sock, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int notif_send_fd(int sock, int fd, const char *name)
{
	return send_fds(sock, &fd, 1, name);
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n;
	int fd;

	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	cm = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
	if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return -ENOENT; /* the child failed first, or installed no listener */
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* Before the fork or clone of the process to trap: 1 if a supervisor
 * answers at sock_path now (trap), 0 if none does (trap nothing), or a
 * negative errno. name must stay valid until notif_end(). */
int notif_open(const char *name, const char *sock_path)
{
	int r;

	N.name = name;
	if (snprintf(N.path, sizeof(N.path), "%s", sock_path) >= (int)sizeof(N.path))
		return -ENAMETOOLONG;
	N.views = views_connect();
	if (N.views < 0) {
		log_info("no system-call supervisor at %s (%s): sysinfo and sched_getaffinity "
			 "show the host's in CVM %s", N.path, strerror(-N.views), name);
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, N.child) < 0 ||
	    pipe2(N.stop, O_CLOEXEC) < 0 ||
	    (N.page_fd = memfd_create("cvmfs-notif", MFD_CLOEXEC)) < 0 ||
	    ftruncate(N.page_fd, sizeof(uint64_t)) < 0) {
		r = -errno;
		notif_end();
		return r;
	}
	N.inflight = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED,
			  N.page_fd, 0);
	if (N.inflight == MAP_FAILED) {
		r = -errno;
		N.inflight = NULL;
		notif_end();
		return r;
	}
	return 1;
}

const char *notif_socket(void)
{
	return N.child[0] >= 0 || N.running ? N.path : NULL;
}

/* Parent, before the clone: trap only if a supervisor answers now. */
int notif_prepare(struct launch *L)
{
	char path[sizeof(N.path)];
	int r;

	if (L->o.seccomp && !strcmp(L->o.seccomp, "unconfined"))
		return 0;
	if (snprintf(path, sizeof(path), "%s%s", L->o.views, VIEWS_SOCK_SUFFIX) >=
	    (int)sizeof(path))
		return step_error(L, -ENAMETOOLONG, "--views %s", L->o.views);
	r = notif_open(L->o.name, path);
	return r < 0 ? step_error(L, r, "socketpair, pipe, memfd") : 0;
}

int notif_child_fd(void)
{
	return N.child[1];
}

/* No supervisor holds the listener: the caller gets the native call. */
static void answer_native(int listener)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp = { 0 };

	memset(&req, 0, sizeof(req));
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		return;
	resp.id = req.id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/* The call a dead daemon took and did not answer: natively. */
static void answer_orphan(int listener)
{
	struct seccomp_notif_resp resp = { 0 };

	resp.id = __atomic_exchange_n(N.inflight, 0, __ATOMIC_ACQ_REL);
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	if (resp.id && ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0)
		log_warn("CVM %s: answered natively a call the views daemon left", N.name);
}

/* Hand the listener to the views daemon (again). */
static void views_handover(int listener, bool *warned)
{
	int fds[2] = { listener, N.page_fd };

	if (N.views < 0 && (N.views = views_connect()) < 0)
		return;
	if (send_fds(N.views, fds, 2, N.name) < 0) {
		close_fd(&N.views);
		return;
	}
	if (*warned)
		log_info("CVM %s: %s answers sysinfo and sched_getaffinity again", N.name, N.path);
	*warned = false;
}

static void *notif_thread(void *arg)
{
	int listener = recv_fd(N.child[0]);
	bool warned = false;

	(void)arg;
	close_fd(&N.child[0]);
	if (listener < 0)
		return NULL;
	views_handover(listener, &warned);
	for (;;) {
		struct pollfd p[3] = { { N.stop[0], POLLIN, 0 }, { N.views, POLLIN, 0 },
				       { N.views < 0 ? listener : -1, POLLIN, 0 } };

		if (poll(p, 3, N.views < 0 ? 1000 : -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents || (p[2].revents & (POLLHUP | POLLERR)))
			break; /* stopping, or no task left under the filter */
		if (p[1].revents) { /* the daemon stopped or died */
			close_fd(&N.views);
			answer_orphan(listener);
			if (!warned)
				log_warn("CVM %s: the views daemon's supervisor is gone; sysinfo and "
					 "sched_getaffinity show the host's until one serves %s",
					 N.name, N.path);
			warned = true;
		}
		if (p[2].revents & POLLIN)
			answer_native(listener);
		if (N.views < 0)
			views_handover(listener, &warned);
	}
	close(listener);
	return NULL;
}

/* Parent, after the fork or clone: the thread that takes the listener. */
int notif_run(void)
{
	int r;

	close_fd(&N.child[1]);
	if (N.child[0] < 0)
		return 0;
	if ((r = pthread_create(&N.thread, NULL, notif_thread, NULL)) != 0)
		return -r;
	N.running = true;
	return 0;
}

int notif_start(struct launch *L)
{
	int r = notif_run();

	return r < 0 ? step_error(L, r, "supervisor thread") : 0;
}

/* Once the trapped process is gone (the CVM, or cvmctl exec's CMD). */
void notif_end(void)
{
	if (N.running && write(N.stop[1], "x", 1) == 1)
		pthread_join(N.thread, NULL);
	N.running = false;
	close_fd(&N.views);
	close_fd(&N.child[0]);
	close_fd(&N.child[1]);
	close_fd(&N.stop[0]);
	close_fd(&N.stop[1]);
	close_fd(&N.page_fd);
	if (N.inflight)
		munmap(N.inflight, sizeof(uint64_t));
	N.inflight = NULL;
}

void notif_stop(struct launch *L)
{
	(void)L;
	notif_end();
}
