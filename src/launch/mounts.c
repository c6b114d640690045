/* The inner child's file system: everything is mounted under the disk
 * mount MNT while the host paths (the views, /dev) are still reachable, then
 * pivot_root makes MNT the root. Runs in the inner child (see child.c). */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/view_files.h"

#include <dirent.h>
#include <linux/magic.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
/* Given when the host has them: FUSE mounts are what a user-namespaced CVM
 * may make (fuse-overlayfs for its dockerd, sshfs); the kernel confines
 * them to the CVM's mount namespace. */
static const char *const dev_optional[] = { "fuse", "net/tun" };
static const char *const dev_links[][2] = {
	{ "ptmx", "pts/ptmx" },	      { "fd", "/proc/self/fd" },
	{ "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
	{ "stderr", "/proc/self/fd/2" },
};

struct fs_mount {
	const char *target; /* under MNT */
	const char *type;
	unsigned long flags;
	const char *data;
};

/* In order: /dev before its submounts. */
static const struct fs_mount fs_mounts[] = {
	{ "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k" },
	{ "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620" },
	{ "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755" },
	{ "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
};

static void under(struct launch *L, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s%s", L->mnt, rel);
}

/* A missing mountpoint in the image is created (in the upper layer). */
static int ensure_dir(struct launch *L, const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "mkdir %s", path);
	return 0;
}

static int ensure_file(struct launch *L, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd < 0)
		return step_error(L, -errno, "create %s", path);
	close(fd);
	return 0;
}

static int bind(struct launch *L, const char *src, const char *dst, bool ro)
{
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return step_error(L, -errno, "bind %s on %s", src, dst);
	if (ro && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
				    MS_NODEV | MS_NOEXEC, NULL) < 0)
		return step_error(L, -errno, "remount %s read-only", dst);
	return 0;
}

/* A sysfs mount in a user namespace needs a network namespace owned by it:
 * with --net host the CVM gets the host's /sys, bound read-only with all
 * its submounts (nothing in it is writable to an unmapped owner anyway). */
static bool sys_from_host(struct launch *L, const struct fs_mount *m)
{
	return L->o.userns && !strcmp(m->type, "sysfs") && !strcmp(L->o.net, "host");
}

static int bind_host_sys(struct launch *L, const char *path)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					       MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC };

	if (mount("/sys", path, NULL, MS_BIND | MS_REC, NULL) < 0)
		return step_error(L, -errno, "bind /sys on %s", path);
	if (mount_setattr(AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return step_error(L, -errno, "make %s read-only", path);
	return 0;
}

/* Entries of /proc/sys the kernel keeps per namespace, that stay writable
 * inside the read-only /proc/sys: the CVM's own UTS and IPC namespaces
 * always; its network namespace unless --net host (dockerd turns on
 * ip_forward there); its user namespace's limits with --userns. The
 * knobs that are the host's are read-only, some of them emulated per CVM
 * by the views (bind_sysctls); doc/cvmfsd-views.md has the list. */
static const struct ns_sysctl {
	const char *path;
	enum { NS_ALWAYS, NS_OWN_NET, NS_USERNS } when;
} ns_sysctls[] = {
	{ "net", NS_OWN_NET }, { "user", NS_USERNS },
	{ "kernel/hostname", NS_ALWAYS }, { "kernel/domainname", NS_ALWAYS },
	{ "kernel/msgmax", NS_ALWAYS }, { "kernel/msgmnb", NS_ALWAYS },
	{ "kernel/msgmni", NS_ALWAYS }, { "kernel/sem", NS_ALWAYS },
	{ "kernel/shmall", NS_ALWAYS }, { "kernel/shmmax", NS_ALWAYS },
	{ "kernel/shmmni", NS_ALWAYS }, { "kernel/shm_rmid_forced", NS_ALWAYS },
	{ "fs/mqueue", NS_ALWAYS },
};

static int carve_ns_sysctls(struct launch *L, const char *proc)
{
	char path[PATH_MAX + 64];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(ns_sysctls); i++) {
		const struct ns_sysctl *n = &ns_sysctls[i];

		if ((n->when == NS_OWN_NET && !strcmp(L->o.net, "host")) ||
		    (n->when == NS_USERNS && !L->o.userns))
			continue;
		snprintf(path, sizeof(path), "%s/sys/%s", proc, n->path);
		if (access(path, F_OK) < 0)
			continue;
		if ((r = bind(L, path, path, false)) < 0)
			return r;
	}
	return 0;
}

