/* The volume's block device: the image file, mkfs sized to the limit, the
 * loop device, fsck, the metadata prefetch, the mount at DATA, online growth
 * and the shrink at start (volume.h has the order).
 *
 * Sizing: statfs on ext4 shows f_blocks = blocks_count - overhead (group
 * descriptors, bitmaps, inode tables, journal), and mke2fs writes that
 * overhead into the superblock (s_overhead_clusters). The file is made,
 * formatted, the superblock read, and the file resized by the difference
 * until f_blocks * 4096 == limit: two to four mkfs runs of ~10 ms.
 *
 * Only the loop device this daemon attached, or one already backed by our
 * own image file (the last run's, still held by a CVM's binds: mounting it
 * again shares its superblock, where a second loop device on the same file
 * would corrupt it), is ever touched. */
#include "disk.h"
#include "volume/volume.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define VOL_BLOCK 4096u
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif
#define MOUNT_FLAGS (MS_NOSUID | MS_NODEV | MS_NOATIME)

/* Run a program, its output kept in out (last bytes) for the error line.
 * Returns its exit status, or -errno. */
static int run_prog(char *const argv[], char *out, size_t outsz)
{
	int pfd[2], status;
	size_t len = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execvp(argv[0], argv);
		/* The child's output is the tool's, read back by the parent: no
		 * stdio after fork in a threaded process. */
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char tmp[512];
		ssize_t n = read(pfd[0], tmp, sizeof(tmp));

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && outsz; i++) {
			if (len + 1 >= outsz) { /* keep the tail: errors come last */
				memmove(out, out + outsz / 2, len - outsz / 2);
				len -= outsz / 2;
			}
			out[len++] = tmp[i];
		}
	}
	if (outsz)
		out[len] = '\0';
	while (len && (out[len - 1] == '\n'))
		out[--len] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What the ext4 superblock says (offsets of struct ext4_super_block). */
struct ext4_sb {
	uint64_t blocks, overhead;
	uint32_t block_size;
	bool needs_fsck; /* not cleanly unmounted, or errors recorded */
};

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* -ENODATA when fd holds no ext4 file system. */
static int sb_read(int fd, struct ext4_sb *sb)
{
	unsigned char b[1024];
	uint16_t state;

	if (pread(fd, b, sizeof(b), 1024) != (ssize_t)sizeof(b))
		return -ENODATA;
	if (b[0x38] != 0x53 || b[0x39] != 0xEF)
		return -ENODATA;
	sb->blocks = le32(b + 0x4) | (uint64_t)le32(b + 0x150) << 32;
	sb->block_size = 1024u << le32(b + 0x18);
	sb->overhead = le32(b + 0x248);
	state = (uint16_t)(b[0x3A] | b[0x3B] << 8);
	sb->needs_fsck = !(state & 1) || (state & 2) || (le32(b + 0x60) & 0x4);
	return 0;
}

/* ---- metadata prefetch ----
 * Direct I/O keeps the volume out of the host's page cache, and the block
 * device's own cache is dropped with the loop device, so every later start
 * reads the same few dozen metadata blocks from the disk, one at a time,
 * each a round trip through the loop device's worker: the journal's inode
 * and superblock (mount), DATA's directories, which ext4 spreads over the
 * flex groups (a directory block, then the inode it names, then that
 * directory's block), the lanes, the bitmaps of the first allocation.
 * Asked for together right after the attach (POSIX_FADV_WILLNEED on the
 * device: ext4 reads its metadata through the device's page cache), they
 * arrive in one parallel round before the mount needs them. A hint only:
 * a wrong guess costs a read and changes nothing else. */

#define PREFETCH_GDT_MAX (1u << 20) /* descriptors of 16384 groups (2 TiB) */
#define PREFETCH_RANGES 64
#define PREFETCH_ITABLE 16 /* blocks: 256 inodes of 256 bytes */
#define PREFETCH_DIRS 64   /* blocks at the head of a flex group's directory area */

