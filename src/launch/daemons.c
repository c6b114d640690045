/* Steps "views", "rebuild" and "disk": the two cvmfsd daemons a CVM needs.
 * A daemon already serving (views mounted at VIEWS/ct, disk NAME with a live
 * pid file and a mounted MNT) is used as it is and left running; one we
 * start is stopped by the undo. The disk is spawned right after a views
 * daemon we start, when nothing has to happen before it (disk_start_early),
 * so that its start overlaps the views'; step disk then waits for its
 * readiness. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/disk_status.h"
#include "cvmfs/discard.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/size.h"
#include "cvmfs/view_files.h"
#include "cvmfs/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000 }, NULL);
}

/* SIGTERM, wait, then SIGKILL: a daemon that does not stop within the
 * timeout must not keep the launcher from exiting. */
static void stop_daemon(pid_t pid, bool is_child, const char *what)
{
	if (kill(pid, SIGTERM) < 0 && errno == ESRCH) {
		if (is_child)
			waitpid(pid, NULL, 0);
		return;
	}
	if (wait_exit(pid, is_child, 30) == -ETIMEDOUT) {
		log_warn("cleanup: %s (pid %d) ignored SIGTERM; killing it", what, (int)pid);
		kill(pid, SIGKILL);
		wait_exit(pid, is_child, 10);
	}
}

static void disk_start_early(struct launch *L);
static void disk_early_undo(struct launch *L);

/* ---- views ---- */

