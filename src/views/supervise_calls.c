/* The supervisor's answers: sysinfo(2) and sched_getaffinity(2) of a
 * trapped caller, with the figures the views show that caller (its own
 * cgroup, which may be a child of the CVM's, e.g. an inner Docker
 * container's; its own PID namespace).
 *
 * Order against pid reuse (TOCTOU): the caller's /proc/PID/mem is opened
 * first, the answer computed, then SECCOMP_IOCTL_NOTIF_ID_VALID confirms
 * that the notification is still pending, so PID was still the trapped
 * task when the fd was opened; only then is the result written through
 * that fd. A caller that died or was interrupted meanwhile gets nothing. */
#include "supervise.h"
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define FSHIFT 11 /* the kernel's avenrun fixed point; sysinfo's is 16 */

/* The value of "KEY:" in rendered meminfo text, in bytes. */
static bool meminfo_bytes(const char *text, const char *key, unsigned long *bytes)
{
	size_t n = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, n) && l[n] == ':') {
			*bytes = strtoul(l + n + 1, NULL, 10) * 1024;
			return true;
		}
	return false;
}

/* Memory as `free` shows it in the CVM: the caller's meminfo view. */
static int fill_memory(const struct view_caller *who, struct sysinfo *si)
{
	_cleanup_sbuf_ struct sbuf b;
	int r;

	sbuf_init(&b);
	if ((r = render_meminfo(who, &b)) < 0)
		return r;
	if (!meminfo_bytes(b.data, "MemTotal", &si->totalram) ||
	    !meminfo_bytes(b.data, "MemFree", &si->freeram) ||
	    !meminfo_bytes(b.data, "Shmem", &si->sharedram) ||
	    !meminfo_bytes(b.data, "Buffers", &si->bufferram) ||
	    !meminfo_bytes(b.data, "SwapTotal", &si->totalswap) ||
	    !meminfo_bytes(b.data, "SwapFree", &si->freeswap))
		return -EPROTO;
	si->totalhigh = si->freehigh = 0;
	si->mem_unit = 1; /* bytes, as a 64-bit kernel says */
	return 0;
}

/* Uptime as the caller's /proc/uptime (render_uptime: the age of its PID
 * namespace's init; the host's in the host's namespace), rounded up to
 * whole seconds as the kernel's sysinfo does. Without the idle figure
 * /proc/uptime also computes: it costs more than the rest of the answer. */
static void fill_uptime(const struct view_caller *who, struct sysinfo *si)
{
	uint64_t start = caller_pidns_start(who), now = boottime_ns();

	if (start && now > start)
		si->uptime = (long)((now - start + 999999999ULL) / 1000000000ULL);
}

/* Loads and procs as the caller's /proc/loadavg (render_loadavg). */
static void fill_loads(const struct view_caller *who, struct sysinfo *si)
{
	unsigned running;

	if (!caller_limited(who))
		return; /* the host's, already in si */
	pthread_mutex_lock(&who->c->stat_lock);
	for (int i = 0; i < 3; i++)
		si->loads[i] = who->c->avenrun[i] << (SI_LOAD_SHIFT - FSHIFT);
	running = MAX(who->c->nr_running, 1u);
	si->procs = (unsigned short)MIN(MAX(who->c->nr_threads, running), 65535u);
	pthread_mutex_unlock(&who->c->stat_lock);
}

static int sysinfo_for(pid_t pid, struct sysinfo *si)
{
	struct view_caller who;
	int r;

	if (sysinfo(si) < 0) /* the host's, for what the views leave as it is */
		return -errno;
	views_read_lock();
	caller_of_pid(pid, &who);
	r = fill_memory(&who, si);
	if (r == 0) {
		fill_uptime(&who, si);
		fill_loads(&who, si);
	}
	urcu_memb_read_unlock();
	return r;
}

/* Keep `want` CPUs of the mask (n bytes): those the views show the caller
 * first, then others of the mask; the rest cleared. */
static void mask_reduce(uint8_t *mask, size_t n, const uint8_t *shown, unsigned want)
{
	uint8_t keep[CG_MAX_CPUS / 8] = { 0 };
	unsigned kept = 0;

	for (int pass = 0; pass < 2; pass++)
		for (unsigned c = 0; c < n * 8 && c < CG_MAX_CPUS && kept < want; c++) {
			bool in_shown = cpuset_has(shown, c);

			if (!cpuset_has(mask, c) || cpuset_has(keep, c) || (pass == 0 && !in_shown))
				continue;
			cpuset_set(keep, c);
			kept++;
		}
	for (size_t i = 0; i < n; i++)
		mask[i] = i < sizeof(keep) ? keep[i] : 0;
}

/* The caller's own affinity, as the kernel gives it (the same EINVAL for
 * a len it refuses, the same length), cut to the number of CPUs its CPU
 * view shows (⌈quota⌉ of the cpuset). Returns the length or -errno. */