struct ext4_geo {
	uint64_t blocks, groups;
	uint64_t itable_blocks; /* per group */
	uint32_t blocks_per_group, inodes_per_group, inode_size, desc_size;
	uint32_t flex;          /* groups per flex group */
	bool is64;              /* 64-byte descriptors with high halves */
};

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* A descriptor field split in a 32-bit low half and, with 64bit, a high half. */
static uint64_t desc32(const struct ext4_geo *g, const unsigned char *d, int lo, int hi)
{
	return le32(d + lo) | (g->is64 ? (uint64_t)le32(d + hi) << 32 : 0);
}

static uint32_t desc16(const struct ext4_geo *g, const unsigned char *d, int lo, int hi)
{
	return le16(d + lo) | (g->is64 ? (uint32_t)le16(d + hi) << 16 : 0);
}

/* -EINVAL for what mkfs_once does not make: blocks other than 4 KiB, or
 * meta_bg (descriptors scattered over the disk instead of after block 0). */
static int geo_read(const unsigned char *sb, struct ext4_geo *g)
{
	uint32_t incompat = le32(sb + 0x60);

	if (le32(sb + 0x18) != 2 || !le32(sb + 0x20) || !le32(sb + 0x28) || (incompat & 0x10))
		return -EINVAL;
	g->blocks = le32(sb + 0x4) | (uint64_t)le32(sb + 0x150) << 32;
	g->blocks_per_group = le32(sb + 0x20);
	g->inodes_per_group = le32(sb + 0x28);
	g->inode_size = le16(sb + 0x58);
	g->is64 = incompat & 0x80;
	g->desc_size = g->is64 ? le16(sb + 0xFE) : 32;
	g->flex = incompat & 0x200 ? 1u << MIN(sb[0x174], 16) : 1;
	g->groups = (g->blocks + g->blocks_per_group - 1) / g->blocks_per_group;
	g->itable_blocks = (uint64_t)g->inodes_per_group * g->inode_size / VOL_BLOCK;
	return g->desc_size >= 32 && g->groups * g->desc_size <= PREFETCH_GDT_MAX ? 0 : -EINVAL;
}

/* Readahead of n blocks at block; a zero field (unset) or one past the end
 * is skipped, and at most PREFETCH_RANGES are asked for in all. */
static void fetch(int devfd, const struct ext4_geo *g, uint64_t block, uint64_t n, unsigned *ranges)
{
	if (!block || block >= g->blocks || !n || *ranges >= PREFETCH_RANGES)
		return;
	n = MIN(n, g->blocks - block);
	posix_fadvise(devfd, (off_t)(block * VOL_BLOCK), (off_t)(n * VOL_BLOCK), POSIX_FADV_WILLNEED);
	(*ranges)++;
}

/* The journal's superblock: its first block, from the superblock's copy of
 * the journal inode's extent root (s_jnl_blocks, an extent header and the
 * first extent). */
static void fetch_journal(int devfd, const struct ext4_geo *g, const unsigned char *sb,
			  unsigned *ranges)
{
	const unsigned char *root = sb + 0x10C, *ext = root + 12;

	if (sb[0xFD] == 1 && le16(root) == 0xF30A && le16(root + 2) && !le16(root + 6))
		fetch(devfd, g, le32(ext + 8) | (uint64_t)le16(ext + 6) << 32, 1, ranges);
}

/* One flex group: the used head of each group's inode table, and where
 * ext4 puts the directories' blocks (right after the flex group's inode
 * tables, when they lie in one run); for the first one, which holds DATA's
 * root, also the bitmaps that the state file's allocation reads. */