/* /proc's kernel knobs read-only, as container runtimes make them: a
 * sysctl written inside must not change the host. Bound on themselves
 * first, the namespaced entries stay writable below the read-only
 * /proc/sys (a remount changes one mount, not its submounts). With --net
 * host dockerd's ip_forward write fails with EROFS and it says so. */
static int protect_proc(struct launch *L, const char *proc)
{
	static const char *const ro[] = { "sys", "sysrq-trigger", "irq", "bus", "fs" };
	char path[PATH_MAX + 32];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(ro); i++) {
		snprintf(path, sizeof(path), "%s/%s", proc, ro[i]);
		if (access(path, F_OK) < 0)
			continue;
		if (!strcmp(ro[i], "sys") && (r = carve_ns_sysctls(L, proc)) < 0)
			return r;
		if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
			return step_error(L, -errno, "bind %s on itself", path);
		if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
					    MS_NODEV | MS_NOEXEC, NULL) < 0)
			return step_error(L, -errno, "remount %s read-only", path);
	}
	return 0;
}

static int mount_fs(struct launch *L)
{
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(fs_mounts); i++) {
		const struct fs_mount *m = &fs_mounts[i];

		under(L, path, sizeof(path), m->target);
		if ((r = ensure_dir(L, path)) < 0)
			return r;
		if (sys_from_host(L, m)) {
			if ((r = bind_host_sys(L, path)) < 0)
				return r;
			continue;
		}
		if (mount(m->type, path, m->type, m->flags, m->data) < 0)
			return step_error(L, -errno, "mount %s on %s", m->type, path);
		if (!strcmp(m->type, "proc") && (r = protect_proc(L, path)) < 0)
			return r;
	}
	return 0;
}

/* Where --userns keeps its copies of the optional nodes: DATA/dev, or,
 * when DATA is a nodev mount (the workspace volume is mounted nodev, like
 * its lanes), MNT_DIR/.dev/NAME, on the host's file system and out of
 * every CVM's sight ('.dev' is no workspace name). */
static void nodes_dir(struct launch *L, char *buf, size_t size)
{
	struct statvfs sv;

	if (statvfs(L->o.data, &sv) == 0 && (sv.f_flag & ST_NODEV))
		snprintf(buf, size, "%s/.dev/%s", L->o.mnt_dir, L->o.name);
	else
		snprintf(buf, size, "%s/dev", L->o.data);
}

/* Where the CVM's optional node NAME is bound from: the host's /dev, or
 * with --userns nodes_dir, where mounts_prepare made a copy owned by the
 * mapped root (the host's is root's, 0600 on some hosts: unusable to an
 * unmapped owner, even with CAP_DAC_OVERRIDE in the namespace). */
static void optional_source(struct launch *L, const char *name, char *buf, size_t size)
{
	char flat[32], dir[PATH_MAX];

	snprintf(flat, sizeof(flat), "%s", name);
	for (char *c = flat; *c; c++)
		if (*c == '/')
			*c = '-';
	nodes_dir(L, dir, sizeof(dir));
	if (L->o.userns)
		snprintf(buf, size, "%.*s/%s", PATH_MAX - 40, dir, flat);
	else
		snprintf(buf, size, "/dev/%s", name);
}

/* --userns: nodes_dir/NODE, same device as the host's, owned by the
 * mapped root. On a nodev mount they would be useless: skipped, said once. */
