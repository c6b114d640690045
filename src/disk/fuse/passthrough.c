/* FUSE passthrough (Linux 6.9+): reads of an upper file go from the
 * kernel straight to the file in DATA/upper, with no request to us.
 *
 * Reads cannot change what the disk holds, so nothing the limit needs is
 * lost: writes still come to the daemon (ops_io.c decides which opens get
 * what). The daemon registers an open upper file with the kernel
 * (FUSE_DEV_IOC_BACKING_OPEN gives an id), answers the open with
 * FOPEN_PASSTHROUGH and the id, and closes the id when the last open file
 * that used it is released.
 *
 * libfuse 3.14 knows none of this: neither the INIT flag, nor the
 * max_stack_depth INIT field, nor the backing_id of an open reply. Both
 * replies pass through session_io.c's writev hook, which lets this file
 * fill them in: the INIT reply when the kernel offered FUSE_PASSTHROUGH,
 * an open or create reply when the worker answering it asked for it just
 * before (a thread-local: libfuse writes a reply on the thread that calls
 * fuse_reply_*). A newer libfuse writes the same fields from its own
 * structures; overwriting them with the same values changes nothing. */
#include "fuse/ops.h"

#include "cvmfs/log.h"

#include <errno.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

/* From Linux 6.9's include/uapi/linux/fuse.h (our headers may be older). */
#define PT_INIT_FLAG2 (1u << (37 - 32)) /* FUSE_PASSTHROUGH, in flags2 */
#define PT_FOPEN (1u << 7)              /* FOPEN_PASSTHROUGH */
#define PT_INIT_DEPTH_OFFSET 36         /* fuse_init_out.max_stack_depth */
struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define PT_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

/* The files we hand over live on DATA's filesystem: one level below us. */
#define PT_STACK_DEPTH 1

static bool offered, enabled;
static __thread struct {
	bool armed;
	uint32_t backing_id;
} next_open_reply;

void passthrough_note_init_request(const void *buf, size_t len)
{
	const struct fuse_in_header *h = buf;
	const struct fuse_init_in *in = (const void *)(h + 1);

	if (disk_ctx->cfg.no_passthrough ||
	    len < sizeof(*h) + offsetof(struct fuse_init_in, flags2) + sizeof(in->flags2) ||
	    h->opcode != FUSE_INIT)
		return;
	offered = (in->flags & FUSE_INIT_EXT) && (in->flags2 & PT_INIT_FLAG2);
}

void passthrough_patch_init_reply(void *out, size_t len)
{
	struct fuse_init_out *o = out;
	uint32_t depth = PT_STACK_DEPTH;

	if (!offered) { /* the one line a missing feature gets (doc/kernel-features.md) */
		if (!disk_ctx->cfg.no_passthrough)
			log_info("%s: the kernel does not offer passthrough (Linux 6.9+): every read "
				 "goes through the daemon", disk_ctx->cfg.name);
		return;
	}
	if (len < PT_INIT_DEPTH_OFFSET + sizeof(depth))
		return;
	o->flags |= FUSE_INIT_EXT;
	o->flags2 |= PT_INIT_FLAG2;
	memcpy((char *)out + PT_INIT_DEPTH_OFFSET, &depth, sizeof(depth));
	__atomic_store_n(&enabled, true, __ATOMIC_RELAXED);
	log_info("%s: reads of upper files pass through to DATA/upper (FUSE passthrough)",
		 disk_ctx->cfg.name);
}

bool passthrough_enabled(void)
{
	return __atomic_load_n(&enabled, __ATOMIC_RELAXED);
}

/* A refusal that will not change for other files (no privilege, DATA's
 * filesystem stacked too deep or without read_iter) turns passthrough
 * off; one that might (out of memory) only fails this open. */
int passthrough_backing_open(int fd)
{
	struct pt_backing_map map = { .fd = fd };
	int id = ioctl(fuse_session_fd(disk_ctx->se), PT_IOC_BACKING_OPEN, &map);

	if (id >= 0)
		return id;
	id = -errno;
	if (id == -ENOMEM || id == -EMFILE || id == -ENFILE ||
	    !__atomic_exchange_n(&enabled, false, __ATOMIC_RELAXED))
		return id;
	if (id == -ELOOP)
		log_warn("%s: the kernel refused a passthrough file: DATA is on a stacked "
			 "file system (overlayfs?); every read goes through the daemon",
			 disk_ctx->cfg.name);
	else
		log_warn("%s: the kernel refused a passthrough file (%s): every read goes "
			 "through the daemon from now on", disk_ctx->cfg.name, strerror(-id));
	return id;
}

void passthrough_backing_close(uint32_t id)
{
	if (ioctl(fuse_session_fd(disk_ctx->se), PT_IOC_BACKING_CLOSE, &id) < 0)
		log_warn("%s: closing passthrough backing %u: %s", disk_ctx->cfg.name, id, strerror(errno));
}

void passthrough_reply_arm(uint32_t backing_id)
{
	next_open_reply.armed = true;
	next_open_reply.backing_id = backing_id;
}

void passthrough_reply_disarm(void)
{
	next_open_reply.armed = false;
}

/* An open reply ends with struct fuse_open_out (alone for OPEN, after the
 * entry for CREATE); its padding is the kernel's backing_id. */
void passthrough_patch_reply(struct iovec *iov, int count)
{
	struct fuse_open_out *o;
	struct iovec *last = &iov[count - 1];
	size_t len = last->iov_len;

	if (!next_open_reply.armed)
		return;
	next_open_reply.armed = false;
	if (count < 2 || (len != sizeof(*o) && len != sizeof(struct fuse_entry_out) + sizeof(*o)))
		return;
	o = (struct fuse_open_out *)((char *)last->iov_base + len - sizeof(*o));
	o->open_flags |= PT_FOPEN;
	o->padding = next_open_reply.backing_id;
}