static void fetch_flex(int devfd, const struct ext4_geo *g, const unsigned char *gdt, uint64_t g0,
		       unsigned *ranges)
{
	uint64_t end = MIN(g0 + g->flex, g->groups), dirs = 0;
	const unsigned char *d0 = gdt + g0 * g->desc_size;
	uint64_t itable0 = desc32(g, d0, 0x8, 0x28);

	for (uint64_t i = g0; i < end; i++) {
		const unsigned char *d = gdt + i * g->desc_size;
		uint64_t used = g->inodes_per_group - MIN(desc16(g, d, 0x1C, 0x32), g->inodes_per_group);

		if (used)
			fetch(devfd, g, desc32(g, d, 0x8, 0x28),
			      MIN((used * g->inode_size + VOL_BLOCK - 1) / VOL_BLOCK, PREFETCH_ITABLE), ranges);
		dirs += desc16(g, d, 0x10, 0x30);
	}
	if (dirs && desc32(g, gdt + (end - 1) * g->desc_size, 0x8, 0x28) ==
			    itable0 + (end - 1 - g0) * g->itable_blocks)
		fetch(devfd, g, itable0 + (end - g0) * g->itable_blocks, MIN(dirs * 2, PREFETCH_DIRS),
		      ranges);
	if (g0 == 0) {
		fetch(devfd, g, desc32(g, d0, 0x0, 0x20), end - g0, ranges);
		fetch(devfd, g, desc32(g, d0, 0x4, 0x24), end - g0, ranges);
	}
}

static void volume_prefetch(int devfd)
{
	_cleanup_free_ unsigned char *gdt = NULL;
	unsigned char sb[1024];
	struct ext4_geo g;
	unsigned ranges = 0;
	size_t len;

	if (pread(devfd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb) || geo_read(sb, &g) < 0)
		return;
	len = g.groups * g.desc_size;
	gdt = malloc(len);
	/* the descriptors follow the superblock's block; the mount reads them too */
	if (!gdt || pread(devfd, gdt, len, VOL_BLOCK) != (ssize_t)len)
		return;
	fetch_journal(devfd, &g, sb, &ranges);
	for (uint64_t g0 = 0; g0 < g.groups && ranges < PREFETCH_RANGES; g0 += g.flex)
		fetch_flex(devfd, &g, gdt, g0, &ranges);
}

/* A loop volume's file was made sparse (or fallocated): what was never
 * written reads as zeros, so the kernel's background zeroing of inode
 * tables would only write zeros over zeros, and allocate the host blocks
 * that sparseness saves. A block device may hold anything: zeroed. */
static const char *mount_data(void)
{
	return disk_vol.kind == VOLUME_LOOP ? "noinit_itable" : NULL;
}

static int set_size(int fd, uint64_t size)
{
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	if (disk_vol.alloc_full && fallocate(fd, 0, 0, (off_t)size) < 0)
		return -errno;
	return 0;
}

static int mkfs_once(uint64_t size, uint64_t inodes, struct ext4_sb *sb)
{
	char nbuf[32], out[1024];
	char *argv[16] = { "mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", "-E",
			   "lazy_itable_init=1,lazy_journal_init=1,nodiscard" };
	int argc = 9, r;

	if (inodes && inodes != UNSET) {
		snprintf(nbuf, sizeof(nbuf), "%llu", (unsigned long long)inodes);
		argv[argc++] = "-N";
		argv[argc++] = nbuf;
	} else {
		argv[argc++] = "-i";
		argv[argc++] = "16384"; /* the union's default inode limit */
	}
	argv[argc++] = disk_vol.file;
	argv[argc] = NULL;
	r = disk_vol.kind == VOLUME_LOOP ? set_size(disk_vol.file_fd, size) : 0;
	if (r < 0)
		return log_error_errno(r, "--volume %s: size %llu", disk_vol.file, (unsigned long long)size);
	r = run_prog(argv, out, sizeof(out));
	if (r != 0) {
		log_error("--volume %s: mkfs.ext4 failed (%d): %s", disk_vol.file, r, out);
		return -EIO;
	}
	return sb_read(disk_vol.file_fd, sb);
}

/* A new image file whose file system shows exactly limit bytes. */
static int volume_make(uint64_t limit, uint64_t inodes)
{
	uint64_t size = limit + limit / 16 + (8u << 20), fs = 0;
	struct ext4_sb sb;
	int r;

	size -= size % VOL_BLOCK;
	for (int tries = 0; tries < 8; tries++) {
		r = mkfs_once(size, inodes, &sb);
		if (r < 0)
			return r;
		fs = (sb.blocks - sb.overhead) * VOL_BLOCK;
		if (fs == limit)
			break;
		size = size + limit - fs;
	}
	if (fs != limit)
		log_warn("--volume %s: shows %llu bytes for a limit of %llu", disk_vol.file,
			 (unsigned long long)fs, (unsigned long long)limit);
	log_info("--volume %s: made, %llu bytes of file for %llu of file system", disk_vol.file,
		 (unsigned long long)size, (unsigned long long)fs);
	disk_vol.created = true;
	return 0;
}

