/* The volume's options, the image's reservation, and what the volume
 * changes in statfs, the figures and the status file (volume.h).
 *
 * Figures with a volume: limit, used and avail are the volume's statfs
 * (exact at write(2): ext4 counts delayed allocations in statfs), and the
 * same numbers answer statfs on the union, so df agrees on /, /home and
 * /var/lib/docker. IMAGE is the image layers' bytes (held on the volume by
 * DATA/.image-reserve), the union's upper counts per area as without a
 * volume, each lane adds its last scan to its area, and OTHER takes the
 * rest: the union's other area plus the file system's own few blocks
 * (root and lost+found, DATA's directories and state). */
#include "disk.h"
#include "volume/volume.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct volume disk_vol = { .file_fd = -1, .dev_fd = -1, .reserve_fd = -1 };

#define DEFAULT_VOLUME_DIR CVMFS_STATE_DIR "/volumes"
#define DEFAULT_LANES "/home:/var/lib/docker"

/* Paths go into the JSON status file unescaped: keep them plain. */
static bool json_safe(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

/* "/var/lib/docker" -> "var-lib-docker"; absolute, no "..", ".", "//". */
static int lane_add(const char *path, const char *data)
{
	struct vol_lane *l = &disk_vol.lanes[disk_vol.nlanes];
	char name[256];
	size_t n = 0;

	if (path[0] != '/' || !path[1] || strlen(path) >= sizeof(name) || !json_safe(path) ||
	    strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../") ||
	    !strcmp(path + strlen(path) - 2, "/.") || !strcmp(path + strlen(path) - 3, "/..") ||
	    path[strlen(path) - 1] == '/')
		return -EINVAL;
	if (disk_vol.nlanes == VOLUME_MAX_LANES)
		return -E2BIG;
	for (const char *p = path + 1; *p; p++)
		name[n++] = *p == '/' ? '-' : *p;
	name[n] = '\0';
	for (unsigned i = 0; i < disk_vol.nlanes; i++) {
		size_t a = strlen(disk_vol.lanes[i].path), b = strlen(path);

		/* one inside another: a bind would hide the other one */
		if (!strncmp(disk_vol.lanes[i].path, path, MIN(a, b)) &&
		    (a == b || disk_vol.lanes[i].path[MIN(a, b)] == '/' || path[MIN(a, b)] == '/'))
			return -EINVAL;
	}
	l->path = strdup(path);
	if (!l->path || asprintf(&l->dir, "%s/lanes/%s", data, name) < 0)
		return -ENOMEM;
	l->area = area_of_path(path);
	disk_vol.nlanes++;
	return 0;
}

static int parse_lanes(const char *lanes, const char *data)
{
	_cleanup_free_ char *list = strdup(lanes);
	char *save = NULL;
	int r;

	if (!list)
		return -ENOMEM;
	for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		r = lane_add(p, data);
		if (r < 0) {
			log_error("bad value for --lanes: '%s': %s", p,
				r == -E2BIG ? "more than 8 lanes"
					    : "want absolute paths, neither nested nor with '.', "
					      "'..', '//', quotes or backslashes");
			return -EINVAL;
		}
	}
	return 0;
}

int volume_configure(const char *spec, const char *dir, const char *lanes, const char *alloc,
		     const char *data, const char *name)
{
	if (!spec || !strcmp(spec, "none"))
		return 0;
	if (!strcmp(spec, "loop")) {
		disk_vol.kind = VOLUME_LOOP;
	} else if (!strncmp(spec, "block:", 6) && spec[6] == '/') {
		disk_vol.kind = VOLUME_BLOCK;
	} else {
		log_error("bad value for --volume: '%s' (loop, block:PATH or none)",
			spec);
		return -EINVAL;
	}
	if (alloc && strcmp(alloc, "sparse") && strcmp(alloc, "full")) {
		log_error("bad value for volume-alloc: '%s' (sparse or full)",
			alloc);
		return -EINVAL;
	}
	disk_vol.alloc_full = alloc && !strcmp(alloc, "full");
	disk_vol.dir = strdup(dir ? dir : DEFAULT_VOLUME_DIR);
	if (!disk_vol.dir)
		return -ENOMEM;
	if (disk_vol.kind == VOLUME_LOOP ? asprintf(&disk_vol.file, "%s/%s.img", disk_vol.dir, name) < 0
				  : !(disk_vol.file = strdup(spec + 6)))
		return -ENOMEM;
	if (data[0] != '/') {
		log_error("--data %s: must be an absolute path with --volume (the "
			"lanes are published by path)", data);
		return -EINVAL;
	}
	if (!json_safe(disk_vol.file) || !json_safe(data)) {
		log_error("--volume: the volume and --data paths may not hold "
			"quotes, backslashes or control characters");
		return -EINVAL;
	}
	return parse_lanes(lanes ? lanes : DEFAULT_LANES, data);
}

