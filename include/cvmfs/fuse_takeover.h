/* A FUSE connection that outlives the daemon process (issue 17): the
 * kernel sends INIT once per connection, so the first server keeps the
 * INIT request in a memfd the supervisor holds; a server that takes the
 * connection over feeds libfuse that request again (its reply is
 * swallowed: the kernel has its answer), then asks the kernel to send the
 * requests the dead server had read again (FUSE_NOTIFY_RESEND, Linux 6.9).
 * The I/O goes through libfuse's custom-io hooks. */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

/* A fresh INIT store for one connection (a memfd), or -errno. */
int fuse_takeover_store_new(const char *name);
/* Does the connection whose INIT STORE holds support FUSE_NOTIFY_RESEND?
 * False also while no INIT was answered. */
bool fuse_takeover_can_resend(int store);
/* Hooks session SE on /dev/fuse fd FD with INIT kept in STORE; if STORE
 * holds an answered INIT, SE takes the connection over. 0 or -errno. At
 * most two sessions per process. IO: the daemon's own hooks, which then
 * read and write through the two calls below (NULL: these hooks). */
int fuse_takeover_attach(struct fuse_session *se, int fd, int store,
			 const struct fuse_custom_io *io);
/* read(2) and writev(2) of a session attached with hooks of its own: the
 * kept INIT replayed, its reply swallowed, other reads held until then. */
ssize_t fuse_takeover_read(int fd, void *buf, size_t len);
/* Make the first len bytes of a thread's read buffer present, once per
 * buffer: a copy into absent pages fails while the server is being
 * killed, and the kernel answers that request with EIO (fuse_takeover.c). */
void fuse_takeover_present(void *buf, size_t len);
ssize_t fuse_takeover_writev(int fd, struct iovec *iov, int count);
