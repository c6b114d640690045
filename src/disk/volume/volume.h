/* cvmfsd disk: the workspace volume (issue 14, doc/cvmfsd-disk.md *Volume*).
 *
 * With --volume loop|block:PATH the daemon owns an ext4 file system whose
 * size, as statfs shows it (f_blocks * f_bsize), is exactly the limit. It is
 * mounted AT DATA, so DATA/upper, DATA/work and DATA/state live on it, and
 * the lanes (DATA/lanes/home, DATA/lanes/var-lib-docker, ...) are published
 * for the launcher to bind with no FUSE on their path. The kernel enforces
 * the limit by capacity; the daemon keeps the figures.
 *
 * Order at start: volume_start (lock, create or attach, fsck, prefetch of
 * the metadata a start reads, mount at DATA) -> the union's usage ->
 * volume_reserve (the image's share) -> volume_lanes_prepare -> FUSE mount
 * -> volume_lanes_fill (first time only) -> status published. At exit:
 * volume_stop (lazy unmount; autoclear detaches the loop device once the
 * last bind lets go). */
#pragma once

#include "core/core.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/statvfs.h>

enum volume_kind { VOLUME_NONE, VOLUME_LOOP, VOLUME_BLOCK };

#define VOLUME_MAX_LANES 8

struct vol_lane {
	char *path;      /* "/var/lib/docker": absolute, inside the union */
	char *dir;       /* "DATA/lanes/var-lib-docker" */
	enum area area;  /* the area its bytes count in */
	int64_t bytes;   /* last scan: allocated bytes of its distinct inodes (atomic) */
};

struct volume {
	enum volume_kind kind;
	char *file;      /* loop: VOLUME_DIR/NAME.img; block: the device */
	char *dir;       /* --volume-dir */
	bool alloc_full; /* volume-alloc = full: no holes in the file */
	int file_fd;     /* loop: the image file, flock'ed while we run */
	int dev_fd;      /* loop: the device, held while we run (for an upgrade) */
	bool adopt;      /* both fds carried over by an upgrade's exec */
	char loopdev[64];
	bool created;    /* made by this start: lanes are filled */
	bool mounted;    /* by us, at DATA */
	int reserve_fd;  /* DATA/.image-reserve */
	uint64_t capacity; /* f_blocks * f_bsize last measured */
	struct vol_lane lanes[VOLUME_MAX_LANES];
	unsigned nlanes;
};

extern struct volume disk_vol;

/* Options: --volume, --volume-dir, --lanes, volume-alloc. One line on
 * stderr naming the option when a value is bad. */
int volume_configure(const char *spec, const char *dir, const char *lanes, const char *alloc,
		     const char *data, const char *name);
static inline bool volume_on(void)
{
	return disk_vol.kind != VOLUME_NONE;
}
/* Before DATA is opened: lock, create (or shrink), attach, fsck, prefetch, mount. */
int volume_start(const char *data, uint64_t limit, uint64_t inodes);
/* Hold the image's share: DATA/.image-reserve of image_bytes, allocated. */
int volume_reserve(int data_fd, uint64_t image_bytes);
/* DATA/lanes/<name> for every lane. */
int volume_lanes_prepare(int data_fd);
/* First start of a volume: copy what the union (mounted at mnt) has under
 * each lane path into its lane; make each lane path a directory of the
 * union (a mountpoint for the launcher's bind). */
int volume_lanes_fill(const char *mnt);
/* SIGHUP: a larger limit grows the volume online; a smaller one is
 * refused until the next start. Returns the limit now in force. */
uint64_t volume_resize(uint64_t limit);
/* The volume's statfs, for the union's statfs and the figures. */
int volume_statfs(struct statvfs *sv);
/* Overwrite the published figures with the volume's: limit, used, avail,
 * inodes; areas from the union's counters and the lanes' scans. */
void volume_figures(struct figures *f, const struct acct *a);
/* The JSON fields this volume adds to the status file. */
int volume_json(char *buf, size_t size, const char *data);
/* No bytes on the volume outside the union since the lanes' last walk. */
bool volume_lanes_settled(void);
/* Start and stop the lanes' scanner thread. */
int volume_scanner_start(int data_fd, const struct acct *a);
void volume_scanner_stop(void);
/* --discard-upper: empty DATA/upper except kept paths. */
int volume_discard_upper(int upper_fd, const char *persist);
/* Upgrade in place (SIGUSR2: the supervisor execs the binary again,
 * disk_survive.c): the exec carries the image file (its flock held
 * throughout) and the loop device; their numbers ride in the environment.
 * volume_carry_record, in the supervisor before it runs: 0 or -errno.
 * volume_inherit, first thing after an exec (upgraded) or a fresh start
 * (a stale record dropped). volume_start then adopts the mounted volume:
 * no attach, no fsck, no mount. */
int volume_carry_record(void);
bool volume_carries(int fd);
void volume_inherit(bool upgraded);
/* At exit: unmount DATA lazily, close what we hold. */
void volume_stop(const char *data);
