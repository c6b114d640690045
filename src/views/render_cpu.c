/* /proc/cpuinfo, /proc/stat and the cpu sysfs lists for a CPU-limited
 * container. Visible CPUs are the effective cpuset, cut to ceil(quota/period)
 * in the quota view; /proc/stat counters come from the cgroup's usage and are
 * kept monotonic per container so top and vmstat never see negative deltas. */
#include "views.h"

#include "cvmfs/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int render_host(enum vfile f, struct sbuf *out);

static uint64_t ns_to_ticks(uint64_t ns)
{
	static uint64_t hz;

	if (!hz)
		hz = (uint64_t)sysconf(_SC_CLK_TCK);
	return ns / (1000000000ULL / hz);
}

static uint64_t elapsed_since(uint64_t start)
{
	uint64_t now = boottime_ns();

	return now > start ? now - start : 0;
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

static void ticks_clamp(struct container *c, uint64_t pidns, const unsigned *ids,
			struct cpu_ticks *t, unsigned n)
{
	struct tick_slot *s;
	bool fresh;

	pthread_mutex_lock(&c->stat_lock);
	s = slot_for(c, pidns, &fresh);
	s->used_ns = now_ns();
	if (fresh || s->n != n || memcmp(s->cpu, ids, n * sizeof(*ids))) {
		/* New namespace or new CPU set: start a new monotonic series. */
		unsigned *nid = realloc(s->cpu, n * sizeof(*nid));
		struct cpu_ticks *nt = nid ? realloc(s->ticks, n * sizeof(*nt)) : NULL;

		if (nid)
			s->cpu = nid;
		if (nt) {
			s->ticks = nt;
			memcpy(s->cpu, ids, n * sizeof(*ids));
			memcpy(s->ticks, t, n * sizeof(*t));
			s->n = n;
			s->pidns_start = pidns;
		}
		pthread_mutex_unlock(&c->stat_lock);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct cpu_ticks *last = &s->ticks[i];

		t[i].user = MAX(t[i].user, last->user);
		t[i].system = MAX(t[i].system, last->system);
		t[i].idle = MAX(t[i].idle, last->idle);
		*last = t[i];
	}
	pthread_mutex_unlock(&c->stat_lock);
}

unsigned cpu_view_ticks(const struct view_caller *who, unsigned *ids,
			struct cpu_ticks *t, unsigned max)
{
	uint8_t set[CG_MAX_CPUS / 8];
	const struct cg_values *v = &who->snap->v;
	unsigned n = 0, want = caller_visible_cpus(who, set);
	uint64_t user = ns_to_ticks(v->cpu_user_ns), sys = ns_to_ticks(v->cpu_system_ns);
	uint64_t pidns = caller_pidns_start(who);
	uint64_t elapsed = ns_to_ticks(elapsed_since(pidns));

	for (unsigned c = 0; c < CG_MAX_CPUS && n < max && n < want; c++)
		if (cpuset_has(set, c))
			ids[n++] = c;
	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		/* v2 has no per-CPU usage: spread it evenly, remainder first. */
		t[i].user = user / n + (i < user % n);
		t[i].system = sys / n + (i < sys % n);
		t[i].idle = elapsed > t[i].user + t[i].system ? elapsed - t[i].user - t[i].system : 0;
	}
	ticks_clamp(who->c, pidns, ids, t, n);
	return n;
}

static void put_cpu_line(struct sbuf *out, const char *name, const struct cpu_ticks *t)
{
	sbuf_printf(out, "%s %llu 0 %llu %llu 0 0 0 0 0 0\n", name,
		    (unsigned long long)t->user, (unsigned long long)t->system,
		    (unsigned long long)t->idle);
}

int render_stat(const struct view_caller *who, struct sbuf *out)
{
	_cleanup_free_ unsigned *ids = malloc(CG_MAX_CPUS * sizeof(*ids));
	_cleanup_free_ struct cpu_ticks *t = malloc(CG_MAX_CPUS * sizeof(*t));
	struct cpu_ticks sum = { 0 };
	unsigned n, running, blocked;
	size_t len;
	const char *text, *l;

	if (!caller_limited(who))
		return render_host(VF_STAT, out);
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
	pthread_mutex_lock(&who->c->stat_lock);
	running = MAX(who->c->nr_running, 1u); /* the reader itself runs */
	blocked = who->c->nr_blocked;
	pthread_mutex_unlock(&who->c->stat_lock);
	text = host_text(VF_STAT, &len);
	for (l = text; l < text + len && *l;) {
		const char *end = strchr(l, '\n');
		size_t linelen = end ? (size_t)(end - l) + 1 : strlen(l);

		if (!strncmp(l, "procs_running ", 14))
			sbuf_printf(out, "procs_running %u\n", running);
		else if (!strncmp(l, "procs_blocked ", 14))
			sbuf_printf(out, "procs_blocked %u\n", blocked);
		else if (strncmp(l, "cpu", 3))
			sbuf_add(out, l, linelen);
		l += linelen;
	}
	return sbuf_error(out);
}

static bool block_processor(const char *block, size_t len, unsigned *cpu)
{
	if (len < 10 || strncmp(block, "processor", 9))
		return false;
	const char *colon = memchr(block, ':', len);

	if (!colon)
		return false;
	*cpu = (unsigned)strtoul(colon + 1, NULL, 10);
	return true;
}

/* Copy one cpuinfo block, fixing the per-package counts. */
static void put_block(struct sbuf *out, const char *b, size_t len, unsigned n)
{
	const char *l = b;

	while (l < b + len) {
		const char *end = memchr(l, '\n', (size_t)(b + len - l));
		size_t linelen = end ? (size_t)(end - l) + 1 : (size_t)(b + len - l);

		if (!strncmp(l, "siblings\t:", 10))
			sbuf_printf(out, "siblings\t: %u\n", n);
		else if (!strncmp(l, "cpu cores\t:", 11))
			sbuf_printf(out, "cpu cores\t: %u\n", n);
		else
			sbuf_add(out, l, linelen);
		l += linelen;
	}
}

int render_cpuinfo(const struct view_caller *who, struct sbuf *out)
{
	uint8_t set[CG_MAX_CPUS / 8];
	unsigned n;
	size_t len;
	const char *text, *b;

	if (!caller_cpu_limited(who))
		return render_host(VF_CPUINFO, out);
	n = caller_visible_cpus(who, set);
	text = host_text(VF_CPUINFO, &len);
	for (b = text; b < text + len;) {
		const char *end = strstr(b, "\n\n");
		size_t blen = end ? (size_t)(end - b) + 2 : (size_t)(text + len - b);
		unsigned cpu;

		if (!block_processor(b, blen, &cpu) || cpuset_has(set, cpu))
			put_block(out, b, blen, n);
		b += blen;
	}
	return sbuf_error(out);
}

int render_cpulist(const struct view_caller *who, enum vfile f, struct sbuf *out)
{
	uint8_t set[CG_MAX_CPUS / 8];
	char list[4096];

	if (!caller_cpu_limited(who))
		return render_host(f, out);
	caller_visible_cpus(who, set);
	cpulist_format(set, list, sizeof(list));
	sbuf_printf(out, "%s\n", list);
	return sbuf_error(out);
}
