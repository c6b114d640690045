/* The id range of a user-namespaced CVM, like a line of /etc/subuid but
 * kept by the launcher: IDMAP_DIR/NAME holds "UID GID COUNT". Files on the
 * workspace disk belong to the mapped ids, so a workspace keeps its range
 * across launches; two workspaces never share one, so one CVM's root is
 * nobody to another's files. The directory is locked (flock on
 * IDMAP_DIR/.lock) while a range is chosen and recorded. Runs in the parent
 * at the end of step "validate", after the per-name lock. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The range every --userns CVM had before ranges were assigned. */
#define LEGACY_BASE 100000ULL
#define LEGACY_COUNT 65536ULL

struct idrange {
	char name[256]; /* a file name */
	uint64_t uid, gid, count;
};

struct registry {
	struct idrange *r;
	int n, cap;
};

static bool overlaps(uint64_t a, uint64_t na, uint64_t b, uint64_t nb)
{
	return a < b + nb && b < a + na;
}

static int read_record(int dirfd, const char *name, struct idrange *out)
{
	char buf[128];
	unsigned long long u, g, c;
	ssize_t n = read_at_buf(dirfd, name, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	if (sscanf(buf, "%llu %llu %llu", &u, &g, &c) != 3 || !c)
		return -EINVAL;
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->uid = u;
	out->gid = g;
	out->count = c;
	return 0;
}

static void registry_free(struct registry *reg)
{
	free(reg->r);
	reg->r = NULL;
}

/* Every record but NAME's; NAME's in *mine (count 0 if none). A record
 * that cannot be read is one line and a failure: its range is unknown,
 * and guessing could hand it to a second CVM. */
static int registry_load(struct launch *L, int dirfd, struct registry *reg,
			 struct idrange *mine)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;
	int r = 0;

	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return step_error(L, r, "%s", L->o.idmap_dir);
	}
	while (r == 0 && (de = readdir(d))) {
		bool own = !strcmp(de->d_name, L->o.name);
		struct idrange *dst;

		/* Only regular files: a FIFO planted here must not block us. */
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (!own && reg->n == reg->cap) {
			struct idrange *n = reallocarray(reg->r, reg->cap * 2 + 16, sizeof(*n));

			if (!n) {
				r = -ENOMEM;
				break;
			}
			reg->r = n;
			reg->cap = reg->cap * 2 + 16;
		}
		dst = own ? mine : &reg->r[reg->n];
		if ((r = read_record(dirfd, de->d_name, dst)) < 0)
			r = step_error(L, r, "%s/%s: want 'UID GID COUNT'", L->o.idmap_dir,
				       de->d_name);
		else if (!own)
			reg->n++;
	}
	closedir(d);
	return r;
}

/* The workspace another recorded range of ids overlaps, or NULL. */
static const struct idrange *clash(const struct registry *reg, const struct idrange *want)
{
	for (int i = 0; i < reg->n; i++)
		if (overlaps(want->uid, want->count, reg->r[i].uid, reg->r[i].count) ||
		    overlaps(want->gid, want->count, reg->r[i].gid, reg->r[i].count))
			return &reg->r[i];
	return NULL;
}

/* The lowest free block at or above --userns-base, same number for uids
 * and gids. */
static int allocate(struct launch *L, const struct registry *reg, struct idrange *want)
{
	uint64_t step = (want->count + USERNS_BLOCK - 1) / USERNS_BLOCK * USERNS_BLOCK;

	for (uint64_t b = L->o.userns_base; b + want->count <= UINT32_MAX; b += step) {
		want->uid = want->gid = b;
		if (!clash(reg, want))
			return 0;
	}
	return step_error(L, -ENOSPC, "no free range of %llu ids above --userns-base %llu in %s",
			  (unsigned long long)want->count,
			  (unsigned long long)L->o.userns_base, L->o.idmap_dir);
}

/* A workspace first launched with the old fixed range (100000, 65536):
 * something at the top of DATA/upper is owned by an id in it. It keeps
 * that range (recorded now) while no other workspace holds it. */
