/* /proc/vmstat for a limited container, from its memory.stat, its memory
 * events and its block I/O, in the host's file's order and layout.
 *
 * Memory gauges (nr_*: pages; nr_kernel_stack: kB; the *_hugepages: huge
 * pages, as the kernel prints them) follow the meminfo view: the
 * container's when its memory is limited, else the host's, like its
 * meminfo. Event counters are the container's whenever it is limited:
 * faults, reclaim, workingset and swap-in/out from memory.stat (v1 knows
 * only faults and refaults), pgpgin/pgpgout the KiB read and written by
 * its block I/O (the kernel's unit: sectors / 2), oom_kill from
 * memory.events (v2) or memory.oom_control (v1). What the cgroup does not
 * count (allocations, compaction, NUMA balancing...) reads 0: a constant
 * never misleads a tool computing rates, the host's counters would. */
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum vm_unit { VM_COUNT, VM_PAGES, VM_KB, VM_THP };

struct vm_map {
	const char *key;   /* /proc/vmstat */
	const char *v2;    /* memory.stat of cgroup v2 */
	const char *v1;    /* memory.stat of cgroup v1: the hierarchical total */
	enum vm_unit unit; /* memory.stat bytes as pages, kB or huge pages */
};

#define EVENT(k, v1) { k, k, v1, VM_COUNT }
#define LRU(k, stat) { "nr_" k, stat, "total_" stat, VM_PAGES }, \
		     { "nr_zone_" k, stat, "total_" stat, VM_PAGES }

static const struct vm_map vm_map[] = {
	LRU("inactive_anon", "inactive_anon"),
	LRU("active_anon", "active_anon"),
	LRU("inactive_file", "inactive_file"),
	LRU("active_file", "active_file"),
	LRU("unevictable", "unevictable"),
	{ "nr_slab_reclaimable", "slab_reclaimable", NULL, VM_PAGES },
	{ "nr_slab_unreclaimable", "slab_unreclaimable", NULL, VM_PAGES },
	{ "nr_anon_pages", "anon", "total_rss", VM_PAGES },
	{ "nr_mapped", "file_mapped", "total_mapped_file", VM_PAGES },
	{ "nr_file_pages", "file", "total_cache", VM_PAGES },
	{ "nr_dirty", "file_dirty", "total_dirty", VM_PAGES },
	{ "nr_writeback", "file_writeback", "total_writeback", VM_PAGES },
	{ "nr_shmem", "shmem", "total_shmem", VM_PAGES },
	{ "nr_shmem_hugepages", "shmem_thp", NULL, VM_THP },
	{ "nr_file_hugepages", "file_thp", NULL, VM_THP },
	{ "nr_anon_transparent_hugepages", "anon_thp", "total_rss_huge", VM_THP },
	{ "nr_kernel_stack", "kernel_stack", NULL, VM_KB },
	{ "nr_page_table_pages", "pagetables", NULL, VM_PAGES },
	{ "nr_sec_page_table_pages", "sec_pagetables", NULL, VM_PAGES },
	{ "nr_swapcached", "swapcached", "total_swapcached", VM_PAGES },
	EVENT("workingset_refault_anon", "total_workingset_refault_anon"),
	EVENT("workingset_refault_file", "total_workingset_refault_file"),
	EVENT("workingset_activate_anon", NULL),
	EVENT("workingset_activate_file", NULL),
	EVENT("workingset_restore_anon", NULL),
	EVENT("workingset_restore_file", NULL),
	EVENT("workingset_nodereclaim", NULL),
	EVENT("pswpin", NULL), /* memory.stat has them since Linux 6.12 */
	EVENT("pswpout", NULL),
	EVENT("pgfault", "total_pgfault"),
	EVENT("pgmajfault", "total_pgmajfault"),
	EVENT("pgrefill", NULL),
	EVENT("pgactivate", NULL),
	EVENT("pgdeactivate", NULL),
	EVENT("pglazyfree", NULL),
	EVENT("pglazyfreed", NULL),
	EVENT("pgscan_kswapd", NULL),
	EVENT("pgscan_direct", NULL),
	EVENT("pgscan_khugepaged", NULL),
	EVENT("pgscan_proactive", NULL),
	EVENT("pgsteal_kswapd", NULL),
	EVENT("pgsteal_direct", NULL),
	EVENT("pgsteal_khugepaged", NULL),
	EVENT("pgsteal_proactive", NULL),
	EVENT("thp_fault_alloc", NULL),
	EVENT("thp_collapse_alloc", NULL),
	EVENT("thp_swpout", NULL),
	EVENT("thp_swpout_fallback", NULL),
	EVENT("zswpin", NULL),
	EVENT("zswpout", NULL),
	EVENT("zswpwb", NULL),
};

#define VM_VALUES (ARRAY_SIZE(vm_map) + 8)

struct vm_value {
	const char *key;
	uint64_t v;
	bool gauge; /* memory in use, not an event count */
};