static int views_start(struct launch *L, const char *ct)
{
	char *argv[10];
	int n = 0, r;

	if ((r = mkdir_p(L->o.views, 0755)) < 0)
		return step_error(L, r, "--views %s", L->o.views);
	argv[n++] = L->o.cvmfsd;
	argv[n++] = (char *)"views";
	argv[n++] = (char *)"-f"; /* our child: we own its pid */
	argv[n++] = (char *)"--cgroup-root";
	argv[n++] = L->o.cgroup_root;
	if (L->o.config) {
		argv[n++] = (char *)"-c";
		argv[n++] = L->o.config;
	}
	argv[n++] = L->o.views;
	argv[n] = NULL;
	L->views_pid = spawn(argv, true);
	if (L->views_pid < 0)
		return step_error(L, (int)L->views_pid, "start %s views", L->o.cvmfsd);
	disk_start_early(L); /* its start overlaps the wait below */
	for (int i = 0; i < 1000; i++) {
		int status;

		if (is_mountpoint(ct))
			return 0;
		if (waitpid(L->views_pid, &status, WNOHANG) == L->views_pid) {
			L->views_pid = 0;
			return step_error(L, -ECHILD, "cvmfsd views %s exited (status %d)",
					  L->o.views, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
		sleep_ms(10);
	}
	return step_error(L, -ETIMEDOUT, "cvmfsd views %s: not mounted after 10 s",
			  L->o.views);
}

int step_views(struct launch *L)
{
	_cleanup_free_ char *ct = NULL, *mine = NULL;
	int r;

	if (asprintf(&ct, "%s/ct", L->o.views) < 0 ||
	    asprintf(&mine, "%s/ct/%s/%s", L->o.views, L->o.name, cvmfs_view_files[0].path) < 0)
		return -ENOMEM;
	if (!is_mountpoint(ct) && (r = views_start(L, ct)) < 0)
		return r;
	/* The per-container tree answers for cvmfs/NAME, made by step cgroup. */
	for (int i = 0;; i++) {
		if (access(mine, R_OK) == 0)
			return 0;
		if (i == 100)
			return step_error(L, -errno, "%s", mine);
		sleep_ms(10);
	}
}

void undo_views(struct launch *L)
{
	disk_early_undo(L);
	if (L->views_pid > 0)
		stop_daemon(L->views_pid, true, "cvmfsd views");
	L->views_pid = 0;
}

/* ---- disk ---- */

/* A daemon killed (kill -9) and not yet reaped by whoever inherited it
 * still answers kill(pid, 0): it serves nothing. */
static bool is_zombie(pid_t pid)
{
	char path[64], buf[512];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_regular_buf(AT_FDCWD, path, buf, sizeof(buf)) < 0)
		return false;
	p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static pid_t disk_running(struct launch *L)
{
	_cleanup_free_ char *pidfile = NULL;
	char buf[32];
	uint64_t pid;
	ssize_t n;

	if (!(pidfile = cvmfs_disk_file(L->o.run_dir, L->o.name, CVMFS_DISK_PID)))
		return -ENOMEM;
	n = read_regular_buf(AT_FDCWD, pidfile, buf, sizeof(buf));
	if (n == -EINVAL || n == -EISDIR)
		log_warn("%s: %s, ignored", pidfile, file_strerror((int)n));
	if (n < 0)
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	if (uint_parse(buf, &pid) < 0 || pid < 2 || pid > INT32_MAX)
		return 0;
	if ((kill((pid_t)pid, 0) < 0 && errno == ESRCH) || is_zombie((pid_t)pid))
		return 0;
	return (pid_t)pid;
}

/* The --image-idmap value this launch gives a disk it starts ("" none). */
static void disk_idmap(struct launch *L, char *buf, size_t size)
{
	buf[0] = '\0';
	if (L->o.userns)
		snprintf(buf, size, "%llu:%llu:%llu", (unsigned long long)L->o.userns_uid,
			 (unsigned long long)L->o.userns_gid, (unsigned long long)L->o.userns_count);
}

/* The volume options (volume.c decides the mode; the disk owns the
 * volume): always --volume, so a config file cannot switch it behind the
 * launcher's back; --volume-dir and --lanes when given. Returns the count. */
static int disk_volume_args(struct launch *L, char **argv)
{
	int n = 0;

	argv[n++] = (char *)"--volume";
	argv[n++] = L->o.volume;
	if (L->o.volume_dir && volume_on(L)) {
		argv[n++] = (char *)"--volume-dir";
		argv[n++] = L->o.volume_dir;
	}
	if (L->o.lanes && volume_on(L)) {
		argv[n++] = (char *)"--lanes";
		argv[n++] = L->o.lanes;
	}
	if (L->discard_upper) {
		argv[n++] = (char *)"--discard-upper";
		argv[n++] = (char *)"--persist";
		argv[n++] = L->o.persist;
	}
	return n;
}

/* cvmfsd disk in daemon mode (MNT and DATA made by the caller): the pid of
 * its first process, which exits once the mount is ready, or -errno. */
static pid_t disk_spawn(struct launch *L)
{
	char limit[32], idmap[80], *argv[32];
	int n = 0;

	snprintf(limit, sizeof(limit), "%llu", (unsigned long long)L->o.disk);
	argv[n++] = L->o.cvmfsd;
	argv[n++] = (char *)"disk";
	argv[n++] = (char *)"--name";
	argv[n++] = L->o.name;
	argv[n++] = (char *)"--data";
	argv[n++] = L->o.data;
	argv[n++] = (char *)"--limit";
	argv[n++] = limit;
	argv[n++] = (char *)"--image";
	argv[n++] = L->o.image;
	argv[n++] = (char *)"--run-dir";
	argv[n++] = L->o.run_dir;
	disk_idmap(L, idmap, sizeof(idmap));
	if (idmap[0]) { /* image files are root's inside, as they are without */
		argv[n++] = (char *)"--image-idmap";
		argv[n++] = idmap;
	}
	if (L->o.config) {
		argv[n++] = (char *)"-c";
		argv[n++] = L->o.config;
	}
	n += disk_volume_args(L, argv + n);
	argv[n++] = L->mnt;
	argv[n] = NULL;
	return spawn(argv, true);
}

/* The readiness handshake: the daemon's first process (pid, or the -errno
 * of its spawn) exits 0 once MNT is served; then its pid file and status. */
static int disk_ready(struct launch *L, pid_t pid)
{
	int status = pid < 0 ? (int)pid : wait_exit(pid, true, 600);

	if (status < 0)
		return step_error(L, status, "cvmfsd disk %s", L->o.name);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return step_error(L, -EIO, "cvmfsd disk %s failed (see above)", L->o.name);
	L->disk_pid = disk_running(L);
	if (L->disk_pid <= 0) {
		L->disk_pid = 0;
		umount2(L->mnt, MNT_DETACH);
		return step_error(L, -ESRCH, "cvmfsd disk %s: no pid in %s/disk", L->o.name,
				  L->o.run_dir);
	}
	/* What it published: its volume and the lanes to bind (volume.c). */
	return volume_status(L, L->disk_pid);
}

static int disk_start(struct launch *L)
{
	int r;

	if (L->volume_note[0]) /* why --volume was left at none (volume.c) */
		log_info("%s", L->volume_note);
	if ((r = mkdir_p(L->mnt, 0755)) < 0)
		return step_error(L, r, "%s", L->mnt);
	if ((r = mkdir_p(L->o.data, 0755)) < 0)
		return step_error(L, r, "--data %s", L->o.data);
	return disk_ready(L, disk_spawn(L));
}

/* The disk's first process when step views started it (disk_start_early). */
static pid_t disk_early;

/* The disk's start (with a volume: attach, fsck check, mount, the lanes'
 * first walk) does not need the views, and step disk would only wait for
 * it: spawned once the views daemon is, it runs while the launcher waits
 * for the views' mount, and step disk takes over its handshake. Not when
 * --rebuild must act first (on DATA, or by --discard-upper) or a disk
 * already serves NAME (step disk checks it), nor when MNT or DATA cannot
 * be made (step disk says so in one line). */
static void disk_start_early(struct launch *L)
{
	pid_t pid;

	if (L->o.rebuild || (disk_running(L) > 0 && is_mountpoint(L->mnt)) ||
	    mkdir_p(L->mnt, 0755) < 0 || mkdir_p(L->o.data, 0755) < 0)
		return;
	if (L->volume_note[0])
		log_info("%s", L->volume_note);
	pid = disk_spawn(L);
	disk_early = pid > 0 ? pid : 0;
}

/* Step views failed after disk_start_early: the disk is waited for and,
 * if it came up, stopped, as undo_disk would have. */
static void disk_early_undo(struct launch *L)
{
	int status;

	if (disk_early <= 0)
		return;
	status = wait_exit(disk_early, true, 600);
	disk_early = 0;
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return; /* it did not start (its error is above) */
	L->disk_pid = disk_running(L);
	undo_disk(L);
}

/* Do two colon-separated path lists name the same directories? ("/a/"
 * and "/a" do; so does a symlink and its target.) */
static bool same_dirs(const char *a, const char *b)
{
	while (*a && *b) {
		size_t la = strcspn(a, ":"), lb = strcspn(b, ":");
		_cleanup_free_ char *sa = strndup(a, la), *sb = strndup(b, lb);
		_cleanup_free_ char *ra = sa ? realpath(sa, NULL) : NULL;
		_cleanup_free_ char *rb = sb ? realpath(sb, NULL) : NULL;

		if (!(ra && rb ? !strcmp(ra, rb) : la == lb && !strncmp(a, b, la)))
			return false;
		a += la + (a[la] == ':');
		b += lb + (b[lb] == ':');
	}
	return !*a && !*b;
}

/* Published before the daemon reports ready; one just started by another
 * launcher may still be on its way there. */
static int disk_status_wait(struct launch *L, struct disk_status *s)
{
	int r = -ENOENT;

	for (int i = 0; i < 200 && r == -ENOENT; i++) {
		if (i)
			sleep_ms(10);
		disk_status_free(s);
		r = disk_status_load(L->o.run_dir, L->o.name, s);
	}
	return r;
}

/* The request's text in tmp, renamed to path: never seen half written. */
static int request_put(const char *tmp, const char *path, unsigned long long bytes)
{
	_cleanup_close_ int fd = -EBADF;
	char text[32];
	int n = snprintf(text, sizeof(text), "%llu\n", bytes), r;

	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, (size_t)n);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* A running disk's limit below --disk: asked of it (RUN_DIR/disk/NAME.limit,
 * put by rename, then SIGHUP); the daemon removes the request once its
 * status shows what it applied (src/disk/publish.c), which decides. */
static int disk_grow(struct launch *L, pid_t pid, uint64_t have)
{
	_cleanup_free_ char *path = cvmfs_disk_file(L->o.run_dir, L->o.name, CVMFS_DISK_LIMIT);
	_cleanup_free_ char *tmp = NULL;
	__attribute__((cleanup(disk_status_free))) struct disk_status s = { 0 };
	unsigned long long want = L->o.disk;
	int r = path && asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) >= 0 ? 0 : -ENOMEM;

	if (r == 0 && (r = request_put(tmp, path, want)) == 0 && kill(pid, SIGHUP) < 0) {
		r = -errno;
		unlink(path);
	}
	for (int i = 0; r == 0 && access(path, F_OK) == 0; i++) {
		bool gone = kill(pid, 0) < 0 && errno == ESRCH;

		if (gone || i == 6000) { /* 60 s: a volume's online grow takes a few */
			unlink(path);
			return step_error(L, gone ? -ESRCH : -ETIMEDOUT, "disk %s (pid %d) %s its "
					  "resize to %llu bytes", L->o.name, (int)pid,
					  gone ? "exited before answering" : "did not answer within 60 s",
					  want);
		}
		sleep_ms(10);
	}
	if (r < 0 || (r = disk_status_load(L->o.run_dir, L->o.name, &s)) < 0)
		return step_error(L, r, "disk %s: resize to %llu bytes", L->o.name, want);
	if (s.limit_bytes != want)
		return step_error(L, -EBUSY, "disk %s already runs (pid %d) with limit %llu bytes and "
				  "could not grow it to %llu (--disk; its log says why); stop the "
				  "CVM using it first", L->o.name, (int)pid,
				  (unsigned long long)s.limit_bytes, want);
	log_info("disk %s: limit grown from %llu to %llu bytes", L->o.name,
		 (unsigned long long)have, want);
	return 0;
}

