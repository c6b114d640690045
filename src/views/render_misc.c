/* /proc/uptime, /proc/loadavg, /proc/diskstats, sys/block/NAME/stat and
 * /proc/pressure files. */
#include "views.h"

#include "cvmfs/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		return host_copy(VF_UPTIME, out);
	host = host_text(VF_UPTIME, &len);
	sscanf(host, "%lf %lf", &host_up, &host_idle);
	up_cs = (boottime_ns() - start) / 10000000;
	if (who->snap && caller_limited(who)) {
		uint64_t at = 0, idle = cpu_view_idle(who, &at);

		idle_cs = idle * 100 / (uint64_t)sysconf(_SC_CLK_TCK);
		if (at > start) /* the instant the idle ticks describe */
			up_cs = (at - start) / 10000000;
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
		return host_copy(VF_LOADAVG, out);
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
	static const struct cg_iodev zero;

	for (unsigned i = 0; i < v->n_io; i++)
		if (v->io[i].major == maj && v->io[i].minor == min)
			return &v->io[i];
	return &zero;
}

/* The kernel's 17 block counters of a device as the cgroup sees them: it
 * knows ops and bytes of reads, writes and discards; times, merges,
 * in-flight and flushes stay 0. */
#define DISK_COUNTERS 17
static void disk_counters(const struct cg_iodev *d, unsigned long long c[DISK_COUNTERS])
{
	memset(c, 0, DISK_COUNTERS * sizeof(*c));
	c[0] = d->rios;
	c[2] = d->rbytes / 512;
	c[4] = d->wios;
	c[6] = d->wbytes / 512;
	c[11] = d->dios;
	c[13] = d->dbytes / 512;
}

int render_diskstats(const struct view_caller *who, struct sbuf *out)
{
	size_t len;
	const char *text, *l;

	if (!caller_limited(who))
		return host_copy(VF_DISKSTATS, out);
	text = host_text(VF_DISKSTATS, &len);
	for (l = text; l < text + len && *l;) {
		const char *end = strchr(l, '\n');
		size_t linelen = end ? (size_t)(end - l) + 1 : strlen(l);
		unsigned long long c[DISK_COUNTERS];
		unsigned maj, min;
		char name[64];

		if (sscanf(l, "%u %u %63s", &maj, &min, name) == 3) {
			disk_counters(io_find(&who->snap->v, maj, min), c);
			sbuf_printf(out, "%4u %7u %s", maj, min, name);
			for (int i = 0; i < DISK_COUNTERS; i++)
				sbuf_printf(out, " %llu", c[i]);
			sbuf_puts(out, "\n");
		}
		l += linelen;
	}
	return sbuf_error(out);
}

/* sys/block/NAME/stat: the same counters as the diskstats view's line of
 * the device, in sysfs's layout (part_stat_show: 17 fields of width 8). */
int render_block_stat(const struct view_caller *who, enum vfile f, unsigned idx,
		      struct sbuf *out)
{
	const char *name = block_name(idx);
	unsigned long long c[DISK_COUNTERS];
	char rel[160], dev[32];
	unsigned maj, min;

	if (!name)
		return -ENOENT;
	snprintf(rel, sizeof(rel), "block/%s/stat", name);
	if (!caller_limited(who))
		return host_sys_copy(rel, out);
	snprintf(rel, sizeof(rel), "block/%s/dev", name);
	if (host_sys_read(rel, dev, sizeof(dev)) < 0 || sscanf(dev, "%u:%u", &maj, &min) != 2)
		return -ENOENT; /* the device went away */
	disk_counters(io_find(&who->snap->v, maj, min), c);
	for (int i = 0; i < DISK_COUNTERS; i++)
		sbuf_printf(out, "%s%8llu", i ? " " : "", c[i]);
	sbuf_puts(out, "\n");
	return sbuf_error(out);
}

int render_pressure(const struct view_caller *who, enum vfile f, struct sbuf *out)
{
	if (!caller_limited(who) || !who->snap->v.has_psi)
		return host_copy(f, out);
	sbuf_puts(out, who->snap->v.psi[f - VF_PSI_CPU]);
	return sbuf_error(out);
}
