/* /proc/cpuinfo, the cpu sysfs lists and the NUMA nodes' cpu files for a
 * CPU-limited container. Visible CPUs are the effective cpuset, cut to
 * ceil(quota/period) in the quota view (render.c); a node shows the visible
 * CPUs it holds, so lscpu's and top's NUMA lines name the container's. */
#include "views.h"

#include "cvmfs/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		return host_copy(VF_CPUINFO, out);
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
		return host_copy(f, out);
	caller_visible_cpus(who, set);
	cpulist_format(set, list, sizeof(list));
	sbuf_printf(out, "%s\n", list);
	return sbuf_error(out);
}

/* The kernel's "%*pb" of a cpumask (bitmap_print_to_pagebuf): 32-bit hex
 * chunks, most significant first, comma-separated; the first has only as
 * many digits as its bits need. nbits is nr_cpu_ids. */
static void put_cpumap(struct sbuf *out, const uint8_t *set, unsigned nbits)
{
	unsigned chunks = (nbits + 31) / 32;

	for (unsigned ci = chunks; ci-- > 0;) {
		unsigned bits = ci == chunks - 1 && nbits % 32 ? nbits % 32 : 32;
		uint32_t v = 0;

		for (unsigned b = 0; b < bits; b++)
			if (cpuset_has(set, ci * 32 + b))
				v |= 1u << b;
		sbuf_printf(out, "%s%0*x", ci == chunks - 1 ? "" : ",", (int)((bits + 3) / 4), v);
	}
	sbuf_puts(out, "\n");
}

/* nr_cpu_ids: one past the highest possible CPU of the host. */
static unsigned host_nr_cpu_ids(void)
{
	uint8_t set[CG_MAX_CPUS / 8];
	size_t len;
	const char *text = host_text(VF_CPU_POSSIBLE, &len);
	unsigned n = 0;

	if (cpulist_parse(text, set) < 0)
		return views_ctx->host_ncpus;
	for (unsigned c = 0; c < CG_MAX_CPUS; c++)
		if (cpuset_has(set, c))
			n = c + 1;
	return n ? n : 1;
}

int render_node_cpus(const struct view_caller *who, enum vfile f, unsigned node,
		     struct sbuf *out)
{
	uint8_t set[CG_MAX_CPUS / 8], on_node[CG_MAX_CPUS / 8];
	char rel[96], buf[4096];
	char list[4096];

	snprintf(rel, sizeof(rel), "devices/system/node/node%u/%s", node,
		 f == VF_NODE_CPULIST ? "cpulist" : "cpumap");
	if (!caller_cpu_limited(who))
		return host_sys_copy(rel, out);
	snprintf(rel, sizeof(rel), "devices/system/node/node%u/cpulist", node);
	if (host_sys_read(rel, buf, sizeof(buf)) < 0 || cpulist_parse(buf, on_node) < 0)
		return -ENOENT;
	caller_visible_cpus(who, set);
	for (unsigned i = 0; i < CG_MAX_CPUS / 8; i++)
		set[i] &= on_node[i];
	if (f == VF_NODE_CPUMAP) {
		put_cpumap(out, set, host_nr_cpu_ids());
	} else {
		cpulist_format(set, list, sizeof(list));
		sbuf_printf(out, "%s\n", list);
	}
	return sbuf_error(out);
}