/* A running disk serves this CVM only if it unions the same data and
 * image and shows the image with the same id shift: otherwise the CVM
 * would boot another image or a --userns CVM would find its image owned
 * by nobody. Its limit is grown to --disk; a larger one is refused (a
 * running disk does not shrink). All of it from the status the daemon
 * publishes (include/cvmfs/disk_status.h); a daemon too old to say is not
 * second-guessed. */
static int disk_check_running(struct launch *L, pid_t pid)
{
	__attribute__((cleanup(disk_status_free))) struct disk_status s = { 0 };
	char idmap[80];
	int r = disk_status_wait(L, &s);
	struct {
		const char *what, *have, *want;
		bool dirs; /* compared as directory lists, else as text */
	} checks[] = {
		{ "--data", s.data, L->o.data, true },
		{ "--image", s.image, L->o.image, true },
		{ "--image-idmap", s.image_idmap, idmap, false },
	};

	if (r < 0)
		return step_error(L, r, "disk %s: its status in %s/disk%s", L->o.name, L->o.run_dir,
				  r == -EINVAL ? ": not the status of cvmfsd disk" : "");
	disk_idmap(L, idmap, sizeof(idmap));
	for (unsigned i = 0; i < ARRAY_SIZE(checks); i++) {
		const char *have = checks[i].have, *want = checks[i].want;

		if (have && !(checks[i].dirs ? same_dirs(have, want) : !strcmp(have, want)))
			return step_error(L, -EBUSY,
					  "disk %s already runs (pid %d) with %s '%s', this launch "
					  "needs '%s'; stop the CVM using it first",
					  L->o.name, (int)pid, checks[i].what, *have ? have : "(none)",
					  *want ? want : "(none)");
	}
	if (s.limit_bytes > L->o.disk)
		return step_error(L, -EBUSY, "disk %s already runs (pid %d) with limit %llu bytes, "
				  "this launch asks %llu (--disk): a running disk does not shrink; "
				  "stop the CVM using it first", L->o.name, (int)pid,
				  (unsigned long long)s.limit_bytes, (unsigned long long)L->o.disk);
	return s.limit_bytes < L->o.disk ? disk_grow(L, pid, s.limit_bytes) : 0;
}

