/* Full recount of the layers (start after a crash or an unclean stop), and
 * the area walk of a renamed tree.
 *
 * The rules are those of DESIGN.md §3: every distinct inode of the upper
 * layer and of the image layers (each layer's root included) counts once,
 * at st_blocks * 512; a file with several links counts once, in the area of
 * the first path the walk meets (all its links are in one area: link and
 * rename refuse to spread them over two, see union.h). Upper objects count in the area of their
 * union path, image objects in "image". */
#include "union/union.h"

#include "cvmfs/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct inoset {
	uint64_t *keys; /* (dev << 40) ^ ino, 0 = empty */
	size_t cap, n;
};

static uint64_t ino_key(const struct stat *st)
{
	uint64_t k = ((uint64_t)st->st_dev << 40) ^ (uint64_t)st->st_ino;

	return k ? k : 1;
}

/* 1 if new, 0 if seen, -ENOMEM. */
static int inoset_add(struct inoset *s, uint64_t k)
{
	size_t h;

	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *keys = calloc(cap, sizeof(*keys));

		if (!keys)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->keys[i])
				continue;
			for (h = (s->keys[i] * 0x9e3779b97f4a7c15ULL) & (cap - 1); keys[h];
			     h = (h + 1) & (cap - 1))
				;
			keys[h] = s->keys[i];
		}
		free(s->keys);
		s->keys = keys;
		s->cap = cap;
	}
	for (h = (k * 0x9e3779b97f4a7c15ULL) & (s->cap - 1); s->keys[h]; h = (h + 1) & (s->cap - 1))
		if (s->keys[h] == k)
			return 0;
	s->keys[h] = k;
	s->n++;
	return 1;
}

struct walk {
	struct acct *a;
	struct inoset links;
	bool image;
	char path[PATH_MAX];
};

static int count(struct walk *w, const struct stat *st, enum area ar)
{
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		int r = inoset_add(&w->links, ino_key(st));

		if (r <= 0)
			return r;
	}
	acct_settle(w->a, w->image ? AREA_IMAGE : ar, 0, blocks_bytes(st), 0, 1);
	return 0;
}

static int walk_dir(struct walk *w, int dfd, size_t plen, enum area ar);

static int walk_entry(struct walk *w, int dfd, const char *name, size_t plen, enum area ar)
{
	struct stat st;
	size_t nlen = strlen(name);
	enum area car = ar;
	int cfd, r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* The path only tells the area, which its first names decide: deeper
	 * than the buffer, it stays at the prefix it has (same area). */
	if (plen + nlen + 2 < sizeof(w->path)) {
		if (plen)
			w->path[plen++] = '/';
		memcpy(w->path + plen, name, nlen + 1);
		plen += nlen;
	}
	if (ar == AREA_OTHER)
		car = area_of_path(w->path);
	r = count(w, &st, car);
	if (r < 0 || !S_ISDIR(st.st_mode))
		return r;
	cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return -errno;
	return walk_dir(w, cfd, plen, car);
}

/* Takes dfd. */
static int walk_dir(struct walk *w, int dfd, size_t plen, enum area ar)
{
	_cleanup_closedir_ DIR *d = fdopendir(dfd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		close(dfd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = walk_entry(w, dirfd(d), de->d_name, plen, ar);
		w->path[plen] = '\0';
	}
	return r;
}

static int walk_layer(struct walk *w, unsigned layer)
{
	struct stat st;
	int fd = openat(disk_ctx->layers[layer].fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	w->image = layer > 0;
	w->path[0] = '\0';
	r = count(w, &st, AREA_OTHER);
	return r < 0 ? r : walk_dir(w, fd, 0, AREA_OTHER);
}

int scan_all(struct acct *a, uint64_t *image_inodes)
{
	struct walk *w = calloc(1, sizeof(*w));
	int r = 0;

	if (!w)
		return -ENOMEM;
	w->a = a;
	for (unsigned l = 1; l < disk_ctx->nlayers && r == 0; l++)
		r = walk_layer(w, l);
	*image_inodes = (uint64_t)a->used_inodes;
	if (r == 0)
		r = walk_layer(w, 0);
	free(w->links.keys);
	free(w);
	return r;
}

/* ---- area moves ---- */

/* Could objects at or below rel be in more than one area (rel is an
 * ancestor of an area root)? */
static bool area_mixed_below(const char *rel)
{
	return !strcmp(rel, ".") || !strcmp(rel, "var") || !strcmp(rel, "var/lib");
}

bool area_paths_differ(const char *oldrel, const char *newrel)
{
	return area_of_path(oldrel) != area_of_path(newrel) || area_mixed_below(oldrel) ||
	       area_mixed_below(newrel);
}

struct amove {
	char oldp[PATH_MAX], newp[PATH_MAX];
	struct inoset links; /* a file with several links moves once */
	bool check;          /* only look for files with several links */
	bool has_links;      /* ... and one was found: stop */
};

static void amove_one(struct amove *m, const struct stat *st)
{
	if (m->check) {
		m->has_links |= !S_ISDIR(st->st_mode) && st->st_nlink > 1;
		return;
	}
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && inoset_add(&m->links, ino_key(st)) <= 0)
		return;
	acct_move(&disk_ctx->acct, area_of_path(m->oldp), area_of_path(m->newp), blocks_bytes(st), 1);
}

static void amove_tree(struct amove *m, int dfd);

static void amove_entry(struct amove *m, int dfd, const char *name)
{
	size_t ol = strlen(m->oldp), nl = strlen(m->newp);
	struct stat st;
	int cfd;

	/* As in walk_entry: past the buffer, the prefix tells the area. */
	if (path_join(m->oldp, sizeof(m->oldp), m->oldp, name) < 0)
		m->oldp[ol] = '\0';
	if (path_join(m->newp, sizeof(m->newp), m->newp, name) < 0)
		m->newp[nl] = '\0';
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		goto out;
	amove_one(m, &st);
	if (S_ISDIR(st.st_mode)) {
		cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0)
			amove_tree(m, cfd);
	}
out:
	m->oldp[ol] = '\0';
	m->newp[nl] = '\0';
}

/* Takes dfd. */
static void amove_tree(struct amove *m, int dfd)
{
	_cleanup_closedir_ DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (!d) {
		close(dfd);
		return;
	}
	while (!m->has_links && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			amove_entry(m, dirfd(d), de->d_name);
}

static void amove_run(struct amove *m, int dirfd, const char *name)
{
	struct stat st;
	int fd;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	amove_one(m, &st);
	if (S_ISDIR(st.st_mode) && !m->has_links) {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			amove_tree(m, fd);
	}
}

void area_move_object(int dirfd, const char *name, const char *oldrel, const char *newrel)
{
	struct amove *m = calloc(1, sizeof(*m));

	if (!m)
		return;
	snprintf(m->oldp, sizeof(m->oldp), "%s", oldrel);
	snprintf(m->newp, sizeof(m->newp), "%s", newrel);
	amove_run(m, dirfd, name);
	free(m->links.keys);
	free(m);
}

bool area_move_splits_links(int dirfd, const char *name)
{
	struct amove *m = calloc(1, sizeof(*m));
	bool r;

	if (!m)
		return true; /* refused rather than split unchecked */
	m->check = true;
	amove_run(m, dirfd, name);
	r = m->has_links;
	free(m);
	return r;
}
