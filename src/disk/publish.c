/* Live figures under RUN_DIR/disk/NAME.json (replaced atomically at least
 * once a second, and at once when usage crosses 90 % or 100 %), and the
 * persisted accounting in DATA/state.
 *
 * DATA/state is written with clean 0 as soon as the daemon starts serving
 * and with clean 1 by a clean stop, after the last request; a start that
 * finds clean 0 (crash, SIGKILL) recounts the layers instead of trusting
 * the file. Both files are written to a temporary name, fsync'ed and
 * renamed, so a reader never sees half a file. */
#include "publish.h"
#include "nodes/nodes.h"
#include "volume/volume.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/daemon.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"
#include "cvmfs/req_counters.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_t pub_thread;
static bool pub_running;
static gid_t stat_gid = (gid_t)-1;
static bool answer_pending; /* protected by disk_ctx->pub_lock */

int publish_group(const char *group)
{
	struct group *g = getgrnam(group);

	if (!g)
		return -ENOENT;
	stat_gid = g->gr_gid;
	return 0;
}

/* Write data to dir/name through a temporary file and rename. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
			mode_t mode, gid_t gid, bool durable)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	/* A leftover temporary of any type goes first: opening a FIFO left
	 * there would block; O_EXCL makes sure a fresh regular file is written. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	if (gid != (gid_t)-1 && fchown(fd, 0, gid) < 0)
		return -errno;
	if (fchmod(fd, mode) < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r == 0 && durable && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int publish_write(const char *state)
{
	struct figures f = { 0 };
	char dir[PATH_MAX], name[300], buf[16384], extra[12288];
	int len;

	figures_from_acct(&f, &disk_ctx->acct);
	if (volume_on()) {
		f.limit_bytes = disk_ctx->cfg.limit;
		volume_figures(&f, &disk_ctx->acct);
	}
	len = volume_json(extra, sizeof(extra), disk_ctx->cfg.data);
	if (len < 0 || (len = req_counts_json(extra + len, sizeof(extra) - (size_t)len)) < 0)
		return len;
	/* Which build serves: an upgrade in place (SIGUSR2) changes it while
	 * the pid stays, and the log may go nowhere (syslog without /dev/log). */
	len = (int)strlen(extra);
	if (snprintf(extra + len, sizeof(extra) - (size_t)len, ",\"build_id\":\"%s\"",
		     daemon_build_id()) >= (int)(sizeof(extra) - (size_t)len))
		return -ENOSPC;
	f.extra_json = extra;
	snprintf(f.name, sizeof(f.name), "%s", disk_ctx->cfg.name);
	snprintf(f.state, sizeof(f.state), "%s", state);
	f.pid = (long)disk_ctx->daemon_pid;
	f.data = disk_ctx->cfg.data;
	f.image = disk_ctx->cfg.image ? disk_ctx->cfg.image : "";
	f.image_idmap = disk_ctx->cfg.image_idmap ? disk_ctx->cfg.image_idmap : "";
	f.known_inodes = __atomic_load_n(&disk_ctx->nodes, __ATOMIC_RELAXED);
	len = figures_to_json(&f, buf, sizeof(buf));
	if (len < 0)
		return len;
	snprintf(dir, sizeof(dir), "%s/" CVMFS_DISK_DIR, disk_ctx->cfg.run_dir);
	snprintf(name, sizeof(name), "%s" CVMFS_DISK_STATUS, disk_ctx->cfg.name);
	return write_atomic(dir, name, buf, (size_t)len, stat_gid == (gid_t)-1 ? 0600 : 0640,
			    stat_gid, false);
}

int publish_pidfile(bool create)
{
	char path[PATH_MAX], buf[32];
	char dir[PATH_MAX], name[300];
	int len;

	snprintf(dir, sizeof(dir), "%s/" CVMFS_DISK_DIR, disk_ctx->cfg.run_dir);
	snprintf(name, sizeof(name), "%s" CVMFS_DISK_PID, disk_ctx->cfg.name);
	if (!create) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		return unlink(path) < 0 ? -errno : 0;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)disk_ctx->daemon_pid);
	return write_atomic(dir, name, buf, (size_t)len, 0644, (gid_t)-1, false);
}