/* The loop device already backed by our file (dev, ino), or -ENOENT. */
static int loop_find(char *dev, size_t size)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/block");
	struct stat me;
	struct dirent *de;

	if (!d || fstat(disk_vol.file_fd, &me) < 0)
		return -ENOENT;
	while ((de = readdir(d))) {
		struct loop_info64 info;
		_cleanup_close_ int fd = -EBADF;

		if (strncmp(de->d_name, "loop", 4) || !de->d_name[4] || strlen(de->d_name) > 32)
			continue;
		snprintf(dev, size, "/dev/%.32s", de->d_name);
		fd = open(dev, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
			continue;
		if (info.lo_inode == me.st_ino && info.lo_device == me.st_dev)
			return 0;
	}
	return -ENOENT;
}

/* A loop device already backed by our file: the last run's. Mounted
 * (a CVM's binds hold it: the bdev is claimed, an O_EXCL open fails):
 * *held, and used as it is. Not mounted (its autoclear is on the way, or
 * it was left attached): ours to check and resize like a fresh one; the
 * fd keeps it from being torn down under us. One being torn down
 * refuses opens: waited for. -ENOENT: none. */
static int loop_existing(bool *held)
{
	for (int tries = 0; tries < 150; tries++) {
		int fd, ex;

		if (loop_find(disk_vol.loopdev, sizeof(disk_vol.loopdev)) < 0)
			return -ENOENT;
		fd = open(disk_vol.loopdev, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			usleep(20000);
			continue;
		}
		ex = open(disk_vol.loopdev, O_RDONLY | O_EXCL | O_CLOEXEC);
		*held = ex < 0 && errno == EBUSY;
		if (ex >= 0)
			close(ex);
		if (*held)
			log_info("--volume %s: still attached at %s and mounted (a CVM of the last run "
				 "holds it): used as it is", disk_vol.file, disk_vol.loopdev);
		return fd;
	}
	return -ENOENT;
}

static int loop_attach(char *dev, size_t size)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	/* The loop device keeps the file it is given: an open of its own, so
	 * that our flock ends with this process, not with the device. */
	_cleanup_close_ int backing = open(disk_vol.file, O_RDWR | O_CLOEXEC);
	struct loop_config cfg = { .fd = (uint32_t)backing, .block_size = VOL_BLOCK };

	if (ctl < 0 || backing < 0)
		return -errno;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
	snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", disk_vol.file);
	for (int tries = 0; tries < 16; tries++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE), fd;

		if (nr < 0)
			return -errno;
		snprintf(dev, size, "/dev/loop%d", nr);
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
			return fd;
		if (errno == EINVAL && (cfg.info.lo_flags & LO_FLAGS_DIRECT_IO)) {
			/* a host file system without O_DIRECT: the page cache path */
			cfg.info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
			close(fd);
			tries--;
			continue;
		}
		close(fd);
		if (errno != EBUSY)
			return -errno;
	}
	return -EBUSY;
}

/* e2fsck -p after an unclean stop: the journal replayed, what is safe fixed. */
static int fsck_if_needed(int devfd, const char *dev, bool force)
{
	char out[2048];
	char *argv[] = { "e2fsck", "-p", force ? "-f" : NULL, NULL, NULL };
	struct ext4_sb sb;
	int r = sb_read(devfd, &sb);

	if (r < 0) {
		log_error("--volume %s: no ext4 file system on it (a first start "
			"that did not finish? remove the file to make it again)", disk_vol.file);
		return r;
	}
	if (!sb.needs_fsck && !force)
		return 0;
	argv[force ? 3 : 2] = (char *)dev;
	r = run_prog(argv, out, sizeof(out));
	if (r < 0 || r >= 4) {
		log_error("--volume %s: e2fsck -p %s could not repair it (%d): %s",
			disk_vol.file, dev, r, out);
		return -EIO;
	}
	log_info("--volume %s: %s: e2fsck -p: %s", disk_vol.file, force ? "before resizing" : "unclean stop",
		 out);
	return 0;
}

