/* cvmfsd disk: layers, accounting at start, daemon lifecycle.
 *
 * Start: options -> DATA (upper, work, lock) and image layers -> usage
 * (DATA/state if it was left by a clean stop with the same image list,
 * else a full recount) -> DATA/state marked unclean -> daemonise -> mount
 * -> pid file and live figures -> readiness byte to the parent.
 * Signals: SIGHUP re-reads the limits; SIGTERM/SIGINT stop: detach the
 * mount, end the FUSE connection (also for copies of the mount in other
 * namespaces), wait for the last request read, persist a clean DATA/state,
 * publish "stopped". */
#include "fuse/ops.h"
#include "publish.h"
#include "disk_main.h"
#include "volume/volume.h"
#include "cvmfs/daemon.h"
#include "cvmfs/fsutil.h"
#include "cvmfs/fuse_daemon.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static int open_layer(struct layer *l, const char *path, const char *what)
{
	struct stat st;

	l->path = strdup(path);
	l->fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!l->path || l->fd < 0 || fstat(l->fd, &st) < 0) {
		return log_error_errno(-errno, "%s %s", what, path);
	}
	l->dev = st.st_dev;
	layer_handles_open(l);
	return 0;
}

static int open_images(void)
{
	_cleanup_free_ char *list = disk_ctx->cfg.image ? strdup(disk_ctx->cfg.image) : NULL;
	char *save = NULL;
	int r;

	disk_ctx->nlayers = 1;
	if (!list)
		return disk_ctx->cfg.image ? -ENOMEM : 0;
	/* The launcher resolves image references into layer directories
	 * (src/launch/image.h); the disk takes only those. */
	if (!strncmp(list, "oci:", 4) || !strncmp(list, "docker-archive:", 15)) {
		log_error("--image %s: an image reference: cvm-launch resolves it "
				"into layer directories, which the disk takes", disk_ctx->cfg.image);
		return -EINVAL;
	}
	for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		if (disk_ctx->nlayers > MAX_LOWER) {
			log_error("--image: more than %d layers", MAX_LOWER);
			return -E2BIG;
		}
		r = open_layer(&disk_ctx->layers[disk_ctx->nlayers], p, "--image");
		if (r < 0)
			return r;
		disk_ctx->nlayers++;
	}
	return 0;
}

/* DATA/lock. A daemon killed with SIGKILL is two processes for a moment:
 * its server follows its supervisor (PR_SET_PDEATHSIG) and holds the lock
 * until it has exited, so an immediate restart waits briefly for it. */
