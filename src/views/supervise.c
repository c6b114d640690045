/* The system-call supervisor: one thread that answers the seccomp
 * notifications of every CVM whose launcher handed its listener over.
 *
 * A launcher connects to MOUNT.sock (SOCK_SEQPACKET, root only: the peer's
 * uid is checked) and sends one message, the CVM's name with the listener
 * fd and its in-flight page (SCM_RIGHTS, recv_listener); it keeps the
 * connection, and its own copy of the
 * listener, open while the CVM runs. When this daemon stops or dies, the
 * launcher sees the connection close, answers natively meanwhile and hands
 * the listener to the next views daemon (src/launch/notif.c): the listener
 * is never closed for good while the CVM runs, which would make every
 * trapped call fail with ENOSYS.
 *
 * One thread, epoll over the listening socket, the connections and the
 * listeners. An answer costs a few reads of cached snapshots (the views'
 * own) and one open of /proc/PID/mem; nothing on the path blocks on
 * another process. Any internal failure is answered with
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE (the host's native result) and logged,
 * so a caller is never left waiting on a bug. */
#include "supervise.h"
#include "survive.h"
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS /* Linux 6.6 */
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

enum end_kind { END_STOP, END_ACCEPT, END_CONN, END_LISTENER };

/* The in-flight page: word 0 the id being answered (the launcher's), at
 * SAVED_AT the request itself, for a server that takes the connection
 * over after this one died in the middle (survive.h). */
#define PAGE_LEN 4096
#define LAST_AT 8 /* the last id received: the kernel numbers them in order */
#define SAVED_AT 64
#define ORPHAN_PROBE 16

struct end {
	enum end_kind kind;
	struct sv_conn *conn; /* END_CONN, END_LISTENER */
};

/* One launcher: its connection and its CVM's listener. */
struct sv_conn {
	int fd;
	int listener; /* -EBADF until received, or after its filter is gone */
	uint64_t *inflight; /* shared with the launcher: the id being answered */
	char name[64];
	struct end conn_end, listener_end;
	uint64_t fallbacks; /* answered natively after an internal failure */
	uint64_t key; /* the views' supervisor keeps a copy under it (survive.h) */
	bool kept;
	struct sv_conn *prev, *next; /* S.conns, the supervisor thread's */
};

static struct {
	int epfd, sock, stopfd;
	struct end stop_end, accept_end;
	pthread_t thread;
	bool running;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ino_t sock_ino; /* of S.path as we bound it */
	struct seccomp_notif_sizes sizes;
	struct sv_conn *conns;
} S = { .epfd = -EBADF, .sock = -EBADF, .stopfd = -EBADF };

/* Drop the listener and its page (a second message replaces them). */
static void conn_forget_listener(struct sv_conn *c)
{
	if (c->listener >= 0) {
		epoll_ctl(S.epfd, EPOLL_CTL_DEL, c->listener, NULL);
		close(c->listener);
	}
	if (c->inflight)
		munmap(c->inflight, PAGE_LEN);
	c->listener = -EBADF;
	c->inflight = NULL;
}

