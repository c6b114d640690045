/* The status a cvmfsd disk publishes at RUN_DIR/disk/NAME.json (written
 * by src/disk/figures.c), read through this one parser by every other
 * program: cvmfs-stat shows it, cvm-launch learns what a running disk
 * serves (data, image, id shift, limit, volume and lanes) from it. A flat
 * JSON object; strings may carry JSON's escapes; "lanes" is an array of
 * {"path": ..., "dir": ...}; members this reader does not know are
 * skipped, so that the file of a newer daemon still reads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The accounting areas, in the daemon's order (src/disk/core.h). */
enum { DISK_AREA_IMAGE, DISK_AREA_DOCKER, DISK_AREA_HOME, DISK_AREA_OTHER, DISK_AREAS };

struct disk_status_lane {
	char *path; /* inside the CVM ("/home") */
	char *dir;  /* on the host, on the volume */
};

struct disk_status {
	char name[256];
	char state[16]; /* running, stopped (cvmfs-stat adds crashed) */
	uint64_t limit_bytes, used_bytes, avail_bytes;
	uint64_t area_bytes[DISK_AREAS];
	uint64_t inodes_used, inodes_limit, known_inodes;
	long pid;
	/* FUSE requests answered and errors (include/cvmfs/req_counters.h);
	 * 0 in files of older daemons. */
	uint64_t requests, errors;
	char *volume;     /* "loop:FILE", "block:DEV", "none"; NULL in older files */
	char *volume_mnt; /* where the daemon mounted the volume; NULL if none */
	/* What it serves (NULL in files of older daemons): its --data, --image
	 * ("" for none) and --image-idmap ("" for none). */
	char *data, *image, *image_idmap;
	struct disk_status_lane *lanes;
	size_t n_lanes;
};

/* 0, or -EINVAL (not such a status: name and state are required) or
 * -ENOMEM; *s is filled either way and is disk_status_free()'s to free. */
int disk_status_parse(const char *text, struct disk_status *s);
void disk_status_free(struct disk_status *s);
/* RUN_DIR/disk/NAME.json read (a regular file of at most DISK_STATUS_MAX
 * bytes) and parsed: 0, -ENOENT, or another negative errno. */
#define DISK_STATUS_MAX (1 << 20)
int disk_status_load(const char *run_dir, const char *name, struct disk_status *s);