static bool dir_empty(const char *path)
{
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return false;
	return d != NULL;
}

static int open_file(bool *exists)
{
	int fd;

	if (disk_vol.kind == VOLUME_BLOCK) {
		*exists = true;
		fd = open(disk_vol.file, O_RDWR | O_CLOEXEC);
	} else {
		fd = open(disk_vol.file, O_RDWR | O_CLOEXEC);
		*exists = fd >= 0;
		if (fd < 0 && errno == ENOENT)
			fd = open(disk_vol.file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		return log_error_errno(-errno, "--volume %s", disk_vol.file);
	}
	disk_vol.file_fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("--volume %s: in use by another cvmfsd disk", disk_vol.file);
		return -EBUSY;
	}
	return 0;
}

/* DATA is a mountpoint of dev already (our last run, killed): used as is. */
static bool mounted_at(const char *data, const char *dev)
{
	struct stat d, b;

	return stat(data, &d) == 0 && stat(dev, &b) == 0 && d.st_dev == b.st_rdev;
}

static int volume_capacity(const char *data)
{
	struct statvfs sv;

	if (statvfs(data, &sv) < 0)
		return -errno;
	disk_vol.capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
	return 0;
}

static int volume_resize_offline(const char *data, int devfd, uint64_t limit);

static int attach_and_mount(const char *data, uint64_t limit)
{
	_cleanup_close_ int devfd = -EBADF;
	bool reused = false;
	struct ext4_sb sb;
	int r;

	if (disk_vol.kind == VOLUME_LOOP)
		devfd = loop_existing(&reused);
	if (devfd < 0 && disk_vol.kind == VOLUME_LOOP) {
		devfd = loop_attach(disk_vol.loopdev, sizeof(disk_vol.loopdev));
		if (devfd < 0) {
			log_error("--volume %s: attaching a loop device: %s", disk_vol.file,
				strerror(-devfd));
			return devfd;
		}
	} else if (devfd < 0) {
		snprintf(disk_vol.loopdev, sizeof(disk_vol.loopdev), "%s", disk_vol.file);
		devfd = open(disk_vol.file, O_RDWR | O_CLOEXEC);
		if (devfd < 0)
			return -errno;
		if (sb_read(devfd, &sb) == -ENODATA) { /* an admin's empty device */
			r = disk_vol.kind == VOLUME_BLOCK ? mkfs_once(0, UNSET, &sb) : -ENODATA;
			disk_vol.created = r == 0;
			if (r < 0)
				return r;
		}
	}
	if (disk_vol.kind == VOLUME_LOOP) /* held while we run: an upgrade carries it */
		disk_vol.dev_fd = fcntl(devfd, F_DUPFD_CLOEXEC, 3);
	if (mounted_at(data, disk_vol.loopdev)) {
		log_info("--volume %s: already mounted at %s (the last daemon was killed): reused",
			 disk_vol.file, data);
		disk_vol.mounted = true;
		return volume_capacity(data);
	}
	if (!dir_empty(data)) {
		log_error("--data %s: not empty, and the volume mounts there: a "
			"workspace made with --volume none is not migrated (keep --volume none, or move "
			"DATA aside)", data);
		return -ENOTEMPTY;
	}
	if (!reused && (r = fsck_if_needed(devfd, disk_vol.loopdev, false)) < 0)
		return r;
	volume_prefetch(devfd);
	if (mount(disk_vol.loopdev, data, "ext4", MOUNT_FLAGS, mount_data()) < 0) {
		r = -errno;
		return log_error_errno(r, "--volume %s: mount %s at %s", disk_vol.file, disk_vol.loopdev,
			data);
	}
	disk_vol.mounted = true;
	r = volume_capacity(data);
	if (r == 0 && !reused && disk_vol.kind == VOLUME_LOOP && limit != disk_vol.capacity)
		r = volume_resize_offline(data, devfd, limit);
	return r;
}