static void conn_close(struct sv_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		S.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_forget_listener(c);
	/* Removed by hand: the views' supervisor holds the same socket, so
	 * closing ours does not take it out of the epoll set. */
	if (c->fd >= 0) {
		epoll_ctl(S.epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	if (c->kept)
		survive_drop_conn(c->key);
	free(c);
}

/* The sender is gone: a launcher with its CVM, or a cvmctl exec whose CMD
 * may have left processes running under the filter. Keep answering those
 * until no task uses it (the listener's HUP), then forget. */
static void conn_detach(struct sv_conn *c)
{
	if (c->listener < 0) {
		conn_close(c);
		return;
	}
	epoll_ctl(S.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -EBADF;
}

static int ep_add(int fd, struct end *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = e };

	return epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static struct sv_conn *conn_new(int fd)
{
	static uint32_t n;
	struct sv_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	*c = (struct sv_conn){ .fd = fd, .listener = -EBADF,
			       .key = (uint64_t)views_sv.gen << 32 | ++n,
			       .conn_end = { END_CONN, c }, .listener_end = { END_LISTENER, c } };
	c->next = S.conns;
	if (S.conns)
		S.conns->prev = c;
	S.conns = c;
	return c;
}

static void on_accept(void)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct sv_conn *c;
	int fd = accept4(S.sock, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("%s: refused a connection of uid %d", S.path, (int)cred.uid);
		close(fd);
		return;
	}
	c = conn_new(fd);
	if (!c) {
		close(fd);
		return;
	}
	if (ep_add(fd, &c->conn_end) < 0)
		conn_close(c);
}

/* The views' supervisor keeps copies, so that the launcher sees no
 * restart of this server (a second message replaces the first). */
static void conn_keep(struct sv_conn *c, int listener, int page)
{
	struct survive_conn k = { c->key, c->fd, listener, page, "" };

	if (views_sv.keeper < 0)
		return;
	if (c->kept)
		survive_drop_conn(c->key);
	snprintf(k.name, sizeof(k.name), "%s", c->name);
	survive_keep_conn(&k);
	c->kept = true;
}

static void answer_saved(struct sv_conn *c, const struct seccomp_notif *req);

/* A server killed between receiving a call and saving it: the call is
 * the one after the last saved, still waiting (ID_VALID), answered
 * natively (its arguments are gone). */
static void answer_unsaved(struct sv_conn *c)
{
	uint64_t last = __atomic_load_n((uint64_t *)((char *)c->inflight + LAST_AT),
					__ATOMIC_ACQUIRE);
	struct seccomp_notif_resp resp = { .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };

	for (uint64_t id = last + 1; id <= last + ORPHAN_PROBE; id++) {
		if (ioctl(c->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
			continue;
		resp.id = id;
		if (ioctl(c->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0)
			log_warn("CVM %s: answered natively a call the dead server had not saved",
				 c->name);
	}
}

/* The call a dead server took and did not answer, from its saved copy. */
static void answer_orphan(struct sv_conn *c)
{
	union {
		struct seccomp_notif n;
		char b[512];
	} req;
	uint64_t id = __atomic_load_n(c->inflight, __ATOMIC_ACQUIRE);

	if (!id) {
		answer_unsaved(c);
		return;
	}
	memcpy(&req, (char *)c->inflight + SAVED_AT, MIN(sizeof(req), S.sizes.seccomp_notif));
	if (req.n.id == id) {
		answer_saved(c, &req.n);
		log_info("CVM %s: answered a call the dead server had taken", c->name);
	}
	__atomic_store_n(c->inflight, 0, __ATOMIC_RELEASE);
}

/* A connection a dead server had: adopted with its listener. */
static void conn_adopt(const struct survive_conn *k)
{
	struct sv_conn *c = conn_new(k->conn);
	void *page = mmap(NULL, PAGE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, k->page, 0);

	close(k->page);
	if (!c || page == MAP_FAILED) {
		log_warn("CVM %s: cannot take its connection over", k->name);
		return;
	}
	c->key = k->key;
	c->kept = true;
	c->listener = k->listener;
	c->inflight = page;
	snprintf(c->name, sizeof(c->name), "%s", k->name);
	answer_orphan(c);
	if (ep_add(c->fd, &c->conn_end) < 0 || ep_add(c->listener, &c->listener_end) < 0)
		log_warn("CVM %s: epoll: %s", c->name, strerror(errno));
}

/* The launcher's message: its CVM's name, the listener and a shared page
 * whose first word holds the id of the call being answered (0: none), so
 * that the launcher can answer it if this daemon dies meanwhile: the
 * caller's wait is killable only once we have its call. */
static int recv_listener(struct sv_conn *c)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { c->name, sizeof(c->name) - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC);
	int fds[2];
	void *page;

	if (n <= 0)
		return n < 0 ? -errno : -ECONNRESET;
	c->name[n] = '\0';
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(fds)))
		return -EPROTO;
	memcpy(fds, CMSG_DATA(cm), sizeof(fds));
	/* Room for the saved request (the launcher maps its first word). */
	if (ftruncate(fds[1], PAGE_LEN) < 0)
		page = MAP_FAILED;
	else
		page = mmap(NULL, PAGE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	if (page == MAP_FAILED) {
		close(fds[0]);
		close(fds[1]);
		return -errno;
	}
	conn_forget_listener(c);
	conn_keep(c, fds[0], fds[1]);
	close(fds[1]);
	c->listener = fds[0];
	c->inflight = page;
	/* The caller waits while we answer: switch to us on its CPU and back,
	 * rather than waking an idle CPU each way (Linux 6.6+; else ignored). */
	if (ioctl(c->listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
		  (__u64)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0) {
		static bool said; /* one line per daemon (doc/kernel-features.md) */

		if (!said)
			log_info("seccomp: the kernel has no SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP "
				 "(Linux 6.6+): answers wake the caller the usual way");
		said = true;
	}
	log_debug("CVM %s: answering its sysinfo and sched_getaffinity", c->name);
	return ep_add(c->listener, &c->listener_end);
}

static void on_conn(struct sv_conn *c, uint32_t events)
{
	int r = (events & EPOLLIN) ? recv_listener(c) : -ECONNRESET;

	if (r == 0)
		return;
	if (r != -ECONNRESET) {
		log_warn("%s: launcher of CVM '%s': %s", S.path, c->name, strerror(-r));
		conn_close(c); /* broke the protocol */
		return;
	}
	conn_detach(c);
}

static void answer_saved(struct sv_conn *c, const struct seccomp_notif *req)
{
	union {
		struct seccomp_notif_resp r;
		char b[512];
	} resp;
	int r;

	memset(&resp, 0, sizeof(resp));
	resp.r.id = req->id;
	r = supervise_answer(c->listener, req, &resp.r);
	if (r < 0 && r != -ESRCH) {
		if (r != -ENOSYS && c->fallbacks++ % 1000 == 0)
			log_warn("CVM %s: system call %d of pid %d: %s; answered natively "
				 "(%llu times so far)", c->name, req->data.nr, (int)req->pid,
				 strerror(-r), (unsigned long long)c->fallbacks);
		resp.r.error = 0;
		resp.r.val = 0;
		resp.r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	}
	if (r != -ESRCH) /* else the caller is gone */
		ioctl(c->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	__atomic_store_n(c->inflight, 0, __ATOMIC_RELEASE);
}

/* The request is saved before its id is published: a server taking the
 * connection over answers it from there (answer_orphan). */
static void answer_one(struct sv_conn *c)
{
	/* The kernel's structures may be larger than ours: its sizes. */
	union {
		struct seccomp_notif n;
		char b[512];
	} req;

	memset(&req, 0, sizeof(req));
	if (ioctl(c->listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		return; /* ENOENT: the caller was interrupted, it will ask again */
	memcpy((char *)c->inflight + SAVED_AT, &req, S.sizes.seccomp_notif);
	__atomic_store_n(c->inflight, req.n.id, __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)((char *)c->inflight + LAST_AT), req.n.id, __ATOMIC_RELEASE);
	answer_saved(c, &req.n);
}

static void on_listener(struct sv_conn *c, uint32_t events)
{
	if (events & EPOLLIN)
		answer_one(c);
	else if (events & (EPOLLHUP | EPOLLERR)) { /* no task uses the filter now */
		conn_forget_listener(c);
		if (c->fd < 0)
			conn_close(c);
	}
}

static void *supervise_loop(void *arg)
{
	struct epoll_event ev[16];

	(void)arg;
	views_thread_enter();
	for (;;) {
		int n = epoll_wait(S.epfd, ev, 16, -1);

		for (int i = 0; i < n; i++) {
			struct end *e = ev[i].data.ptr;

			if (e->kind == END_STOP)
				return NULL;
			if (e->kind == END_ACCEPT)
				on_accept();
			else if (e->kind == END_CONN)
				on_conn(e->conn, ev[i].events);
			else if (e->conn->listener >= 0)
				on_listener(e->conn, ev[i].events);
		}
	}
}

static int sock_bind(const char *mountpoint)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int r;

	if (snprintf(S.path, sizeof(S.path), "%s%s", mountpoint, SUPERVISE_SOCK_SUFFIX) >=
	    (int)sizeof(S.path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, S.path, sizeof(S.path));
	S.sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (S.sock < 0)
		return -errno;
	unlink(S.path); /* a previous daemon's: we serve MOUNT now */
	old = umask(0077);
	r = bind(S.sock, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && listen(S.sock, 64) < 0)
		r = -errno;
	if (r == 0 && stat(S.path, &st) == 0)
		S.sock_ino = st.st_ino;
	return r;
}

/* In the views' supervisor (survive.c), which keeps the socket across
 * server restarts: launchers connecting meanwhile wait in the backlog. */
int supervise_sock_open(const char *mountpoint)
{
	int r = sock_bind(mountpoint);

	if (r < 0) {
		log_error_errno(r, "supervisor socket %s", S.path);
		supervise_sock_close();
		return -1;
	}
	return S.sock;
}

void supervise_sock_adopt(const char *mountpoint, int sock)
{
	struct stat st;

	snprintf(S.path, sizeof(S.path), "%s%s", mountpoint, SUPERVISE_SOCK_SUFFIX);
	S.sock = sock;
	if (sock >= 0 && stat(S.path, &st) == 0)
		S.sock_ino = st.st_ino;
}

void supervise_sock_close(void)
{
	/* Our socket file only: a later daemon may already have replaced it. */
	if (S.sock >= 0) {
		struct stat st;

		if (stat(S.path, &st) == 0 && st.st_ino == S.sock_ino)
			unlink(S.path);
		close(S.sock);
	}
	S.sock = -EBADF;
}

int supervise_start(const char *mountpoint, int sock)
{
	int r;

	S.sizes = (struct seccomp_notif_sizes){ 0 };
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &S.sizes) < 0 ||
	    S.sizes.seccomp_notif > 512 || S.sizes.seccomp_notif_resp > 512) {
		log_warn("no seccomp user notification here: sysinfo and sched_getaffinity "
			 "stay the host's in CVMs");
		return 0;
	}
	if (sock >= 0) { /* the supervisor's: it unlinks it */
		S.sock = sock;
		S.sock_ino = 0;
	} else if ((r = sock_bind(mountpoint)) < 0) {
		return log_error_errno(r, "supervisor socket %s", S.path);
	}
	S.epfd = epoll_create1(EPOLL_CLOEXEC);
	S.stopfd = eventfd(0, EFD_CLOEXEC);
	S.stop_end.kind = END_STOP;
	S.accept_end.kind = END_ACCEPT;
	if (S.epfd < 0 || S.stopfd < 0 || ep_add(S.stopfd, &S.stop_end) < 0 ||
	    ep_add(S.sock, &S.accept_end) < 0)
		return log_error_errno(-errno, "supervisor epoll");
	for (unsigned i = 0; i < views_nconns; i++)
		conn_adopt(&views_conns[i]);
	if ((r = pthread_create(&S.thread, NULL, supervise_loop, NULL)) != 0)
		return log_error_errno(-r, "supervisor thread");
	S.running = true;
	return 0;
}

void supervise_stop(void)
{
	uint64_t one = 1;

	if (S.running && write(S.stopfd, &one, sizeof(one)) == sizeof(one))
		pthread_join(S.thread, NULL);
	S.running = false;
	while (S.conns) /* the launchers answer natively until the next daemon */
		conn_close(S.conns);
	supervise_sock_close();
	if (S.epfd >= 0)
		close(S.epfd);
	if (S.stopfd >= 0)
		close(S.stopfd);
	S.sock = S.epfd = S.stopfd = -EBADF;
}