static int prepare_userns_nodes(struct launch *L)
{
	char dir[PATH_MAX], path[PATH_MAX], host[64];
	struct statvfs sv;
	struct stat st;
	int r;

	nodes_dir(L, dir, sizeof(dir));
	if ((r = mkdir_p(dir, 0755)) < 0)
		return step_error(L, r, "mkdir %s", dir);
	if (statvfs(dir, &sv) < 0)
		return step_error(L, -errno, "statvfs %s", dir);
	if (sv.f_flag & ST_NODEV) {
		log_warn("%s is on a nodev mount: no /dev/fuse or /dev/net/tun in the CVM", dir);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dev_optional); i++) {
		snprintf(host, sizeof(host), "/dev/%s", dev_optional[i]);
		optional_source(L, dev_optional[i], path, sizeof(path));
		if (stat(host, &st) < 0 || !S_ISCHR(st.st_mode))
			continue;
		unlink(path);
		if (mknod(path, S_IFCHR | 0600, st.st_rdev) < 0 ||
		    chown(path, (uid_t)L->o.userns_uid, (gid_t)L->o.userns_gid) < 0)
			return step_error(L, -errno, "mknod %s", path);
	}
	return 0;
}

/* Top-level mountpoints missing in the image are made by the parent, as
 * host root: the CVM's root in a user namespace has no say over the
 * image's root-owned "/". The ones under /dev are on the CVM's tmpfs. */
int mounts_prepare(struct launch *L)
{
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(fs_mounts); i++) {
		if (strchr(fs_mounts[i].target + 1, '/'))
			continue;
		under(L, path, sizeof(path), fs_mounts[i].target);
		if ((r = ensure_dir(L, path)) < 0)
			return r;
	}
	if ((r = lanes_prepare(L)) < 0) /* the lanes' mountpoints, volume.c */
		return r;
	return L->o.userns ? prepare_userns_nodes(L) : 0;
}

/* src bound onto an empty file MNT/dev/NAME (NAME may have a directory). */
static int bind_dev_node(struct launch *L, const char *src, const char *name)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/dev/%s", L->mnt, name);
	if (strchr(name, '/')) {
		*strrchr(path, '/') = '\0';
		if ((r = ensure_dir(L, path)) < 0)
			return r;
		snprintf(path, sizeof(path), "%s/dev/%s", L->mnt, name);
	}
	if ((r = ensure_file(L, path)) < 0)
		return r;
	return bind(L, src, path, false);
}

/* Host device nodes bound onto empty files: works for any major/minor the
 * host has, and keeps working once CVMs run in a user namespace (no mknod). */
static int fill_dev(struct launch *L)
{
	char path[PATH_MAX], src[64];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(src, sizeof(src), "/dev/%s", dev_nodes[i]);
		if ((r = bind_dev_node(L, src, dev_nodes[i])) < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dev_optional); i++) {
		optional_source(L, dev_optional[i], path, sizeof(path));
		if (access(path, F_OK) < 0) {
			/* Absent: the host has none, or its directory is nodev (warned). */
			if (errno == ENOENT)
				continue;
			/* A node made for the CVM that its root cannot reach (a
			 * directory above it closed to others): without it a
			 * dockerd inside fails much later, at its first mount. */
			return step_error(L, -errno, "%s, made for the CVM's root, is out of its reach "
					  "(a directory above it closed to others?)", path);
		}
		if ((r = bind_dev_node(L, path, dev_optional[i])) < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
		snprintf(path, sizeof(path), "%s/dev/%s", L->mnt, dev_links[i][0]);
		if (symlink(dev_links[i][1], path) < 0)
			return step_error(L, -errno, "symlink %s", path);
	}
	/* --console pty: the slave is the CVM's console. */
	if (L->console_path[0] && (r = bind_dev_node(L, L->console_path, "console")) < 0)
		return r;
	return 0;
}

/* Options of a cgroup mount for the CVM's own: the host's super options
 * minus rw/ro ("cpu,cpuacct", "xattr,name=systemd"); none for cgroup2. */
static void cg_options(const char *fstype, char *super, char *out, size_t size)
{
	char *save = NULL;

	out[0] = '\0';
	if (strcmp(fstype, "cgroup"))
		return;
	for (char *t = strtok_r(super, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "rw") || !strcmp(t, "ro"))
			continue;
		size_t n = strlen(out);

		snprintf(out + n, size - n, "%s%s", n ? "," : "", t);
	}
}

/* One host cgroup mount found in mountinfo: the same hierarchy mounted
 * at the same place under MNT/sys/fs/cgroup. Mounted from inside the
 * CVM's cgroup namespace, it shows cvmfs/NAME/ns as its root. */
