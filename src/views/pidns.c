/* The start time of a caller's PID-namespace init, for /proc/uptime.
 * Found without forking: the NS_GET_TGID_FROM_PIDNS ioctl (Linux 6.11+),
 * else a walk up the parent chain to the process whose innermost NSpid is 1.
 * Results are memoised per namespace inode in a striped cache. */
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/nsfs.h>

#ifndef NS_GET_TGID_FROM_PIDNS
#define NS_GET_TGID_FROM_PIDNS _IOR(NSIO, 0x7, int)
#endif

#define NS_SLOTS 256
#define NS_MEMO_NS (10ULL * 1000000000ULL)

/* Namespace inode numbers are reused as soon as a namespace ends, so a memo
 * is only trusted while its init still lives in a namespace of that inode. */
struct ns_memo {
	pthread_mutex_t lock;
	uint64_t ino;
	pid_t init;
	uint64_t start_ns;
	uint64_t expires_ns;
};

static struct ns_memo memo[NS_SLOTS] = {
	[0 ... NS_SLOTS - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER },
};

static int pid_start_ns(pid_t pid, uint64_t *start)
{
	char name[32], buf[1024];
	const char *p;
	unsigned long long ticks;
	int field = 2;

	snprintf(name, sizeof(name), "%d/stat", pid);
	if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) < 0)
		return -ESRCH;
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	/* starttime is field 22; field 3 (state) follows ") " */
	for (p += 2; *p && field < 21; p++)
		if (*p == ' ')
			field++;
	if (sscanf(p, "%llu", &ticks) != 1)
		return -EINVAL;
	*start = ticks * (1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK));
	return 0;
}

/* Innermost NSpid and the parent, from /proc/PID/status. */
static int pid_status(pid_t pid, long *nspid_inner, pid_t *ppid)
{
	char name[32], buf[4096];
	const char *l;

	snprintf(name, sizeof(name), "%d/status", pid);
	if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) < 0)
		return -ESRCH;
	l = strstr(buf, "\nPPid:");
	if (!l)
		return -EINVAL;
	*ppid = (pid_t)strtol(l + 6, NULL, 10);
	l = strstr(buf, "\nNSpid:");
	if (!l)
		return -EINVAL;
	l += 7;
	for (;;) {
		char *end;
		long v = strtol(l, &end, 10);

		if (end == l)
			break;
		*nspid_inner = v;
		l = end;
	}
	return 0;
}

static pid_t find_init(pid_t pid, int nsfd)
{
	int r = ioctl(nsfd, NS_GET_TGID_FROM_PIDNS, 1);

	if (r > 0)
		return r;
	for (int depth = 0; depth < 64 && pid > 0; depth++) {
		long inner = 0;
		pid_t ppid = 0;

		if (pid_status(pid, &inner, &ppid) < 0)
			return -ESRCH;
		if (inner == 1)
			return pid;
		pid = ppid;
	}
	return -ESRCH;
}

static bool init_still_in(pid_t init, uint64_t ino)
{
	char name[32];
	struct stat st;

	snprintf(name, sizeof(name), "%d/ns/pid", init);
	return fstatat(views_ctx->proc_fd, name, &st, 0) == 0 && st.st_ino == ino;
}

uint64_t pidns_init_start_ns(pid_t pid)
{
	char name[32];
	_cleanup_close_ int nsfd = -EBADF;
	struct stat st;
	struct ns_memo *m;
	uint64_t start = 0, now = now_ns();
	pid_t init = 0;

	if (pid <= 0)
		return 0;
	snprintf(name, sizeof(name), "%d/ns/pid", pid);
	nsfd = openat(views_ctx->proc_fd, name, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || fstat(nsfd, &st) < 0 || st.st_ino == views_ctx->self_pidns)
		return 0;
	m = &memo[st.st_ino % NS_SLOTS];
	pthread_mutex_lock(&m->lock);
	if (m->ino == st.st_ino && m->expires_ns > now) {
		start = m->start_ns;
		init = m->init;
	}
	pthread_mutex_unlock(&m->lock);
	if (init > 0 && init_still_in(init, st.st_ino))
		return start;
	init = find_init(pid, nsfd);
	if (init <= 0 || pid_start_ns(init, &start) < 0)
		return 0;
	pthread_mutex_lock(&m->lock);
	m->ino = st.st_ino;
	m->init = init;
	m->start_ns = start;
	m->expires_ns = now + NS_MEMO_NS;
	pthread_mutex_unlock(&m->lock);
	return start;
}

bool pid_in_cgroup(pid_t pid, const struct container *c)
{
	struct container *mine = container_of_pid(pid, NULL);

	if (!mine)
		return false;
	if (mine == c)
		return true;
	for (int r = 0; r < CG_NRES; r++) {
		size_t n = strlen(c->cg.path[r]);

		if (!c->cg.present[r])
			continue;
		if (strncmp(mine->cg.path[r], c->cg.path[r], n))
			return false;
		if (mine->cg.path[r][n] == '/')
			return true; /* a descendant: paths are all we have, no syscall */
		/* The same path in two containers: one of them is of a removed
		 * cgroup that a new one replaced; only the identity tells. */
		return mine->cg.path[r][n] == '\0' && mine->cg.id_res == c->cg.id_res &&
		       mine->cg.id_ino == c->cg.id_ino && mine->cg.id_dev == c->cg.id_dev;
	}
	return false;
}

uint64_t caller_pidns_start(const struct view_caller *who)
{
	if (who->pidns_start != PIDNS_UNKNOWN)
		return who->pidns_start;
	return pidns_init_start_ns(who->pid);
}
