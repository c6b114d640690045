/* The workspace volume, the launcher's side. The volume itself (the loop
 * device or block device, its ext4, DATA mounted on it, the lane
 * directories) is cvmfsd disk's: the launcher picks the mode (--volume,
 * default loop where /dev/loop-control works), passes it to the daemon,
 * and once the disk serves reads what the daemon published in
 * RUN_DIR/disk/NAME.json (never its command line): the volume it runs
 * with and the lanes, which the inner child binds at their paths before
 * pivot_root, so /home and /var/lib/docker reach the kernel's ext4 with no
 * FUSE on their path. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/disk_status.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MAX (64 * 1024)

bool volume_on(const struct launch *L)
{
	return L->o.volume && strcmp(L->o.volume, "none") != 0;
}

/* Loop devices are usable when the control node opens and hands out a
 * free device (a container without them has no node, or gets EPERM). */
static int loop_usable(void)
{
	_cleanup_close_ int fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return ioctl(fd, LOOP_CTL_GET_FREE) < 0 ? -errno : 0;
}

/* A workspace made without a volume keeps its files in DATA itself (a
 * volume's DATA is an empty mountpoint while its disk is stopped); the
 * disk does not move them onto a volume, so such a workspace stays on
 * --volume none unless asked otherwise. */
static bool data_without_volume(struct launch *L)
{
	_cleanup_closedir_ DIR *d = opendir(L->o.data);
	struct dirent *de;

	if (!d || is_mountpoint(L->o.data))
		return false;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return true;
	return false;
}

int volume_default(struct launch *L)
{
	const char *mode = "loop";
	int r;

	if (L->o.volume)
		return 0;
	if (data_without_volume(L)) {
		snprintf(L->volume_note, sizeof(L->volume_note),
			 "workspace %s: %s holds its files (made without a volume): --volume none",
			 L->o.name, L->o.data);
		mode = "none";
	} else if ((r = loop_usable()) < 0) {
		snprintf(L->volume_note, sizeof(L->volume_note),
			 "/dev/loop-control: %s: no loop volume, --volume none (the limit is kept "
			 "by the disk daemon alone)", strerror(-r));
		mode = "none";
	}
	L->o.volume = strdup(mode);
	return L->o.volume ? 0 : -ENOMEM;
}

