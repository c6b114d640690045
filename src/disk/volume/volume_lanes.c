/* The lanes: directories of the volume that the launcher binds at their
 * paths inside the CVM (/home, /var/lib/docker), with no FUSE on their
 * path; their first filling; the scanner that keeps their areas; and
 * --discard-upper.
 *
 * The scanner. Writes to a lane never reach the daemon, so its bytes are
 * counted by walking it: every distinct inode's st_blocks * 512 (hard
 * links once), the rule the union uses. A walk costs about a microsecond
 * per object, so it runs only when the volume's used bytes moved by an
 * amount the union did not charge (used - union's settled bytes - lanes'
 * last scans changed: that can only be the lanes), checked every second
 * (every 5 s while the union itself is writing: its bytes land before it
 * settles them), plus once every 30 s in any case. Between walks at least max(1 s,
 * 4 x the last walk) pass, so the scanner takes at most a fifth of a CPU.
 * The bound: once writes stop, each lane's figure is exact after at most
 * that interval plus one walk; until then the lanes' new bytes show in
 * OTHER (the areas always add up to used, which is exact). */
#include "disk.h"
#include "volume/volume.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/discard.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char *lane_name(const struct vol_lane *l)
{
	return strrchr(l->dir, '/') + 1;
}

int volume_lanes_prepare(int data_fd)
{
	_cleanup_close_ int lfd = -EBADF;

	if ((mkdirat(data_fd, "lanes", 0755) < 0 && errno != EEXIST) ||
	    (lfd = openat(data_fd, "lanes", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return log_error_errno(-errno, "%s/lanes", disk_ctx->cfg.data);
	for (unsigned i = 0; i < disk_vol.nlanes; i++) {
		char mark[300];

		snprintf(mark, sizeof(mark), ".%s.filling", lane_name(&disk_vol.lanes[i]));
		if (mkdirat(lfd, lane_name(&disk_vol.lanes[i]), 0755) == 0) {
			/* new: filled from the image once the union is up */
			int fd = openat(lfd, mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

			if (fd < 0)
				return log_error_errno(-errno, "%s/lanes/%s", disk_ctx->cfg.data, mark);
			close(fd);
		} else if (errno != EEXIST) {
			return log_error_errno(-errno, "%s", disk_vol.lanes[i].dir);
		}
	}
	return 0;
}

static int run_wait(char *const argv[])
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		umask(022); /* the daemon runs with 0: modes come from its callers */
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The lane root takes the owner and mode the union shows at its path
 * (the image's, shifted by --image-idmap); the union gets the path as a
 * directory, the launcher's mountpoint. */
static int lane_fill(const struct vol_lane *l, const char *mnt)
{
	char src[PATH_MAX], from[PATH_MAX + 2];
	struct stat st;
	int r;

	snprintf(src, sizeof(src), "%s%s", mnt, l->path);
	if (lstat(src, &st) < 0 || !S_ISDIR(st.st_mode)) {
		char *mk[] = { "mkdir", "-p", src, NULL };

		if (lstat(src, &st) == 0) {
			log_warn("lane %s: not a directory in the image: the lane starts empty", l->path);
			return 0;
		}
		r = run_wait(mk);
		if (r != 0 || lstat(src, &st) < 0)
			return log_error_errno(-EIO, "lane %s: making its mountpoint in the union",
					       l->path);
		if (disk_ctx->idmap_count) {
			st.st_uid = disk_ctx->idmap_uid;
			st.st_gid = disk_ctx->idmap_gid;
		}
	} else {
		char *cp[] = { "cp", "-a", "--", from, l->dir, NULL };

		snprintf(from, sizeof(from), "%s/.", src);
		r = run_wait(cp);
		if (r != 0)
			return log_error_errno(-EIO, "lane %s: copying %s into %s (cp %d)", l->path,
					       src, l->dir, r);
	}
	if (chown(l->dir, st.st_uid, st.st_gid) < 0 || chmod(l->dir, st.st_mode & 07777) < 0)
		return log_error_errno(-errno, "lane %s: %s", l->path, l->dir);
	return 0;
}

int volume_lanes_fill(const char *mnt)
{
	for (unsigned i = 0; i < disk_vol.nlanes; i++) {
		char mark[PATH_MAX];
		int r;

		snprintf(mark, sizeof(mark), "%s/lanes/.%s.filling", disk_ctx->cfg.data,
			 lane_name(&disk_vol.lanes[i]));
		if (access(mark, F_OK) < 0)
			continue;
		r = lane_fill(&disk_vol.lanes[i], mnt);
		if (r < 0)
			return r;
		unlink(mark);
		log_info("lane %s: made at %s from the image", disk_vol.lanes[i].path, disk_vol.lanes[i].dir);
	}
	return 0;
}

/* ---- scanner ---- */

struct linked {
	uint64_t ino;
	int64_t bytes;
};

static __thread struct {
	int64_t bytes;
	struct linked *links;
	size_t n, cap;
} walk;

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	(void)ftw;
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		if (walk.n == walk.cap) {
			size_t cap = walk.cap ? walk.cap * 2 : 256;
			struct linked *l = realloc(walk.links, cap * sizeof(*l));

			if (!l)
				return 1;
			walk.links = l;
			walk.cap = cap;
		}
		walk.links[walk.n++] = (struct linked){ (uint64_t)st->st_ino, (int64_t)st->st_blocks * 512 };
		return 0;
	}
	walk.bytes += (int64_t)st->st_blocks * 512;
	return 0;
}

static int by_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct linked *)a)->ino, y = ((const struct linked *)b)->ino;

	return x < y ? -1 : x > y;
}

