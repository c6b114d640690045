/* Reading one container's figures from its cgroups: the v1 and v2 readers
 * for each resource. Hot files stay open in cg_handle.file_fd; limits are
 * walked up the ancestors because a child's limit file ignores its parents. */
#include "cvmfs/cgroup.h"
#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum hot_file {
	F_MEM_USAGE, F_MEM_STAT, F_SWAP_USAGE, F_CPU_STAT, F_CPU_USER, F_CPU_SYS,
	F_CPUSET, F_PIDS_CUR, F_IO_BYTES, F_IO_OPS, F_PSI_CPU, F_PSI_MEM, F_PSI_IO,
	F_NHOT
};

_Static_assert(F_NHOT <= 16, "cg_handle.file_fd too small");

struct hot_def {
	enum cg_res res;
	const char *v1, *v2;
};

static const struct hot_def hot_defs[F_NHOT] = {
	[F_MEM_USAGE] = { CG_MEMORY, "memory.usage_in_bytes", "memory.current" },
	[F_MEM_STAT] = { CG_MEMORY, "memory.stat", "memory.stat" },
	[F_SWAP_USAGE] = { CG_MEMORY, "memory.memsw.usage_in_bytes", "memory.swap.current" },
	[F_CPU_STAT] = { CG_CPUACCT, "cpuacct.stat", "cpu.stat" },
	[F_CPU_USER] = { CG_CPUACCT, "cpuacct.usage_user", NULL },
	[F_CPU_SYS] = { CG_CPUACCT, "cpuacct.usage_sys", NULL },
	[F_CPUSET] = { CG_CPUSET, "cpuset.effective_cpus", "cpuset.cpus.effective" },
	[F_PIDS_CUR] = { CG_PIDS, "pids.current", "pids.current" },
	[F_IO_BYTES] = { CG_BLKIO, "blkio.throttle.io_service_bytes_recursive", "io.stat" },
	[F_IO_OPS] = { CG_BLKIO, "blkio.throttle.io_serviced_recursive", NULL },
	[F_PSI_CPU] = { CG_CPU, NULL, "cpu.pressure" },
	[F_PSI_MEM] = { CG_MEMORY, NULL, "memory.pressure" },
	[F_PSI_IO] = { CG_BLKIO, NULL, "io.pressure" },
};

/* Kept-open fds are bounded so 1,000s of containers cannot exhaust the
 * process's fd limit; past the budget files are opened per read. */
static int hot_fd_budget = 8000;
static int hot_fds_open;

static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

/* Find the cgroup's directory in hierarchy r, or its nearest ancestor there
 * when the hierarchy lacks it. Returns 1 if the path itself exists, 0 if an
 * ancestor serves it, or -errno; *st is the directory found. */
static int resolve_in_hierarchy(struct cg_handle *h, enum cg_res r, struct stat *st)
{
	int fd = h->layout->hier_fd[r];
	int exact = 1;

	while (fstatat(fd, h->path[r], st, 0) < 0) {
		char *slash = strrchr(h->path[r], '/');

		if (errno != ENOENT || !strcmp(h->path[r], "."))
			return -errno;
		if (slash)
			*slash = '\0';
		else
			strcpy(h->path[r], ".");
		exact = 0;
	}
	return S_ISDIR(st->st_mode) ? exact : -ENOTDIR;
}

/* No fd per directory: thousands of containers times six hierarchies would
 * exhaust the fd limit. Files are opened relative to the hierarchy root. */
int cg_handle_open(const struct cg_layout *l, const struct cg_paths *p, struct cg_handle *h)
{
	memset(h, 0, sizeof(*h));
	h->layout = l;
	h->id_res = -1;
	for (int i = 0; i < 16; i++)
		h->file_fd[i] = -EBADF;
	for (int r = 0; r < CG_NRES; r++) {
		struct stat st;
		int exact;

		snprintf(h->path[r], sizeof(h->path[r]), "%s", rel(p->path[r]));
		if (l->hier_fd[r] < 0)
			continue;
		if (h->id_res < 0)
			memcpy(h->id_want, h->path[r], sizeof(h->id_want));
		exact = resolve_in_hierarchy(h, r, &st);
		if (exact < 0)
			return exact;
		h->present[r] = true;
		if (h->id_res < 0) {
			h->id_res = r;
			h->id_dev = exact ? (uint64_t)st.st_dev : 0;
			h->id_ino = exact ? (uint64_t)st.st_ino : 0;
		}
	}
	return 0;
}