/* An absolute path without empty, "." or ".." components. */
static bool clean_abs_path(const char *p, size_t len)
{
	if (len < 2 || p[0] != '/')
		return false;
	for (size_t i = 1; i <= len; i++) {
		size_t start = i;

		while (i < len && p[i] != '/')
			i++;
		size_t n = i - start;

		if (n == 0 || (n == 1 && p[start] == '.') ||
		    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
			return false;
	}
	return true;
}

static int validate_lanes(struct launch *L)
{
	for (const char *p = L->o.lanes; *p;) {
		size_t n = strcspn(p, ":");

		if (!clean_abs_path(p, n))
			return step_error(L, -EINVAL, "--lanes '%s': '%.*s' is not an absolute "
					  "path below / (no '.', '..' or empty parts)",
					  L->o.lanes, (int)n, p);
		p += n + (p[n] == ':');
	}
	return 0;
}

int volume_validate(struct launch *L)
{
	const char *v = L->o.volume;

	if (strcmp(v, "loop") && strcmp(v, "none") &&
	    (strncmp(v, "block:", 6) || v[6] != '/'))
		return step_error(L, -EINVAL, "--volume '%s': loop, none or block:/dev/PATH", v);
	if (L->o.volume_dir && L->o.volume_dir[0] != '/')
		return step_error(L, -EINVAL, "--volume-dir '%s': not an absolute path",
				  L->o.volume_dir);
	if (L->o.lanes && !*L->o.lanes)
		return step_error(L, -EINVAL, "--lanes: empty (leave it out for the default)");
	return L->o.lanes ? validate_lanes(L) : 0;
}

/* ---- the volume this launch asks for ---- */

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return !strcmp(a, b);
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Does the published volume ("none", "loop:FILE", "block:DEV") serve
 * this launch's --volume (and --volume-dir, when given)? */
static bool volume_matches(struct launch *L, const char *have)
{
	const char *want = L->o.volume;

	if (!strcmp(want, "none"))
		return !strcmp(have, "none");
	if (!strncmp(want, "block:", 6))
		return !strncmp(have, "block:", 6) && same_file(have + 6, want + 6);
	if (strncmp(have, "loop:", 5))
		return false;
	if (!L->o.volume_dir)
		return true;
	_cleanup_free_ char *file = NULL;

	if (asprintf(&file, "%s/%s.img", L->o.volume_dir, L->o.name) < 0)
		return false;
	return same_file(have + 5, file);
}

/* A lane's dir must be a directory of the volume the daemon mounted. */
static int check_lane(struct launch *L, const struct disk_status_lane *ln, const char *mnt)
{
	size_t n = mnt ? strlen(mnt) : 0;

	if (!clean_abs_path(ln->path, strlen(ln->path)))
		return step_error(L, -EINVAL, "disk %s publishes lane path '%s': not a clean "
				  "absolute path", L->o.name, ln->path);
	if (!n || strncmp(ln->dir, mnt, n) || ln->dir[n] != '/' ||
	    !clean_abs_path(ln->dir, strlen(ln->dir)))
		return step_error(L, -EINVAL, "disk %s publishes lane dir '%s' for %s: not "
				  "below its volume '%s'", L->o.name, ln->dir, ln->path,
				  mnt ? mnt : "(none)");
	return 0;
}

/* --lanes given: the disk's lanes must be those paths, in that order. */
static bool lanes_as_asked(struct launch *L, const struct disk_status *s)
{
	const char *p = L->o.lanes;

	for (size_t i = 0; i < s->n_lanes; i++) {
		size_t n = strcspn(p, ":");

		if (strlen(s->lanes[i].path) != n || strncmp(s->lanes[i].path, p, n))
			return false;
		p += n + (p[n] == ':');
	}
	return !*p;
}

static int take_lanes(struct launch *L, struct disk_status *s, pid_t pid)
{
	int r;

	for (size_t i = 0; i < s->n_lanes; i++)
		if ((r = check_lane(L, &s->lanes[i], s->volume_mnt)) < 0)
			return r;
	if (L->o.lanes && !lanes_as_asked(L, s))
		return step_error(L, -EBUSY, "disk %s already runs (pid %d) with other lanes "
				  "than --lanes '%s'; stop the CVM using it first",
				  L->o.name, (int)pid, L->o.lanes);
	L->lanes = calloc(s->n_lanes ? s->n_lanes : 1, sizeof(*L->lanes));
	if (!L->lanes)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_lanes; i++) { /* moved: s keeps none */
		L->lanes[i] = (struct lane){ s->lanes[i].path, s->lanes[i].dir };
		s->lanes[i] = (struct disk_status_lane){ NULL, NULL };
	}
	L->n_lanes = s->n_lanes;
	return 0;
}

int volume_status(struct launch *L, pid_t pid)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	struct disk_status s;
	const char *have;
	size_t len;
	int r;

	if (!(path = cvmfs_disk_file(L->o.run_dir, L->o.name, CVMFS_DISK_STATUS)))
		return -ENOMEM;
	/* Published before the daemon reports ready; a daemon that was just
	 * started by another launcher may still be on its way there. */
	for (int i = 0; i < 200; i++) {
		r = read_regular_alloc(AT_FDCWD, path, STATUS_MAX, &text, &len);
		if (r != -ENOENT || !volume_on(L))
			break;
		nanosleep(&(struct timespec){ 0, 10 * 1000000 }, NULL);
	}
	if (r == -ENOENT && !volume_on(L))
		return 0; /* not published yet: a daemon without a volume */
	if (r < 0) {
		log_error("%s: disk %s: %s: %s", L->step, L->o.name, path, file_strerror(r));
		return r;
	}
	r = disk_status_parse(text, &s);
	if (r < 0) {
		disk_status_free(&s);
		return step_error(L, r, "disk %s: %s: not the status of cvmfsd disk", L->o.name,
				  path);
	}
	have = s.volume ? s.volume : "none"; /* a daemon without volumes */
	if (!volume_matches(L, have))
		r = step_error(L, -EBUSY, "disk %s already runs (pid %d) with --volume '%s', "
			       "this launch needs '%s'; stop the CVM using it first",
			       L->o.name, (int)pid, have, L->o.volume);
	else if (volume_on(L))
		r = take_lanes(L, &s, pid);
	disk_status_free(&s);
	return r;
}

