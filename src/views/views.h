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
};

enum vfile {
	VF_MEMINFO, VF_CPUINFO, VF_STAT, VF_UPTIME, VF_LOADAVG, VF_SWAPS,
	VF_DISKSTATS, VF_PSI_CPU, VF_PSI_MEM, VF_PSI_IO,
	VF_CPU_ONLINE, VF_CPU_POSSIBLE, VF_CPU_PRESENT, VF_NFILES
};

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
	unsigned nr_running, nr_blocked, nr_threads;
	bool sampled;
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

extern struct views *V;

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
size_t container_memory(const struct container *c);
unsigned long containers_count(void);
/* Sampler thread; returns how many containers it let go. */
unsigned containers_expire(uint64_t now);
/* Called for each container about to be freed, after a grace period. */
extern void (*container_dead_hook)(struct container *c);

/* sampler.c: loadavg sampling, expiry of pids and dead cgroups */
int sampler_start(void);
void sampler_stop(void);
void sampler_sample_now(struct container *c);

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

/* render*.c */
int render_file(enum vfile f, const struct view_caller *who, struct sbuf *out);
bool caller_mem_limited(const struct view_caller *who, uint64_t *total_bytes);
unsigned caller_visible_cpus(const struct view_caller *who, uint8_t *set);
bool caller_cpu_limited(const struct view_caller *who);
bool caller_limited(const struct view_caller *who);
int render_meminfo(const struct view_caller *who, struct sbuf *out);
int render_swaps(const struct view_caller *who, struct sbuf *out);
int render_cpuinfo(const struct view_caller *who, struct sbuf *out);
int render_stat(const struct view_caller *who, struct sbuf *out);
int render_cpulist(const struct view_caller *who, enum vfile f, struct sbuf *out);
int render_uptime(const struct view_caller *who, struct sbuf *out);
int render_loadavg(const struct view_caller *who, struct sbuf *out);
int render_diskstats(const struct view_caller *who, struct sbuf *out);
int render_pressure(const struct view_caller *who, enum vfile f, struct sbuf *out);
/* Per-CPU ticks for the caller, monotonic per container. Returns count. */
unsigned cpu_view_ticks(const struct view_caller *who, unsigned *ids,
			struct cpu_ticks *t, unsigned max);

/* fs.c */
int views_fs_run(void);