/* Allocated bytes of the distinct inodes under dir, or -errno. */
static int64_t lane_count(const char *dir)
{
	int64_t total;

	walk.bytes = 0;
	walk.n = 0;
	if (nftw(dir, walk_one, 32, FTW_PHYS | FTW_MOUNT) != 0)
		return errno ? -errno : -ENOMEM;
	if (walk.n)
		qsort(walk.links, walk.n, sizeof(*walk.links), by_ino);
	total = walk.bytes;
	for (size_t i = 0; i < walk.n; i++)
		if (!i || walk.links[i].ino != walk.links[i - 1].ino)
			total += walk.links[i].bytes;
	return total;
}

static pthread_t scan_thread;
static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scan_cond;
static bool scan_stop, scan_running;
static const struct acct *scan_acct;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Bytes on the volume that neither the union nor the last walks account for. */
/* unaccounted() as the last walk left it, for volume_lanes_settled(). */
static int64_t scan_seen_pub = INT64_MIN;

static int64_t unaccounted(void)
{
	struct statvfs sv;
	int64_t r;

	if (volume_statfs(&sv) < 0)
		return 0;
	r = (int64_t)((sv.f_blocks - sv.f_bfree) * sv.f_frsize) -
	    __atomic_load_n(&scan_acct->used_bytes, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < disk_vol.nlanes; i++)
		r -= __atomic_load_n(&disk_vol.lanes[i].bytes, __ATOMIC_RELAXED);
	return r;
}

static void scan_lanes(void)
{
	for (unsigned i = 0; i < disk_vol.nlanes; i++) {
		int64_t b = lane_count(disk_vol.lanes[i].dir);

		if (b >= 0)
			__atomic_store_n(&disk_vol.lanes[i].bytes, b, __ATOMIC_RELAXED);
		else
			log_warn("lane %s: counting %s: %s", disk_vol.lanes[i].path, disk_vol.lanes[i].dir,
				 strerror((int)-b));
	}
}

/* Deleted blocks go back to the host's file: FITRIM makes the loop device
 * punch holes in it (at most every 30 s, after used went down). */
static void trim(void)
{
	struct fstrim_range range = { .start = 0, .len = UINT64_MAX, .minlen = 0 };

	if (disk_vol.kind == VOLUME_LOOP && !disk_vol.alloc_full && ioctl(disk_ctx->data_fd, FITRIM, &range) < 0)
		log_debug("FITRIM %s: %s", disk_ctx->cfg.data, strerror(errno));
}