static bool legacy_workspace(struct launch *L)
{
	_cleanup_free_ char *upper = NULL;
	struct dirent *de;
	struct stat st;
	bool found = false;
	DIR *d;

	if (asprintf(&upper, "%s/upper", L->o.data) < 0 || !(d = opendir(upper)))
		return false;
	while (!found && (de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			found = st.st_uid >= LEGACY_BASE && st.st_uid < LEGACY_BASE + LEGACY_COUNT;
	closedir(d);
	return found;
}

/* Atomically: a crash leaves the old record or the new one. */
static int record(struct launch *L, int dirfd, const struct idrange *want)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	char line[96];
	int n = snprintf(line, sizeof(line), "%llu %llu %llu\n", (unsigned long long)want->uid,
			 (unsigned long long)want->gid, (unsigned long long)want->count);

	if (asprintf(&tmp, ".%s.tmp", L->o.name) < 0)
		return -ENOMEM;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write_all(fd, line, (size_t)n) < 0 || fsync(fd) < 0 ||
	    renameat(dirfd, tmp, dirfd, L->o.name) < 0) {
		int r = -errno;

		unlinkat(dirfd, tmp, 0);
		return step_error(L, r, "record %s/%s", L->o.idmap_dir, L->o.name);
	}
	return 0;
}

/* Given ids (--userns-uid/-gid) win and are recorded; else NAME's record;
 * else the legacy range for a legacy workspace; else a new block. */
static int choose(struct launch *L, const struct registry *reg, const struct idrange *mine,
		  struct idrange *want)
{
	const struct idrange *other;

	want->count = L->o.userns_count;
	if (L->o.userns_uid || L->o.userns_gid) {
		want->uid = L->o.userns_uid ? L->o.userns_uid : L->o.userns_gid;
		want->gid = L->o.userns_gid ? L->o.userns_gid : L->o.userns_uid;
	} else if (mine->count) {
		*want = *mine;
		return 0;
	} else if (legacy_workspace(L)) {
		want->uid = want->gid = LEGACY_BASE;
		want->count = LEGACY_COUNT;
		if ((other = clash(reg, want)))
			return step_error(L, -EBUSY,
					  "%s/upper is owned by the old range %llu+%llu, now workspace %s's: give this one --userns-uid",
					  L->o.data, LEGACY_BASE, LEGACY_COUNT, other->name);
		log_info("%s: keeps the range %llu+%llu its DATA/upper is owned by", L->o.name,
			 LEGACY_BASE, LEGACY_COUNT);
		return 0;
	} else {
		return allocate(L, reg, want);
	}
	if (want->uid > UINT32_MAX - want->count || want->gid > UINT32_MAX - want->count)
		return step_error(L, -EINVAL, "--userns-uid/-gid + --userns-count: beyond 32-bit ids");
	if ((other = clash(reg, want)))
		return step_error(L, -EBUSY,
				  "--userns-uid %llu --userns-gid %llu --userns-count %llu overlaps workspace %s's range (%llu %llu %llu, %s/%s)",
				  (unsigned long long)want->uid, (unsigned long long)want->gid,
				  (unsigned long long)want->count, other->name,
				  (unsigned long long)other->uid, (unsigned long long)other->gid,
				  (unsigned long long)other->count, L->o.idmap_dir, other->name);
	return 0;
}

static int lock_dir(struct launch *L, int *dirfd, int *lockfd)
{
	int r = mkdir_p(L->o.idmap_dir, 0755);

	if (r < 0)
		return step_error(L, r, "--idmap-dir %s", L->o.idmap_dir);
	*dirfd = open(L->o.idmap_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return step_error(L, -errno, "--idmap-dir %s", L->o.idmap_dir);
	*lockfd = openat(*dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (*lockfd < 0 || flock(*lockfd, LOCK_EX) < 0)
		return step_error(L, -errno, "lock %s/.lock", L->o.idmap_dir);
	return 0;
}

int idrange_assign(struct launch *L)
{
	_cleanup_close_ int dirfd = -EBADF, lockfd = -EBADF;
	struct registry reg = { NULL, 0, 0 };
	struct idrange mine = { .count = 0 }, want = { .count = 0 };
	int r;

	if (!L->o.userns)
		return 0;
	if ((r = lock_dir(L, &dirfd, &lockfd)) < 0)
		return r;
	r = registry_load(L, dirfd, &reg, &mine);
	if (r == 0)
		r = choose(L, &reg, &mine, &want);
	registry_free(&reg);
	if (r < 0)
		return r;
	if ((want.uid != mine.uid || want.gid != mine.gid || want.count != mine.count) &&
	    (r = record(L, dirfd, &want)) < 0)
		return r;
	L->o.userns_uid = want.uid;
	L->o.userns_gid = want.gid;
	L->o.userns_count = want.count;
	log_debug("ids: %s %llu %llu %llu", L->o.name, (unsigned long long)want.uid,
		  (unsigned long long)want.gid, (unsigned long long)want.count);
	return 0;
}
