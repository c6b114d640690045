/* See include/cvmfs/fuse_takeover.h. The store: a struct init_store, then
 * the INIT request as read from /dev/fuse. */
#include "cvmfs/fuse_takeover.h"
#include "cvmfs/req_counters.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef FUSE_NOTIFY_RESEND /* protocol 7.40, Linux 6.9 */
#define FUSE_NOTIFY_RESEND 7
#endif
#define HAS_RESEND_FLAG2 (1u << (39 - 32)) /* FUSE_HAS_RESEND, in flags2 */
#define RESEND_MINOR 40
#define INIT_MAX 512

enum { INIT_NONE, INIT_READ, INIT_ANSWERED };

struct init_store {
	uint32_t state, len;
};

struct takeover {
	int fd, store;
	bool replay; /* the store's INIT is answered: take over */
	bool synth_served, init_done;
	uint64_t init_unique;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static struct takeover conns[2] = {
	{ .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER },
	{ .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER },
};

int fuse_takeover_store_new(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int store_load(int store, struct init_store *h, char *buf)
{
	if (pread(store, h, sizeof(*h), 0) != sizeof(*h))
		return -ENOENT;
	if (h->len < sizeof(struct fuse_in_header) || h->len > INIT_MAX ||
	    pread(store, buf, h->len, sizeof(*h)) != (ssize_t)h->len)
		return -EPROTO;
	return 0;
}

bool fuse_takeover_can_resend(int store)
{
	char buf[INIT_MAX];
	struct init_store h;
	const struct fuse_init_in *in = (const void *)(buf + sizeof(struct fuse_in_header));

	if (store_load(store, &h, buf) < 0 || h.state != INIT_ANSWERED ||
	    h.len < sizeof(struct fuse_in_header) + sizeof(*in))
		return false;
	return in->minor >= RESEND_MINOR && (in->flags & FUSE_INIT_EXT) &&
	       (in->flags2 & HAS_RESEND_FLAG2);
}

static struct takeover *conn_of(int fd)
{
	return conns[0].fd == fd ? &conns[0] : &conns[1];
}

static void mark_done(struct takeover *t)
{
	pthread_mutex_lock(&t->lock);
	t->init_done = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/* Requests the dead server read and never answered go back to the
 * kernel's pending queue, marked as resent; libfuse answers them as any. */
static void resend(struct takeover *t)
{
	struct fuse_out_header h = { .len = sizeof(h), .error = FUSE_NOTIFY_RESEND };

	if (write(t->fd, &h, sizeof(h)) != sizeof(h))
		log_warn("FUSE_NOTIFY_RESEND: %s: requests read before the restart stay unanswered",
			 strerror(errno));
}

/* True for the one caller that finds *flag still false (any thread). */
static bool first_time(bool *flag)
{
	return !__atomic_load_n(flag, __ATOMIC_ACQUIRE) &&
	       !__atomic_exchange_n(flag, true, __ATOMIC_ACQ_REL);
}

static ssize_t synth_init(struct takeover *t, void *buf, size_t len)
{
	char req[INIT_MAX];
	struct init_store h;
	int r = store_load(t->store, &h, req);

	if (r < 0 || h.len > len)
		return r < 0 ? r : -EINVAL;
	memcpy(buf, req, h.len);
	t->init_unique = ((struct fuse_in_header *)buf)->unique;
	return h.len;
}

/* Nothing but the INIT reaches libfuse before it answered INIT: requests
 * the kernel queued meanwhile would get EIO. */
static void wait_init(struct takeover *t)
{
	pthread_mutex_lock(&t->lock);
	while (!t->init_done)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

static void store_init(struct takeover *t, const void *buf, size_t n)
{
	struct init_store h = { INIT_READ, (uint32_t)n };

	t->init_unique = ((const struct fuse_in_header *)buf)->unique;
	if (n > INIT_MAX || pwrite(t->store, buf, n, sizeof(h)) != (ssize_t)n ||
	    pwrite(t->store, &h, sizeof(h), 0) != sizeof(h))
		log_warn("keeping the FUSE INIT: %s: a restart cannot take the connection over",
			 strerror(errno));
}

/* The kernel copies a request into buf by pinning buf's pages. Pages not
 * yet present take the slow way, which gives up when the server is being
 * killed, and the kernel then answers the request with EIO itself instead
 * of leaving it to be resent to the next server (a writer saw EIO after
 * take-overs; the FUSE tracepoints showed a WRITE ended with no reply by
 * a dying server's thread). So each thread's buffer (libfuse keeps one per
 * thread, of the session's size) is made present before its first read,
 * as far as the daemon's requests reach. */
void fuse_takeover_present(void *buf, size_t len)
{
	static __thread void *done;

	if (done == buf)
		return;
	for (size_t off = 0; off < len; off += 4096)
		((volatile char *)buf)[off] = 0;
	done = buf;
}

ssize_t fuse_takeover_read(int fd, void *buf, size_t len)
{
	struct takeover *t = conn_of(fd);
	ssize_t n;

	if (t->replay && first_time(&t->synth_served)) {
		n = synth_init(t, buf, len);
		return n < 0 ? (errno = (int)-n, -1) : n;
	}
	if (!__atomic_load_n(&t->init_done, __ATOMIC_ACQUIRE) && t->replay)
		wait_init(t);
	n = read(fd, buf, len);
	if (n >= (ssize_t)sizeof(struct fuse_in_header) && !t->replay &&
	    !__atomic_load_n(&t->init_done, __ATOMIC_ACQUIRE) &&
	    ((struct fuse_in_header *)buf)->opcode == FUSE_INIT)
		store_init(t, buf, (size_t)n);
	return n;
}

static ssize_t init_reply(struct takeover *t, int fd, struct iovec *iov, int count)
{
	struct init_store h = { INIT_ANSWERED, 0 };
	ssize_t n = 0;

	if (t->replay) { /* the kernel has its answer: swallowed */
		for (int i = 0; i < count; i++)
			n += (ssize_t)iov[i].iov_len;
		mark_done(t);
		if (fuse_takeover_can_resend(t->store))
			resend(t);
		return n;
	}
	n = writev(fd, iov, count);
	if (n > 0 && pread(t->store, &h.len, sizeof(h.len), sizeof(h.state)) == sizeof(h.len))
		pwrite(t->store, &h.state, sizeof(h.state), 0);
	mark_done(t);
	return n;
}

ssize_t fuse_takeover_writev(int fd, struct iovec *iov, int count)
{
	struct takeover *t = conn_of(fd);

	if (!__atomic_load_n(&t->init_done, __ATOMIC_ACQUIRE) && count > 0 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    ((struct fuse_out_header *)iov[0].iov_base)->unique == t->init_unique)
		return init_reply(t, fd, iov, count);
	return writev(fd, iov, count);
}

/* The views': their requests (a name, a read's offset, a sysctl's value)
 * fit in a page or two. */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	fuse_takeover_present(buf, len < 8192 ? len : 8192);
	return fuse_takeover_read(fd, buf, len);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	req_count_writev(iov, count); /* cvmfs-stat --prometheus */
	return fuse_takeover_writev(fd, iov, count);
}

static const struct fuse_custom_io takeover_io = { .writev = io_writev, .read = io_read };

int fuse_takeover_attach(struct fuse_session *se, int fd, int store,
			 const struct fuse_custom_io *io)
{
	struct takeover *t = conns[0].fd < 0 ? &conns[0] : conns[1].fd < 0 ? &conns[1] : NULL;
	struct init_store h = { INIT_NONE, 0 };
	int r;

	if (!t)
		return -EBUSY;
	t->fd = fd;
	t->store = store;
	if (pread(store, &h, sizeof(h), 0) != sizeof(h))
		h.state = INIT_NONE;
	t->replay = h.state == INIT_ANSWERED;
	r = fuse_session_custom_io(se, io ? io : &takeover_io, fd);
	if (r < 0)
		return log_error_errno(-EINVAL, "FUSE session I/O hooks");
	/* A server that died before answering INIT: the kernel sends it again. */
	if (h.state == INIT_READ)
		resend(t);
	return 0;
}
