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

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>


static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* Leftovers of copy-ups interrupted by a crash. */
static void rm_rf_at(int dfd, int depth)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;

	if (!d || depth > 64)
		return;
	while ((de = readdir(d))) {
		int cfd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno != EISDIR)
			continue;
		cfd = openat(dirfd(d), de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0) {
			rm_rf_at(cfd, depth + 1);
			close(cfd);
		}
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
}

static int open_layer(struct layer *l, const char *path, const char *what)
{
	struct stat st;

	l->path = strdup(path);
	l->fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!l->path || l->fd < 0 || fstat(l->fd, &st) < 0) {
		fprintf(stderr, "cvmfsd disk: %s %s: %s\n", what, path, strerror(errno));
		return -errno;
	}
	l->dev = st.st_dev;
	layer_handles_open(l);
	return 0;
}

static int open_images(void)
{
	_cleanup_free_ char *list = D->cfg.image ? strdup(D->cfg.image) : NULL;
	char *save = NULL;
	int r;

	D->nlayers = 1;
	if (!list)
		return D->cfg.image ? -ENOMEM : 0;
	/* The launcher resolves image references into layer directories
	 * (src/launch/image.h); the disk takes only those. */
	if (!strncmp(list, "oci:", 4) || !strncmp(list, "docker-archive:", 15)) {
		fprintf(stderr, "cvmfsd disk: --image %s: an image reference: cvm-launch resolves it "
				"into layer directories, which the disk takes\n", D->cfg.image);
		return -EINVAL;
	}
	for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		if (D->nlayers > MAX_LOWER) {
			fprintf(stderr, "cvmfsd disk: --image: more than %d layers\n", MAX_LOWER);
			return -E2BIG;
		}
		r = open_layer(&D->layers[D->nlayers], p, "--image");
		if (r < 0)
			return r;
		D->nlayers++;
	}
	return 0;
}

