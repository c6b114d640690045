/* The one background thread: every second it expires pid memos and removed
 * cgroups; every 5 s it samples each container's runnable and
 * uninterruptible tasks and folds them into the load averages exactly as the
 * kernel does (fixed point, EXP_1/5/15). */
#include "views.h"

#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define FSHIFT 11
#define FIXED_1 (1UL << FSHIFT)
static const unsigned long load_exp[3] = { 1884, 2014, 2037 };

static pthread_t sampler_thread;
static bool sampler_running;
static pthread_mutex_t sampler_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sampler_cond = PTHREAD_COND_INITIALIZER;

struct task_count {
	unsigned running, blocked, threads;
};

static void count_task(pid_t tid, void *arg)
{
	struct task_count *tc = arg;
	char name[32], buf[512];
	const char *paren;

	snprintf(name, sizeof(name), "%d/stat", tid);
	if (read_at_buf(V->proc_fd, name, buf, sizeof(buf)) < 0)
		return; /* exited meanwhile */
	tc->threads++;
	paren = strrchr(buf, ')');
	if (!paren || !paren[1] || !paren[2])
		return;
	if (paren[2] == 'R')
		tc->running++;
	else if (paren[2] == 'D')
		tc->blocked++;
}

static unsigned long calc_load(unsigned long load, unsigned long exp, unsigned long active)
{
	unsigned long newload = load * exp + active * (FIXED_1 - exp);

	if (active >= load)
		newload += FIXED_1 - 1;
	return newload / FIXED_1;
}

static void sample(struct container *c, bool fold)
{
	struct task_count tc = { 0 };

	cg_for_each_task(&c->cg, count_task, &tc);
	pthread_mutex_lock(&c->stat_lock);
	c->nr_running = tc.running;
	c->nr_blocked = tc.blocked;
	c->nr_threads = tc.threads;
	if (fold)
		for (int i = 0; i < 3; i++)
			c->avenrun[i] = calc_load(c->avenrun[i], load_exp[i],
						  (tc.running + tc.blocked) * FIXED_1);
	c->sampled = true;
	pthread_mutex_unlock(&c->stat_lock);
}

void sampler_sample_now(struct container *c)
{
	sample(c, false);
}

static void sample_all(void)
{
	struct cds_lfht_iter it;
	struct container *c;

	urcu_memb_read_lock();
	cds_lfht_for_each_entry(V->containers, &it, c, node)
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