static long affinity_for(pid_t caller, pid_t tid, unsigned len, uint8_t *mask, size_t size)
{
	uint8_t shown[CG_MAX_CPUS / 8];
	struct view_caller who;
	unsigned want;
	long n;

	n = syscall(SYS_sched_getaffinity, tid, MIN((size_t)len, size), mask);
	if (n < 0)
		return -errno;
	views_read_lock();
	caller_of_pid(caller, &who);
	want = caller_visible_cpus(&who, shown);
	urcu_memb_read_unlock();
	mask_reduce(mask, (size_t)n, shown, want);
	return n;
}

static bool id_valid(int listener, uint64_t id)
{
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

static int open_mem(pid_t pid)
{
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "%d/mem", (int)pid);
	fd = openat(views_ctx->proc_fd, name, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Write the result into the caller (a bad address: EFAULT, as the kernel). */
static int reply(int listener, const struct seccomp_notif *req, int mem, const void *buf,
		 size_t len, uint64_t addr, long val, struct seccomp_notif_resp *resp)
{
	if (!id_valid(listener, req->id))
		return -ESRCH;
	resp->error = 0;
	resp->val = val;
	if (addr > INT64_MAX || pwrite(mem, buf, len, (off_t)addr) != (ssize_t)len)
		resp->error = -EFAULT;
	return 0;
}

/* First and last number of the status line "KEY:\tHOST ... INNER". */
static bool ns_ids(const char *status, const char *key, long *host, long *inner)
{
	const char *l = strstr(status, key);
	char *end;

	if (!l)
		return false;
	l += strlen(key);
	*host = *inner = strtol(l, &end, 10);
	if (end == l)
		return false;
	for (l = end;; l = end) {
		long v = strtol(l, &end, 10);

		if (end == l)
			return true;
		*inner = v;
	}
}

/* sched_getaffinity(pid) of the caller (thread tid, a host id) asking
 * about itself: 0 or its own tid or tgid as its PID namespace numbers
 * them. Returns the host id to ask about, 0 when pid is another process
 * (taskset -p, ps: the native call, the real mask), or -errno. */
static pid_t self_target(pid_t tid, long pid)
{
	char name[32], buf[4096];
	long host_tgid, inner_tgid, host_tid, inner_tid;

	if (pid == 0)
		return tid;
	snprintf(name, sizeof(name), "%d/status", (int)tid);
	if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) < 0)
		return -ESRCH;
	if (!ns_ids(buf, "\nNStgid:", &host_tgid, &inner_tgid) ||
	    !ns_ids(buf, "\nNSpid:", &host_tid, &inner_tid))
		return -EPROTO;
	if (pid == inner_tid)
		return (pid_t)host_tid;
	return pid == inner_tgid ? (pid_t)host_tgid : 0;
}

static int answer_sysinfo(int listener, const struct seccomp_notif *req, int mem,
			  struct seccomp_notif_resp *resp)
{
	struct sysinfo si;
	int r;

	if ((r = sysinfo_for((pid_t)req->pid, &si)) < 0)
		return r;
	return reply(listener, req, mem, &si, sizeof(si), req->data.args[0], 0, resp);
}

static int answer_affinity(int listener, const struct seccomp_notif *req, int mem,
			   pid_t target, struct seccomp_notif_resp *resp)
{
	uint8_t mask[8192];
	long n = affinity_for((pid_t)req->pid, target, (unsigned)req->data.args[1], mask,
			      sizeof(mask));

	if (n < 0) { /* the kernel's own refusal (EINVAL), or the thread is gone */
		if (!id_valid(listener, req->id))
			return -ESRCH;
		resp->error = (int)n;
		return 0;
	}
	return reply(listener, req, mem, mask, (size_t)n, req->data.args[2], n, resp);
}

int supervise_answer(int listener, const struct seccomp_notif *req,
		     struct seccomp_notif_resp *resp)
{
	_cleanup_close_ int mem = -EBADF;
	pid_t target = 0;

	if (req->data.nr == SYS_sched_getaffinity) {
		target = self_target((pid_t)req->pid, (long)(int)req->data.args[0]);
		if (target == 0)
			return -ENOSYS; /* another process's: the native call */
		if (target < 0)
			return id_valid(listener, req->id) ? target : -ESRCH;
	} else if (req->data.nr != SYS_sysinfo) {
		return -ENOSYS; /* not ours: the native call */
	}
	if ((mem = open_mem((pid_t)req->pid)) < 0)
		return id_valid(listener, req->id) ? mem : -ESRCH;
	if (req->data.nr == SYS_sysinfo)
		return answer_sysinfo(listener, req, mem, resp);
	return answer_affinity(listener, req, mem, target, resp);
}