void lanes_free(struct launch *L)
{
	for (size_t i = 0; i < L->n_lanes; i++) {
		free(L->lanes[i].path);
		free(L->lanes[i].dir);
	}
	free(L->lanes);
	L->lanes = NULL;
	L->n_lanes = 0;
}

/* ---- the lanes' places in the CVM ---- */

/* path resolved inside the CVM's root (symlinks the CVM made stay in it,
 * never reaching the host's tree while we are still in it). */
static int open_in_root(int root, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));

	return fd < 0 ? -errno : fd;
}

/* mkdir -p of a lane's path in the union, as host root (the CVM's root in
 * a user namespace has no say over the image's root-owned dirs); what is
 * made belongs to the CVM's root, as the image's dirs appear to it. */
static int lane_mkdir(struct launch *L, int root, const char *path)
{
	_cleanup_close_ int parent = fcntl(root, F_DUPFD_CLOEXEC, 3);
	char prefix[PATH_MAX];

	for (const char *c = path + 1; parent >= 0;) {
		const char *e = strchrnul(c, '/');
		_cleanup_free_ char *name = strndup(c, (size_t)(e - c));
		int fd;

		snprintf(prefix, sizeof(prefix), "%.*s", (int)(e - path), path);
		fd = open_in_root(root, prefix);
		if (fd == -ENOENT && name) {
			if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
				return step_error(L, -errno, "lane %s: mkdir %s%s", path, L->mnt,
						  prefix);
			if (L->o.userns && fchownat(parent, name, (uid_t)L->o.userns_uid,
						    (gid_t)L->o.userns_gid, AT_SYMLINK_NOFOLLOW) < 0)
				return step_error(L, -errno, "lane %s: chown %s%s", path, L->mnt,
						  prefix);
			fd = open_in_root(root, prefix);
		}
		if (fd < 0)
			return step_error(L, fd, "lane %s: %s%s", path, L->mnt, prefix);
		close(parent);
		parent = fd;
		if (!*e)
			return 0;
		c = e + 1;
	}
	return step_error(L, -errno, "lane %s: %s", path, L->mnt);
}

int lanes_prepare(struct launch *L)
{
	_cleanup_close_ int root = -EBADF;
	int r;

	if (!L->n_lanes)
		return 0;
	root = open(L->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return step_error(L, -errno, "%s", L->mnt);
	for (size_t i = 0; i < L->n_lanes; i++)
		if ((r = lane_mkdir(L, root, L->lanes[i].path)) < 0)
			return r;
	return 0;
}

/* Runs in the inner child, on its own bind of MNT, before pivot_root: a
 * copy of each lane's directory (on the volume's ext4, from the host's
 * tree) is attached at its path. */
int lanes_bind(struct launch *L)
{
	_cleanup_close_ int root = -EBADF;

	if (!L->n_lanes)
		return 0;
	root = open(L->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return step_error(L, -errno, "%s", L->mnt);
	for (size_t i = 0; i < L->n_lanes; i++) {
		const struct lane *ln = &L->lanes[i];
		_cleanup_close_ int src = -EBADF, dst = -EBADF;

		src = open_tree(AT_FDCWD, ln->dir,
				OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
		if (src < 0)
			return step_error(L, -errno, "lane %s: %s", ln->path, ln->dir);
		dst = open_in_root(root, ln->path);
		if (dst < 0)
			return step_error(L, dst, "lane %s: %s%s", ln->path, L->mnt, ln->path);
		if (move_mount(src, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH |
						  MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return step_error(L, -errno, "bind lane %s on %s%s", ln->dir, L->mnt,
					  ln->path);
	}
	return 0;
}
