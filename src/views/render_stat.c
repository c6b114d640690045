/* /proc/stat for a limited container, and the CPU ticks /proc/uptime's idle
 * shares with it.
 *
 * Counters: the cgroup's user and system time (read at most LIVE_NS before
 * the render, live.c), spread evenly over the visible CPUs; idle = elapsed
 * capacity since the reader's PID namespace started - used. Each PID
 * namespace keeps the last ticks it was shown, so no counter ever goes
 * back (top and vmstat compute deltas).
 *
 * Ticks are 10 ms and the kernel charges a running task's time at its
 * scheduler tick, so over two reads a few ms apart (top's first frame) the
 * busy ticks rarely move, while idle (elapsed - used) takes any tick the
 * clock crosses: top then shows 100 % idle however busy the container is.
 * When the busy ticks would not move over less than two ticks but the
 * container was busy for at least half its capacity meanwhile (by its
 * usage, or while the usage lags, by its running tasks), the busier of
 * user and system shows its next tick now and idle does not move: at most
 * LEAD_TICKS ahead of the usage, which the next ticks of real usage
 * absorb (a read two ticks or more after the last shows whole ticks only).
 *
 * /proc/uptime's idle is the same series' (never below what stat showed),
 * but its renders do not move the series: top reads uptime between its
 * two stat reads, and must not see stat's next tick taken by it.
 *
 * Other lines: btime is the boot time matching the reader's /proc/uptime
 * (realtime - uptime), ctxt the switches of the cgroup's threads
 * (sampler.c), procs_* its running and blocked tasks; interrupts are not
 * accounted per cgroup, so intr and softirq keep their columns at 0. */
#include "views.h"

#include "cvmfs/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How far the busy ticks may run ahead of the usage: two, so that a read
 * between top's first read and its frame read cannot take the frame's. */
#define LEAD_TICKS 2

static uint64_t tick_ns(void)
{
	static uint64_t ns;

	if (!ns)
		ns = 1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK);
	return ns;
}

/* What one render counts from: the cgroup's usage and the namespace's age
 * at the same instant. */
struct usage {
	uint64_t user_ns, sys_ns, elapsed_ns, at_ns;
};

static struct usage usage_now(const struct view_caller *who, uint64_t pidns)
{
	struct cpu_live l;
	struct usage u;

	if (cpu_live_read(who->c, &l)) {
		u = (struct usage){ l.user_ns, l.sys_ns, 0, l.at_ns };
	} else { /* the snapshot's figures, as cpuacct.stat gives them */
		u = (struct usage){ who->snap->v.cpu_user_ns, who->snap->v.cpu_system_ns, 0,
				    boottime_ns() };
	}
	u.elapsed_ns = u.at_ns > pidns ? u.at_ns - pidns : 0;
	return u;
}

/* The slot of this PID namespace, or the least recently used one. */
static struct tick_slot *slot_for(struct container *c, uint64_t pidns, bool *fresh)
{
	struct tick_slot *lru = &c->slots[0];

	for (int i = 0; i < TICK_SLOTS; i++) {
		struct tick_slot *s = &c->slots[i];

		if (s->n && s->pidns_start == pidns) {
			*fresh = false;
			return s;
		}
		if (s->used_ns < lru->used_ns)
			lru = s;
	}
	*fresh = true;
	return lru;
}

/* v2 has no per-CPU usage: spread it evenly, remainder first. */
static void spread(struct cpu_ticks *t, unsigned n, uint64_t user, uint64_t sys,
		   uint64_t elapsed)
{
	for (unsigned i = 0; i < n; i++) {
		t[i].user = user / n + (i < user % n);
		t[i].system = sys / n + (i < sys % n);
		t[i].idle = elapsed > t[i].user + t[i].system ? elapsed - t[i].user - t[i].system : 0;
	}
}

/* Never below what was shown. */
static void clamp(const struct cpu_ticks *last, struct cpu_ticks *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		t[i].user = MAX(t[i].user, last[i].user);
		t[i].system = MAX(t[i].system, last[i].system);
		t[i].idle = MAX(t[i].idle, last[i].idle);
	}
}

static uint64_t busy_ticks(const struct cpu_ticks *t, unsigned n)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += t[i].user + t[i].system;
	return sum;
}

/* Busy for at least half of the capacity since the slot's last render,
 * less than two ticks ago? (Over a longer interval the whole ticks tell:
 * one tick, and up to one scheduler tick, at most 10 ms, that the kernel
 * may not have charged yet.) By the usage, or by the running tasks: the
 * kernel charges in scheduler ticks (4 ms at HZ=250), so over a few ms the
 * usage moves by 0 or by a tick. */
static bool busy_since(const struct container *c, const struct tick_slot *s,
		       const struct usage *u, unsigned n)
{
	uint64_t used = u->user_ns + u->sys_ns, was = s->user_ns + s->sys_ns;

	if (u->elapsed_ns <= s->at_ns || u->elapsed_ns - s->at_ns >= 2 * tick_ns())
		return false;
	if (used > was && 2 * (used - was) >= (uint64_t)n * (u->elapsed_ns - s->at_ns))
		return true;
	return c->nr_running > 0 && 2 * MIN(c->nr_running, n) >= n;
}