/* The size of a huge page as vmstat counts THPs (HPAGE_PMD_SIZE). */
static uint64_t thp_bytes(void)
{
	static uint64_t size;
	char buf[64];
	uint64_t v;

	if (size)
		return size;
	if (host_sys_read("kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof(buf)) >= 0 &&
	    parse_u64_or_max(buf, &v) == 0 && v && v != UINT64_MAX)
		size = v;
	else
		size = host_meminfo_kb("Hugepagesize") ? host_meminfo_kb("Hugepagesize") * 1024
						       : 2u << 20;
	return size;
}

static uint64_t in_unit(uint64_t bytes, enum vm_unit u)
{
	switch (u) {
	case VM_PAGES:
		return bytes / (uint64_t)sysconf(_SC_PAGESIZE);
	case VM_KB:
		return bytes / 1024;
	case VM_THP:
		return bytes / thp_bytes();
	case VM_COUNT:
		break;
	}
	return bytes;
}

static size_t memstat_values(const struct container *c, struct vm_value *out)
{
	char buf[16384];
	bool v2 = c->cg.layout->is_v2[CG_MEMORY];
	size_t n = 0;

	if (container_cg_read(c, CG_MEMORY, "memory.stat", buf, sizeof(buf)) < 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(vm_map); i++) {
		const struct vm_map *m = &vm_map[i];
		const char *k = v2 ? m->v2 : m->v1;
		uint64_t x;

		if (k && kv_lookup_u64(buf, k, &x) == 0)
			out[n++] = (struct vm_value){ m->key, in_unit(x, m->unit),
						      m->unit != VM_COUNT };
	}
	return n;
}

static uint64_t oom_kills(const struct container *c)
{
	char buf[1024];
	bool v2 = c->cg.layout->is_v2[CG_MEMORY];
	uint64_t n = 0;

	if (container_cg_read(c, CG_MEMORY, v2 ? "memory.events" : "memory.oom_control", buf,
			      sizeof(buf)) >= 0)
		kv_lookup_u64(buf, "oom_kill", &n);
	return n;
}

static size_t vm_values(const struct view_caller *who, struct vm_value *out)
{
	const struct cg_values *v = &who->snap->v;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), rd = 0, wr = 0;
	size_t n = memstat_values(who->c, out);

	for (unsigned i = 0; i < v->n_io; i++) {
		rd += v->io[i].rbytes;
		wr += v->io[i].wbytes;
	}
	out[n++] = (struct vm_value){ "nr_free_pages", view_memfree_kb(who) * 1024 / page, true };
	out[n++] = (struct vm_value){ "nr_zone_write_pending",
				      (v->ms.dirty + v->ms.writeback) / page, true };
	out[n++] = (struct vm_value){ "pgpgin", rd / 1024, false };
	out[n++] = (struct vm_value){ "pgpgout", wr / 1024, false };
	out[n++] = (struct vm_value){ "oom_kill", oom_kills(who->c), false };
	return n;
}

static const struct vm_value *vm_find(const struct vm_value *v, size_t n, const char *key,
				      size_t klen)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(v[i].key) == klen && !strncmp(v[i].key, key, klen))
			return &v[i];
	return NULL;
}

/* The dirty thresholds scale with the memory the container may use. */
static bool is_threshold(const char *key, size_t klen)
{
	return (klen == 18 && !strncmp(key, "nr_dirty_threshold", klen)) ||
	       (klen == 29 && !strncmp(key, "nr_dirty_background_threshold", klen));
}

int render_vmstat(const struct view_caller *who, struct sbuf *out)
{
	struct vm_value vals[VM_VALUES];
	uint64_t total, host_total = host_meminfo_kb("MemTotal") * 1024;
	bool mem;
	size_t n, len;
	const char *text, *l;

	if (!caller_limited(who))
		return host_copy(VF_VMSTAT, out);
	mem = caller_mem_limited(who, &total);
	n = vm_values(who, vals);
	text = host_text(VF_VMSTAT, &len);
	for (l = text; l < text + len && *l;) {
		const char *end = memchr(l, '\n', (size_t)(text + len - l));
		size_t linelen = end ? (size_t)(end - l) + 1 : (size_t)(text + len - l);
		const char *sp = memchr(l, ' ', linelen);
		size_t klen = sp ? (size_t)(sp - l) : 0;
		const struct vm_value *x = vm_find(vals, n, l, klen);

		if (!sp)
			; /* not a "key value" line */
		else if (x && (mem || !x->gauge))
			sbuf_printf(out, "%.*s %llu\n", (int)klen, l, (unsigned long long)x->v);
		else if (mem && is_threshold(l, klen) && host_total)
			sbuf_printf(out, "%.*s %llu\n", (int)klen, l,
				    (unsigned long long)((unsigned __int128)strtoull(sp + 1, NULL, 10) *
							 total / host_total));
		else if (!mem && (is_threshold(l, klen) || !strncmp(l, "nr_", 3)))
			sbuf_add(out, l, linelen);
		else
			sbuf_printf(out, "%.*s 0\n", (int)klen, l);
		l += linelen;
	}
	return sbuf_error(out);
}