static int open_data(void)
{
	const char *data = D->cfg.data;
	struct statvfs sv;
	char p[PATH_MAX];
	int r;

	r = mkdir_p(data, 0700);
	D->data_fd = r < 0 ? r : open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (D->data_fd < 0) {
		fprintf(stderr, "cvmfsd disk: --data %s: %s\n", data, strerror(errno));
		return -errno;
	}
	if ((mkdirat(D->data_fd, "upper", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(D->data_fd, "work", 0700) < 0 && errno != EEXIST)) {
		fprintf(stderr, "cvmfsd disk: --data %s: %s\n", data, strerror(errno));
		return -errno;
	}
	snprintf(p, sizeof(p), "%s/upper", data);
	r = open_layer(&D->layers[0], p, "--data");
	if (r < 0)
		return r;
	D->work_fd = openat(D->data_fd, "work", O_PATH | O_DIRECTORY | O_CLOEXEC);
	D->handle_fd = openat(D->data_fd, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	D->lock_fd = openat(D->data_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (D->work_fd < 0 || D->lock_fd < 0 || D->handle_fd < 0 || fstatvfs(D->layers[0].fd, &sv) < 0) {
		fprintf(stderr, "cvmfsd disk: --data %s: %s\n", data, strerror(errno));
		return -errno;
	}
	if (flock(D->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "cvmfsd disk: --data %s: in use by another cvmfsd disk\n", data);
		return -EBUSY;
	}
	D->blksize = sv.f_bsize ? sv.f_bsize : 4096;
	rm_rf_at(D->work_fd, 0);
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
	struct acct *a = &D->acct;

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

	if (r == 0 && s.clean && !strcmp(s.image, D->cfg.image ? D->cfg.image : "")) {
		acct_from_state(&s);
		log_info("%s: usage from DATA/state (clean stop): %lld bytes, %lld inodes",
			 D->cfg.name, (long long)s.used_bytes, (long long)s.used_inodes);
		return 0;
	}
	bool had_state = r == 0 && !s.clean;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = scan_all(&D->acct, &D->image_inodes);
	if (r < 0)
		return log_error_errno(r, "--data %s: recount", D->cfg.data);
	log_info("%s: recounted usage (%s): %lld bytes, %lld inodes in %.2f s", D->cfg.name,
		 had_state ? "unclean stop" : "no usable DATA/state",
		 (long long)D->acct.used_bytes, (long long)D->acct.used_inodes, elapsed_s(&t0));
	return 0;
}

/* ---- FUSE session ---- */

#define FUSECTL_DIR "/sys/fs/fuse/connections"
#define FUSECTL_MAGIC 0x65735543 /* FUSE_CTL_SUPER_MAGIC */
#define STOP_GRACE_S 1 /* for the connection to end by itself once detached */
#define STOP_WAIT_S 10 /* for the last request read, in all */

static struct fuse_session *se;
static pthread_t loop_thread;
static bool loop_running;
static char mnt_path[PATH_MAX]; /* as given, for messages */
static char mnt_real[PATH_MAX]; /* canonical, as /proc/self/mountinfo has it */
static dev_t conn_dev; /* our mount's st_dev; its minor names the connection in fusectl */

static void *session_loop(void *arg)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();

	(void)arg;
	fuse_loop_cfg_set_max_threads(cfg, 32);
	fuse_loop_cfg_set_idle_threads(cfg, 8);
	fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	/* The connection ended without us: its last mount went (fusermount3 -u
	 * with no copy left in another namespace) or it was aborted. Stop. */
	if (!__atomic_load_n(&D->stopping, __ATOMIC_ACQUIRE))
		kill(getpid(), SIGTERM);
	return NULL;
}

/* Mountpoint fields of /proc/self/mountinfo escape ' ', '\t', '\n' and
 * '\\' as \ooo; decoded in place. */
static void mountinfo_unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* The last mount at PATH (canonical) in /proc/self/mountinfo, of a FUSE
 * type if fuse_only (the last one mounted: what a lookup of PATH reaches
 * when !fuse_only): its type and device. False if there is none. */
static bool mount_at(const char *path, bool fuse_only, char *fstype, size_t size, dev_t *dev)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	bool found = false;

	while (f && getline(&line, &cap, f) > 0) {
		char *save = NULL, *fld[5] = { 0 }, *sep = strstr(line, " - "), *type;
		unsigned maj, min;

		for (int i = 0; i < 5; i++)
			fld[i] = strtok_r(i ? NULL : line, " ", &save);
		if (!fld[4] || !sep || !(type = strtok_r(sep + 3, " ", &save)) ||
		    sscanf(fld[2], "%u:%u", &maj, &min) != 2)
			continue;
		mountinfo_unescape(fld[4]);
		if (strcmp(fld[4], path) || (fuse_only && strncmp(type, "fuse", 4)))
			continue;
		snprintf(fstype, size, "%s", type);
		if (dev)
			*dev = makedev(maj, min);
		found = true;
	}
	return found;
}

/* Before anything is touched. A daemon killed with SIGKILL leaves its
 * mount behind ("Transport endpoint is not connected"): detached, so that
 * the new mount is not stacked on the dead one. stat() may still succeed
 * from cached attributes there; opening the directory does not. A live
 * FUSE mount at MNT is another daemon's: refused. */
static int check_mountpoint(const char *path)
{
	char real[PATH_MAX], fstype[256];

	for (int tries = 0; tries < 8; tries++) {
		struct statfs sf;

		/* statfs, not open: once a daemon has answered OPENDIR with
		 * ENOSYS the kernel opens its directories without asking, so a
		 * dead mount opens fine; STATFS always asks (ENOTCONN). */
		if (statfs(path, &sf) == 0) {
			if (realpath(path, real) && mount_at(real, true, fstype, sizeof(fstype), NULL)) {
				fprintf(stderr, "cvmfsd disk: %s: already mounted (%s) by a running daemon: %s\n",
					path, fstype, strerror(EBUSY));
				return -EBUSY;
			}
			return 0;
		}
		if (errno != ENOTCONN)
			return 0; /* the mount itself says what is wrong */
		log_warn("%s: stale mount from a previous run, detaching it", path);
		if (umount2(path, MNT_DETACH) < 0) {
			int r = -errno;

			fprintf(stderr, "cvmfsd disk: %s: detaching the stale mount: %s\n", path,
				strerror(-r));
			return r;
		}
	}
	fprintf(stderr, "cvmfsd disk: %s: still a stale mount after 8 detaches: %s\n", path,
		strerror(EBUSY));
	return -EBUSY;
}

/* Our mount and connection as the kernel names them (MNT canonical before
 * it is mounted: no lookup into the mount before the loop answers INIT). */
static int session_mount(const char *mnt)
{
	char type[256];

	if (!realpath(mnt, mnt_real))
		snprintf(mnt_real, sizeof(mnt_real), "%s", mnt);
	if (fuse_session_mount(se, mnt) != 0)
		return -EIO;
	if (!mount_at(mnt_real, true, type, sizeof(type), &conn_dev))
		log_warn("%s: not in /proc/self/mountinfo: a stop cannot end its copies elsewhere",
			 mnt);
	return 0;
}

static int session_start(const char *mnt)
{
	char opts[4096];
	char *argv[] = { "cvmfsd", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int r;

	snprintf(opts, sizeof(opts),
		 "allow_other,default_permissions,fsname=cvmfs-disk-%s,subtype=cvmfs-disk%s%s",
		 D->cfg.name, D->cfg.fuse_opts ? "," : "", D->cfg.fuse_opts ? D->cfg.fuse_opts : "");
	snprintf(mnt_path, sizeof(mnt_path), "%s", mnt);
	handles_set_mountpoint(mnt);
	se = fuse_session_new(&args, &disk_ops, sizeof(disk_ops), NULL);
	D->se = se;
	fuse_opt_free_args(&args);
	if (!se) {
		log_error("-o %s: cannot start a FUSE session", opts);
		return -EINVAL;
	}
	if (session_mount(mnt) < 0) {
		log_error("%s: cannot mount", mnt);
		fuse_session_destroy(se);
		se = D->se = NULL;
		return -EIO;
	}
	session_io_attach(se); /* optional: without it, only slower */
	r = pthread_create(&loop_thread, NULL, session_loop, NULL);
	if (r) {
		fuse_session_unmount(se);
		return -r;
	}
	loop_running = true;
	return 0;
}

/* Does a lookup of MNT reach our mount? Not once it was unmounted from
 * outside (MNT may then hold anything) or something was mounted over it. */
static bool mount_is_ours(void)
{
	char type[256];
	dev_t dev;

	return conn_dev && mount_at(mnt_real, false, type, sizeof(type), &dev) && dev == conn_dev;
}

/* False once the connection has ended: /dev/fuse polls POLLERR when the
 * last mount of it went or it was aborted. */
static bool conn_alive(void)
{
	struct pollfd p = { .fd = fuse_session_fd(se) };

	return p.fd >= 0 && !(poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)));
}

