/* Merged directory listings: the upper layer first, then each merged image
 * layer; a name is listed once, from its topmost layer; whiteouts (the
 * union's in upper, OCI and overlayfs ones in image layers) hide the name
 * in the layers below theirs and are never listed. */
#include "union/union.h"

#include "cvmfs/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* An open-addressing set of names; hidden names carry layer = UINT_MAX. */
struct nameset {
	char **names;
	size_t cap, n;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int nameset_grow(struct nameset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	char **names = calloc(cap, sizeof(*names));

	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		size_t h;

		if (!s->names[i])
			continue;
		for (h = name_hash(s->names[i]) & (cap - 1); names[h]; h = (h + 1) & (cap - 1))
			;
		names[h] = s->names[i];
	}
	free(s->names);
	s->names = names;
	s->cap = cap;
	return 0;
}

/* 1 if name was new (and is now in the set), 0 if present, -ENOMEM. */
static int nameset_add(struct nameset *s, char *name)
{
	size_t h;

	if ((s->n + 1) * 2 > s->cap && nameset_grow(s) < 0)
		return -ENOMEM;
	for (h = name_hash(name) & (s->cap - 1); s->names[h]; h = (h + 1) & (s->cap - 1))
		if (!strcmp(s->names[h], name))
			return 0;
	s->names[h] = name;
	s->n++;
	return 1;
}

static bool nameset_has(const struct nameset *s, const char *name)
{
	if (!s->cap)
		return false;
	for (size_t h = name_hash(name) & (s->cap - 1); s->names[h]; h = (h + 1) & (s->cap - 1))
		if (!strcmp(s->names[h], name))
			return true;
	return false;
}

static int dlist_add(struct dlist *l, char *name, unsigned char type, unsigned layer,
		     uint64_t real_ino)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct dent *e = realloc(l->ents, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		l->ents = e;
		l->cap = cap;
	}
	l->ents[l->n++] = (struct dent){ name, type, layer, ino_for(layer, real_ino) };
	return 0;
}

void dlist_free(struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ents[i].name);
	free(l->ents);
	*l = (struct dlist){ 0 };
}

/* What one entry of a layer is: 1 a listable entry, 0 a whiteout (name
 * added to hide), a negative errno for metadata or an entry gone: skip. */
static int classify(unsigned layer, int dfd, struct dirent *de, unsigned char *type,
		    const char **hide)
{
	struct stat st;

	*type = de->d_type;
	*hide = NULL;
	if (layer > 0 && oci_is_meta(de->d_name)) {
		*hide = oci_whiteout_target(de->d_name);
		return *hide ? 0 : -ENOENT;
	}
	if (de->d_type != DT_CHR && de->d_type != DT_UNKNOWN)
		return 1;
	if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*type = IFTODT(st.st_mode);
	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(0, 0))
		return 1;
	if (layer > 0 || is_union_whiteout(dfd, de->d_name, &st)) {
		*hide = de->d_name;
		return 0;
	}
	return 1;
}

/* The directory to list in layer: reopened for reading through the fd its
 * node keeps there (path.c), else by its union path (rel, or built from
 * dir where rel is NULL). */
static int layer_dir_open(unsigned layer, const char *rel, struct dnode *dir)
{
	_cleanup_free_ char *path = NULL;
	bool owned = false;
	int kept = -EAGAIN, fd;

	if (dir)
		kept = layer ? node_lower_dirfd(dir, layer, &owned) : node_upper_dirfd(dir);
	if (kept < 0 && !rel && (fd = node_path(dir, &path)) < 0)
		return fd;
	if (kept < 0)
		return layer_open(layer, rel ? rel : path, O_RDONLY | O_DIRECTORY);
	fd = openat(kept, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	if (owned)
		close(kept);
	return fd;
}

/* One layer's entries: new names join the listing; whiteouts are collected
 * in hidden_now and only hide names of the layers below. */
static int list_layer(unsigned layer, const char *rel, struct dnode *dir, struct dlist *l,
		      struct nameset *seen, struct nameset *hidden_now)
{
	int fd = layer_dir_open(layer, rel, dir);
	_cleanup_closedir_ DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	const char *hide;
	unsigned char type;
	char *name;
	int r;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return fd == -ENOENT || fd == -ENOTDIR ? 0 : fd < 0 ? fd : -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = classify(layer, dirfd(d), de, &type, &hide);
		if (r < 0 || (r > 0 && nameset_has(seen, de->d_name)))
			continue;
		if (!(name = strdup(r ? de->d_name : hide)))
			return -ENOMEM;
		r = r ? nameset_add(seen, name) : nameset_add(hidden_now, name);
		if (r <= 0) {
			free(name);
			if (r < 0)
				return r;
			continue;
		}
		if (hide)
			continue;
		if (dlist_add(l, name, type, layer, de->d_ino) < 0)
			return -ENOMEM;
		name = NULL;
	}
	return 0;
}

static void nameset_free(struct nameset *s, bool free_names)
{
	for (size_t i = 0; free_names && i < s->cap; i++)
		free(s->names[i]);
	free(s->names);
	*s = (struct nameset){ 0 };
}

/* Hidden names move into seen (owned by it from now on). */
static int nameset_merge(struct nameset *seen, struct nameset *hidden, struct nameset *owned)
{
	for (size_t i = 0; i < hidden->cap; i++) {
		if (!hidden->names[i])
			continue;
		if (nameset_add(seen, hidden->names[i]) <= 0 ||
		    nameset_add(owned, hidden->names[i]) < 0) {
			free(hidden->names[i]);
		}
	}
	nameset_free(hidden, false);
	return 0;
}

int dir_list(struct dnode *dir, const char *rel, bool upper, uint32_t lmask, struct dlist *l)
{
	struct nameset seen = { 0 }, hidden = { 0 }, owned = { 0 };
	int r = 0;

	*l = (struct dlist){ 0 };
	if (dir) /* borrowing dir's kept fds (path.c) */
		urcu_memb_read_lock();
	for (unsigned layer = upper ? 0 : 1; layer < disk_ctx->nlayers && r == 0; layer++) {
		if (layer > 0 && !(lmask & (1u << (layer - 1))))
			continue;
		r = list_layer(layer, rel, dir, l, &seen, &hidden);
		if (r == 0)
			r = nameset_merge(&seen, &hidden, &owned);
	}
	nameset_free(&seen, false);
	nameset_free(&hidden, true);
	nameset_free(&owned, true);
	if (dir)
		urcu_memb_read_unlock();
	if (r < 0)
		dlist_free(l);
	return r;
}
