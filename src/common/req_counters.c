/* Request and error counters of the daemons' FUSE sessions
 * (include/cvmfs/req_counters.h). Relaxed atomics: the counts order
 * nothing, and a reader a second late is fine. */
#include "cvmfs/req_counters.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Apart, so that the FUSE threads do not share a line with other data. */
static struct {
	uint64_t n __attribute__((aligned(64)));
} requests, errors;

void req_count_writev(const struct iovec *iov, int count)
{
	const struct fuse_out_header *h;

	if (count < 1 || iov[0].iov_len < sizeof(*h))
		return;
	h = iov[0].iov_base;
	if (h->unique == 0)
		return;
	__atomic_fetch_add(&requests.n, 1, __ATOMIC_RELAXED);
	if (h->error != 0)
		__atomic_fetch_add(&errors.n, 1, __ATOMIC_RELAXED);
}

void req_count_spliced(void)
{
	__atomic_fetch_add(&requests.n, 1, __ATOMIC_RELAXED);
}

struct req_counts req_counts_get(void)
{
	return (struct req_counts){
		.requests = __atomic_load_n(&requests.n, __ATOMIC_RELAXED),
		.errors = __atomic_load_n(&errors.n, __ATOMIC_RELAXED),
	};
}

int req_counts_json(char *buf, size_t size)
{
	struct req_counts c = req_counts_get();
	int n = snprintf(buf, size, ",\"requests\":%" PRIu64 ",\"errors\":%" PRIu64, c.requests,
			 c.errors);

	return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

static uint64_t member(const char *json, const char *key)
{
	const char *p = strstr(json, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

void req_counts_parse(const char *json, struct req_counts *c)
{
	c->requests = member(json, "\"requests\":");
	c->errors = member(json, "\"errors\":");
}