int step_disk(struct launch *L)
{
	pid_t pid = disk_early;

	if (pid > 0) { /* started by step views: its handshake */
		disk_early = 0;
		return disk_ready(L, pid);
	}
	pid = disk_running(L);
	if (pid > 0 && is_mountpoint(L->mnt)) {
		int r;

		log_debug("disk %s already running; using it", L->o.name);
		if ((r = disk_check_running(L, pid)) < 0)
			return r;
		return volume_status(L, pid); /* its --volume, from its status */
	}
	return disk_start(L);
}

void undo_disk(struct launch *L)
{
	if (L->disk_pid > 0) {
		stop_daemon(L->disk_pid, false, "cvmfsd disk");
		/* Its mountpoint goes with it: only if empty and unmounted (rmdir
		 * refuses anything else), so a disk still serving keeps it. */
		if (rmdir(L->mnt) < 0 && errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY)
			log_debug("cleanup: rmdir %s: %s", L->mnt, strerror(errno));
	}
	L->disk_pid = 0;
}

/* ---- rebuild ---- */

int step_rebuild(struct launch *L)
{
	_cleanup_free_ char *upper = NULL, *lock = NULL, *state = NULL;
	_cleanup_close_ int lfd = -EBADF, ufd = -EBADF;
	char failed[PATH_MAX] = "";
	int r;

	if (!L->o.rebuild)
		return 0;
	if (disk_running(L) > 0)
		return step_error(L, -EBUSY, "disk %s is running; stop it first", L->o.name);
	/* With a volume, DATA/upper is on it and mounted only while the disk
	 * runs: the disk empties it (--discard-upper) before serving. */
	if (volume_on(L)) {
		L->discard_upper = true;
		return 0;
	}
	if (asprintf(&upper, "%s/upper", L->o.data) < 0 ||
	    asprintf(&lock, "%s/lock", L->o.data) < 0 ||
	    asprintf(&state, "%s/state", L->o.data) < 0)
		return -ENOMEM;
	/* The disk daemon holds DATA/lock while it runs. */
	lfd = open(lock, O_RDWR | O_CLOEXEC);
	if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0)
		return step_error(L, -EBUSY, "%s is in use", lock);
	ufd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ufd < 0)
		return errno == ENOENT ? 0 : step_error(L, -errno, "%s", upper);
	r = upper_discard(ufd, "", L->o.persist, failed, sizeof(failed));
	if (r < 0)
		return step_error(L, r, "remove %s/upper/%s", L->o.data, failed);
	/* Without DATA/state the disk recounts at start (src/disk: only a
	 * state saying "clean 1" with the same image list is trusted). */
	if (unlink(state) < 0 && errno != ENOENT)
		return step_error(L, -errno, "%s", state);
	return 0;
}