void publish_answer(void)
{
	pthread_mutex_lock(&disk_ctx->pub_lock);
	answer_pending = true;
	pthread_mutex_unlock(&disk_ctx->pub_lock);
	publish_kick();
}

static void request_remove(void)
{
	_cleanup_free_ char *path = cvmfs_disk_file(disk_ctx->cfg.run_dir, disk_ctx->cfg.name, CVMFS_DISK_LIMIT);

	if (path && unlink(path) < 0 && errno != ENOENT)
		log_warn("%s: %s", path, strerror(errno));
}

static void *publish_loop(void *arg)
{
	struct timespec ts;
	bool answer;
	int r;

	(void)arg;
	disk_thread_enter(); /* nodes_maintain() resizes the RCU tables */
	pthread_mutex_lock(&disk_ctx->pub_lock);
	while (!disk_ctx->pub_stop) {
		answer = answer_pending;
		answer_pending = false;
		pthread_mutex_unlock(&disk_ctx->pub_lock);
		nodes_maintain();
		journal_maintain();
		r = publish_write("running");
		if (r < 0)
			log_warn("%s/disk/%s.json: %s", disk_ctx->cfg.run_dir, disk_ctx->cfg.name, strerror(-r));
		if (answer)
			request_remove();
		pthread_mutex_lock(&disk_ctx->pub_lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		while (!disk_ctx->pub_kick && !disk_ctx->pub_stop &&
		       pthread_cond_timedwait(&disk_ctx->pub_cond, &disk_ctx->pub_lock, &ts) == 0)
			;
		disk_ctx->pub_kick = false;
	}
	pthread_mutex_unlock(&disk_ctx->pub_lock);
	return NULL;
}

int publish_start(void)
{
	pthread_condattr_t ca;
	int r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&disk_ctx->pub_cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&pub_thread, NULL, publish_loop, NULL);
	if (r)
		return -r;
	pub_running = true;
	return 0;
}

void publish_stop(void)
{
	if (!pub_running)
		return;
	pthread_mutex_lock(&disk_ctx->pub_lock);
	disk_ctx->pub_stop = true;
	pthread_cond_signal(&disk_ctx->pub_cond);
	pthread_mutex_unlock(&disk_ctx->pub_lock);
	pthread_join(pub_thread, NULL);
	pub_running = false;
}

int state_load(struct disk_state *s)
{
	char buf[8192];
	ssize_t n = read_regular_buf(disk_ctx->data_fd, "state", buf, sizeof(buf));

	if (n == -EINVAL || n == -EISDIR)
		log_warn("%s/state: %s: usage is recounted", disk_ctx->cfg.data, file_strerror((int)n));
	if (n < 0)
		return (int)n;
	return state_parse(buf, s);
}

int state_save(bool clean)
{
	struct disk_state s = { .clean = clean };
	char dir[PATH_MAX], buf[8192];
	int len, r;

	s.used_bytes = (uint64_t)__atomic_load_n(&disk_ctx->acct.used_bytes, __ATOMIC_RELAXED);
	s.used_inodes = (uint64_t)__atomic_load_n(&disk_ctx->acct.used_inodes, __ATOMIC_RELAXED);
	for (int i = 0; i < AREA_N; i++) {
		s.area_bytes[i] = (uint64_t)__atomic_load_n(&disk_ctx->acct.area_bytes[i], __ATOMIC_RELAXED);
		s.area_inodes[i] =
			(uint64_t)__atomic_load_n(&disk_ctx->acct.area_inodes[i], __ATOMIC_RELAXED);
	}
	snprintf(s.image, sizeof(s.image), "%s", disk_ctx->cfg.image ? disk_ctx->cfg.image : "");
	len = state_format(&s, buf, sizeof(buf));
	if (len < 0)
		return len;
	snprintf(dir, sizeof(dir), "%s", disk_ctx->cfg.data);
	r = write_atomic(dir, "state", buf, (size_t)len, 0600, (gid_t)-1, true);
	if (r == 0)
		fsync(disk_ctx->data_fd);
	return r;
}
