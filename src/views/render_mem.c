/* /proc/meminfo, /proc/swaps, /proc/vmstat and the NUMA nodes' meminfo for
 * a limited container. */
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mem_field {
	const char *key;
	uint64_t kb;
};

static uint64_t kb(uint64_t bytes)
{
	return bytes / 1024;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Fill the per-container values; the rest of the host's lines pass through. */
static size_t mem_fields(const struct cg_values *v, uint64_t total, struct mem_field *f)
{
	const struct cg_memstat *m = &v->ms;
	uint64_t host_free = host_meminfo_kb("MemFree"), host_swap = host_meminfo_kb("SwapTotal");
	uint64_t used = MIN(v->mem_usage, total);
	uint64_t free_kb = MIN(kb(total - used), host_free);
	uint64_t reclaim = kb(m->active_file + m->inactive_file + m->slab_reclaimable);
	uint64_t swap_total = 0, swap_free = 0;
	size_t n = 0;

	if (v->swap_accounted) {
		swap_total = v->swap_limit == CG_UNLIMITED ? host_swap : MIN(kb(v->swap_limit), host_swap);
		swap_free = sub0(swap_total, kb(v->swap_usage));
	}
#define F(k, val) f[n++] = (struct mem_field){ k, (val) }
	F("MemTotal", kb(total));
	F("MemFree", free_kb);
	F("MemAvailable", MIN(free_kb + reclaim, kb(total)));
	F("Buffers", 0);
	F("Cached", kb(sub0(m->file, m->swapcached)));
	F("SwapCached", kb(m->swapcached));
	F("Active", kb(m->active_anon + m->active_file));
	F("Inactive", kb(m->inactive_anon + m->inactive_file));
	F("Active(anon)", kb(m->active_anon));
	F("Inactive(anon)", kb(m->inactive_anon));
	F("Active(file)", kb(m->active_file));
	F("Inactive(file)", kb(m->inactive_file));
	F("Unevictable", kb(m->unevictable));
	F("SwapTotal", swap_total);
	F("SwapFree", swap_free);
	F("Dirty", kb(m->dirty));
	F("Writeback", kb(m->writeback));
	F("AnonPages", kb(m->anon));
	F("Mapped", kb(m->mapped));
	F("Shmem", kb(m->shmem));
	F("KReclaimable", kb(m->slab_reclaimable));
	F("Slab", kb(m->slab_reclaimable + m->slab_unreclaimable));
	F("SReclaimable", kb(m->slab_reclaimable));
	F("SUnreclaim", kb(m->slab_unreclaimable));
	F("KernelStack", kb(m->kernel_stack));
	F("PageTables", kb(m->pagetables));
	F("AnonHugePages", kb(m->anon_thp));
#undef F
	return n;
}

static const struct mem_field *field_find(const struct mem_field *f, size_t n,
					  const char *line, size_t keylen)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(f[i].key) == keylen && !strncmp(f[i].key, line, keylen))
			return &f[i];
	return NULL;
}

static uint64_t field_kb(const struct mem_field *f, size_t n, const char *key)
{
	const struct mem_field *x = field_find(f, n, key, strlen(key));

	return x ? x->kb : 0;
}

int render_meminfo(const struct view_caller *who, struct sbuf *out)
{
	struct mem_field fields[40];
	uint64_t total;
	size_t n, len;
	const char *text, *l;

	if (!caller_mem_limited(who, &total))
		return host_copy(VF_MEMINFO, out);
	n = mem_fields(&who->snap->v, total, fields);
	text = host_text(VF_MEMINFO, &len);
	for (l = text; l < text + len && *l;) {
		const char *end = strchr(l, '\n');
		const char *colon = memchr(l, ':', end ? (size_t)(end - l) : strlen(l));
		const struct mem_field *f = colon ? field_find(fields, n, l, (size_t)(colon - l)) : NULL;
		size_t linelen = end ? (size_t)(end - l) + 1 : strlen(l);

		if (f) {
			char label[32];

			/* The kernel's layout: label padded to 16, value to 8, " kB". */
			snprintf(label, sizeof(label), "%s:", f->key);
			sbuf_printf(out, "%-16s%8llu kB\n", label, (unsigned long long)f->kb);
		} else {
			sbuf_add(out, l, linelen);
		}
		l += linelen;
	}
	return sbuf_error(out);
}

