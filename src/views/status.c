/* The views' request counts (include/cvmfs/req_counters.h): the sessions'
 * custom I/O (the take-over hooks, src/common/fuse_takeover.c) counts the
 * replies, and a thread publishes the counts at MOUNT.json, replaced
 * atomically: {"pid":P,"requests":N,"errors":M}. The counts are the
 * serving process's: a restarted server starts from 0. */
#include "status.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"
#include "cvmfs/req_counters.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running, stop;
	char path[PATH_MAX], tmp[PATH_MAX];
} pub = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int write_status(void)
{
	char buf[128];
	_cleanup_close_ int fd = -EBADF;
	int n = snprintf(buf, sizeof(buf), "{\"pid\":%ld", (long)getpid());
	int m = req_counts_json(buf + n, sizeof(buf) - (size_t)n - 2);

	if (m < 0)
		return m;
	memcpy(buf + n + m, "}\n", 2);
	unlink(pub.tmp);
	fd = open(pub.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (write_all(fd, buf, (size_t)(n + m + 2)) < 0 || rename(pub.tmp, pub.path) < 0) {
		unlink(pub.tmp);
		return -errno;
	}
	return 0;
}

static void *publisher(void *arg)
{
	struct req_counts last = { UINT64_MAX, 0 }, now;
	struct timespec ts;

	pthread_mutex_lock(&pub.lock);
	while (!pub.stop) {
		now = req_counts_get();
		if ((now.requests != last.requests || now.errors != last.errors) &&
		    write_status() == 0)
			last = now;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&pub.wake, &pub.lock, &ts);
	}
	pthread_mutex_unlock(&pub.lock);
	return NULL;
}

int views_status_start(const char *mnt)
{
	int r;

	if (snprintf(pub.path, sizeof(pub.path), "%s" CVMFS_VIEWS_STATUS, mnt) >=
		    (int)sizeof(pub.path) ||
	    snprintf(pub.tmp, sizeof(pub.tmp), "%s" CVMFS_VIEWS_STATUS ".tmp", mnt) >=
		    (int)sizeof(pub.tmp))
		return -ENAMETOOLONG;
	pthread_cond_init(&pub.wake, NULL);
	r = write_status();
	if (r < 0)
		return log_error_errno(r, "%s", pub.path);
	r = -pthread_create(&pub.thread, NULL, publisher, NULL);
	if (r < 0)
		return log_error_errno(r, "status thread");
	pub.running = true;
	return 0;
}

void views_status_stop(void)
{
	if (!pub.running)
		return;
	pthread_mutex_lock(&pub.lock);
	pub.stop = true;
	pthread_cond_signal(&pub.wake);
	pthread_mutex_unlock(&pub.lock);
	pthread_join(pub.thread, NULL);
	pub.running = false;
	unlink(pub.path);
}
