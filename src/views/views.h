/* cvmfsd views: internal interfaces.
 *
 * Request path: FUSE request pid -> container (pid cache, container table,
 * both liburcu hash tables) -> cgroup snapshot (RCU-published, refreshed at
 * most every cache_ms) -> renderer -> bytes. Nothing on this path forks or
 * takes a global lock. */
#pragma once

#include "cvmfs/cgroup.h"
#include "cvmfs/sbuf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

struct ct;

struct views_config {
	char *config;
	char *cgroup_root;
	char *proc_root;
	char *sys_root;
	char *fuse_opts;
	char *cpu_view;   /* "quota" (default) or "cpuset" */
	char *ct_parent;  /* cgroup holding per-container trees, default "cvmfs" */
	bool foreground;
	bool debug;
	uint64_t cache_ms;     /* cgroup snapshot lifetime */
	uint64_t ct_ttl_ms;    /* page-cache lifetime of per-container inodes */
	uint64_t pid_cache_ms; /* pid -> container memo lifetime */
	uint64_t idle_expire_s;
	uint64_t restart_ms;     /* survive.c: delay before a crashed server's restart */
	uint64_t max_crashes;    /* ... in crash_window_s: then give up */
	uint64_t crash_window_s;
};

enum vfile {
	VF_MEMINFO, VF_CPUINFO, VF_STAT, VF_UPTIME, VF_LOADAVG, VF_SWAPS,
	VF_DISKSTATS, VF_PSI_CPU, VF_PSI_MEM, VF_PSI_IO,
	VF_CPU_ONLINE, VF_CPU_POSSIBLE, VF_CPU_PRESENT, VF_VMSTAT,
	/* Files of one of many objects: the render's arg says which. */
	VF_BLOCK_STAT,   /* sys/block/NAME/stat, arg: block_name() index */
	VF_NODE_CPULIST, /* sys/devices/system/node/nodeN/..., arg: N */
	VF_NODE_CPUMAP, VF_NODE_MEMINFO, VF_NFILES
};

static inline bool vfile_has_arg(enum vfile f)
{
	return f >= VF_BLOCK_STAT && f < VF_NFILES;
}

/* Files whose numbers move with every read (CPU time, uptime): rendered
 * afresh for each read, never served from a cache older than LIVE_NS. */
static inline bool vfile_live(enum vfile f)
{
	return f == VF_STAT || f == VF_UPTIME;
}

/* Counter files: tools take rates from them (vmstat, iostat, sar), so a
 * per-container tree keeps them no longer than their data's snapshot
 * (cache_ms) rather than for its whole ct_ttl. */
static inline bool vfile_counters(enum vfile f)
{
	return f == VF_DISKSTATS || f == VF_VMSTAT || f == VF_BLOCK_STAT ||
	       f == VF_PSI_CPU || f == VF_PSI_MEM || f == VF_PSI_IO;
}

/* The freshness of live files, and of the CPU usage they show: top reads
 * /proc/stat for its first frame ~1-2 ms after its first read. Reading the
 * usage costs one pread of a kept-open file (~1 us). */
#define LIVE_NS 500000ULL

struct snapshot {
	struct cg_values v;
	uint64_t taken_ns;
	struct rcu_head rcu;
};

/* Monotonic /proc/stat counters per visible CPU (USER_HZ ticks). */
struct cpu_ticks {
	uint64_t user, system, idle;
};

/* The last counters shown to one PID namespace: idle depends on the
 * namespace's age, so each keeps its own monotonic state. */
#define TICK_SLOTS 4
struct tick_slot {
	uint64_t pidns_start;
	uint64_t used_ns;
	unsigned n;
	unsigned *cpu;
	struct cpu_ticks *ticks;
	/* The cgroup's usage and clock behind the last shown ticks (ns). */
	uint64_t user_ns, sys_ns, at_ns;
	uint64_t uptime_idle; /* the last idle /proc/uptime showed (ticks) */
};

/* The cgroup's CPU usage, read at most every LIVE_NS (live.c). */
struct cpu_live {
	uint64_t user_ns, sys_ns;
	uint64_t at_ns;               /* CLOCK_BOOTTIME of the reading */
	uint64_t hist_used_ns, hist_at_ns; /* an older reading, for the rate */
	bool ok;
};

