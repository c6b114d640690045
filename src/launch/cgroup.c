/* Step "cgroup": the CVM's cgroup cvmfs/NAME, behind a two-entry backend
 * table. v1 (and hybrid with v1 controllers): one directory per controller
 * hierarchy. v2: one directory with the controllers enabled above it.
 * The views daemon answers its per-container tree ct/NAME for exactly this
 * cgroup, so the name and the parent "cvmfs" are fixed.
 *
 * The CVM's processes live one level down, in cvmfs/NAME/ns, the root of
 * its cgroup namespace. The limits are written to both: the CVM sees its
 * own limits at the root of its hierarchies (as the JVM and dockerd read
 * them), may write there (systemd, dockerd and runc make sub-cgroups), yet
 * cannot raise what binds it, because the copy in cvmfs/NAME, invisible
 * inside, still applies hierarchically. On v2 the inner leaf is needed
 * anyway: no process may sit in a cgroup that enables controllers. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/size.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

int lcg_write(int dirfd, const char *file, const char *value)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(value) ? 0 : -EIO;
}

static int lcg_read(int dirfd, const char *file, char *buf, size_t size)
{
	ssize_t n = read_at_buf(dirfd, file, buf, size);

	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

#define LCG_INNER "ns" /* the CVM's cgroup namespace root, below cvmfs/NAME */

/* cvmfs/NAME, or with inner cvmfs/NAME/ns, relative to a hierarchy root. */
static void dir_rel(struct launch *L, bool inner, char *buf, size_t size)
{
	snprintf(buf, size, "cvmfs/%s%s", L->o.name, inner ? "/" LCG_INNER : "");
}

/* Write a file of cvmfs/NAME (or of cvmfs/NAME/ns with inner); errors name
 * controller and file. */
static int dir_set_in(struct launch *L, struct lcg_dir *d, bool inner, const char *file,
		      const char *value)
{
	char path[PATH_MAX], rel[128];
	int r;

	dir_rel(L, inner, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/%s", rel, file);
	r = lcg_write(d->parent_fd, path, value);
	if (r < 0)
		return step_error(L, r, "%s/%s = %s", d->ctl, path, value);
	return 0;
}

static bool dir_has(struct launch *L, struct lcg_dir *d, const char *file)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "cvmfs/%s/%s", L->o.name, file);
	return faccessat(d->parent_fd, path, F_OK, 0) == 0;
}

/* mkdir cvmfs (remembering whether it was ours) and cvmfs/NAME. A leftover
 * cvmfs/NAME of a crashed launcher (we hold NAME's lock) is reused if no
 * process is in it. */
