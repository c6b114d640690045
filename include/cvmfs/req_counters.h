/* The FUSE requests a daemon answered and the errors among them, counted
 * where its sessions write replies (their custom I/O: src/disk/session_io.c,
 * src/views/status.c). One relaxed atomic add per reply, each counter on
 * its own cache line; the daemons publish the counts in their status
 * files and cvmfs-stat --prometheus shows them. Process-wide: a daemon's
 * sessions share them. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct req_counts {
	uint64_t requests; /* replies written (FORGETs have none) */
	uint64_t errors;   /* replies carrying an errno (ENOENT of a lookup too) */
};

/* A message written with writev, iov[0] starting with the kernel's
 * fuse_out_header: counted as a reply (and an error if it carries one);
 * notifications (unique 0) are not replies. */
void req_count_writev(const struct iovec *iov, int count);
/* A reply spliced to the device: a read's data, never an error. */
void req_count_spliced(void);
struct req_counts req_counts_get(void);
/* ",\"requests\":N,\"errors\":M" into buf: its length, or -ENOSPC. */
int req_counts_json(char *buf, size_t size);
/* The two members out of a status file's JSON text (0 where absent). */
void req_counts_parse(const char *json, struct req_counts *c);
