/* Which view a caller gets, and the dispatch to each file's renderer.
 * A caller whose cgroups set no memory or CPU limit gets the host's bytes. */
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <errno.h>
#include <string.h>

bool caller_mem_limited(const struct view_caller *who, uint64_t *total_bytes)
{
	uint64_t host = host_meminfo_kb("MemTotal") * 1024;

	*total_bytes = host;
	if (!who->snap || who->snap->v.mem_limit >= host)
		return false;
	*total_bytes = who->snap->v.mem_limit;
	return true;
}

unsigned caller_visible_cpus(const struct view_caller *who, uint8_t *set)
{
	const struct cg_values *v = who->snap ? &who->snap->v : NULL;
	unsigned n = 0, want;

	memcpy(set, V->host_online, CG_MAX_CPUS / 8);
	if (!v)
		return V->host_ncpus;
	for (unsigned i = 0; i < CG_MAX_CPUS / 8; i++)
		set[i] &= v->cpuset[i];
	n = cpuset_count(set);
	if (n == 0) { /* an empty or foreign cpuset: fall back to the host's */
		memcpy(set, V->host_online, CG_MAX_CPUS / 8);
		n = V->host_ncpus;
	}
	if (v->cpu_quota_us == CG_UNLIMITED || strcmp(V->cfg.cpu_view, "quota"))
		return n;
	want = (unsigned)((v->cpu_quota_us + v->cpu_period_us - 1) / v->cpu_period_us);
	if (want == 0)
		want = 1;
	if (want >= n)
		return n;
	/* Keep the first `want` CPUs of the cpuset: real ids, as affinity shows. */
	for (unsigned c = 0, kept = 0; c < CG_MAX_CPUS; c++) {
		if (!cpuset_has(set, c))
			continue;
		if (kept < want)
			kept++;
		else
			set[c / 8] &= (uint8_t)~(1u << (c % 8));
	}
	return want;
}

bool caller_cpu_limited(const struct view_caller *who)
{
	uint8_t set[CG_MAX_CPUS / 8];

	if (!who->snap)
		return false;
	caller_visible_cpus(who, set);
	return memcmp(set, V->host_online, sizeof(set)) != 0;
}

bool caller_limited(const struct view_caller *who)
{
	uint64_t total;

	return caller_mem_limited(who, &total) || caller_cpu_limited(who);
}

static int host_copy(enum vfile f, struct sbuf *out)
{
	size_t len;
	const char *t = host_text(f, &len);

	sbuf_add(out, t, len);
	return sbuf_error(out);
}

int render_file_arg(enum vfile f, unsigned arg, const struct view_caller *who,
		    struct sbuf *out)
{
	switch (f) {
	case VF_BLOCK_STAT:
		return render_block_stat(who, arg, out);
	case VF_NODE_CPULIST:
	case VF_NODE_CPUMAP:
		return render_node_cpus(who, f, arg, out);
	case VF_NODE_MEMINFO:
		return render_node_meminfo(who, arg, out);
	default:
		return render_file(f, who, out);
	}
}

int render_file(enum vfile f, const struct view_caller *who, struct sbuf *out)
{
	switch (f) {
	case VF_MEMINFO:
		return render_meminfo(who, out);
	case VF_SWAPS:
		return render_swaps(who, out);
	case VF_CPUINFO:
		return render_cpuinfo(who, out);
	case VF_STAT:
		return render_stat(who, out);
	case VF_UPTIME:
		return render_uptime(who, out);
	case VF_LOADAVG:
		return render_loadavg(who, out);
	case VF_DISKSTATS:
		return render_diskstats(who, out);
	case VF_PSI_CPU:
	case VF_PSI_MEM:
	case VF_PSI_IO:
		return render_pressure(who, f, out);
	case VF_CPU_ONLINE:
	case VF_CPU_POSSIBLE:
	case VF_CPU_PRESENT:
		return render_cpulist(who, f, out);
	case VF_VMSTAT:
		return render_vmstat(who, out);
	case VF_BLOCK_STAT:
	case VF_NODE_CPULIST:
	case VF_NODE_CPUMAP:
	case VF_NODE_MEMINFO:
	case VF_NFILES:
		break; /* per-object files: render_file_arg */
	}
	return -EINVAL;
}

/* Shared by renderers: the host's bytes when the caller sees the host. */
int render_host(enum vfile f, struct sbuf *out)
{
	return host_copy(f, out);
}

int render_host_sys(const char *rel, struct sbuf *out)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	if (host_sys_fd() < 0)
		return -ENOENT;
	r = read_file_alloc(host_sys_fd(), rel, &text, &len);
	if (r < 0)
		return r;
	sbuf_add(out, text, len);
	return sbuf_error(out);
}