#define ENV_CARRY "CVMFS_DISK_VOLUME_FDS"

int volume_carry_record(void)
{
	char v[32];

	if (disk_vol.file_fd < 0 || (disk_vol.kind == VOLUME_LOOP && disk_vol.dev_fd < 0))
		return -EBADF;
	snprintf(v, sizeof(v), "%d,%d", disk_vol.file_fd, disk_vol.dev_fd);
	return setenv(ENV_CARRY, v, 1) < 0 ? -errno : 0;
}

bool volume_carries(int fd)
{
	return volume_on() && fd >= 0 && (fd == disk_vol.file_fd || fd == disk_vol.dev_fd);
}

void volume_inherit(bool upgraded)
{
	const char *e = getenv(ENV_CARRY);
	int file_fd, dev_fd;

	if (upgraded && e && sscanf(e, "%d,%d", &file_fd, &dev_fd) == 2 && file_fd >= 0) {
		disk_vol.file_fd = file_fd;
		disk_vol.dev_fd = dev_fd;
		disk_vol.adopt = true;
		fcntl(file_fd, F_SETFD, FD_CLOEXEC);
		if (dev_fd >= 0)
			fcntl(dev_fd, F_SETFD, FD_CLOEXEC);
	}
	unsetenv(ENV_CARRY);
}

/* The carried loop device backs the carried file. */
static bool backs(int devfd, const struct stat *file)
{
	struct loop_info64 info;

	return ioctl(devfd, LOOP_GET_STATUS64, &info) == 0 && info.lo_inode == file->st_ino &&
	       info.lo_device == file->st_dev;
}

/* After an upgrade's exec: the volume the old binary mounted, through the
 * fds it carried (the flock was never let go). It must still be our file,
 * its device, mounted at DATA. */
static int volume_adopt(const char *data)
{
	struct stat held, named;
	char link[64];
	ssize_t n = -1;

	if (fstat(disk_vol.file_fd, &held) < 0 || stat(disk_vol.file, &named) < 0 ||
	    held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
		log_error("--volume %s: not the file the upgraded daemon held", disk_vol.file);
		return -ESTALE;
	}
	if (disk_vol.kind == VOLUME_BLOCK) {
		snprintf(disk_vol.loopdev, sizeof(disk_vol.loopdev), "%s", disk_vol.file);
	} else if (disk_vol.dev_fd >= 0 && backs(disk_vol.dev_fd, &held)) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", disk_vol.dev_fd);
		n = readlink(link, disk_vol.loopdev, sizeof(disk_vol.loopdev) - 1);
	}
	if (disk_vol.kind == VOLUME_LOOP && n <= 0) {
		log_error("--volume %s: the loop device carried over does not back it", disk_vol.file);
		return -ESTALE;
	}
	if (n > 0)
		disk_vol.loopdev[n] = '\0';
	if (!mounted_at(data, disk_vol.loopdev)) {
		log_error("--volume %s: %s is no longer mounted at %s", disk_vol.file,
			  disk_vol.loopdev, data);
		return -ESTALE;
	}
	disk_vol.mounted = true;
	log_info("--volume %s: %s mounted at %s adopted from the binary before the upgrade",
		 disk_vol.file, disk_vol.loopdev, data);
	return volume_capacity(data);
}

int volume_start(const char *data, uint64_t limit, uint64_t inodes)
{
	bool exists;
	int r;

	if (disk_vol.adopt)
		return volume_adopt(data);

	if (mkdir(data, 0700) < 0 && errno != EEXIST) {
		return log_error_errno(-errno, "--data %s", data);
	}
	if (disk_vol.kind == VOLUME_LOOP && mkdir(disk_vol.dir, 0700) < 0 && errno != EEXIST) {
		return log_error_errno(-errno, "--volume-dir %s", disk_vol.dir);
	}
	r = open_file(&exists);
	if (r < 0)
		return r;
	if (!exists) {
		if (!dir_empty(data)) {
			log_error("--data %s: not empty, and the volume mounts there: "
				"a workspace made with --volume none is not migrated (keep --volume none, "
				"or move DATA aside)", data);
			unlink(disk_vol.file);
			return -ENOTEMPTY;
		}
		r = volume_make(limit, inodes);
		if (r < 0) {
			unlink(disk_vol.file);
			return r;
		}
	}
	r = attach_and_mount(data, limit);
	if (r < 0)
		return r;
	log_info("--volume %s: %s mounted at %s, %llu bytes", disk_vol.file, disk_vol.loopdev, data,
		 (unsigned long long)disk_vol.capacity);
	return 0;
}