static bool scan_wait(double seconds)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)seconds;
	ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&scan_lock);
	while (!scan_stop && pthread_cond_timedwait(&scan_cond, &scan_lock, &ts) == 0)
		;
	stop = scan_stop;
	pthread_mutex_unlock(&scan_lock);
	return !stop;
}

static void *scan_loop(void *arg)
{
	double last = 0, took = 0, trimmed = now_s();
	int64_t seen = 0, union_seen = 0;
	uint64_t used_at_trim = UINT64_MAX;

	(void)arg;
	do {
		int64_t u = unaccounted(), un = __atomic_load_n(&scan_acct->used_bytes,
								   __ATOMIC_RELAXED);
		double t = now_s();
		struct statvfs sv;
		/* While the union writes, its bytes land before they are
		 * settled, so u moves without any lane having changed: walk
		 * then at most every 5 s. */
		bool busy = un != union_seen;

		union_seen = un;
		if ((u != seen && (!busy || t - last >= 5)) || t - last >= 30) {
			scan_lanes();
			last = now_s();
			took = last - t;
			seen = unaccounted();
			__atomic_store_n(&scan_seen_pub, seen, __ATOMIC_RELAXED);
			publish_kick();
		}
		if (volume_statfs(&sv) == 0) {
			uint64_t used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;

			if (used < used_at_trim && t - trimmed >= 30) {
				trim();
				trimmed = t;
			}
			used_at_trim = used;
		}
	} while (scan_wait(took * 4 > 1 ? took * 4 : 1));
	free(walk.links);
	return NULL;
}

int volume_scanner_start(int data_fd, const struct acct *a)
{
	pthread_condattr_t ca;
	int r;

	(void)data_fd;
	scan_acct = a;
	scan_lanes(); /* the first figures are exact */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&scan_cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&scan_thread, NULL, scan_loop, NULL);
	if (r)
		return -r;
	scan_running = true;
	return 0;
}

void volume_scanner_stop(void)
{
	if (!scan_running)
		return;
	pthread_mutex_lock(&scan_lock);
	scan_stop = true;
	pthread_cond_signal(&scan_cond);
	pthread_mutex_unlock(&scan_lock);
	pthread_join(scan_thread, NULL);
	scan_running = false;
	free(walk.links); /* the main thread's, from the first scan */
	walk.links = NULL;
	walk.n = walk.cap = 0;
}

/* True when nothing has changed on the volume outside the union since the
 * last walk: HOME and DOCKER are then exact (published, so that a reader
 * knows when the scanner's bound has passed). */
bool volume_lanes_settled(void)
{
	return __atomic_load_n(&scan_seen_pub, __ATOMIC_RELAXED) == unaccounted();
}

/* ---- --discard-upper ---- */

/* The persist paths and the lanes' (whose data is in DATA/lanes anyway). */
static char *kept_paths(const char *persist)
{
	char *list = strdup(persist ? persist : ""), *more;

	for (unsigned i = 0; list && i < disk_vol.nlanes; i++) {
		more = NULL;
		if (asprintf(&more, "%s:%s", list, disk_vol.lanes[i].path) < 0)
			more = NULL;
		free(list);
		list = more;
	}
	return list;
}

int volume_discard_upper(int upper_fd, const char *persist)
{
	_cleanup_free_ char *keep = kept_paths(persist);
	char failed[PATH_MAX] = "";
	int r;

	if (!keep)
		return -ENOMEM;
	r = upper_discard(upper_fd, "", keep, failed, sizeof(failed));
	if (r < 0)
		return log_error_errno(r, "--discard-upper: %s/upper/%s", disk_ctx->cfg.data, failed);

	if (r == 0)
		log_info("--discard-upper: %s/upper emptied but for the lanes and %s", disk_ctx->cfg.data,
			 persist ? persist : "nothing else");
	return r;
}
