/* The content-addressed layer store (image.h has its layout). Only root
 * may enter it (0700): a layer keeps the image's setuid binaries, which
 * must never be reachable by a host user. */
#include "image.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/discard.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const store_subdirs[] = { "sha256", "tmp", "refs" };

static int store_make(const char *root)
{
	_cleanup_free_ char *copy = strdup(root);
	int r;

	if (!copy)
		return -ENOMEM;
	if ((r = mkdir_p(dirname(copy), 0755)) < 0)
		return r;
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int store_subdirs_make(struct store *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(store_subdirs); i++)
		if (mkdirat(s->root_fd, store_subdirs[i], 0700) < 0 && errno != EEXIST)
			return img_error_errno(-errno, "layer store %s/%s", s->root, store_subdirs[i]);
	return 0;
}

int store_open(struct store *s, const char *root, int flags)
{
	int r;

	*s = (struct store){ NULL, -EBADF, -EBADF };
	if (strchr(root, ':'))
		return img_error_errno(-EINVAL, "layer store %s: a ':' would split the layer list",
				       root);
	if (!(s->root = strdup(root)))
		return -ENOMEM;
	if ((flags & STORE_CREATE) && (r = store_make(root)) < 0)
		return img_error_errno(r, "layer store %s", root);
	s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->root_fd < 0)
		return errno == ENOENT && !(flags & STORE_CREATE) ? -ENOENT
						    : img_error_errno(-errno, "layer store %s", root);
	if ((r = store_subdirs_make(s)) < 0)
		return r;
	s->lock_fd = openat(s->root_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0)
		return img_error_errno(-errno, "layer store %s/lock", root);
	if (flock(s->lock_fd, flags & STORE_EXCL ? LOCK_EX : LOCK_SH) < 0)
		return img_error_errno(-errno, "layer store %s/lock", root);
	return 0;
}

void store_close(struct store *s)
{
	cleanup_closep(&s->lock_fd);
	cleanup_closep(&s->root_fd);
	free(s->root);
	*s = (struct store){ NULL, -EBADF, -EBADF };
}

bool store_has(struct store *s, const char *hex)
{
	char p[DIGEST_HEX + 16];
	struct stat st;

	snprintf(p, sizeof(p), "sha256/%s", hex);
	return fstatat(s->root_fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Unpacks of HEX that died (we hold HEX's lock: nobody else unpacks it). */
static void sweep_stale(struct store *s, const char *hex)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(s->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	size_t n = strlen(hex);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, hex, n) && de->d_name[n] == '.' &&
		    strcmp(de->d_name + n, ".lock") && rm_tree_at(dirfd(d), de->d_name) < 0)
			log_warn("layer store %s/tmp/%s: cannot remove", s->root, de->d_name);
}

static int lock_layer(struct store *s, const char *hex)
{
	char p[DIGEST_HEX + 16];
	int fd;

	snprintf(p, sizeof(p), "tmp/%s.lock", hex);
	fd = openat(s->root_fd, p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		int r = img_error_errno(-errno, "layer store %s/%s", s->root, p);

		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

int store_begin(struct store *s, const char *hex, struct store_unpack *u)
{
	_cleanup_free_ char *path = NULL;

	*u = (struct store_unpack){ .lock_fd = -EBADF, .dir_fd = -EBADF };
	snprintf(u->hex, sizeof(u->hex), "%s", hex);
	if ((u->lock_fd = lock_layer(s, hex)) < 0)
		return u->lock_fd;
	if (store_has(s, hex)) { /* unpacked meanwhile by another launch */
		cleanup_closep(&u->lock_fd);
		return 1;
	}
	sweep_stale(s, hex);
	snprintf(u->tmp, sizeof(u->tmp), "tmp/%s.%d.XXXXXX", hex, (int)getpid());
	if (asprintf(&path, "%s/%s", s->root, u->tmp) < 0)
		return -ENOMEM;
	if (!mkdtemp(path)) {
		u->tmp[0] = '\0';
	} else {
		memcpy(u->tmp, path + strlen(s->root) + 1, strlen(u->tmp));
		u->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	/* the layer's root as an image's "/" usually is, unless it says */
	if (u->dir_fd < 0 || fchmod(u->dir_fd, 0755) < 0) {
		int r = img_error_errno(-errno, "layer store %s", path);

		store_abort(s, u);
		return r;
	}
	return 0;
}

void store_abort(struct store *s, struct store_unpack *u)
{
	cleanup_closep(&u->dir_fd);
	if (u->tmp[0] && rm_tree_at(s->root_fd, u->tmp) < 0)
		log_warn("layer store %s/%s: cannot remove", s->root, u->tmp);
	cleanup_closep(&u->lock_fd);
	u->tmp[0] = '\0';
}

/* On disk (syncfs) before it is in place: after a crash a layer in
 * sha256/ is whole, and an unpack cut short is only in tmp/. */
int store_commit(struct store *s, struct store_unpack *u)
{
	char dst[DIGEST_HEX + 16];
	int r = 0, fd;

	snprintf(dst, sizeof(dst), "sha256/%s", u->hex);
	if (syncfs(u->dir_fd) < 0 ||
	    renameat2(s->root_fd, u->tmp, s->root_fd, dst, RENAME_NOREPLACE) < 0)
		r = img_error_errno(-errno, "layer store %s: %s into place", s->root, dst);
	if (r < 0) {
		store_abort(s, u);
		return r;
	}
	u->tmp[0] = '\0';
	if ((fd = openat(s->root_fd, "sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	store_abort(s, u); /* closes and unlocks; nothing left to remove */
	return 0;
}

int store_fetch(struct store *s, const char *hex, const struct layer_src *src,
		const char *expect_blob)
{
	struct store_unpack u;
	int r = store_begin(s, hex, &u);

	if (r != 0)
		return r > 0 ? 0 : r;
	log_debug("unpacking %s", src->what);
	if ((r = layer_unpack(src, u.dir_fd, expect_blob, hex)) < 0) {
		store_abort(s, &u);
		return r;
	}
	return store_commit(s, &u);
}

int store_dirs(struct store *s, const struct image_plan *p, char **out)
{
	size_t each = strlen(s->root) + DIGEST_HEX + 10, at = 0;
	char *buf = malloc(each * p->n + 1);

	if (!buf)
		return -ENOMEM;
	buf[0] = '\0';
	for (size_t i = p->n; i-- > 0;) /* the union's list is top first */
		at += (size_t)sprintf(buf + at, "%s%s/sha256/%s", at ? ":" : "", s->root,
				      p->layers[i].diff);
	*out = buf;
	return 0;
}