static int dir_make(struct launch *L, struct lcg_dir *d)
{
	char path[128], procs[160];

	if (mkdirat(d->parent_fd, "cvmfs", 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "%s/cvmfs", d->ctl);
	snprintf(path, sizeof(path), "cvmfs/%s", L->o.name);
	if (mkdirat(d->parent_fd, path, 0755) < 0) {
		if (errno != EEXIST)
			return step_error(L, -errno, "%s/%s", d->ctl, path);
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
		char buf[64];

		if (lcg_read(d->parent_fd, procs, buf, sizeof(buf)) < 0 || buf[0])
			return step_error(L, -EBUSY, "%s/%s exists and is in use", d->ctl, path);
		snprintf(procs, sizeof(procs), "%s/" LCG_INNER "/cgroup.procs", path);
		if (lcg_read(d->parent_fd, procs, buf, sizeof(buf)) == 0 && buf[0])
			return step_error(L, -EBUSY, "%s/%s/" LCG_INNER " exists and is in use",
					  d->ctl, path);
		log_warn("cgroup: reusing empty %s/%s", d->ctl, path);
	}
	d->made = true;
	return 0;
}

/* cvmfs/NAME/ns, after the limits of cvmfs/NAME are written (a v1 cpuset
 * child copies nothing: its limits are written next). */
static int dir_make_inner(struct launch *L, struct lcg_dir *d)
{
	char path[128];

	dir_rel(L, true, path, sizeof(path));
	if (mkdirat(d->parent_fd, path, 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "%s/%s", d->ctl, path);
	return 0;
}

static int dir_open_procs(struct launch *L, struct lcg_dir *d)
{
	char path[PATH_MAX], rel[128];

	dir_rel(L, true, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/cgroup.procs", rel);
	d->procs_fd = openat(d->parent_fd, path, O_WRONLY | O_CLOEXEC);
	if (d->procs_fd < 0)
		return step_error(L, -errno, "%s/%s", d->ctl, path);
	return 0;
}

/* With --userns: cvmfs/NAME/ns (and on v2 its init leaf) and the files
 * that move processes and enable controllers belong to the CVM's root, so
 * it can delegate below itself. The limits stay root's: the CVM cannot
 * raise them. sub: "" or "/init", below cvmfs/NAME/ns. */
static int dir_delegate(struct launch *L, struct lcg_dir *d, const char *sub)
{
	static const char *const files[] = { "", "/cgroup.procs", "/tasks", "/cgroup.threads",
					     "/cgroup.subtree_control" };
	char path[PATH_MAX], rel[128];

	if (!L->o.userns)
		return 0;
	dir_rel(L, true, rel, sizeof(rel));
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s%s%s", rel, sub, files[i]);
		/* v1 has no cgroup.threads/subtree_control, v2 no tasks */
		if (fchownat(d->parent_fd, path, (uid_t)L->o.userns_uid, (gid_t)L->o.userns_gid,
			     AT_SYMLINK_NOFOLLOW) < 0 && (errno != ENOENT || !i))
			return step_error(L, -errno, "chown %s/%s to %llu:%llu", d->ctl, path,
					  (unsigned long long)L->o.userns_uid,
					  (unsigned long long)L->o.userns_gid);
	}
	return 0;
}

static struct lcg_dir *dir_add(struct launch *L, int parent_fd, const char *ctl)
{
	struct lcg_dir *d = &L->dirs[L->n_dirs++];

	*d = (struct lcg_dir){ .parent_fd = parent_fd, .procs_fd = -EBADF, .leaf_fd = -EBADF };
	snprintf(d->ctl, sizeof(d->ctl), "%s", ctl);
	return d;
}

static int quota_us(struct launch *L, uint64_t period)
{
	double q = L->cpus * (double)period;

	return q < 1000 ? 1000 : (int)llround(q);
}

/* ---- v1 ---- */

static const char *const v1_names[CG_NRES] = {
	[CG_MEMORY] = "memory", [CG_CPU] = "cpu", [CG_CPUACCT] = "cpuacct",
	[CG_CPUSET] = "cpuset", [CG_BLKIO] = "blkio", [CG_PIDS] = "pids",
};

/* cpu and cpuacct are often co-mounted: one directory serves both. */
static bool same_dir_seen(struct launch *L, int fd)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0)
		return false;
	for (int i = 0; i < L->n_dirs; i++)
		if (fstat(L->dirs[i].parent_fd, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return true;
	return false;
}

/* A new v1 cpuset starts with empty cpus and mems, and no task can join an
 * empty cpuset: fill cvmfs/ from the root where it is empty. */
static int v1_cpuset_parent(struct launch *L, struct lcg_dir *d)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	char buf[4096], path[64];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "cvmfs/%s", files[i]);
		if (lcg_read(d->parent_fd, path, buf, sizeof(buf)) == 0 && buf[0])
			continue;
		int r = lcg_read(d->parent_fd, files[i], buf, sizeof(buf));

		if (r < 0)
			return step_error(L, r, "cpuset/%s", files[i]);
		r = lcg_write(d->parent_fd, path, buf);
		if (r < 0)
			return step_error(L, r, "cpuset/%s = %s", path, buf);
	}
	return 0;
}