/* Writes our connection's abort file in fusectl at DIR. Opened while the
 * connection is alive, the file is ours (its name, the minor of our
 * st_dev, is not given to another mount before our connection ends);
 * written after it ended, it does nothing. */
static int conn_abort_at(const char *dir)
{
	char path[PATH_MAX];
	_cleanup_close_ int fd = -EBADF;

	snprintf(path, sizeof(path), "%s/%u/abort", dir, minor(conn_dev));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return conn_alive() ? -errno : 0; /* no entry: the connection has ended */
	if (conn_alive() && write(fd, "1", 1) < 0)
		return -errno;
	return 0;
}

/* fusectl is not mounted on a fresh machine: this thread mounts it in a
 * mount namespace of its own, private (nothing shows or propagates
 * outside), which goes away with the thread. unshare(CLONE_NEWNS) takes
 * the calling thread alone into it. */
static void *conn_abort_private(void *arg)
{
	int *r = arg;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL) < 0)
		*r = -errno;
	else
		*r = conn_abort_at(FUSECTL_DIR);
	return NULL;
}

/* Ends our connection for every mount of it, in every namespace (what
 * fusermount3 -u or our detach cannot do): requests not yet read fail,
 * later ones get ENOTCONN, reads of /dev/fuse ENODEV, so the loop ends;
 * requests already read complete, their replies failing harmlessly.
 * (umount2(MNT_FORCE) aborts too, but only a mount still attached here.) */
static int conn_abort(void)
{
	struct statfs sf;
	pthread_t t;
	int r = -ENOENT, e;

	if (!conn_dev)
		return r;
	if (statfs(FUSECTL_DIR, &sf) == 0 && sf.f_type == FUSECTL_MAGIC)
		return conn_abort_at(FUSECTL_DIR);
	e = pthread_create(&t, NULL, conn_abort_private, &r);
	if (e)
		return -e;
	pthread_join(t, NULL);
	return r;
}

/* Waits up to S seconds for the loop thread (all its workers joined). */
static bool loop_join(int s)
{
	struct timespec ts;

	if (!loop_running)
		return true;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += s;
	if (pthread_timedjoin_np(loop_thread, NULL, &ts) != 0)
		return false;
	loop_running = false;
	return true;
}

/* Detaches our mount (MNT_DETACH: what is open in it stays usable) with
 * /dev/fuse still open, so that requests in flight get their replies.
 * With no other user the connection ends at once. */