static int cg_mount_one(struct launch *L, const char *rel, const char *fstype, char *super)
{
	char path[PATH_MAX], opts[256];

	snprintf(path, sizeof(path), "%s/sys/fs/cgroup%s%s", L->mnt, rel[0] ? "/" : "", rel);
	if (rel[0] && mkdir(path, 0755) < 0 && errno != EEXIST)
		return step_error(L, -errno, "mkdir %s", path);
	cg_options(fstype, super, opts, sizeof(opts));
	/* Writable: systemd, dockerd and runc make sub-cgroups. The root seen
	 * here is cvmfs/NAME/ns, whose limits bind nothing the CVM could not
	 * already do: the copy in cvmfs/NAME, out of its sight, still holds. */
	if (mount("cgroup", path, fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  opts[0] ? opts : NULL) < 0)
		return step_error(L, -errno, "mount %s %s on %s", fstype, opts, path);
	return 0;
}

/* The host's symlinks in CGROUP_ROOT (cpu -> cpu,cpuacct) again. */
static int cg_links(struct launch *L)
{
	char path[PATH_MAX], target[PATH_MAX];
	DIR *d = opendir(L->o.cgroup_root);
	struct dirent *de;
	int r = 0;

	if (!d)
		return 0;
	while (r == 0 && (de = readdir(d))) {
		ssize_t n;

		if (de->d_type != DT_LNK)
			continue;
		n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		snprintf(path, sizeof(path), "%s/sys/fs/cgroup/%s", L->mnt, de->d_name);
		if (symlink(target, path) < 0 && errno != EEXIST)
			r = step_error(L, -errno, "symlink %s", path);
	}
	closedir(d);
	return r;
}

/* Where /sys is the host's, bound (--net host in a user namespace), its
 * /sys/fs/cgroup is the host's cgroup2 mount, and the kernel refuses the
 * same superblock mounted on its own root (EBUSY): a tmpfs between them. */
static int cg_unified_over(struct launch *L, const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
		return 0;
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=4k") < 0)
		return step_error(L, -errno, "mount tmpfs on %s", path);
	return 0;
}

/* /sys/fs/cgroup inside, as systemd wants it: on a pure v2 host the
 * unified hierarchy itself; on a v1 or hybrid host a tmpfs with every
 * hierarchy the host mounts directly under --cgroup-root (name=systemd,
 * unified, the controllers) and its symlinks. Runs after the cgroup
 * namespace is unshared, before pivot_root: /proc/self/mountinfo is
 * still the host's table. */
int child_cgroupfs(struct launch *L)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0, rlen = strlen(L->o.cgroup_root);
	char path[PATH_MAX];
	bool tmpfs = false;
	int r;

	if (!f)
		return step_error(L, -errno, "/proc/self/mountinfo");
	snprintf(path, sizeof(path), "%s/sys/fs/cgroup", L->mnt);
	if ((r = mkdir_p(path, 0755)) < 0)
		return step_error(L, r, "mkdir %s", path);
	while (getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX], fstype[32], super[512];
		const char *sep = strstr(line, " - ");
		const char *rel;

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
		    sscanf(sep, " - %31s %*s %511s", fstype, super) != 2 ||
		    strncmp(fstype, "cgroup", 6) || strncmp(mp, L->o.cgroup_root, rlen) ||
		    (mp[rlen] != '/' && mp[rlen] != '\0'))
			continue;
		rel = mp[rlen] ? mp + rlen + 1 : "";
		if (strchr(rel, '/'))
			continue;
		if (!rel[0]) /* pure v2 */
			return cg_unified_over(L, path) ?: cg_mount_one(L, "", fstype, super);
		if (!tmpfs) {
			if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				  "mode=755,size=64k") < 0)
				return step_error(L, -errno, "mount tmpfs on %s", path);
			tmpfs = true;
		}
		if ((r = cg_mount_one(L, rel, fstype, super)) < 0)
			return r;
	}
	return tmpfs ? cg_links(L) : 0;
}