static void slot_store(struct tick_slot *s, const struct cpu_ticks *t, unsigned n,
		       const struct usage *u)
{
	memcpy(s->ticks, t, n * sizeof(*t));
	s->user_ns = u->user_ns;
	s->sys_ns = u->sys_ns;
	s->at_ns = u->elapsed_ns;
}

/* A new namespace or a new CPU set starts a new monotonic series. */
static void slot_reset(struct tick_slot *s, uint64_t pidns, const unsigned *ids,
		       const struct cpu_ticks *t, unsigned n, const struct usage *u)
{
	unsigned *nid = realloc(s->cpu, n * sizeof(*nid));
	struct cpu_ticks *nt = nid ? realloc(s->ticks, n * sizeof(*nt)) : NULL;

	if (nid)
		s->cpu = nid;
	if (!nt)
		return;
	s->ticks = nt;
	memcpy(s->cpu, ids, n * sizeof(*ids));
	s->n = n;
	s->pidns_start = pidns;
	s->uptime_idle = 0;
	slot_store(s, t, n, u);
}

/* The visible CPUs' ids; how many. */
static unsigned visible_ids(const struct view_caller *who, unsigned *ids, unsigned max)
{
	uint8_t set[CG_MAX_CPUS / 8];
	unsigned n = 0, want = caller_visible_cpus(who, set);

	for (unsigned c = 0; c < CG_MAX_CPUS && n < max && n < want; c++)
		if (cpuset_has(set, c))
			ids[n++] = c;
	return n;
}

/* The slot's series for these CPUs, started anew (from t) if it was of
 * another namespace or CPU set; false if it was just started. */
static bool slot_series(struct container *c, uint64_t pidns, const unsigned *ids,
			const struct cpu_ticks *t, unsigned n, const struct usage *u,
			struct tick_slot **sp)
{
	bool fresh;
	struct tick_slot *s = slot_for(c, pidns, &fresh);

	s->used_ns = now_ns();
	*sp = s;
	if (!fresh && s->n == n && !memcmp(s->cpu, ids, n * sizeof(*ids)))
		return true;
	slot_reset(s, pidns, ids, t, n, u);
	return false;
}

/* The ticks /proc/stat shows now, and the series' new last shown. */
static void ticks_series(struct container *c, uint64_t pidns, const unsigned *ids,
			 struct cpu_ticks *t, unsigned n, const struct usage *u)
{
	uint64_t user = u->user_ns / tick_ns(), sys = u->sys_ns / tick_ns();
	uint64_t elapsed = u->elapsed_ns / tick_ns();
	struct tick_slot *s;

	spread(t, n, user, sys, elapsed);
	pthread_mutex_lock(&c->stat_lock);
	if (slot_series(c, pidns, ids, t, n, u, &s)) {
		uint64_t last_user = 0, last_sys = 0;

		for (unsigned i = 0; i < n; i++) {
			last_user += s->ticks[i].user;
			last_sys += s->ticks[i].system;
		}
		clamp(s->ticks, t, n);
		if (busy_ticks(t, n) == last_user + last_sys && busy_since(c, s, u, n) &&
		    last_user + last_sys < user + sys + LEAD_TICKS) {
			bool sys_more = u->sys_ns - MIN(u->sys_ns, s->sys_ns) >
					u->user_ns - MIN(u->user_ns, s->user_ns);

			spread(t, n, last_user + !sys_more, last_sys + sys_more, elapsed);
			clamp(s->ticks, t, n);
		}
		slot_store(s, t, n, u);
	}
	pthread_mutex_unlock(&c->stat_lock);
}

static unsigned cpu_view_ticks(const struct view_caller *who, unsigned *ids,
			       struct cpu_ticks *t, unsigned max)
{
	uint64_t pidns = caller_pidns_start(who);
	unsigned n = visible_ids(who, ids, max);
	struct usage u;

	if (!n)
		return 0;
	u = usage_now(who, pidns);
	ticks_series(who->c, pidns, ids, t, n, &u);
	return n;
}

uint64_t cpu_view_idle(const struct view_caller *who, uint64_t *at_ns)
{
	_cleanup_free_ unsigned *ids = malloc(CG_MAX_CPUS * sizeof(*ids));
	_cleanup_free_ struct cpu_ticks *t = malloc(CG_MAX_CPUS * sizeof(*t));
	uint64_t pidns = caller_pidns_start(who), idle = 0;
	struct tick_slot *s;
	struct usage u;
	unsigned n;

	if (!ids || !t || !(n = visible_ids(who, ids, CG_MAX_CPUS)))
		return 0;
	u = usage_now(who, pidns);
	spread(t, n, u.user_ns / tick_ns(), u.sys_ns / tick_ns(), u.elapsed_ns / tick_ns());
	pthread_mutex_lock(&who->c->stat_lock);
	if (slot_series(who->c, pidns, ids, t, n, &u, &s))
		clamp(s->ticks, t, n);
	for (unsigned i = 0; i < n; i++)
		idle += t[i].idle;
	idle = MAX(idle, s->uptime_idle);
	s->uptime_idle = idle;
	pthread_mutex_unlock(&who->c->stat_lock);
	*at_ns = u.at_ns;
	return idle;
}

