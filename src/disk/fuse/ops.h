/* cvmfsd disk, FUSE layer: the operations (ops*.c), each open file's I/O
 * mode (open_io.c), the session's reads and writes (session_io.c) and the
 * passthrough shim for libfuse 3.14 (passthrough.c). */
#pragma once

#include "union/union.h"

#include <fuse_lowlevel.h>
#include <sys/uio.h>

/* session_io.c: the session's reads and writes, and INIT flags that
 * libfuse 3.14 would not pass on (op_init says which the kernel offers). */
void session_io_init_flags(bool killpriv, bool parallel_dirops);
/* The session's I/O hooks (fuse_daemon.io). */
const struct fuse_custom_io *session_io_hooks(void);

/* passthrough.c: reads of upper files straight from DATA/upper. */
void passthrough_note_init_request(const void *buf, size_t len);
void passthrough_patch_init_reply(void *init_out, size_t len);
void passthrough_patch_reply(struct iovec *iov, int count);
bool passthrough_enabled(void);
int passthrough_backing_open(int fd);
void passthrough_backing_close(uint32_t id);
void passthrough_reply_arm(uint32_t backing_id);
void passthrough_reply_disarm(void);

/* ops */
extern const struct fuse_lowlevel_ops disk_ops;
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags);
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
		  struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
		  struct fuse_file_info *fi);
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
/* ops_dir.c: the kernel may open directories without asking. */
void dir_listings_init(bool kernel_skips_opendir);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* open_io.c: the kernel's I/O mode for each open file (page cache,
 * direct, passthrough), kept with the fd in fh. */
bool open_is_direct(int flags);
bool reply_opened(fuse_req_t req, struct dnode *n, int fd, struct fuse_file_info *fi,
		  const struct fuse_entry_param *e);
void open_released(struct dnode *n, struct fuse_file_info *fi);
void open_restore(int fd);
/* A resent OPEN or CREATE: the open a dead server made for it and never
 * answered is closed and uncounted. */
void open_drop_unanswered(fuse_req_t req);
static inline int fh_fd(const struct fuse_file_info *fi)
{
	return (int)(uint32_t)fi->fh;
}

/* A request the kernel sent again after a take-over (FUSE_NOTIFY_RESEND):
 * a dead server may have done it already, so "it is not there" (a remove,
 * a rename) and "it is there" (a make) mean done (ops.c). */
bool req_resent(fuse_req_t req);
/* Its unique, the same when resent. */
uint64_t req_unique(fuse_req_t req);
bool reply_made_before(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t type);

/* Reply helpers shared by the op files (ops_meta.c). */
void fill_attr(struct dnode *n, struct stat *st);
void reply_entry(fuse_req_t req, struct dnode *n, const struct stat *st);
double entry_timeout(void);
