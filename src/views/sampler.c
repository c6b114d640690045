/* The one background thread: every second it expires pid memos and removed
 * cgroups; every 5 s it samples each container's runnable and
 * uninterruptible tasks and folds them into the load averages exactly as the
 * kernel does (fixed point, EXP_1/5/15).
 *
 * The same walk of the cgroup's threads counts their context switches for
 * /proc/stat's ctxt: each thread's switches since the previous walk (all of
 * them for a thread not seen before) are added to a monotonic total, so a
 * thread that exits keeps what was counted for it. Readers of /proc/stat
 * walk again when the last walk is older than cache_ms. */
#include "views.h"

#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FSHIFT 11
#define FIXED_1 (1UL << FSHIFT)
static const unsigned long load_exp[3] = { 1884, 2014, 2037 };

static pthread_t sampler_thread;
static bool sampler_running;
static pthread_mutex_t sampler_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sampler_cond = PTHREAD_COND_INITIALIZER;

struct task_count {
	unsigned running, blocked, threads;
	struct tid_count *tids;
	size_t n, cap;
};

/* Times the thread was switched in: the third field of schedstat (one
 * short line), else voluntary + involuntary switches from status. */
static bool thread_switches(pid_t tid, uint64_t *n)
{
	static bool no_schedstat; /* a kernel without CONFIG_SCHED_INFO */
	char name[32], buf[2048];
	unsigned long long run, wait, slices;
	uint64_t vol, invol;

	if (!__atomic_load_n(&no_schedstat, __ATOMIC_RELAXED)) {
		snprintf(name, sizeof(name), "%d/schedstat", tid);
		if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) >= 0 &&
		    sscanf(buf, "%llu %llu %llu", &run, &wait, &slices) == 3) {
			*n = slices;
			return true;
		}
		snprintf(name, sizeof(name), "%d", tid);
		if (faccessat(views_ctx->proc_fd, name, F_OK, 0) < 0)
			return false; /* exited */
		__atomic_store_n(&no_schedstat, true, __ATOMIC_RELAXED);
	}
	snprintf(name, sizeof(name), "%d/status", tid);
	if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) < 0 ||
	    kv_lookup_u64(buf, "voluntary_ctxt_switches:", &vol) < 0 ||
	    kv_lookup_u64(buf, "nonvoluntary_ctxt_switches:", &invol) < 0)
		return false;
	*n = vol + invol;
	return true;
}

static void count_switches(struct task_count *tc, pid_t tid)
{
	uint64_t n;

	if (!thread_switches(tid, &n))
		return;
	if (tc->n == tc->cap) {
		size_t cap = tc->cap ? tc->cap * 2 : 64;
		struct tid_count *t = realloc(tc->tids, cap * sizeof(*t));

		if (!t)
			return;
		tc->tids = t;
		tc->cap = cap;
	}
	tc->tids[tc->n++] = (struct tid_count){ tid, n };
}

static void count_task(pid_t tid, void *arg)
{
	struct task_count *tc = arg;
	char name[32], buf[512];
	const char *paren;

	snprintf(name, sizeof(name), "%d/stat", tid);
	if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) < 0)
		return; /* exited meanwhile */
	tc->threads++;
	count_switches(tc, tid);
	paren = strrchr(buf, ')');
	if (!paren || !paren[1] || !paren[2])
		return;
	if (paren[2] == 'R')
		tc->running++;
	else if (paren[2] == 'D')
		tc->blocked++;
}

static int tid_cmp(const void *a, const void *b)
{
	pid_t x = ((const struct tid_count *)a)->tid, y = ((const struct tid_count *)b)->tid;

	return (x > y) - (x < y);
}

/* Switches since the previous walk; a tid counting less than before is a
 * new thread that reuses a number. */
static uint64_t new_switches(const struct tid_count *old, size_t n_old,
			     const struct tid_count *now, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++) {
		const struct tid_count *o =
			n_old ? bsearch(&now[i], old, n_old, sizeof(*old), tid_cmp) : NULL;

		sum += o && o->switches <= now[i].switches ? now[i].switches - o->switches
							    : now[i].switches;
	}
	return sum;
}

