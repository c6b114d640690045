/* Who a file is rendered for, and what renderers ask about that reader:
 * does it have a memory or CPU limit, which CPUs it sees. A reader whose
 * cgroups set neither gets the host's bytes (host_copy). Renderers call
 * down into this; it knows no renderer. */
#include "views.h"

#include <string.h>

void caller_settle(struct view_caller *who)
{
	if (who->c)
		who->snap = container_current(&who->c); /* may move to a re-created cgroup */
	if (!who->snap)
		who->c = NULL;
}

void caller_of_pid(pid_t pid, struct view_caller *who)
{
	memset(who, 0, sizeof(*who));
	who->pid = pid;
	who->pidns_start = PIDNS_UNKNOWN;
	who->c = container_of_pid(pid, &who->pidns_start);
	caller_settle(who);
}

bool caller_mem_limited(const struct view_caller *who, uint64_t *total_bytes)
{
	uint64_t host = host_meminfo_kb("MemTotal") * 1024;

	*total_bytes = host;
	if (!who->snap || who->snap->v.mem_limit >= host)
		return false;
	*total_bytes = who->snap->v.mem_limit;
	return true;
}

/* Keep the first `want` CPUs of set: real ids, as affinity shows. */
static void cpus_keep_first(uint8_t *set, unsigned want)
{
	for (unsigned c = 0, kept = 0; c < CG_MAX_CPUS; c++) {
		if (!cpuset_has(set, c))
			continue;
		if (kept < want)
			kept++;
		else
			set[c / 8] &= (uint8_t)~(1u << (c % 8));
	}
}

unsigned caller_visible_cpus(const struct view_caller *who, uint8_t *set)
{
	const struct cg_values *v = who->snap ? &who->snap->v : NULL;
	unsigned n = 0, want;

	memcpy(set, views_ctx->host_online, CG_MAX_CPUS / 8);
	if (!v)
		return views_ctx->host_ncpus;
	for (unsigned i = 0; i < CG_MAX_CPUS / 8; i++)
		set[i] &= v->cpuset[i];
	n = cpuset_count(set);
	if (n == 0) { /* an empty or foreign cpuset: fall back to the host's */
		memcpy(set, views_ctx->host_online, CG_MAX_CPUS / 8);
		n = views_ctx->host_ncpus;
	}
	if (v->cpu_quota_us == CG_UNLIMITED || strcmp(views_ctx->cfg.cpu_view, "quota"))
		return n;
	want = (unsigned)((v->cpu_quota_us + v->cpu_period_us - 1) / v->cpu_period_us);
	if (want == 0)
		want = 1;
	if (want >= n)
		return n;
	cpus_keep_first(set, want);
	return want;
}

bool caller_cpu_limited(const struct view_caller *who)
{
	uint8_t set[CG_MAX_CPUS / 8];

	if (!who->snap)
		return false;
	caller_visible_cpus(who, set);
	return memcmp(set, views_ctx->host_online, sizeof(set)) != 0;
}

bool caller_limited(const struct view_caller *who)
{
	uint64_t total;

	return caller_mem_limited(who, &total) || caller_cpu_limited(who);
}
