/* /proc/uptime, /proc/loadavg, /proc/diskstats and /proc/pressure files. */
#include "views.h"

#include "cvmfs/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int render_host(enum vfile f, struct sbuf *out);

#define FSHIFT 11
#define FIXED_1 (1UL << FSHIFT)
#define LOAD_INT(x) ((x) >> FSHIFT)
#define LOAD_FRAC(x) LOAD_INT(((x) & (FIXED_1 - 1)) * 100)
/* The kernel rounds to two decimals before printing. */
#define LOAD_ROUND(x) ((x) + FIXED_1 / 200)

int render_uptime(const struct view_caller *who, struct sbuf *out)
{
	uint64_t start = caller_pidns_start(who), up_cs, idle_cs;
	size_t len;
	const char *host;
	double host_up = 0, host_idle = 0;

	if (!start && !caller_limited(who))
		return render_host(VF_UPTIME, out);
	host = host_text(VF_UPTIME, &len);
	sscanf(host, "%lf %lf", &host_up, &host_idle);
	up_cs = (boottime_ns() - start) / 10000000;
	if (who->snap && caller_limited(who)) {
		unsigned ids[CG_MAX_CPUS];
		_cleanup_free_ struct cpu_ticks *t = malloc(CG_MAX_CPUS * sizeof(*t));
		unsigned n = t ? cpu_view_ticks(who, ids, t, CG_MAX_CPUS) : 0;
		uint64_t idle = 0;

		for (unsigned i = 0; i < n; i++)
			idle += t[i].idle;
		idle_cs = idle * 100 / (uint64_t)sysconf(_SC_CLK_TCK);
	} else {
		/* Same share of the host's idle time as of its uptime. */
		idle_cs = host_up > 0 ? (uint64_t)(host_idle * 100 * (double)up_cs / (host_up * 100)) : 0;
	}
	sbuf_printf(out, "%llu.%02llu %llu.%02llu\n", (unsigned long long)(up_cs / 100),
		    (unsigned long long)(up_cs % 100), (unsigned long long)(idle_cs / 100),
		    (unsigned long long)(idle_cs % 100));
	return sbuf_error(out);
}

int render_loadavg(const struct view_caller *who, struct sbuf *out)
{
	unsigned long avg[3];
	unsigned running, threads;
	size_t len;
	const char *host, *last;

	if (!caller_limited(who))
		return render_host(VF_LOADAVG, out);
	pthread_mutex_lock(&who->c->stat_lock);
	for (int i = 0; i < 3; i++)
		avg[i] = LOAD_ROUND(who->c->avenrun[i]);
	running = MAX(who->c->nr_running, 1u);
	threads = MAX(who->c->nr_threads, running);
	pthread_mutex_unlock(&who->c->stat_lock);
	host = host_text(VF_LOADAVG, &len);
	last = strrchr(host, ' ');
	sbuf_printf(out, "%lu.%02lu %lu.%02lu %lu.%02lu %u/%u %d\n",
		    LOAD_INT(avg[0]), LOAD_FRAC(avg[0]), LOAD_INT(avg[1]), LOAD_FRAC(avg[1]),
		    LOAD_INT(avg[2]), LOAD_FRAC(avg[2]), running, threads,
		    last ? atoi(last + 1) : 0);
	return sbuf_error(out);
}

static const struct cg_iodev *io_find(const struct cg_values *v, unsigned maj, unsigned min)
{
	for (unsigned i = 0; i < v->n_io; i++)
		if (v->io[i].major == maj && v->io[i].minor == min)
			return &v->io[i];
	return NULL;
}

int render_diskstats(const struct view_caller *who, struct sbuf *out)
{
	static const struct cg_iodev zero;
	size_t len;
	const char *text, *l;

	if (!caller_limited(who))
		return render_host(VF_DISKSTATS, out);
	text = host_text(VF_DISKSTATS, &len);
	for (l = text; l < text + len && *l;) {
		const char *end = strchr(l, '\n');
		size_t linelen = end ? (size_t)(end - l) + 1 : strlen(l);
		unsigned maj, min;
		char name[64];

		if (sscanf(l, "%u %u %63s", &maj, &min, name) == 3) {
			const struct cg_iodev *d = io_find(&who->snap->v, maj, min);

			if (!d)
				d = &zero;
			/* The kernel's 17 counters; the cgroup knows ops and bytes. */
			sbuf_printf(out, "%4u %7u %s %llu 0 %llu 0 %llu 0 %llu 0 0 0 0 %llu 0 %llu 0 0 0\n",
				    maj, min, name, (unsigned long long)d->rios,
				    (unsigned long long)(d->rbytes / 512), (unsigned long long)d->wios,
				    (unsigned long long)(d->wbytes / 512), (unsigned long long)d->dios,
				    (unsigned long long)(d->dbytes / 512));
		}
		l += linelen;
	}
	return sbuf_error(out);
}

int render_pressure(const struct view_caller *who, enum vfile f, struct sbuf *out)
{
	if (!caller_limited(who) || !who->snap->v.has_psi)
		return render_host(f, out);
	sbuf_puts(out, who->snap->v.psi[f - VF_PSI_CPU]);
	return sbuf_error(out);
}