static int bind_view(struct launch *L, const char *rel, bool optional)
{
	char src[PATH_MAX], dst[PATH_MAX];

	snprintf(src, sizeof(src), "%s/ct/%s/%s", L->o.views, L->o.name, rel);
	snprintf(dst, sizeof(dst), "%s/%s", L->mnt, rel);
	if (optional && (access(src, F_OK) < 0 || access(dst, F_OK) < 0))
		return 0;
	return bind(L, src, dst, true);
}

/* A cvmfs_view_files entry (include/cvmfs/view_files.h): its one '*'
 * replaced by each entry of the tree's directory there. */
static int bind_view_each(struct launch *L, const struct cvmfs_view_file *f)
{
	const char *star = strchr(f->path, '*');
	int len = star ? (int)(star - f->path) : 0;
	char dir[PATH_MAX], rel[PATH_MAX];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	int r = 0;

	if (!star)
		return bind_view(L, f->path, f->optional);
	snprintf(dir, sizeof(dir), "%s/ct/%s/%.*s", L->o.views, L->o.name, len, f->path);
	if (!(d = opendir(dir)))
		return f->optional ? 0 : step_error(L, -errno, "open %s", dir);
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "%.*s%s%s", len, f->path, e->d_name, star + 1);
		r = bind_view(L, rel, f->optional);
	}
	return r;
}

/* The views' per-CVM sysctls (ct/NAME/sysctl/KEY, emulated or refused
 * with a log line) over /proc/sys/KEY, each where the kernel has it. An
 * older views daemon without them leaves /proc/sys read-only as it is. */
static int bind_sysctls(struct launch *L)
{
	char dir[PATH_MAX], src[PATH_MAX + 256], dst[PATH_MAX + 256];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	int r = 0;

	snprintf(dir, sizeof(dir), "%s/ct/%s/sysctl", L->o.views, L->o.name);
	if (!(d = opendir(dir)))
		return 0;
	while (r == 0 && (e = readdir(d))) {
		size_t n = strlen(L->mnt) + strlen("/proc/sys/");

		if (e->d_name[0] == '.')
			continue;
		snprintf(src, sizeof(src), "%s/%s", dir, e->d_name);
		snprintf(dst, sizeof(dst), "%s/proc/sys/%s", L->mnt, e->d_name);
		for (char *c = dst + n; *c; c++)
			if (*c == '.')
				*c = '/';
		if (access(dst, F_OK) == 0)
			r = bind(L, src, dst, false);
	}
	return r;
}

/* The per-container views tree of the cgroup cvmfs/NAME. */
static int bind_views(struct launch *L)
{
	int r;

	if ((r = bind_sysctls(L)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(cvmfs_view_files); i++)
		if ((r = bind_view_each(L, &cvmfs_view_files[i])) < 0)
			return r;
	return 0;
}

int child_mounts(struct launch *L)
{
	int r;

	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return step_error(L, -errno, "make / private");
	/* Our own mount of MNT: pivot_root needs a mount point whose parent
	 * is not shared, and the host's MNT stays untouched. */
	if (mount(L->mnt, L->mnt, NULL, MS_BIND | MS_REC, NULL) < 0)
		return step_error(L, -errno, "bind %s on itself", L->mnt);
	/* The volume's lanes (/home, /var/lib/docker) over the union first:
	 * nothing else is mounted below them. */
	if ((r = lanes_bind(L)) < 0 || (r = mount_fs(L)) < 0 || (r = child_cgroupfs(L)) < 0 || (r = fill_dev(L)) < 0 ||
	    (r = devices_bind(L)) < 0 || /* --device /dev/PATH, devices.c */
	    (r = bind_views(L)) < 0 ||
	    (r = child_inner(L)) < 0) /* the views of the CVM's own containers, inner.c */
		return r;
	return 0;
}

/* pivot_root(".", "."): the old root ends up on top of the new one and is
 * detached at once, so no put_old directory is written into the disk. */
int child_pivot(struct launch *L)
{
	if (chdir(L->mnt) < 0)
		return step_error(L, -errno, "chdir %s", L->mnt);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return step_error(L, -errno, "pivot_root %s", L->mnt);
	if (umount2(".", MNT_DETACH) < 0)
		return step_error(L, -errno, "detach the old root");
	if (chdir("/") < 0)
		return step_error(L, -errno, "chdir /");
	return 0;
}