/* A thread's context switches at the last walk of the cgroup's tasks. */
struct tid_count {
	pid_t tid;
	uint64_t switches;
};

struct container {
	struct cds_lfht_node node;
	unsigned long hash;
	char key[CG_NRES * 257];
	struct cg_paths paths;       /* as /proc/PID/cgroup named them */
	struct cg_handle cg;
	struct snapshot *snap;       /* RCU */
	pthread_mutex_t refresh_lock; /* one refresher at a time; protects cg hot fds */
	uint64_t last_used_ns;       /* atomic */
	bool dead;
	/* loadavg, written by the sampler thread only */
	unsigned long avenrun[3];
	/* Task walks (sampler.c): one at a time, under walk_lock; their
	 * results under stat_lock. */
	pthread_mutex_t walk_lock;
	uint64_t walked_ns;           /* CLOCK_MONOTONIC of the last walk */
	unsigned nr_running, nr_blocked, nr_threads;
	bool sampled;
	uint64_t ctxt;                /* switches counted so far, monotonic */
	struct tid_count *tids;       /* sorted by tid */
	size_t n_tids;
	/* CPU usage (live.c), protected by live_lock */
	pthread_mutex_t live_lock;
	struct cpu_live live;
	int live_fd[2];               /* kept open: v1 usage_user/usage_sys, v2 cpu.stat */
	/* protected by stat_lock */
	pthread_mutex_t stat_lock;
	struct tick_slot slots[TICK_SLOTS];
	/* The per-container tree serving this container's readers of the
	 * shared tree, for one PID namespace; protected by stat_lock. */
	unsigned anon_ct;
	uint64_t anon_pidns;
	struct ct *anon_cts;          /* every anonymous tree made for it */
	struct container *next_dying; /* sampler thread only */
	struct rcu_head rcu;
};

/* Who a file is rendered for. */
struct view_caller {
	struct container *c;         /* NULL: no cgroup information, host view */
	const struct snapshot *snap; /* NULL iff c is NULL */
	pid_t pid;                   /* for the PID namespace (uptime); 0 = host */
	uint64_t pidns_start;        /* PIDNS_UNKNOWN: derive from pid */
};

#define PIDNS_UNKNOWN UINT64_MAX
/* Boottime (ns) at which the caller's PID namespace init started; 0 = host. */
uint64_t caller_pidns_start(const struct view_caller *who);

struct views {
	struct views_config cfg;
	struct cg_layout layout;
	int proc_fd;
	int sys_cpu_fd;
	struct cds_lfht *containers;
	struct cds_lfht *pids;
	uint8_t host_online[CG_MAX_CPUS / 8];
	unsigned host_ncpus;
	uint64_t self_pidns;
	bool stopping; /* atomic */
};

extern struct views *views_ctx;

/* time.c-like helpers */
uint64_t now_ns(void);       /* CLOCK_MONOTONIC */
uint64_t boottime_ns(void);  /* CLOCK_BOOTTIME: what /proc/uptime counts */

/* threads.c */
void views_thread_enter(void); /* registers the calling thread with urcu once */
static inline void views_read_lock(void)
{
	views_thread_enter();
	urcu_memb_read_lock();
}

/* container.c; call inside an RCU read-side section */
int containers_init(void);
void containers_fini(void);
/* The container of a FUSE caller, or NULL if its cgroups cannot be read. */
struct container *container_of_pid(pid_t pid, uint64_t *pidns_start);
/* The container of a named cgroup path ("/cvmfs/NAME"). */
struct container *container_of_path(const char *path);
struct container *container_of_paths(const struct cg_paths *paths);
const struct snapshot *container_snapshot(struct container *c);
/* container_snapshot, but when it finds *cp's cgroup gone (removed, or
 * re-created under the same path), *cp becomes the container now at its
 * paths and the snapshot is that one's. */
const struct snapshot *container_current(struct container **cp);
/* One of the cgroup's files in the hierarchy of r, read afresh. */
ssize_t container_cg_read(const struct container *c, enum cg_res r, const char *name,
			  char *buf, size_t size);
/* Sampler thread; returns how many containers it let go. */
unsigned containers_expire(uint64_t now);
/* Called for each container about to be freed, after a grace period. */
extern void (*container_dead_hook)(struct container *c);

