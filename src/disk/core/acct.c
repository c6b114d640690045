/* Reserve-then-settle accounting. Admission is a compare-and-add on the
 * commit counter, so any number of concurrent writers together never take
 * commit (and hence used, which is never above commit once settled) past
 * the limit. */
#include "core/core.h"

#include <errno.h>

static int reserve_one(int64_t *commit, const uint64_t *limit, int64_t amount)
{
	int64_t cur = __atomic_load_n(commit, __ATOMIC_RELAXED);
	uint64_t lim;

	if (amount <= 0) {
		__atomic_add_fetch(commit, amount, __ATOMIC_RELAXED);
		return 0;
	}
	do {
		lim = __atomic_load_n(limit, __ATOMIC_RELAXED);
		if (lim && (cur + amount < 0 || (uint64_t)(cur + amount) > lim))
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(commit, &cur, cur + amount, true,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	return 0;
}

int acct_reserve(struct acct *a, int64_t bytes, int64_t inodes)
{
	int r = reserve_one(&a->commit_bytes, &a->limit_bytes, bytes);

	if (r < 0)
		return r;
	r = reserve_one(&a->commit_inodes, &a->limit_inodes, inodes);
	if (r < 0)
		__atomic_sub_fetch(&a->commit_bytes, bytes, __ATOMIC_RELAXED);
	return r;
}

void acct_unreserve(struct acct *a, int64_t bytes, int64_t inodes)
{
	__atomic_sub_fetch(&a->commit_bytes, bytes, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&a->commit_inodes, inodes, __ATOMIC_RELAXED);
}

void acct_settle(struct acct *a, enum area ar, int64_t reserved_bytes, int64_t delta_bytes,
		 int64_t reserved_inodes, int64_t delta_inodes)
{
	__atomic_add_fetch(&a->commit_bytes, delta_bytes - reserved_bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->commit_inodes, delta_inodes - reserved_inodes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->used_bytes, delta_bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->used_inodes, delta_inodes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->area_bytes[ar], delta_bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->area_inodes[ar], delta_inodes, __ATOMIC_RELAXED);
}

void acct_move(struct acct *a, enum area from, enum area to, int64_t bytes, int64_t inodes)
{
	if (from == to)
		return;
	__atomic_sub_fetch(&a->area_bytes[from], bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->area_bytes[to], bytes, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&a->area_inodes[from], inodes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->area_inodes[to], inodes, __ATOMIC_RELAXED);
}

uint64_t acct_avail(const struct acct *a)
{
	int64_t used = __atomic_load_n(&a->used_bytes, __ATOMIC_RELAXED);
	uint64_t lim = __atomic_load_n(&a->limit_bytes, __ATOMIC_RELAXED);

	if (!lim)
		return UINT64_MAX;
	return used < 0 ? lim : (uint64_t)used >= lim ? 0 : lim - (uint64_t)used;
}

int64_t write_worst_case(uint64_t off, uint64_t len, uint64_t blksize)
{
	uint64_t first, last;

	if (!len)
		return 0;
	if (!blksize)
		blksize = 4096;
	first = off / blksize;
	last = (off + len - 1) / blksize;
	return (int64_t)((last - first + 2) * blksize);
}
