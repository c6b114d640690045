/* Cgroup access for v1, v2 and hybrid hierarchies.
 *
 * A cg_layout describes where each resource lives under a cgroup root
 * (normally /sys/fs/cgroup, a fixture tree in tests). A cg_handle names one
 * container's cgroup in each hierarchy and keeps fds of its hot files open.
 * cg_read() fills a cg_values snapshot, parsing without allocation. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum cg_res { CG_MEMORY, CG_CPU, CG_CPUACCT, CG_CPUSET, CG_BLKIO, CG_PIDS, CG_NRES };

#define CG_MAX_CPUS 1024
#define CG_MAX_IODEV 32
#define CG_PSI_LEN 192
#define CG_UNLIMITED UINT64_MAX

struct cg_layout {
	int hier_fd[CG_NRES]; /* root of the hierarchy serving each resource, -1 if none */
	bool is_v2[CG_NRES];  /* served by the unified hierarchy */
	int unified_fd;       /* the v2 hierarchy (pure or hybrid), -1 if none */
	bool unified_psi;     /* unified hierarchy has per-cgroup *.pressure */
};

/* Which cgroup a process is in, per resource, as /proc/PID/cgroup says. */
struct cg_paths {
	char path[CG_NRES][256];
	char unified[256];
};

struct cg_iodev {
	uint32_t major, minor;
	uint64_t rbytes, wbytes, rios, wios, dbytes, dios;
};

struct cg_memstat {
	uint64_t file, anon, shmem, mapped, dirty, writeback;
	uint64_t active_anon, inactive_anon, active_file, inactive_file;
	uint64_t unevictable, slab_reclaimable, slab_unreclaimable;
	uint64_t kernel_stack, pagetables, anon_thp, swapcached;
};

struct cg_values {
	uint64_t mem_limit;  /* min over ancestors; CG_UNLIMITED if none */
	uint64_t mem_usage;
	uint64_t swap_limit; /* CG_UNLIMITED if none; meaningless unless swap_accounted */
	uint64_t swap_usage;
	bool swap_accounted;
	struct cg_memstat ms;
	uint64_t cpu_quota_us; /* min ratio over ancestors; CG_UNLIMITED if none */
	uint64_t cpu_period_us;
	uint64_t cpu_user_ns, cpu_system_ns;
	uint8_t cpuset[CG_MAX_CPUS / 8]; /* effective cpus; all set if unknown */
	bool cpuset_known;
	uint64_t pids_max, pids_current;
	unsigned n_io;
	struct cg_iodev io[CG_MAX_IODEV];
	bool has_psi;
	char psi[3][CG_PSI_LEN]; /* cpu, memory, io */
};

struct cg_handle {
	const struct cg_layout *layout;
	bool present[CG_NRES];   /* the hierarchy exists and holds this cgroup */
	int file_fd[16];         /* hot files kept open, see cgroup_read.c */
	char path[CG_NRES][256]; /* relative to each hierarchy root, no leading '/' */
	/* Which cgroup this is, never by path alone: a cgroup removed and
	 * re-created under the same path is another cgroup. The directory of
	 * the first present hierarchy by device and inode (on v2 the inode
	 * number is the kernel's cgroup id); id_ino 0 when the path asked for
	 * did not exist at open and an ancestor serves it. */
	int id_res;              /* -1: no hierarchy */
	uint64_t id_dev, id_ino;
	char id_want[256];       /* the path asked for in hierarchy id_res */
	bool stale;              /* atomic: a kept-open file said its cgroup is gone */
};

int cg_layout_open(const char *root, struct cg_layout *l);
void cg_layout_close(struct cg_layout *l);
bool cg_layout_has(const struct cg_layout *l, enum cg_res r);

/* Parse /proc/PID/cgroup text into per-resource paths. */
int cg_paths_parse(const struct cg_layout *l, const char *text, struct cg_paths *p);
/* Paths of a named cgroup ("/cvmfs/NAME") in every hierarchy. */
void cg_paths_uniform(const struct cg_layout *l, const char *path, struct cg_paths *p);
/* A stable text key for a container: equal keys mean the same cgroups. */
int cg_paths_key(const struct cg_paths *p, char *key, size_t size);

int cg_handle_open(const struct cg_layout *l, const struct cg_paths *p, struct cg_handle *h);
void cg_handle_close(struct cg_handle *h);
/* False once the cgroup directory has been removed or replaced by another
 * directory of the same path (or, for a handle that fell back to an
 * ancestor, once the path asked for exists). One fstatat. */
bool cg_handle_alive(const struct cg_handle *h);
int cg_read(struct cg_handle *h, struct cg_values *v);
/* Call fn for every thread id in the cgroup and its descendants. */
int cg_for_each_task(struct cg_handle *h, void (*fn)(pid_t tid, void *arg), void *arg);

static inline bool cpuset_has(const uint8_t *set, unsigned cpu)
{
	return cpu < CG_MAX_CPUS && (set[cpu / 8] >> (cpu % 8)) & 1;
}
static inline void cpuset_set(uint8_t *set, unsigned cpu)
{
	if (cpu < CG_MAX_CPUS)
		set[cpu / 8] |= (uint8_t)(1u << (cpu % 8));
}
/* Parse "0-3,8,10-11" into a bitmap. */
int cpulist_parse(const char *text, uint8_t *set);
/* Format a bitmap as a cpulist into buf ("0-3,8"). */
void cpulist_format(const uint8_t *set, char *buf, size_t size);
unsigned cpuset_count(const uint8_t *set);
