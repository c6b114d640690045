/* The dispatcher: which renderer makes each view file. Renderers call
 * down into caller.c (what the reader may see) and host.c (the host's
 * bytes), never back into this table. */
#include "views.h"

#include <errno.h>

typedef int render_caller_fn(const struct view_caller *who, struct sbuf *out);
typedef int render_file_fn(const struct view_caller *who, enum vfile f, struct sbuf *out);
typedef int render_obj_fn(const struct view_caller *who, enum vfile f, unsigned arg,
			  struct sbuf *out);

/* One of the three is set: most files need only their reader; a renderer
 * serving several files is told which; per-object files get the object. */
static const struct renderer {
	render_caller_fn *of_caller;
	render_file_fn *of_file;
	render_obj_fn *of_object;
} renderers[VF_NFILES] = {
	[VF_MEMINFO] = { .of_caller = render_meminfo },
	[VF_SWAPS] = { .of_caller = render_swaps },
	[VF_CPUINFO] = { .of_caller = render_cpuinfo },
	[VF_STAT] = { .of_caller = render_stat },
	[VF_UPTIME] = { .of_caller = render_uptime },
	[VF_LOADAVG] = { .of_caller = render_loadavg },
	[VF_DISKSTATS] = { .of_caller = render_diskstats },
	[VF_VMSTAT] = { .of_caller = render_vmstat },
	[VF_PSI_CPU] = { .of_file = render_pressure },
	[VF_PSI_MEM] = { .of_file = render_pressure },
	[VF_PSI_IO] = { .of_file = render_pressure },
	[VF_CPU_ONLINE] = { .of_file = render_cpulist },
	[VF_CPU_POSSIBLE] = { .of_file = render_cpulist },
	[VF_CPU_PRESENT] = { .of_file = render_cpulist },
	[VF_BLOCK_STAT] = { .of_object = render_block_stat },
	[VF_NODE_CPULIST] = { .of_object = render_node_cpus },
	[VF_NODE_CPUMAP] = { .of_object = render_node_cpus },
	[VF_NODE_MEMINFO] = { .of_object = render_node_meminfo },
};

int render_file_arg(enum vfile f, unsigned arg, const struct view_caller *who,
		    struct sbuf *out)
{
	const struct renderer *r;

	if ((unsigned)f >= VF_NFILES)
		return -EINVAL;
	r = &renderers[f];
	if (r->of_object)
		return r->of_object(who, f, arg, out);
	return r->of_file ? r->of_file(who, f, out) : r->of_caller(who, out);
}

int render_file(enum vfile f, const struct view_caller *who, struct sbuf *out)
{
	return vfile_has_arg(f) ? -EINVAL : render_file_arg(f, 0, who, out);
}