/* sampler.c: loadavg sampling, expiry of pids and dead cgroups */
int sampler_start(void);
void sampler_stop(void);
void sampler_sample_now(struct container *c);
/* Walk the container's tasks again (states, context switches) if the last
 * walk is older than max_age_ns and no other walk runs now. */
void sampler_refresh(struct container *c, uint64_t max_age_ns);

/* live.c: the cgroup's CPU usage, at most LIVE_NS old; false if unknown
 * (then the snapshot's figures serve). */
bool cpu_live_read(struct container *c, struct cpu_live *out);
void cpu_live_close(struct container *c);

/* pidns.c: boottime (ns) at which the caller's PID namespace init started,
 * or 0 when the caller shares the host's PID namespace. */
uint64_t pidns_init_start_ns(pid_t pid);
bool pid_in_cgroup(pid_t pid, const struct container *c);

/* host.c: host /proc files, cached for cache_ms */
int host_init(void);
void host_fini(void);
/* Returns the host file text (valid until rcu_read_unlock). */
const char *host_text(enum vfile f, size_t *len);
uint64_t host_meminfo_kb(const char *key);
/* The host's sysfs root (from the cpu directory's fd), or -1. */
int host_sys_fd(void);
/* Read a host sysfs file below the root into buf (NUL-terminated). */
ssize_t host_sys_read(const char *rel, char *buf, size_t size);
/* Block devices by name: a stable small index for each name seen (its
 * node id in the trees), and back. Names live until the daemon exits. */
int block_index(const char *name);
const char *block_name(unsigned idx);
/* Is nodeN a NUMA node of the host? */
bool host_node_exists(unsigned node);
/* Append the host's own bytes: of file f, or of the sysfs file rel. */
int host_copy(enum vfile f, struct sbuf *out);
int host_sys_copy(const char *rel, struct sbuf *out);

/* render.c: the renderer of a file, for who. */
int render_file(enum vfile f, const struct view_caller *who, struct sbuf *out);
/* The same for files of one of many objects (vfile_has_arg). */
int render_file_arg(enum vfile f, unsigned arg, const struct view_caller *who,
		    struct sbuf *out);

/* caller.c: who the reader is and what it may see; renderers call these.
 * Inside an RCU read-side section. caller_of_pid: a reader of the shared
 * tree or a supervised system call. caller_settle: the snapshot of who->c
 * (and no container where none can be read). */
void caller_of_pid(pid_t pid, struct view_caller *who);
void caller_settle(struct view_caller *who);
bool caller_mem_limited(const struct view_caller *who, uint64_t *total_bytes);
unsigned caller_visible_cpus(const struct view_caller *who, uint8_t *set);
bool caller_cpu_limited(const struct view_caller *who);
bool caller_limited(const struct view_caller *who);

/* render_*.c: one renderer per file (render.c's table). */
int render_meminfo(const struct view_caller *who, struct sbuf *out);
int render_swaps(const struct view_caller *who, struct sbuf *out);
int render_cpuinfo(const struct view_caller *who, struct sbuf *out);
int render_stat(const struct view_caller *who, struct sbuf *out);
int render_cpulist(const struct view_caller *who, enum vfile f, struct sbuf *out);
int render_uptime(const struct view_caller *who, struct sbuf *out);
int render_loadavg(const struct view_caller *who, struct sbuf *out);
int render_diskstats(const struct view_caller *who, struct sbuf *out);
int render_pressure(const struct view_caller *who, enum vfile f, struct sbuf *out);
int render_vmstat(const struct view_caller *who, struct sbuf *out);
/* MemFree of the caller's meminfo view (kB). */
uint64_t view_memfree_kb(const struct view_caller *who);
int render_block_stat(const struct view_caller *who, enum vfile f, unsigned idx,
		      struct sbuf *out);
int render_node_cpus(const struct view_caller *who, enum vfile f, unsigned node,
		     struct sbuf *out);
int render_node_meminfo(const struct view_caller *who, enum vfile which, unsigned node,
			struct sbuf *out);
/* The idle ticks of the caller's visible CPUs as /proc/stat counts them,
 * monotonic per PID namespace; *at_ns: the CLOCK_BOOTTIME instant. */
uint64_t cpu_view_idle(const struct view_caller *who, uint64_t *at_ns);

/* fs.c */
int views_fs_run(void);