void cg_handle_close(struct cg_handle *h)
{
	for (int i = 0; i < 16; i++) {
		if (h->file_fd[i] >= 0) {
			close(h->file_fd[i]);
			__atomic_sub_fetch(&hot_fds_open, 1, __ATOMIC_RELAXED);
		}
		h->file_fd[i] = -EBADF;
	}
}

/* "PATH/NAME" below a hierarchy root. */
static int cg_file_path(const struct cg_handle *h, enum cg_res r, const char *name,
			char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", h->path[r], name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Called at every snapshot refresh and by the expiry pass, so it must stay
 * one syscall: it replaced a faccessat of cgroup.procs by path, which took
 * a cgroup re-created under the same path for the old one. Kept-open files
 * of a removed cgroup fail with ENODEV (kernfs), which hot_read records for
 * free; the inode compare covers the hierarchies without such a file. */
bool cg_handle_alive(const struct cg_handle *h)
{
	struct stat st;

	if (__atomic_load_n(&h->stale, __ATOMIC_RELAXED))
		return false;
	if (h->id_res < 0)
		return true;
	if (fstatat(h->layout->hier_fd[h->id_res], h->id_want, &st, 0) < 0)
		return errno == ENOENT && !h->id_ino; /* an ancestor still serves it */
	return h->id_ino && (uint64_t)st.st_ino == h->id_ino && (uint64_t)st.st_dev == h->id_dev;
}

/* Read a hot file into buf. Returns length, -ENOENT if the file is absent. */
static ssize_t hot_read(struct cg_handle *h, enum hot_file f, char *buf, size_t size)
{
	const struct hot_def *d = &hot_defs[f];
	const char *name = h->layout->is_v2[d->res] ? d->v2 : d->v1;
	char file[300];
	int fd;
	ssize_t n;

	if (!name || !h->present[d->res])
		return -ENOENT;
	if (h->file_fd[f] >= 0) {
		n = read_fd_buf(h->file_fd[f], buf, size);
		if (n == -ENODEV) /* the cgroup of this fd was removed */
			__atomic_store_n(&h->stale, true, __ATOMIC_RELAXED);
		return n;
	}
	if (cg_file_path(h, d->res, name, file, sizeof(file)) < 0)
		return -ENAMETOOLONG;
	fd = openat(h->layout->hier_fd[d->res], file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read_fd_buf(fd, buf, size);
	if (__atomic_add_fetch(&hot_fds_open, 1, __ATOMIC_RELAXED) <= hot_fd_budget) {
		h->file_fd[f] = fd;
	} else {
		__atomic_sub_fetch(&hot_fds_open, 1, __ATOMIC_RELAXED);
		close(fd);
	}
	return n;
}

/* Minimum of a limit file over the cgroup and its ancestors (root excluded).
 * parse() turns file text into a comparable value. */
static uint64_t limit_walk(struct cg_handle *h, enum cg_res r, const char *file,
			   int (*parse)(const char *, uint64_t *, uint64_t *),
			   uint64_t *aux_out)
{
	char path[512], buf[128];
	uint64_t best = CG_UNLIMITED, best_aux = 0;
	int hfd = h->layout->hier_fd[r];

	snprintf(path, sizeof(path), "%s", h->path[r]);
	while (hfd >= 0 && strcmp(path, ".") && path[0]) {
		char file_path[600];
		uint64_t v, aux = 0;
		char *slash;

		snprintf(file_path, sizeof(file_path), "%s/%s", path, file);
		if (read_at_buf(hfd, file_path, buf, sizeof(buf)) >= 0 &&
		    parse(buf, &v, &aux) == 0 && v < best) {
			best = v;
			best_aux = aux;
		}
		slash = strrchr(path, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	if (aux_out)
		*aux_out = best_aux;
	return best;
}

static int parse_plain(const char *text, uint64_t *v, uint64_t *aux)
{
	(void)aux;
	return parse_u64_or_max(text, v);
}

/* v2 "cpu.max": "QUOTA PERIOD"; compared as CPUs in millionths. */
static int parse_cpu_max(const char *text, uint64_t *v, uint64_t *aux)
{
	uint64_t quota, period;
	const char *sp = strchr(text, ' ');

	if (parse_u64_or_max(text, &quota) < 0 || !sp ||
	    parse_u64_or_max(sp + 1, &period) < 0 || period == 0)
		return -EINVAL;
	*aux = quota == CG_UNLIMITED ? 0 : quota * 1000000 / period;
	*v = *aux ? *aux : CG_UNLIMITED;
	*aux = period | (quota << 32); /* period and quota both fit 32 bits in practice */
	return 0;
}

static void read_cpu_limit(struct cg_handle *h, struct cg_values *v)
{
	uint64_t packed = 0;

	v->cpu_quota_us = CG_UNLIMITED;
	v->cpu_period_us = 100000;
	if (h->layout->hier_fd[CG_CPU] < 0)
		return;
	if (h->layout->is_v2[CG_CPU]) {
		if (limit_walk(h, CG_CPU, "cpu.max", parse_cpu_max, &packed) != CG_UNLIMITED) {
			v->cpu_quota_us = packed >> 32;
			v->cpu_period_us = packed & 0xffffffffu;
		}
		return;
	}
	/* v1: quota and period live in two files; walk by hand. */
	char path[512], buf[64];
	double best = 0;

	snprintf(path, sizeof(path), "%s", h->path[CG_CPU]);
	while (strcmp(path, ".") && path[0]) {
		char qp[600], pp[600];
		uint64_t q, p;
		char *slash;

		snprintf(qp, sizeof(qp), "%s/cpu.cfs_quota_us", path);
		snprintf(pp, sizeof(pp), "%s/cpu.cfs_period_us", path);
		if (read_at_buf(h->layout->hier_fd[CG_CPU], qp, buf, sizeof(buf)) >= 0 &&
		    parse_u64_or_max(buf, &q) == 0 && q != CG_UNLIMITED &&
		    read_at_buf(h->layout->hier_fd[CG_CPU], pp, buf, sizeof(buf)) >= 0 &&
		    parse_u64_or_max(buf, &p) == 0 && p > 0 &&
		    (best == 0 || (double)q / (double)p < best)) {
			best = (double)q / (double)p;
			v->cpu_quota_us = q;
			v->cpu_period_us = p;
		}
		slash = strrchr(path, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
}

static void memstat_v1(const char *t, struct cg_memstat *m)
{
	kv_lookup_u64(t, "total_cache", &m->file);
	kv_lookup_u64(t, "total_rss", &m->anon);
	kv_lookup_u64(t, "total_shmem", &m->shmem);
	kv_lookup_u64(t, "total_mapped_file", &m->mapped);
	kv_lookup_u64(t, "total_dirty", &m->dirty);
	kv_lookup_u64(t, "total_writeback", &m->writeback);
	kv_lookup_u64(t, "total_active_anon", &m->active_anon);
	kv_lookup_u64(t, "total_inactive_anon", &m->inactive_anon);
	kv_lookup_u64(t, "total_active_file", &m->active_file);
	kv_lookup_u64(t, "total_inactive_file", &m->inactive_file);
	kv_lookup_u64(t, "total_unevictable", &m->unevictable);
	kv_lookup_u64(t, "total_rss_huge", &m->anon_thp);
}

static void memstat_v2(const char *t, struct cg_memstat *m)
{
	kv_lookup_u64(t, "file", &m->file);
	kv_lookup_u64(t, "anon", &m->anon);
	kv_lookup_u64(t, "shmem", &m->shmem);
	kv_lookup_u64(t, "file_mapped", &m->mapped);
	kv_lookup_u64(t, "file_dirty", &m->dirty);
	kv_lookup_u64(t, "file_writeback", &m->writeback);
	kv_lookup_u64(t, "active_anon", &m->active_anon);
	kv_lookup_u64(t, "inactive_anon", &m->inactive_anon);
	kv_lookup_u64(t, "active_file", &m->active_file);
	kv_lookup_u64(t, "inactive_file", &m->inactive_file);
	kv_lookup_u64(t, "unevictable", &m->unevictable);
	kv_lookup_u64(t, "slab_reclaimable", &m->slab_reclaimable);
	kv_lookup_u64(t, "slab_unreclaimable", &m->slab_unreclaimable);
	kv_lookup_u64(t, "kernel_stack", &m->kernel_stack);
	kv_lookup_u64(t, "pagetables", &m->pagetables);
	kv_lookup_u64(t, "anon_thp", &m->anon_thp);
	kv_lookup_u64(t, "swapcached", &m->swapcached);
}

static void read_memory(struct cg_handle *h, struct cg_values *v)
{
	char buf[8192];
	bool v2 = h->layout->is_v2[CG_MEMORY];
	uint64_t swap_total = 0;

	v->mem_limit = v->swap_limit = CG_UNLIMITED;
	if (h->layout->hier_fd[CG_MEMORY] < 0)
		return;
	if (hot_read(h, F_MEM_USAGE, buf, sizeof(buf)) >= 0)
		parse_u64_or_max(buf, &v->mem_usage);
	if (hot_read(h, F_MEM_STAT, buf, sizeof(buf)) >= 0) {
		if (v2) {
			memstat_v2(buf, &v->ms);
		} else {
			memstat_v1(buf, &v->ms);
			kv_lookup_u64(buf, "hierarchical_memory_limit", &v->mem_limit);
			if (kv_lookup_u64(buf, "hierarchical_memsw_limit", &swap_total) < 0)
				swap_total = CG_UNLIMITED;
		}
	}
	if (v2)
		v->mem_limit = limit_walk(h, CG_MEMORY, "memory.max", parse_plain, NULL);
	/* The root's "unlimited" is a huge page-rounded number in v1. */
	if (v->mem_limit >= (1ULL << 62))
		v->mem_limit = CG_UNLIMITED;
	if (hot_read(h, F_SWAP_USAGE, buf, sizeof(buf)) < 0)
		return; /* swap not accounted: SwapTotal 0 */
	v->swap_accounted = true;
	parse_u64_or_max(buf, &v->swap_usage);
	if (v2) {
		v->swap_limit = limit_walk(h, CG_MEMORY, "memory.swap.max", parse_plain, NULL);
		return;
	}
	/* v1 counts memory+swap together. */
	v->swap_usage = v->swap_usage > v->mem_usage ? v->swap_usage - v->mem_usage : 0;
	if (swap_total < (1ULL << 62) && v->mem_limit != CG_UNLIMITED)
		v->swap_limit = swap_total > v->mem_limit ? swap_total - v->mem_limit : 0;
}

static void read_cpu_usage(struct cg_handle *h, struct cg_values *v)
{
	char buf[1024];
	uint64_t x;

	if (h->layout->is_v2[CG_CPUACCT]) {
		if (hot_read(h, F_CPU_STAT, buf, sizeof(buf)) < 0)
			return;
		if (kv_lookup_u64(buf, "user_usec", &x) == 0)
			v->cpu_user_ns = x * 1000;
		if (kv_lookup_u64(buf, "system_usec", &x) == 0)
			v->cpu_system_ns = x * 1000;
		return;
	}
	if (hot_read(h, F_CPU_USER, buf, sizeof(buf)) >= 0 &&
	    parse_u64_or_max(buf, &x) == 0) {
		v->cpu_user_ns = x;
		if (hot_read(h, F_CPU_SYS, buf, sizeof(buf)) >= 0 &&
		    parse_u64_or_max(buf, &x) == 0)
			v->cpu_system_ns = x;
		return;
	}
	/* Old kernels: cpuacct.stat in USER_HZ ticks. */
	if (hot_read(h, F_CPU_STAT, buf, sizeof(buf)) < 0)
		return;
	if (kv_lookup_u64(buf, "user", &x) == 0)
		v->cpu_user_ns = x * (1000000000 / 100);
	if (kv_lookup_u64(buf, "system", &x) == 0)
		v->cpu_system_ns = x * (1000000000 / 100);
}

/* v2 without the cpuset controller enabled here: tasks run on the nearest
 * ancestor's effective cpus. */
static bool ancestor_cpuset(struct cg_handle *h, char *buf, size_t size)
{
	char path[512], file[600];
	int hfd = h->layout->hier_fd[CG_CPUSET];
	char *slash;

	if (hfd < 0 || !h->layout->is_v2[CG_CPUSET])
		return false;
	snprintf(path, sizeof(path), "%s", h->path[CG_CPUSET]);
	while (strcmp(path, ".")) {
		slash = strrchr(path, '/');
		if (slash)
			*slash = '\0';
		else
			strcpy(path, ".");
		snprintf(file, sizeof(file), "%s/cpuset.cpus.effective", path);
		if (read_at_buf(hfd, file, buf, size) >= 0)
			return true;
	}
	return false;
}

static void read_cpuset(struct cg_handle *h, struct cg_values *v)
{
	char buf[4096];

	memset(v->cpuset, 0xff, sizeof(v->cpuset));
	v->cpuset_known = false;
	if (hot_read(h, F_CPUSET, buf, sizeof(buf)) == -ENOENT && !ancestor_cpuset(h, buf, sizeof(buf)))
		return;
	if (!buf[0] || buf[0] == '\n')
		return;
	if (cpulist_parse(buf, v->cpuset) == 0)
		v->cpuset_known = true;
	else
		memset(v->cpuset, 0xff, sizeof(v->cpuset));
}

static struct cg_iodev *io_dev(struct cg_values *v, uint32_t maj, uint32_t min)
{
	for (unsigned i = 0; i < v->n_io; i++)
		if (v->io[i].major == maj && v->io[i].minor == min)
			return &v->io[i];
	if (v->n_io == CG_MAX_IODEV)
		return NULL;
	v->io[v->n_io] = (struct cg_iodev){ .major = maj, .minor = min };
	return &v->io[v->n_io++];
}

/* v1 blkio: "8:0 Read 123" lines, bytes or ops depending on the file. */
static void io_v1(struct cg_values *v, const char *text, bool ops)
{
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		unsigned maj, min;
		char op[16];
		unsigned long long n;
		struct cg_iodev *d;

		if (sscanf(l, "%u:%u %15s %llu", &maj, &min, op, &n) != 4)
			continue;
		d = io_dev(v, maj, min);
		if (!d)
			continue;
		if (!strcmp(op, "Read"))
			*(ops ? &d->rios : &d->rbytes) = n;
		else if (!strcmp(op, "Write"))
			*(ops ? &d->wios : &d->wbytes) = n;
		else if (!strcmp(op, "Discard"))
			*(ops ? &d->dios : &d->dbytes) = n;
	}
}

static void io_v2(struct cg_values *v, const char *text)
{
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		unsigned maj, min;
		struct cg_iodev *d;

		if (sscanf(l, "%u:%u ", &maj, &min) != 2 || !(d = io_dev(v, maj, min)))
			continue;
		kv_token_u64(l, "rbytes", &d->rbytes);
		kv_token_u64(l, "wbytes", &d->wbytes);
		kv_token_u64(l, "rios", &d->rios);
		kv_token_u64(l, "wios", &d->wios);
		kv_token_u64(l, "dbytes", &d->dbytes);
		kv_token_u64(l, "dios", &d->dios);
	}
}

static void read_io(struct cg_handle *h, struct cg_values *v)
{
	char buf[8192];

	v->n_io = 0;
	if (hot_read(h, F_IO_BYTES, buf, sizeof(buf)) < 0)
		return;
	if (h->layout->is_v2[CG_BLKIO]) {
		io_v2(v, buf);
		return;
	}
	io_v1(v, buf, false);
	if (hot_read(h, F_IO_OPS, buf, sizeof(buf)) >= 0)
		io_v1(v, buf, true);
}

static void read_psi(struct cg_handle *h, struct cg_values *v)
{
	static const enum hot_file files[3] = { F_PSI_CPU, F_PSI_MEM, F_PSI_IO };

	v->has_psi = false;
	if (!h->layout->is_v2[CG_CPU] && !h->layout->is_v2[CG_MEMORY])
		return;
	for (int i = 0; i < 3; i++)
		if (hot_read(h, files[i], v->psi[i], CG_PSI_LEN) < 0)
			return;
	v->has_psi = true;
}

int cg_read(struct cg_handle *h, struct cg_values *v)
{
	char buf[64];

	memset(v, 0, sizeof(*v));
	read_memory(h, v);
	read_cpu_limit(h, v);
	read_cpu_usage(h, v);
	read_cpuset(h, v);
	v->pids_max = limit_walk(h, CG_PIDS, "pids.max", parse_plain, NULL);
	if (hot_read(h, F_PIDS_CUR, buf, sizeof(buf)) >= 0)
		parse_u64_or_max(buf, &v->pids_current);
	read_io(h, v);
	read_psi(h, v);
	return cg_handle_alive(h) ? 0 : -ENOENT;
}

static int walk_tasks(int cgfd, bool v2, void (*fn)(pid_t, void *), void *arg, int depth)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int rd = -EBADF;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;

	if (read_file_alloc(cgfd, v2 ? "cgroup.threads" : "tasks", &buf, NULL) == 0) {
		for (char *p = buf; *p;) {
			char *end;
			long t = strtol(p, &end, 10);

			if (end == p)
				break;
			fn((pid_t)t, arg);
			p = *end ? end + 1 : end;
		}
	}
	if (depth > 16)
		return 0;
	rd = openat(cgfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rd < 0 || !(d = fdopendir(rd)))
		return -errno;
	rd = -EBADF; /* owned by d now */
	while ((e = readdir(d))) {
		_cleanup_close_ int sub = -EBADF;

		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		sub = openat(dirfd(d), e->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (sub >= 0)
			walk_tasks(sub, v2, fn, arg, depth + 1);
	}
	return 0;
}

int cg_for_each_task(struct cg_handle *h, void (*fn)(pid_t tid, void *arg), void *arg)
{
	enum cg_res r = h->present[CG_CPU] ? CG_CPU : CG_MEMORY;
	_cleanup_close_ int dfd = -EBADF;

	if (!h->present[r])
		return -ENOENT;
	dfd = openat(h->layout->hier_fd[r], h->path[r], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	return walk_tasks(dfd, h->layout->is_v2[r], fn, arg, 0);
}