static int v1_limits(struct launch *L, struct lcg_dir *d, enum cg_res res, bool inner)
{
	char buf[4096];
	int r = 0;

	switch (res) {
	case CG_MEMORY:
		if (!L->o.memory)
			return 0;
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)L->o.memory);
		r = dir_set_in(L, d, inner, "memory.limit_in_bytes", buf);
		/* memsw = limit: the CVM cannot use swap at all. */
		if (r == 0 && dir_has(L, d, "memory.memsw.limit_in_bytes"))
			r = dir_set_in(L, d, inner, "memory.memsw.limit_in_bytes", buf);
		return r;
	case CG_CPU: {
		uint64_t period = 100000;

		if (!L->o.cpus)
			return 0;
		if (lcg_read(d->parent_fd, "cpu.cfs_period_us", buf, sizeof(buf)) == 0)
			uint_parse(buf, &period);
		snprintf(buf, sizeof(buf), "%d", quota_us(L, period));
		return dir_set_in(L, d, inner, "cpu.cfs_quota_us", buf);
	}
	case CG_CPUSET:
		if ((r = v1_cpuset_parent(L, d)) < 0)
			return r;
		if (lcg_read(d->parent_fd, "cvmfs/cpuset.mems", buf, sizeof(buf)) < 0 ||
		    (r = dir_set_in(L, d, inner, "cpuset.mems", buf)) < 0)
			return r < 0 ? r : step_error(L, -EIO, "cpuset/cvmfs/cpuset.mems");
		if (!L->o.cpuset &&
		    lcg_read(d->parent_fd, "cvmfs/cpuset.cpus", buf, sizeof(buf)) < 0)
			return step_error(L, -EIO, "cpuset/cvmfs/cpuset.cpus");
		return dir_set_in(L, d, inner, "cpuset.cpus", L->o.cpuset ? L->o.cpuset : buf);
	case CG_PIDS:
		if (!L->o.pids)
			return 0;
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)L->o.pids);
		return dir_set_in(L, d, inner, "pids.max", buf);
	default:
		return 0;
	}
}

/* Hierarchies with no limit of ours that the CVM still sees rooted at
 * cvmfs/NAME (its cgroup namespace): systemd's name=systemd and the
 * hybrid's unified cgroup2, where it tracks its units; devices and
 * freezer, which it delegates. Skipped where the host has none. */
static int v1_extra(struct launch *L)
{
	static const char *const names[] = { "systemd", "unified", "devices", "freezer" };
	char path[PATH_MAX];
	struct statfs sf;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", L->o.cgroup_root, names[i]);
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0)
			continue;
		if (fstatfs(fd, &sf) < 0 ||
		    (sf.f_type != CGROUP_SUPER_MAGIC && sf.f_type != CGROUP2_SUPER_MAGIC) ||
		    same_dir_seen(L, fd) || L->n_dirs >= LCG_MAX_DIRS) {
			close(fd);
			continue;
		}
		struct lcg_dir *d = dir_add(L, fd, names[i]);

		d->own_fd = true;
		/* devices_apply: the allow-list, before ns exists (devices.c) */
		if ((r = dir_make(L, d)) < 0 || (r = devices_apply(L, d)) < 0 ||
		    (r = dir_make_inner(L, d)) < 0 ||
		    (r = dir_delegate(L, d, "")) < 0 || (r = dir_open_procs(L, d)) < 0)
			return r;
	}
	return 0;
}

static int v1_create(struct launch *L)
{
	static const enum cg_res order[] = { CG_MEMORY, CG_CPU, CG_CPUACCT,
					     CG_CPUSET, CG_PIDS, CG_BLKIO };
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		enum cg_res res = order[i];
		int fd = L->layout.hier_fd[res];

		if (fd < 0 || L->layout.is_v2[res] || same_dir_seen(L, fd))
			continue;
		struct lcg_dir *d = dir_add(L, fd, v1_names[res]);

		if ((r = dir_make(L, d)) < 0 || (r = v1_limits(L, d, res, false)) < 0 ||
		    (r = dir_make_inner(L, d)) < 0 || (r = v1_limits(L, d, res, true)) < 0 ||
		    (r = dir_delegate(L, d, "")) < 0 || (r = dir_open_procs(L, d)) < 0)
			return r;
	}
	if ((r = v1_extra(L)) < 0)
		return r;
	if (L->o.memory_high)
		log_warn("--memory-high: cgroup v1 has no memory.high; only --memory applies");
	if (L->o.memory && L->layout.hier_fd[CG_MEMORY] < 0)
		return step_error(L, -EOPNOTSUPP, "--memory: no memory controller");
	return 0;
}

/* ---- v2 ---- */

static bool word_in(const char *list, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0' || p[n] == '\n'))
			return true;
	return false;
}

/* Enable in cgroup.subtree_control of dir (relative to the unified root)
 * every controller the CVM needs that dir offers. */