/* The image's bytes, allocated (unwritten extents: the host's file gets
 * no data blocks for them until a write, i.e. never). */
int volume_reserve(int data_fd, uint64_t image_bytes)
{
	uint64_t want = (image_bytes + 4095) / 4096 * 4096;
	struct stat st;
	int fd = disk_vol.reserve_fd;

	if (fd < 0)
		fd = disk_vol.reserve_fd = openat(data_fd, ".image-reserve",
					   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(-errno, "%s/.image-reserve", disk_ctx->cfg.data);
	if ((uint64_t)st.st_size > want && ftruncate(fd, (off_t)want) < 0)
		return log_error_errno(-errno, "%s/.image-reserve", disk_ctx->cfg.data);
	if (want && fallocate(fd, 0, 0, (off_t)want) < 0) {
		int r = -errno;

		log_error("--volume %s: the image's %llu bytes do not fit beside "
			"the workspace's data: %s", disk_vol.file, (unsigned long long)image_bytes,
			strerror(-r));
		return r;
	}
	return 0;
}

int volume_statfs(struct statvfs *sv)
{
	return fstatvfs(disk_ctx->data_fd, sv) < 0 ? -errno : 0;
}

void volume_figures(struct figures *f, const struct acct *a)
{
	struct statvfs sv;
	uint64_t rest;

	if (volume_statfs(&sv) < 0)
		return;
	f->limit_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
	f->used_bytes = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
	f->avail_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	f->inodes_limit = sv.f_files;
	f->inodes_used = sv.f_files - sv.f_ffree;
	for (unsigned i = 0; i < disk_vol.nlanes; i++) {
		int64_t b = __atomic_load_n(&disk_vol.lanes[i].bytes, __ATOMIC_RELAXED);

		f->area_bytes[disk_vol.lanes[i].area] += b > 0 ? (uint64_t)b : 0;
	}
	(void)a;
	rest = f->used_bytes;
	for (int i = 0; i < AREA_N; i++)
		if (i != AREA_OTHER)
			rest = rest > f->area_bytes[i] ? rest - f->area_bytes[i] : 0;
	f->area_bytes[AREA_OTHER] = rest;
}

int volume_json(char *buf, size_t size, const char *data)
{
	size_t n = 0;
	int w;

	if (!volume_on())
		return snprintf(buf, size, ",\"volume\":\"none\",\"lanes\":[]");
	w = snprintf(buf, size, ",\"volume\":\"%s:%s\",\"volume_mnt\":\"%s\",\"lanes\":[",
		     disk_vol.kind == VOLUME_LOOP ? "loop" : "block", disk_vol.file, data);
	for (unsigned i = 0; w >= 0 && (n += (size_t)w) < size && i < disk_vol.nlanes; i++)
		w = snprintf(buf + n, size - n, "%s{\"path\":\"%s\",\"dir\":\"%s\"}", i ? "," : "",
			     disk_vol.lanes[i].path, disk_vol.lanes[i].dir);
	if (w >= 0 && n < size)
		w = snprintf(buf + n, size - n, "],\"lanes_settled\":%s",
			     volume_lanes_settled() ? "true" : "false");
	return w < 0 || n + (size_t)w >= size ? -ENOSPC : (int)(n + (size_t)w);
}