static bool lock_data(int fd)
{
	for (int i = 0; i < 300; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return true;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	return false;
}

static int open_data(void)
{
	const char *data = disk_ctx->cfg.data;
	struct statvfs sv;
	char p[PATH_MAX];
	int r;

	r = mkdir_p(data, 0700);
	disk_ctx->data_fd = r < 0 ? r : open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (disk_ctx->data_fd < 0) {
		return log_error_errno(-errno, "--data %s", data);
	}
	if ((mkdirat(disk_ctx->data_fd, "upper", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(disk_ctx->data_fd, "work", 0700) < 0 && errno != EEXIST)) {
		return log_error_errno(-errno, "--data %s", data);
	}
	snprintf(p, sizeof(p), "%s/upper", data);
	r = open_layer(&disk_ctx->layers[0], p, "--data");
	if (r < 0)
		return r;
	disk_ctx->work_fd = openat(disk_ctx->data_fd, "work", O_PATH | O_DIRECTORY | O_CLOEXEC);
	disk_ctx->handle_fd = openat(disk_ctx->data_fd, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	disk_ctx->lock_fd = openat(disk_ctx->data_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (disk_ctx->work_fd < 0 || disk_ctx->lock_fd < 0 || disk_ctx->handle_fd < 0 || fstatvfs(disk_ctx->layers[0].fd, &sv) < 0) {
		return log_error_errno(-errno, "--data %s", data);
	}
	if (!lock_data(disk_ctx->lock_fd)) {
		log_error("--data %s: in use by another cvmfsd disk", data);
		return -EBUSY;
	}
	disk_ctx->blksize = sv.f_bsize ? sv.f_bsize : 4096;
	rm_rf_at(disk_ctx->work_fd, 0);
	return 0;
}

static double elapsed_s(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void acct_from_state(const struct disk_state *s)
{
	struct acct *a = &disk_ctx->acct;

	a->used_bytes = a->commit_bytes = (int64_t)s->used_bytes;
	a->used_inodes = a->commit_inodes = (int64_t)s->used_inodes;
	for (int i = 0; i < AREA_N; i++) {
		a->area_bytes[i] = (int64_t)s->area_bytes[i];
		a->area_inodes[i] = (int64_t)s->area_inodes[i];
	}
}

static int load_usage(void)
{
	struct disk_state s = { 0 };
	struct timespec t0;
	int r = state_load(&s);

	if (r == 0 && s.clean && !strcmp(s.image, disk_ctx->cfg.image ? disk_ctx->cfg.image : "")) {
		acct_from_state(&s);
		log_info("%s: usage from DATA/state (clean stop): %lld bytes, %lld inodes",
			 disk_ctx->cfg.name, (long long)s.used_bytes, (long long)s.used_inodes);
		return 0;
	}
	bool had_state = r == 0 && !s.clean;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = scan_all(&disk_ctx->acct, &disk_ctx->image_inodes);
	if (r < 0)
		return log_error_errno(r, "--data %s: recount", disk_ctx->cfg.data);
	log_info("%s: recounted usage (%s): %lld bytes, %lld inodes in %.2f s", disk_ctx->cfg.name,
		 had_state ? "unclean stop" : "no usable DATA/state",
		 (long long)disk_ctx->acct.used_bytes, (long long)disk_ctx->acct.used_inodes, elapsed_s(&t0));
	return 0;
}

/* ---- FUSE session ---- */

/* Before the loop: cache invalidations and passthrough use the session;
 * a server taking over counts the open files again. */
static void session_setup(struct fuse_session *se)
{
	disk_ctx->se = se;
	disk_survive_restore_opens();
}

static struct fuse_daemon session = {
	.subtype = "cvmfs-disk", .max_threads = 32, .setup = session_setup,
	.grace_s = 1, /* for the connection to end by itself once detached */
	.abort_s = 10, /* for the last request read, in all */
};

static int session_start(const char *mnt)
{
	static char fsname[PATH_MAX];
	int r;

	snprintf(fsname, sizeof(fsname), "cvmfs-disk-%s", disk_ctx->cfg.name);
	session.fsname = fsname;
	session.extra_opts = disk_ctx->cfg.fuse_opts;
	session.stopping = &disk_ctx->stopping;
	/* The connection outlives this process (disk_survive.c). */
	session.survive = true;
	session.init_store = SURV.init_store;
	session.takeover_fd = SURV.fuse_fd;
	session.io = session_io_hooks();
	handles_set_mountpoint(mnt);
	r = fuse_daemon_start(&session, &disk_ops, sizeof(disk_ops), mnt);
	if (r == 0 && SURV.fuse_fd < 0)
		fuse_survive_mounted(&SURV, fuse_session_fd(session.se));
	return r;
}

/* True when every request read has been answered (safe to persist as
 * clean). */
static bool session_stop(void)
{
	if (!fuse_daemon_stop(&session)) {
		log_warn("%s: still in use (%llu inodes known); usage will be recounted at next start",
			 session.mnt_path,
			 (unsigned long long)__atomic_load_n(&disk_ctx->nodes, __ATOMIC_RELAXED));
		return false;
	}
	disk_ctx->se = NULL;
	return true;
}

/* ---- lifecycle ---- */

static void apply_limit(uint64_t limit, uint64_t inodes)
{
	if (volume_on()) { /* the kernel holds the limit: the volume's size */
		disk_ctx->cfg.limit = limit;
		volume_resize(limit);
		return;
	}
	__atomic_store_n(&disk_ctx->acct.limit_bytes, limit, __ATOMIC_RELAXED);
	__atomic_store_n(&disk_ctx->acct.limit_inodes, inodes, __ATOMIC_RELAXED);
	log_info("SIGHUP: limit %llu bytes, %llu inodes (0 = unlimited)",
		 (unsigned long long)limit, (unsigned long long)inodes);
	charge_settle(AREA_OTHER, 0, 0, 0, 0);
}

/* SIGHUP: the limits from the config file or a launcher's request. The
 * status published next shows what was applied; a request is removed
 * only after it, so that its launcher reads the answer there. */
static void reload(void)
{
	uint64_t limit = disk_ctx->acct.limit_bytes, inodes = disk_ctx->acct.limit_inodes;
	bool request = false;
	int r = disk_config_reload(&disk_ctx->cfg, &limit, &inodes, &request);

	if (r < 0)
		log_error("SIGHUP: %s: keeping limit %llu bytes, %llu inodes", disk_ctx->cfg.config,
			  (unsigned long long)disk_ctx->acct.limit_bytes,
			  (unsigned long long)disk_ctx->acct.limit_inodes);
	else
		apply_limit(limit, inodes);
	if (request)
		publish_answer();
	else
		publish_kick();
}

/* --rebuild with a volume: DATA is mounted only while we run, so the
 * daemon empties DATA/upper itself; the figures are then recounted. */
static int discard_upper(void)
{
	int r = volume_discard_upper(disk_ctx->handle_fd, disk_ctx->cfg.persist);

	if (r < 0)
		return r;
	if (unlinkat(disk_ctx->data_fd, "state", 0) < 0 && errno != ENOENT)
		return log_error_errno(-errno, "%s/state", disk_ctx->cfg.data);
	return 0;
}

/* With a volume the kernel refuses what does not fit, at write(2), on
 * every path: the union's own admission would refuse writes the volume
 * can take (it reserves worst cases, and cannot see the lanes), so it is
 * off; the union still charges what it writes, for the areas. */
static int volume_admission(void)
{
	int r = volume_reserve(disk_ctx->data_fd, (uint64_t)disk_ctx->acct.area_bytes[AREA_IMAGE]);

	if (r == 0)
		r = volume_lanes_prepare(disk_ctx->data_fd);
	disk_ctx->acct.limit_bytes = 0;
	disk_ctx->acct.limit_inodes = 0;
	return r;
}

static int prepare(void)
{
	char dir[PATH_MAX];
	int r;

	umask(0); /* modes come from the kernel with the caller's umask applied */
	disk_ctx->acct.limit_bytes = disk_ctx->cfg.limit;
	disk_ctx->acct.limit_inodes = disk_ctx->cfg.inodes;
	if (disk_ctx->cfg.stat_group && publish_group(disk_ctx->cfg.stat_group) < 0) {
		log_error("bad value for --stat-group: '%s': no such group",
			disk_ctx->cfg.stat_group);
		return -EINVAL;
	}
	if (disk_ctx->cfg.image_idmap && image_idmap_parse(disk_ctx->cfg.image_idmap) < 0) {
		log_error("bad value for --image-idmap: '%s': use UID:GID:COUNT",
			disk_ctx->cfg.image_idmap);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%s/" CVMFS_DISK_DIR, disk_ctx->cfg.run_dir);
	r = mkdir_p(dir, 0755);
	if (r < 0) {
		return log_error_errno(r, "--run-dir %s", dir);
	}
	r = volume_configure(disk_ctx->cfg.volume, disk_ctx->cfg.volume_dir, disk_ctx->cfg.lanes, disk_ctx->cfg.volume_alloc,
			     disk_ctx->cfg.data, disk_ctx->cfg.name);
	if (r == 0 && volume_on())
		r = volume_start(disk_ctx->cfg.data, disk_ctx->cfg.limit, disk_ctx->cfg.inodes_cli);
	if (r < 0 || (r = open_data()) < 0 || (r = open_images()) < 0 ||
	    (r = upper_root_adopt()) < 0)
		return r;
	if (disk_ctx->cfg.discard_upper && (r = discard_upper()) < 0)
		return r;
	if ((r = load_usage()) < 0)
		return r;
	if (volume_on() && (r = volume_admission()) < 0)
		return r;
	r = state_save(false);
	return r < 0 ? log_error_errno(r, "%s/state", disk_ctx->cfg.data) : 0;
}

/* One server: the session (mounted, or taken over from a dead server),
 * the publisher, until a stop signal. */
static int disk_serve(const char *mnt)
{
	bool clean;
	int r;

	if ((r = ghosts_init()) < 0 || (r = nodes_init(charge_settle_writeback)) < 0)
		return log_error_errno(r, "inode table");
	if ((r = disk_survive_prepare()) < 0)
		return r;
	if (SURV.gen <= 1)
		handles_load();
	r = session_start(mnt);
	if (r < 0)
		return r;
	if (volume_on() && ((SURV.gen <= 1 && (r = volume_lanes_fill(mnt)) < 0) ||
			    (r = volume_scanner_start(disk_ctx->data_fd, &disk_ctx->acct)) < 0)) {
		session_stop();
		return r;
	}
	/* The status (with a volume's lanes) exists before the pid file,
	 * which is what a launcher waits for. */
	publish_write("running");
	publish_pidfile(true);
	publish_start();
	if (SURV.gen <= 1)
		log_info("%s: serving %s (limit %llu bytes, %u image layers)", disk_ctx->cfg.name, mnt,
			 (unsigned long long)disk_ctx->cfg.limit, disk_ctx->nlayers - 1);
	fuse_survive_ready(&SURV, disk_ctx->cfg.foreground);
	daemon_wait_stop(reload);
	log_info("%s: stopping", disk_ctx->cfg.name);
	clean = session_stop();
	volume_scanner_stop();
	publish_stop();
	r = state_save(clean);
	if (r < 0)
		log_error_errno(r, "%s/state", disk_ctx->cfg.data);
	publish_write("stopped");
	publish_pidfile(false);
	if (clean) {
		handles_save();
		nodes_fini();
		ghosts_fini();
	}
	journal_fini();
	return 0;
}

/* The supervisor returns its exit status; a server serves (*server).
 * After an upgrade's exec the daemon runs on: nothing to daemonise. */
static int disk_run(const char *mnt, bool *server, bool upgraded)
{
	int notify_fd = -1, r;

	if (upgraded) {
		log_setup("cvmfsd disk", !disk_ctx->cfg.foreground, disk_ctx->cfg.debug);
		daemon_block_signals();
	} else if ((r = daemon_start("cvmfsd disk", disk_ctx->cfg.foreground, disk_ctx->cfg.debug,
				     &notify_fd)) < 0) {
		return r;
	}
	disk_ctx->daemon_pid = getpid();
	if ((r = disk_survive_setup(upgraded)) < 0)
		return r;
	r = fuse_survive_run(&SURV, notify_fd);
	if (r >= 0)
		return r ? -EIO : 0;
	*server = true;
	return disk_serve(mnt);
}

static void disk_close(void)
{
	for (unsigned i = 0; i < disk_ctx->nlayers; i++) {
		if (disk_ctx->layers[i].fd >= 0)
			close(disk_ctx->layers[i].fd);
		layer_handles_close(&disk_ctx->layers[i]);
		free(disk_ctx->layers[i].path);
	}
	if (disk_ctx->data_fd >= 0)
		close(disk_ctx->data_fd);
	if (disk_ctx->work_fd >= 0)
		close(disk_ctx->work_fd);
	if (disk_ctx->handle_fd >= 0)
		close(disk_ctx->handle_fd);
	if (disk_ctx->lock_fd >= 0)
		close(disk_ctx->lock_fd);
}

int cvmfsd_disk_main(int argc, char **argv)
{
	static struct disk d;
	char *mnt = NULL;
	bool server = false, upgraded;
	int r;

	disk_ctx = &d;
	d.data_fd = d.work_fd = d.lock_fd = d.handle_fd = -1;
	for (unsigned i = 0; i <= MAX_LOWER; i++)
		d.layers[i].fd = d.layers[i].handle_mnt_fd = -1;
	d.nlayers = 1;
	pthread_rwlock_init(&d.ns_lock, NULL);
	pthread_mutex_init(&d.pub_lock, NULL);
	log_setup("cvmfsd disk", false, false);
	r = disk_config_load(&d.cfg, argc, argv, &mnt);
	/* Exec'd by our own supervisor (SIGUSR2): the mount is live and ours. */
	upgraded = r == 0 && fuse_survive_inherited(&SURV);
	volume_inherit(upgraded);
	if (r == 0 && !upgraded)
		r = fuse_daemon_recover_stale(mnt);
	if (r == 0)
		r = prepare();
	if (r == 0)
		r = disk_run(mnt, &server, upgraded);
	if (server) { /* the fds are the supervisor's too, in the table we share */
		for (unsigned i = 0; i < d.nlayers; i++)
			free(d.layers[i].path);
		disk_config_free(&d.cfg);
		return r < 0 ? 1 : 0;
	}
	disk_close();
	if (volume_on())
		volume_stop(d.cfg.data);
	disk_config_free(&d.cfg);
	return r < 0 ? 1 : 0;
}