static unsigned long calc_load(unsigned long load, unsigned long exp, unsigned long active)
{
	unsigned long newload = load * exp + active * (FIXED_1 - exp);

	if (active >= load)
		newload += FIXED_1 - 1;
	return newload / FIXED_1;
}

/* Caller holds walk_lock: a walk's switch counts are compared with the
 * previous walk's, so two may not overlap. */
static void sample_locked(struct container *c, bool fold)
{
	struct task_count tc = { 0 };
	struct tid_count *old;

	cg_for_each_task(&c->cg, count_task, &tc);
	if (tc.n)
		qsort(tc.tids, tc.n, sizeof(*tc.tids), tid_cmp);
	pthread_mutex_lock(&c->stat_lock);
	c->nr_running = tc.running;
	c->nr_blocked = tc.blocked;
	c->nr_threads = tc.threads;
	if (fold)
		for (int i = 0; i < 3; i++)
			c->avenrun[i] = calc_load(c->avenrun[i], load_exp[i],
						  (tc.running + tc.blocked) * FIXED_1);
	c->ctxt += new_switches(c->tids, c->n_tids, tc.tids, tc.n);
	old = c->tids;
	c->tids = tc.tids;
	c->n_tids = tc.n;
	c->sampled = true;
	CMM_STORE_SHARED(c->walked_ns, now_ns());
	pthread_mutex_unlock(&c->stat_lock);
	free(old);
}

static void sample(struct container *c, bool fold)
{
	pthread_mutex_lock(&c->walk_lock);
	sample_locked(c, fold);
	pthread_mutex_unlock(&c->walk_lock);
}

void sampler_sample_now(struct container *c)
{
	sample(c, false);
}

void sampler_refresh(struct container *c, uint64_t max_age_ns)
{
	uint64_t now = now_ns();

	if (now - CMM_LOAD_SHARED(c->walked_ns) < max_age_ns ||
	    pthread_mutex_trylock(&c->walk_lock) != 0)
		return; /* fresh enough, or being walked: the last figures serve */
	if (now - c->walked_ns >= max_age_ns)
		sample_locked(c, false);
	pthread_mutex_unlock(&c->walk_lock);
}

static void sample_all(void)
{
	struct cds_lfht_iter it;
	struct container *c;

	urcu_memb_read_lock();
	cds_lfht_for_each_entry(views_ctx->containers, &it, c, node)
		if (!CMM_LOAD_SHARED(c->dead))
			sample(c, true);
	urcu_memb_read_unlock();
}

static void *sampler_main(void *arg)
{
	unsigned tick = 0;
	bool trim_pending = false;

	(void)arg;
	views_thread_enter();
	pthread_mutex_lock(&sampler_lock);
	while (sampler_running) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&sampler_cond, &sampler_lock, &ts);
		if (!sampler_running)
			break;
		pthread_mutex_unlock(&sampler_lock);
		/* Containers let go a second ago have been freed by now (RCU):
		 * hand their memory back to the system. */
		if (trim_pending)
			malloc_trim(0);
		trim_pending = containers_expire(now_ns()) > 0;
		if (++tick % 5 == 0)
			sample_all();
		pthread_mutex_lock(&sampler_lock);
	}
	pthread_mutex_unlock(&sampler_lock);
	return NULL;
}

int sampler_start(void)
{
	int r;

	sampler_running = true;
	r = pthread_create(&sampler_thread, NULL, sampler_main, NULL);
	if (r) {
		sampler_running = false;
		return -r;
	}
	return 0;
}

void sampler_stop(void)
{
	pthread_mutex_lock(&sampler_lock);
	if (!sampler_running) {
		pthread_mutex_unlock(&sampler_lock);
		return;
	}
	sampler_running = false;
	pthread_cond_signal(&sampler_cond);
	pthread_mutex_unlock(&sampler_lock);
	pthread_join(sampler_thread, NULL);
}