/* Grow file and file system by the missing bytes until statfs shows limit. */
uint64_t volume_resize(uint64_t limit)
{
	_cleanup_close_ int devfd = -EBADF;
	struct stat st;

	if (limit < disk_vol.capacity) {
		log_warn("SIGHUP: limit %llu is below the volume's %llu bytes: applied at the next "
			 "start if the data fits", (unsigned long long)limit,
			 (unsigned long long)disk_vol.capacity);
		return disk_vol.capacity;
	}
	if (disk_vol.kind != VOLUME_LOOP || limit == disk_vol.capacity)
		return disk_vol.capacity;
	devfd = open(disk_vol.loopdev, O_RDWR | O_CLOEXEC);
	for (int tries = 0; devfd >= 0 && tries < 8 && disk_vol.capacity < limit; tries++) {
		uint64_t want = limit - disk_vol.capacity, blocks;
		int r;

		if (fstat(disk_vol.file_fd, &st) < 0)
			break;
		blocks = ((uint64_t)st.st_size + want) / VOL_BLOCK;
		r = set_size(disk_vol.file_fd, blocks * VOL_BLOCK);
		if (r == 0 && ioctl(devfd, LOOP_SET_CAPACITY, 0) < 0)
			r = -errno;
		if (r == 0 && ioctl(disk_ctx->data_fd, EXT4_IOC_RESIZE_FS, &blocks) < 0)
			r = -errno;
		if (r == -EPERM) {
			log_warn("SIGHUP: growing %s online needs CAP_SYS_RESOURCE, which this daemon "
				 "lacks: the limit %llu is applied at the next start", disk_vol.file,
				 (unsigned long long)limit);
			return disk_vol.capacity;
		}
		if (r < 0) {
			log_error_errno(r, "SIGHUP: growing %s to %llu bytes", disk_vol.file,
					(unsigned long long)(blocks * VOL_BLOCK));
			break;
		}
		volume_capacity(disk_ctx->cfg.data);
	}
	if (devfd < 0)
		log_error("SIGHUP: %s: %s", disk_vol.loopdev, strerror(errno));
	log_info("SIGHUP: volume %s now %llu bytes (limit %llu)", disk_vol.file,
		 (unsigned long long)disk_vol.capacity, (unsigned long long)limit);
	return disk_vol.capacity;
}

static int resize2fs(const char *dev, uint64_t blocks)
{
	char nbuf[32], out[2048];
	char *argv[] = { "resize2fs", (char *)dev, nbuf, NULL };
	int r;

	snprintf(nbuf, sizeof(nbuf), "%llu", (unsigned long long)blocks);
	r = run_prog(argv, out, sizeof(out));
	if (r != 0) {
		log_error("--volume %s: resize2fs %s %s failed (%d): %s", disk_vol.file, dev, nbuf, r, out);
		return -EIO;
	}
	return 0;
}

/* The file system's size as statfs shows it, mounted read-only for a
 * moment (resize2fs leaves s_overhead_clusters as it was, so the
 * superblock alone does not tell; a read-only mount writes nothing, so
 * resize2fs still trusts the e2fsck -f before it). */
static int measure(const char *data, uint64_t *fs)
{
	struct statvfs sv;
	int r = 0;

	if (mount(disk_vol.loopdev, data, "ext4", MS_RDONLY | MOUNT_FLAGS, NULL) < 0)
		return -errno;
	if (statvfs(data, &sv) < 0)
		r = -errno;
	else
		*fs = (uint64_t)sv.f_blocks * sv.f_frsize;
	umount(data);
	return r;
}