static void put_cpu_line(struct sbuf *out, const char *name, const struct cpu_ticks *t)
{
	sbuf_printf(out, "%s %llu 0 %llu %llu 0 0 0 0 0 0\n", name,
		    (unsigned long long)t->user, (unsigned long long)t->system,
		    (unsigned long long)t->idle);
}

static int put_cpu_lines(const struct view_caller *who, struct sbuf *out)
{
	_cleanup_free_ unsigned *ids = malloc(CG_MAX_CPUS * sizeof(*ids));
	_cleanup_free_ struct cpu_ticks *t = malloc(CG_MAX_CPUS * sizeof(*t));
	struct cpu_ticks sum = { 0 };
	unsigned n;

	if (!ids || !t)
		return -ENOMEM;
	n = cpu_view_ticks(who, ids, t, CG_MAX_CPUS);
	for (unsigned i = 0; i < n; i++) {
		sum.user += t[i].user;
		sum.system += t[i].system;
		sum.idle += t[i].idle;
	}
	put_cpu_line(out, "cpu ", &sum);
	for (unsigned i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "cpu%u", ids[i]);
		put_cpu_line(out, name, &t[i]);
	}
	return 0;
}

/* The boot time a reader whose uptime counts from pidns infers:
 * now (realtime) - (boottime now - pidns). */
static unsigned long long btime_for(uint64_t pidns)
{
	struct timespec rt, bt;
	int64_t ns;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	ns = ((int64_t)rt.tv_sec - bt.tv_sec) * 1000000000LL + (rt.tv_nsec - bt.tv_nsec) +
	     (int64_t)pidns;
	return ns > 0 ? (unsigned long long)(ns / 1000000000LL) : 0;
}

/* "key 0 0 ...": the host's line with every count at 0. */
static void put_zeros(struct sbuf *out, const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);

	sbuf_add(out, line, sp ? (size_t)(sp - line) : len);
	for (const char *p = sp; p && p < line + len; p = memchr(p + 1, ' ', (size_t)(line + len - p - 1)))
		sbuf_puts(out, " 0");
	sbuf_puts(out, "\n");
}

struct stat_lines {
	bool limited;
	uint64_t pidns;
	unsigned running, blocked;
	unsigned long long ctxt;
};

/* The host's lines after the cpu lines, the container's where it has them. */
static void put_other_lines(const struct stat_lines *w, struct sbuf *out)
{
	size_t len;
	const char *text = host_text(VF_STAT, &len), *l;

	for (l = text; l < text + len && *l;) {
		const char *end = memchr(l, '\n', (size_t)(text + len - l));
		size_t linelen = end ? (size_t)(end - l) + 1 : (size_t)(text + len - l);

		if (!strncmp(l, "cpu", 3) && w->limited)
			; /* the container's cpu lines come first */
		else if (!strncmp(l, "btime ", 6) && w->pidns)
			sbuf_printf(out, "btime %llu\n", btime_for(w->pidns));
		else if (!w->limited)
			sbuf_add(out, l, linelen);
		else if (!strncmp(l, "procs_running ", 14))
			sbuf_printf(out, "procs_running %u\n", w->running);
		else if (!strncmp(l, "procs_blocked ", 14))
			sbuf_printf(out, "procs_blocked %u\n", w->blocked);
		else if (!strncmp(l, "ctxt ", 5))
			sbuf_printf(out, "ctxt %llu\n", w->ctxt);
		else if (!strncmp(l, "intr ", 5) || !strncmp(l, "softirq ", 8))
			put_zeros(out, l, end ? linelen - 1 : linelen);
		else
			sbuf_add(out, l, linelen);
		l += linelen;
	}
}

int render_stat(const struct view_caller *who, struct sbuf *out)
{
	struct stat_lines w = { .limited = caller_limited(who) };
	int r;

	w.pidns = caller_pidns_start(who);
	if (!w.limited && !w.pidns)
		return host_copy(VF_STAT, out);
	if (!w.limited) { /* the host's, but btime as its uptime says */
		put_other_lines(&w, out);
		return sbuf_error(out);
	}
	r = put_cpu_lines(who, out);
	if (r < 0)
		return r;
	sampler_refresh(who->c, views_ctx->cfg.cache_ms * 1000000ULL);
	pthread_mutex_lock(&who->c->stat_lock);
	w.running = MAX(who->c->nr_running, 1u); /* the reader itself runs */
	w.blocked = who->c->nr_blocked;
	w.ctxt = who->c->ctxt;
	pthread_mutex_unlock(&who->c->stat_lock);
	put_other_lines(&w, out);
	return sbuf_error(out);
}
