/* The cgroup's CPU usage, fresher than its snapshot. /proc/stat and
 * /proc/uptime compute deltas over any interval a tool likes (top's first
 * frame: two reads ~2 ms apart), so their renders may not reuse a reading
 * older than LIVE_NS, while the rest of the snapshot (limits, memory.stat,
 * io) stays cached for cache_ms. The usage files stay open: a reading is
 * one pread each (~1 us); past a budget of kept fds they are opened per
 * reading, so thousands of containers cannot exhaust the fd limit. */
#include "views.h"

#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* The snapshot's kept files have their own budget of 8,000 (cgroup_read.c);
 * with this one the daemon stays well under the 20,000 open-file limit. */
static int live_fd_budget = 4000;
static int live_fds_open;

/* v1: cpuacct.usage_user, cpuacct.usage_sys (ns); v2: cpu.stat (us). */
static const char *const usage_files[2][2] = {
	{ "cpuacct.usage_user", "cpuacct.usage_sys" },
	{ "cpu.stat", NULL },
};

static ssize_t live_file(struct container *c, int i, char *buf, size_t size)
{
	const struct cg_handle *h = &c->cg;
	bool v2 = h->layout->is_v2[CG_CPUACCT];
	const char *name = usage_files[v2][i];
	char rel[300];
	ssize_t n;
	int fd;

	if (!name || !h->present[CG_CPUACCT])
		return -ENOENT;
	if (c->live_fd[i] >= 0)
		return read_fd_buf(c->live_fd[i], buf, size);
	snprintf(rel, sizeof(rel), "%s/%s", h->path[CG_CPUACCT], name);
	fd = openat(h->layout->hier_fd[CG_CPUACCT], rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read_fd_buf(fd, buf, size);
	if (__atomic_add_fetch(&live_fds_open, 1, __ATOMIC_RELAXED) <= live_fd_budget) {
		c->live_fd[i] = fd;
	} else {
		__atomic_sub_fetch(&live_fds_open, 1, __ATOMIC_RELAXED);
		close(fd);
	}
	return n;
}

static bool live_usage(struct container *c, uint64_t *user, uint64_t *sys)
{
	char buf[1024];
	uint64_t u, s;

	if (c->cg.layout->is_v2[CG_CPUACCT]) {
		if (live_file(c, 0, buf, sizeof(buf)) < 0 ||
		    kv_lookup_u64(buf, "user_usec", &u) < 0 ||
		    kv_lookup_u64(buf, "system_usec", &s) < 0)
			return false;
		*user = u * 1000;
		*sys = s * 1000;
		return true;
	}
	if (live_file(c, 0, buf, sizeof(buf)) < 0 || parse_u64_or_max(buf, &u) < 0 ||
	    live_file(c, 1, buf, sizeof(buf)) < 0 || parse_u64_or_max(buf, &s) < 0)
		return false; /* old kernels: cpuacct.stat, the snapshot's ticks */
	*user = u;
	*sys = s;
	return true;
}

bool cpu_live_read(struct container *c, struct cpu_live *out)
{
	uint64_t now = boottime_ns();

	pthread_mutex_lock(&c->live_lock);
	if (!c->live.ok || now - c->live.at_ns >= LIVE_NS) {
		c->live.ok = live_usage(c, &c->live.user_ns, &c->live.sys_ns);
		c->live.at_ns = now;
	}
	*out = c->live;
	pthread_mutex_unlock(&c->live_lock);
	return out->ok;
}

void cpu_live_close(struct container *c)
{
	for (int i = 0; i < 2; i++) {
		if (c->live_fd[i] >= 0) {
			close(c->live_fd[i]);
			__atomic_sub_fetch(&live_fds_open, 1, __ATOMIC_RELAXED);
		}
		c->live_fd[i] = -EBADF;
	}
}