static void session_detach(void)
{
	if (!mount_is_ours())
		return; /* unmounted from outside: what is at MNT is not ours */
	if (umount2(mnt_real, MNT_DETACH) < 0)
		log_warn("%s: detaching: %s", mnt_path, strerror(errno));
}

/* True when every request read has been answered (safe to persist as
 * clean). Copies of the mount in other mount namespaces (a CVM's root,
 * dockerd's) or files open in the detached mount keep the connection
 * alive, and the daemon cannot see their users: after a short grace the
 * connection is aborted for all of them (they get ENOTCONN), which ends
 * the loop once the requests it read are done. */
static bool session_stop(void)
{
	int r;

	if (!se)
		return true;
	__atomic_store_n(&D->stopping, true, __ATOMIC_RELEASE);
	fuse_session_exit(se);
	session_detach();
	if (!loop_join(STOP_GRACE_S)) {
		if ((r = conn_abort()) < 0)
			log_warn("%s: cannot abort the FUSE connection (fusectl): %s", mnt_path,
				 strerror(-r));
		if (!loop_join(STOP_WAIT_S - STOP_GRACE_S)) {
			log_warn("%s: still in use (%llu inodes known); usage will be recounted at next start",
				 mnt_path, (unsigned long long)__atomic_load_n(&D->nodes, __ATOMIC_RELAXED));
			return false;
		}
	}
	/* The loop also ends after a request answered once stopping, the
	 * connection maybe still alive: end it before libfuse looks at MNT. */
	if (conn_alive() && conn_abort() < 0 && !mount_is_ours())
		return true; /* closed at exit; MNT is not ours to unmount */
	fuse_session_unmount(se); /* closes /dev/fuse; unmounts only a live connection */
	fuse_session_destroy(se);
	se = D->se = NULL;
	return true;
}

/* ---- lifecycle ---- */

static void reload(void)
{
	uint64_t limit = D->acct.limit_bytes, inodes = D->acct.limit_inodes;
	int r = disk_config_reload(&D->cfg, &limit, &inodes);

	if (r < 0) {
		log_error("SIGHUP: %s: keeping limit %llu bytes, %llu inodes", D->cfg.config,
			  (unsigned long long)D->acct.limit_bytes,
			  (unsigned long long)D->acct.limit_inodes);
		return;
	}
	if (volume_on()) { /* the kernel holds the limit: the volume's size */
		D->cfg.limit = limit;
		volume_resize(limit);
		publish_kick();
		return;
	}
	__atomic_store_n(&D->acct.limit_bytes, limit, __ATOMIC_RELAXED);
	__atomic_store_n(&D->acct.limit_inodes, inodes, __ATOMIC_RELAXED);
	log_info("SIGHUP: limit %llu bytes, %llu inodes (0 = unlimited)",
		 (unsigned long long)limit, (unsigned long long)inodes);
	charge_settle(AREA_OTHER, 0, 0, 0, 0);
	publish_kick();
}

/* --rebuild with a volume: DATA is mounted only while we run, so the
 * daemon empties DATA/upper itself; the figures are then recounted. */
static int discard_upper(void)
{
	int r = volume_discard_upper(D->handle_fd, D->cfg.persist);

	if (r < 0)
		return r;
	if (unlinkat(D->data_fd, "state", 0) < 0 && errno != ENOENT)
		return log_error_errno(-errno, "%s/state", D->cfg.data);
	return 0;
}

/* With a volume the kernel refuses what does not fit, at write(2), on
 * every path: the union's own admission would refuse writes the volume
 * can take (it reserves worst cases, and cannot see the lanes), so it is
 * off; the union still charges what it writes, for the areas. */
static int volume_admission(void)
{
	int r = volume_reserve(D->data_fd, (uint64_t)D->acct.area_bytes[AREA_IMAGE]);

	if (r == 0)
		r = volume_lanes_prepare(D->data_fd);
	D->acct.limit_bytes = 0;
	D->acct.limit_inodes = 0;
	return r;
}