static int resize_to(int devfd, uint64_t blocks)
{
	int r = 0;

	if (blocks * VOL_BLOCK > (uint64_t)lseek(disk_vol.file_fd, 0, SEEK_END))
		r = set_size(disk_vol.file_fd, blocks * VOL_BLOCK);
	if (r == 0 && ioctl(devfd, LOOP_SET_CAPACITY, 0) < 0)
		r = -errno;
	return r < 0 ? r : resize2fs(disk_vol.loopdev, blocks);
}

/* At start, before serving: a limit changed while stopped (or a growth
 * that SIGHUP could not apply online). The file system is resized offline
 * (resize2fs wants a fresh e2fsck -f), measured, corrected, and the file
 * cut to it. A shrink below the data is refused with one line. */
static int volume_resize_offline(const char *data, int devfd, uint64_t limit)
{
	struct statvfs sv;
	struct ext4_sb sb;
	uint64_t used, fs = disk_vol.capacity;
	int r;

	if (statvfs(data, &sv) < 0)
		return -errno;
	used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
	if (limit < disk_vol.capacity && used + limit / 32 > limit) {
		log_warn("--limit %llu: the volume holds %llu bytes; it keeps its %llu bytes until "
			 "enough is deleted", (unsigned long long)limit, (unsigned long long)used,
			 (unsigned long long)disk_vol.capacity);
		return 0;
	}
	if (umount(data) < 0)
		return -errno;
	disk_vol.mounted = false;
	r = fsck_if_needed(devfd, disk_vol.loopdev, true);
	for (int tries = 0; r == 0 && fs != limit && tries < 6; tries++) {
		int64_t diff = ((int64_t)limit - (int64_t)fs) / (int64_t)VOL_BLOCK;

		r = sb_read(devfd, &sb);
		if (r == 0)
			r = resize_to(devfd, (uint64_t)((int64_t)sb.blocks + diff));
		if (r == 0)
			r = measure(data, &fs);
	}
	if (r == 0 && sb_read(devfd, &sb) == 0 &&
	    (uint64_t)lseek(disk_vol.file_fd, 0, SEEK_END) > sb.blocks * VOL_BLOCK) {
		if (ftruncate(disk_vol.file_fd, (off_t)(sb.blocks * VOL_BLOCK)) == 0)
			ioctl(devfd, LOOP_SET_CAPACITY, 0);
	}
	if (mount(disk_vol.loopdev, data, "ext4", MOUNT_FLAGS, mount_data()) < 0)
		return log_error_errno(-errno, "--volume %s: mount %s", disk_vol.file, data);
	disk_vol.mounted = true;
	volume_capacity(data);
	if (r < 0)
		log_warn("--limit %llu: resizing %s failed: it stays at %llu bytes",
			 (unsigned long long)limit, disk_vol.file, (unsigned long long)disk_vol.capacity);
	else
		log_info("--limit %llu: volume %s resized to %llu bytes", (unsigned long long)limit,
			 disk_vol.file, (unsigned long long)disk_vol.capacity);
	return 0;
}

void volume_stop(const char *data)
{
	if (disk_vol.reserve_fd >= 0)
		close(disk_vol.reserve_fd);
	disk_vol.reserve_fd = -1;
	if (disk_vol.mounted && umount2(data, MNT_DETACH) < 0)
		log_warn("%s: unmounting the volume: %s", data, strerror(errno));
	disk_vol.mounted = false;
	if (disk_vol.file_fd >= 0)
		close(disk_vol.file_fd);
	disk_vol.file_fd = -1;
	if (disk_vol.dev_fd >= 0) /* the last opener: autoclear detaches it */
		close(disk_vol.dev_fd);
	disk_vol.dev_fd = -1;
	for (unsigned i = 0; i < disk_vol.nlanes; i++) {
		free(disk_vol.lanes[i].path);
		free(disk_vol.lanes[i].dir);
	}
	disk_vol.nlanes = 0;
	free(disk_vol.file);
	free(disk_vol.dir);
	disk_vol.file = disk_vol.dir = NULL;
}
