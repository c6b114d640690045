/* The FUSE session's I/O, through libfuse's custom-io hooks.
 *
 * libfuse 3.14 does not pass FUSE_HANDLE_KILLPRIV or FUSE_PARALLEL_DIROPS
 * on to the kernel even when the filesystem wants them (its `-o debug`
 * INIT reply shows both missing, with the capabilities offered and
 * wanted). Without the first, every chown costs an extra GETATTR (the
 * kernel refreshes the mode to clear set-ID bits itself); without the
 * second, lookups and listings in one directory are serialised.
 *
 * So the session reads, writes and splices through these hooks, which do
 * exactly what libfuse does itself, except that the INIT reply (the first
 * message the daemon writes: the kernel sends nothing else before it is
 * answered) gets the flags op_init found offered, and passthrough.c may
 * fill in the INIT and open replies for FUSE passthrough, and a TMPFILE
 * request is handed on as a CREATE (below). The daemon does what
 * FUSE_HANDLE_KILLPRIV asks of it: ops_io.c clears set-ID bits on write,
 * truncate and O_TRUNC opens, the upper filesystem on chown.
 *
 * The connection outlives the server (disk_survive.c): reads and writes
 * go through the take-over's (fuse_takeover.h), which replay the kept
 * INIT to a server that takes the connection over and swallow its reply;
 * the INIT seen here is then the kept one, so the flags noted from it are
 * the connection's. */
#include "fuse/ops.h"

#include "cvmfs/fuse_takeover.h"
#include "cvmfs/log.h"
#include "cvmfs/req_counters.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <sys/uio.h>
#include <unistd.h>

static uint32_t init_extra; /* kernel INIT flags to add to the reply */
static bool init_answered, init_read;

/* True for the one caller that finds *flag still false (any thread). */
static bool first_time(bool *flag)
{
	return !__atomic_load_n(flag, __ATOMIC_ACQUIRE) &&
	       !__atomic_exchange_n(flag, true, __ATOMIC_ACQ_REL);
}

void session_io_init_flags(bool killpriv, bool parallel_dirops)
{
	init_extra = (killpriv ? FUSE_HANDLE_KILLPRIV : 0) |
		     (parallel_dirops ? FUSE_PARALLEL_DIROPS : 0);
}

static void patch_init_reply(struct iovec *iov, int count)
{
	const struct fuse_out_header *h = iov[0].iov_base;
	struct fuse_init_out *out;

	if (count < 2 || iov[0].iov_len < sizeof(*h) || h->error != 0 ||
	    iov[1].iov_len < offsetof(struct fuse_init_out, flags) + sizeof(out->flags))
		return;
	out = iov[1].iov_base;
	out->flags |= init_extra;
	passthrough_patch_init_reply(out, iov[1].iov_len);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	req_count_writev(iov, count);
	if (first_time(&init_answered))
		patch_init_reply(iov, count);
	else
		passthrough_patch_reply(iov, count);
	return fuse_takeover_writev(fd, iov, count);
}

/* libfuse 3.14 answers FUSE_TMPFILE (O_TMPFILE) with ENOSYS. Its request
 * is a CREATE's (fuse_create_in, then the name, which the kernel makes "/",
 * never a name CREATE can carry) and its reply too, so it goes on as one:
 * op_create makes a tmpfile for "/". */
static void tmpfile_as_create(void *buf, size_t len)
{
	struct fuse_in_header *h = buf;

	if (len >= sizeof(*h) + sizeof(struct fuse_create_in) + 2 && h->opcode == FUSE_TMPFILE)
		h->opcode = FUSE_CREATE;
}

/* The first message read is the kernel's INIT: what it offers beyond what
 * libfuse 3.14 reads. */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n;

	node_request_done(); /* this thread's last request is answered */
	fuse_takeover_present(buf, len); /* WRITEs fill it */
	n = fuse_takeover_read(fd, buf, len);

	(void)userdata;
	if (n > 0 && first_time(&init_read))
		passthrough_note_init_request(buf, (size_t)n);
	else if (n > 0)
		tmpfile_as_create(buf, (size_t)n);
	return n;
}

/* Replies spliced from a file; requests are never spliced in (ops.c). */
static ssize_t io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			      unsigned int flags, void *userdata)
{
	(void)userdata;
	req_count_spliced();
	return splice(fdin, offin, fdout, offout, len, flags);
}

static const struct fuse_custom_io session_io = {
	.writev = io_writev,
	.read = io_read,
	.splice_send = io_splice_send,
};

const struct fuse_custom_io *session_io_hooks(void)
{
	return &session_io;
}