int render_swaps(const struct view_caller *who, struct sbuf *out)
{
	struct mem_field fields[40];
	uint64_t total, swap_total = 0, swap_free = 0;
	size_t n;

	if (!caller_mem_limited(who, &total))
		return host_copy(VF_SWAPS, out);
	n = mem_fields(&who->snap->v, total, fields);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(fields[i].key, "SwapTotal"))
			swap_total = fields[i].kb;
		if (!strcmp(fields[i].key, "SwapFree"))
			swap_free = fields[i].kb;
	}
	sbuf_puts(out, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
	if (swap_total) {
		uint64_t used = swap_total - swap_free;

		sbuf_printf(out, "%-40s%s\t%llu\t%s%llu\t%s%d\n", "none", "file\t",
			    (unsigned long long)swap_total, swap_total < 10000000 ? "\t" : "",
			    (unsigned long long)used, used < 10000000 ? "\t" : "", -2);
	}
	return sbuf_error(out);
}

/* ---- sys/devices/system/node/nodeN/meminfo ---- */

/* The host's MemTotal of node (kB), 0 if unknown. */
static uint64_t node_total_kb(unsigned node)
{
	char rel[96], buf[8192], key[32];
	const char *p;

	snprintf(rel, sizeof(rel), "devices/system/node/node%u/meminfo", node);
	snprintf(key, sizeof(key), "Node %u MemTotal:", node);
	if (host_sys_read(rel, buf, sizeof(buf)) < 0 || !(p = strstr(buf, key)))
		return 0;
	return strtoull(p + strlen(key), NULL, 10);
}

/* The share of the container's memory a node shows: all of it on a host
 * with one node; else the node's share of the host's memory (memcg does
 * not limit per node). As num/den. */
static void node_share(unsigned node, uint64_t *num, uint64_t *den)
{
	char buf[4096];
	uint8_t nodes[CG_MAX_CPUS / 8];

	*num = *den = 1;
	if (host_sys_read("devices/system/node/online", buf, sizeof(buf)) < 0 ||
	    cpulist_parse(buf, nodes) < 0 || cpuset_count(nodes) <= 1)
		return;
	*num = node_total_kb(node);
	*den = 0;
	for (unsigned n = 0; n < CG_MAX_CPUS; n++)
		if (cpuset_has(nodes, n))
			*den += node_total_kb(n);
	if (!*den)
		*num = *den = 1;
}

/* "Node N KEY:   value kB" lines (node_read_meminfo): the meminfo view's
 * figures where the node file has the same key, MemUsed and FilePages
 * from them; the host's other lines. */
int render_node_meminfo(const struct view_caller *who, enum vfile which, unsigned node,
			struct sbuf *out)
{
	struct mem_field fields[42];
	_cleanup_free_ char *text = NULL;
	uint64_t total, num, den;
	char rel[96], prefix[32];
	size_t n, len, plen;
	int r;

	snprintf(rel, sizeof(rel), "devices/system/node/node%u/meminfo", node);
	if (!caller_mem_limited(who, &total))
		return host_sys_copy(rel, out);
	if ((r = read_file_alloc(host_sys_fd(), rel, &text, &len)) < 0)
		return r;
	n = mem_fields(&who->snap->v, total, fields);
	fields[n] = (struct mem_field){ "MemUsed", sub0(field_kb(fields, n, "MemTotal"),
							field_kb(fields, n, "MemFree")) };
	fields[n + 1] = (struct mem_field){ "FilePages", kb(who->snap->v.ms.file) };
	n += 2;
	node_share(node, &num, &den);
	plen = (size_t)snprintf(prefix, sizeof(prefix), "Node %u ", node);
	for (const char *l = text; l < text + len && *l;) {
		const char *end = strchr(l, '\n');
		size_t linelen = end ? (size_t)(end - l) + 1 : strlen(l);
		const char *key = l + plen, *colon = memchr(l, ':', linelen);
		const struct mem_field *f = NULL;

		if (linelen > plen && !strncmp(l, prefix, plen) && colon)
			f = field_find(fields, n, key, (size_t)(colon - key));
		if (f) {
			char label[32];

			snprintf(label, sizeof(label), "%s:", f->key);
			sbuf_printf(out, "%s%-16s%8llu kB\n", prefix, label,
				    (unsigned long long)((unsigned __int128)f->kb * num / den));
		} else {
			sbuf_add(out, l, linelen);
		}
		l += linelen;
	}
	return sbuf_error(out);
}

uint64_t view_memfree_kb(const struct view_caller *who)
{
	struct mem_field fields[40];
	uint64_t total;
	size_t n;

	if (!caller_mem_limited(who, &total))
		return host_meminfo_kb("MemFree");
	n = mem_fields(&who->snap->v, total, fields);
	return field_kb(fields, n, "MemFree");
}