static int v2_enable(struct launch *L, int root, const char *dir)
{
	static const char *const ctls[] = { "memory", "cpu", "cpuset", "io", "pids" };
	char avail[512], path[PATH_MAX], want[16];
	int r;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
	if ((r = lcg_read(root, path, avail, sizeof(avail))) < 0)
		return step_error(L, r, "unified/%s", path);
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	for (size_t i = 0; i < ARRAY_SIZE(ctls); i++) {
		if (!word_in(avail, ctls[i]))
			continue;
		snprintf(want, sizeof(want), "+%s", ctls[i]);
		if ((r = lcg_write(root, path, want)) < 0)
			return step_error(L, r, "unified/%s = %s", path, want);
	}
	return 0;
}

static int v2_limits(struct launch *L, struct lcg_dir *d, bool inner)
{
	char buf[64];
	int r;

	if (L->o.memory) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)L->o.memory);
		if ((r = dir_set_in(L, d, inner, "memory.max", buf)) < 0)
			return r;
		if (dir_has(L, d, "memory.swap.max") &&
		    (r = dir_set_in(L, d, inner, "memory.swap.max", "0")) < 0)
			return r;
	}
	/* Reclaim pressure before the OOM killer of memory.max. */
	if (L->o.memory_high) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)L->o.memory_high);
		if ((r = dir_set_in(L, d, inner, "memory.high", buf)) < 0)
			return r;
	}
	if (L->o.cpus) {
		snprintf(buf, sizeof(buf), "%d 100000", quota_us(L, 100000));
		if ((r = dir_set_in(L, d, inner, "cpu.max", buf)) < 0)
			return r;
	}
	if (L->o.cpuset && (r = dir_set_in(L, d, inner, "cpuset.cpus", L->o.cpuset)) < 0)
		return r;
	if (L->o.pids) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)L->o.pids);
		if ((r = dir_set_in(L, d, inner, "pids.max", buf)) < 0)
			return r;
	}
	return 0;
}

/* cvmfs/NAME/ns/init: where the CVM's first process settles (see
 * lcg_enter_leaf); the CVM's root's with --userns. */