static int prepare(void)
{
	char dir[PATH_MAX];
	int r;

	umask(0); /* modes come from the kernel with the caller's umask applied */
	D->acct.limit_bytes = D->cfg.limit;
	D->acct.limit_inodes = D->cfg.inodes;
	if (D->cfg.stat_group && publish_group(D->cfg.stat_group) < 0) {
		fprintf(stderr, "cvmfsd disk: bad value for --stat-group: '%s': no such group\n",
			D->cfg.stat_group);
		return -EINVAL;
	}
	if (D->cfg.image_idmap && image_idmap_parse(D->cfg.image_idmap) < 0) {
		fprintf(stderr, "cvmfsd disk: bad value for --image-idmap: '%s': use UID:GID:COUNT\n",
			D->cfg.image_idmap);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%s/disk", D->cfg.run_dir);
	r = mkdir_p(dir, 0755);
	if (r < 0) {
		fprintf(stderr, "cvmfsd disk: --run-dir %s: %s\n", dir, strerror(-r));
		return r;
	}
	r = volume_configure(D->cfg.volume, D->cfg.volume_dir, D->cfg.lanes, D->cfg.volume_alloc,
			     D->cfg.data, D->cfg.name);
	if (r == 0 && volume_on())
		r = volume_start(D->cfg.data, D->cfg.limit, D->cfg.inodes_cli);
	if (r < 0 || (r = open_data()) < 0 || (r = open_images()) < 0 ||
	    (r = upper_root_adopt()) < 0)
		return r;
	if (D->cfg.discard_upper && (r = discard_upper()) < 0)
		return r;
	if ((r = load_usage()) < 0)
		return r;
	if (volume_on() && (r = volume_admission()) < 0)
		return r;
	r = state_save(false);
	return r < 0 ? log_error_errno(r, "%s/state", D->cfg.data) : 0;
}

static int disk_run(const char *mnt)
{
	int notify_fd = -1, r;
	bool clean;

	if (!D->cfg.foreground && (r = daemon_fork(&notify_fd)) < 0)
		return log_error_errno(r, "daemonize");
	log_setup("cvmfsd disk", !D->cfg.foreground, D->cfg.debug);
	daemon_block_signals();
	if ((r = ghosts_init()) < 0 || (r = nodes_init(charge_settle_writeback)) < 0)
		return log_error_errno(r, "inode table");
	handles_load();
	r = session_start(mnt);
	if (r < 0)
		return r;
	if (volume_on() && ((r = volume_lanes_fill(mnt)) < 0 ||
			    (r = volume_scanner_start(D->data_fd, &D->acct)) < 0)) {
		session_stop();
		return r;
	}
	/* The status (with a volume's lanes) exists before the pid file,
	 * which is what a launcher waits for. */
	publish_write("running");
	publish_pidfile(true);
	publish_start();
	log_info("%s: serving %s (limit %llu bytes, %u image layers)", D->cfg.name, mnt,
		 (unsigned long long)D->cfg.limit, D->nlayers - 1);
	daemon_ready(notify_fd);
	daemon_wait_stop(reload);
	log_info("%s: stopping", D->cfg.name);
	clean = session_stop();
	volume_scanner_stop();
	publish_stop();
	r = state_save(clean);
	if (r < 0)
		log_error_errno(r, "%s/state", D->cfg.data);
	publish_write("stopped");
	publish_pidfile(false);
	if (clean) {
		handles_save();
		nodes_fini();
		ghosts_fini();
	}
	return 0;
}

static void disk_close(void)
{
	for (unsigned i = 0; i < D->nlayers; i++) {
		if (D->layers[i].fd >= 0)
			close(D->layers[i].fd);
		layer_handles_close(&D->layers[i]);
		free(D->layers[i].path);
	}
	if (D->data_fd >= 0)
		close(D->data_fd);
	if (D->work_fd >= 0)
		close(D->work_fd);
	if (D->handle_fd >= 0)
		close(D->handle_fd);
	if (D->lock_fd >= 0)
		close(D->lock_fd);
}

int cvmfsd_disk_main(int argc, char **argv)
{
	static struct disk d;
	char *mnt = NULL;
	int r;

	D = &d;
	d.data_fd = d.work_fd = d.lock_fd = d.handle_fd = -1;
	for (unsigned i = 0; i <= MAX_LOWER; i++)
		d.layers[i].fd = d.layers[i].handle_mnt_fd = -1;
	d.nlayers = 1;
	pthread_rwlock_init(&d.ns_lock, NULL);
	pthread_mutex_init(&d.pub_lock, NULL);
	log_setup("cvmfsd disk", false, false);
	r = disk_config_load(&d.cfg, argc, argv, &mnt);
	if (r == 0)
		r = check_mountpoint(mnt);
	if (r == 0)
		r = prepare();
	if (r == 0)
		r = disk_run(mnt);
	disk_close();
	if (volume_on())
		volume_stop(d.cfg.data);
	disk_config_free(&d.cfg);
	return r < 0 ? 1 : 0;
}