static int v2_leaf(struct launch *L, struct lcg_dir *d)
{
	char rel[128], path[PATH_MAX];
	int r;

	dir_rel(L, true, rel, sizeof(rel));
	snprintf(path, sizeof(path), "%s/init", rel);
	if (mkdirat(d->parent_fd, path, 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "unified/%s", path);
	if ((r = dir_delegate(L, d, "/init")) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/init/cgroup.procs", rel);
	d->leaf_fd = openat(d->parent_fd, path, O_WRONLY | O_CLOEXEC);
	if (d->leaf_fd < 0)
		return step_error(L, -errno, "unified/%s", path);
	return 0;
}

static int v2_create(struct launch *L)
{
	int root = L->layout.unified_fd;
	struct lcg_dir *d = dir_add(L, root, "unified");
	char rel[128];
	int r;

	if (mkdirat(root, "cvmfs", 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "unified/cvmfs");
	dir_rel(L, false, rel, sizeof(rel));
	if ((r = v2_enable(L, root, ".")) < 0 || (r = v2_enable(L, root, "cvmfs")) < 0 ||
	    (r = dir_make(L, d)) < 0 || (r = devices_apply(L, d)) < 0 || /* devices.c */
	    (r = v2_limits(L, d, false)) < 0 ||
	    (r = v2_enable(L, root, rel)) < 0 || (r = dir_make_inner(L, d)) < 0 ||
	    (r = v2_limits(L, d, true)) < 0 || (r = dir_delegate(L, d, "")) < 0 ||
	    (r = dir_open_procs(L, d)) < 0)
		return r;
	return v2_leaf(L, d);
}

/* ---- shared ---- */

static int join_all(struct launch *L)
{
	for (int i = 0; i < L->n_dirs; i++) {
		if (write(L->dirs[i].procs_fd, "0", 1) < 0)
			return step_error(L, -errno, "join %s/cvmfs/%s/" LCG_INNER,
					  L->dirs[i].ctl, L->o.name);
	}
	return 0;
}

int lcg_enter_leaf(struct launch *L)
{
	for (int i = 0; i < L->n_dirs; i++) {
		if (L->dirs[i].leaf_fd >= 0 && write(L->dirs[i].leaf_fd, "0", 1) < 0)
			return step_error(L, -errno, "join %s/cvmfs/%s/" LCG_INNER "/init",
					  L->dirs[i].ctl, L->o.name);
	}
	return 0;
}

static void kill_listed(int dfd, const char *procs)
{
	char *buf = NULL;
	size_t len;

	if (read_file_alloc(dfd, procs, &buf, &len) < 0)
		return;
	for (char *p = buf, *e; *p; p = e) {
		long pid = strtol(p, &e, 10);

		if (e == p)
			break;
		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	}
	free(buf);
}

/* SIGKILL every process listed in cgroup.procs (by pid, read fresh each
 * round), then rmdir; the directory is busy until they are reaped. The
 * sub-cgroups the CVM made (systemd's slices and scopes) go first, depth
 * first. */
static int rmdir_tree(int dfd, const char *path, int depth)
{
	char procs[PATH_MAX], sub[PATH_MAX];
	int fd, r;

	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && depth < 32) {
		DIR *dir = fdopendir(fd);
		struct dirent *de;

		while (dir && (de = readdir(dir)))
			if (de->d_type == DT_DIR && strcmp(de->d_name, ".") &&
			    strcmp(de->d_name, "..")) {
				snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
				if ((r = rmdir_tree(dfd, sub, depth + 1)) < 0)
					log_error_errno(r, "cleanup: rmdir %s", sub);
			}
		if (dir)
			closedir(dir);
		else
			close(fd);
	} else if (fd >= 0) {
		close(fd);
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	for (int tries = 0; tries < 1000; tries++) {
		if (unlinkat(dfd, path, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		kill_listed(dfd, procs);
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	return -EBUSY;
}

static int dir_kill_rmdir(struct launch *L, struct lcg_dir *d)
{
	char path[128];

	snprintf(path, sizeof(path), "cvmfs/%s", L->o.name);
	return rmdir_tree(d->parent_fd, path, 0);
}

static void destroy_all(struct launch *L)
{
	for (int i = L->n_dirs - 1; i >= 0; i--) {
		struct lcg_dir *d = &L->dirs[i];
		int r = 0;

		if (d->procs_fd >= 0)
			close(d->procs_fd);
		if (d->leaf_fd >= 0)
			close(d->leaf_fd);
		d->procs_fd = d->leaf_fd = -EBADF;
		if (d->made && (r = dir_kill_rmdir(L, d)) < 0)
			log_error_errno(r, "cleanup: rmdir %s/cvmfs/%s", d->ctl, L->o.name);
		/* The launchers' shared parent goes with the last CVM, whichever
		 * launcher made it (a flag of the maker's left it behind when the
		 * maker stopped first); fails harmlessly while others use it. */
		unlinkat(d->parent_fd, "cvmfs", AT_REMOVEDIR);
		if (d->own_fd)
			close(d->parent_fd);
	}
	L->n_dirs = 0;
}

const struct cg_backend cg_backend_v1 = { "v1", v1_create, join_all, destroy_all };
const struct cg_backend cg_backend_v2 = { "v2", v2_create, join_all, destroy_all };

int step_cgroup(struct launch *L)
{
	int r = cg_layout_open(L->o.cgroup_root, &L->layout);

	if (r < 0)
		return step_error(L, r, "--cgroup-root %s", L->o.cgroup_root);
	L->layout_open = true;
	/* Hybrid with v1 controllers (this machine): v1. Pure v2: v2. */
	L->cg = L->layout.hier_fd[CG_MEMORY] >= 0 && !L->layout.is_v2[CG_MEMORY]
			? &cg_backend_v1
			: &cg_backend_v2;
	if (L->cg == &cg_backend_v2 && L->layout.unified_fd < 0)
		return step_error(L, -ENOENT, "%s: no usable hierarchy", L->o.cgroup_root);
	log_debug("cgroup backend %s", L->cg->name);
	r = L->cg->create(L);
	/* No CVM without its device allow-list (devices.c). */
	if (r == 0)
		r = devices_enforced(L);
	if (r < 0)
		L->cg->destroy(L);
	return r;
}

/* ---- io limits (step "io") ---- */

/* io.max and blkio.throttle take whole disks: a partition's, from sysfs
 * (/sys/dev/block/M:m is the partition, its parent directory the disk). */
static int io_whole_disk(unsigned *maj, unsigned *min)
{
	char path[96], buf[32];
	unsigned a, b;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", *maj, *min);
	if (access(path, F_OK) < 0)
		return 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", *maj, *min);
	/* Unreadable: the partition's, and the kernel's refusal names it. */
	if (lcg_read(AT_FDCWD, path, buf, sizeof(buf)) == 0 && sscanf(buf, "%u:%u", &a, &b) == 2) {
		*maj = a;
		*min = b;
	}
	return 0;
}

/* The device the CVM's own I/O reaches: the volume's (its lanes are bound
 * in, the CVM's processes write them directly), else DATA's. Writes
 * through the FUSE disk are the disk daemon's I/O, not the CVM's. */
static int io_device(struct launch *L, unsigned *maj, unsigned *min)
{
	const char *path = L->n_lanes ? L->lanes[0].dir : L->o.data;
	struct stat st;

	if (stat(path, &st) < 0)
		return step_error(L, -errno, "--io-bps/--io-iops: %s", path);
	if (major(st.st_dev) == 0)
		return step_error(L, -EOPNOTSUPP,
				  "--io-bps/--io-iops: %s is on no block device (no volume?)", path);
	*maj = major(st.st_dev);
	*min = minor(st.st_dev);
	return io_whole_disk(maj, min);
}

static int io_v1(struct launch *L, struct lcg_dir *d, bool inner, const char *dev)
{
	static const char *const bps[] = { "blkio.throttle.read_bps_device",
					   "blkio.throttle.write_bps_device" };
	static const char *const iops[] = { "blkio.throttle.read_iops_device",
					    "blkio.throttle.write_iops_device" };
	char buf[96];
	int r;

	for (size_t i = 0; i < 2; i++) {
		snprintf(buf, sizeof(buf), "%s %llu", dev, (unsigned long long)L->o.io_bps);
		if (L->o.io_bps && (r = dir_set_in(L, d, inner, bps[i], buf)) < 0)
			return r;
		snprintf(buf, sizeof(buf), "%s %llu", dev, (unsigned long long)L->o.io_iops);
		if (L->o.io_iops && (r = dir_set_in(L, d, inner, iops[i], buf)) < 0)
			return r;
	}
	return 0;
}

static int io_v2(struct launch *L, struct lcg_dir *d, bool inner, const char *dev)
{
	char buf[160], b[64] = "", o[64] = "";

	if (L->o.io_bps)
		snprintf(b, sizeof(b), " rbps=%llu wbps=%llu", (unsigned long long)L->o.io_bps,
			 (unsigned long long)L->o.io_bps);
	if (L->o.io_iops)
		snprintf(o, sizeof(o), " riops=%llu wiops=%llu", (unsigned long long)L->o.io_iops,
			 (unsigned long long)L->o.io_iops);
	snprintf(buf, sizeof(buf), "%s%s%s", dev, b, o);
	return dir_set_in(L, d, inner, "io.max", buf);
}

int step_io(struct launch *L)
{
	char dev[32];
	unsigned maj = 0, min = 0;
	bool done = false;
	int r;

	if (!L->o.io_bps && !L->o.io_iops)
		return 0;
	if ((r = io_device(L, &maj, &min)) < 0)
		return r;
	snprintf(dev, sizeof(dev), "%u:%u", maj, min);
	for (int i = 0; i < L->n_dirs; i++) {
		struct lcg_dir *d = &L->dirs[i];
		bool v2 = L->cg == &cg_backend_v2, v1 = !v2 && !strcmp(d->ctl, "blkio");

		if (!v1 && !(v2 && dir_has(L, d, "io.max")))
			continue;
		for (int inner = 0; inner < 2; inner++)
			if ((r = (v2 ? io_v2 : io_v1)(L, d, inner, dev)) < 0)
				return r;
		done = true;
		log_debug("io limits on %s", dev);
	}
	if (!done)
		return step_error(L, -EOPNOTSUPP,
				  "--io-bps/--io-iops: no io (v2) or blkio (v1) controller");
	return 0;
}

void undo_cgroup(struct launch *L)
{
	if (L->cg)
		L->cg->destroy(L);
	if (L->layout_open)
		cg_layout_close(&L->layout);
	L->layout_open = false;
}
