/* cvmctl images: the layer store of image references (src/launch/image.h):
 * each layer with its size and the workspaces whose ref names it;
 * --prune removes the layers no ref names (and what dead unpacks left),
 * under the store's exclusive lock, so never a layer a launch is about to
 * use; --forget NAME drops a deleted workspace's ref. */
#include "ctl.h"
#include "image.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/discard.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct layer_row {
	char hex[DIGEST_HEX + 1];
	unsigned long long bytes;
	char users[1024]; /* "a,b" */
};

struct ref {
	char name[128];
	struct ref_layers l;
};

struct refs {
	struct ref r[256];
	size_t n;
};

static void refs_freep(struct refs **r)
{
	for (size_t i = 0; *r && i < (*r)->n; i++)
		ref_layers_free(&(*r)->r[i].l);
	free(*r);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct ref *)a)->name, ((const struct ref *)b)->name);
}

static int by_hex(const void *a, const void *b)
{
	return strcmp(((const struct layer_row *)a)->hex, ((const struct layer_row *)b)->hex);
}

static int load_refs(struct store *s, struct refs *r)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(s->root_fd, "refs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return log_error_errno(-errno, "layer store %s/refs", s->root);
	}
	while ((de = readdir(d)) && r->n < ARRAY_SIZE(r->r)) {
		if (!ctl_name_ok(de->d_name) || strlen(de->d_name) >= sizeof(r->r[0].name))
			continue;
		if (store_ref_layers(s, de->d_name, &r->r[r->n].l) < 0)
			continue;
		snprintf(r->r[r->n++].name, sizeof(r->r[0].name), "%s", de->d_name);
	}
	qsort(r->r, r->n, sizeof(r->r[0]), by_name);
	return 0;
}

/* Allocated bytes of the distinct inodes below a layer (hard links once),
 * as the union charges them. nftw has no context: these are its. */
static unsigned long long walk_bytes;
static ino_t *walk_seen;
static size_t walk_n;

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (st->st_nlink > 1 && !S_ISDIR(st->st_mode)) {
		for (size_t i = 0; i < walk_n; i++)
			if (walk_seen[i] == st->st_ino)
				return 0;
		ino_t *more = realloc(walk_seen, (walk_n + 1) * sizeof(*more));

		if (!more)
			return -1;
		walk_seen = more;
		walk_seen[walk_n++] = st->st_ino;
	}
	walk_bytes += (unsigned long long)st->st_blocks * 512;
	return 0;
}

static unsigned long long layer_bytes(struct store *s, const char *hex)
{
	_cleanup_free_ char *path = NULL;

	walk_bytes = 0;
	if (asprintf(&path, "%s/sha256/%s", s->root, hex) < 0 ||
	    nftw(path, walk_one, 32, FTW_PHYS | FTW_MOUNT) < 0)
		log_warn("%s: size not known: %s", path ? path : hex, strerror(errno));
	free(walk_seen);
	walk_seen = NULL;
	walk_n = 0;
	return walk_bytes;
}

static void users_of(const struct refs *r, const char *hex, char *out, size_t size)
{
	size_t at = 0;

	out[0] = '\0';
	for (size_t i = 0; i < r->n; i++)
		for (size_t j = 0; j < r->r[i].l.n; j++)
			if (!strcmp(r->r[i].l.hex[j], hex) && at < size) {
				at += (size_t)snprintf(out + at, size - at, "%s%s", at ? "," : "",
						       r->r[i].name);
				break;
			}
}

static bool is_hex_dir(const struct dirent *de)
{
	return strlen(de->d_name) == DIGEST_HEX &&
	       strspn(de->d_name, "0123456789abcdef") == DIGEST_HEX;
}

/* Every layer of the store, sorted by digest. */
static int load_layers(struct store *s, const struct refs *r, struct layer_row **rows, size_t *n)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(s->root_fd, "sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return log_error_errno(-errno, "layer store %s/sha256", s->root);
	}
	while ((de = readdir(d))) {
		struct layer_row *more;

		if (!is_hex_dir(de))
			continue;
		if (!(more = realloc(*rows, (*n + 1) * sizeof(*more))))
			return -ENOMEM;
		*rows = more;
		memcpy(more[*n].hex, de->d_name, DIGEST_HEX + 1);
		more[*n].bytes = layer_bytes(s, de->d_name);
		users_of(r, de->d_name, more[*n].users, sizeof(more[*n].users));
		(*n)++;
	}
	qsort(*rows, *n, sizeof(**rows), by_hex);
	return 0;
}

static void print_rows(const struct layer_row *rows, size_t n, bool json)
{
	if (!json)
		printf("%-19s %12s  %s\n", "LAYER", "SIZE", "WORKSPACES");
	else
		printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct layer_row *l = &rows[i];

		if (!json) {
			printf("sha256:%.12s %12llu  %s\n", l->hex, l->bytes, *l->users ? l->users : "-");
			continue;
		}
		printf("%s\n  {\"digest\": \"sha256:%s\", \"size_bytes\": %llu, \"workspaces\": [", i ? "," : "",
		       l->hex, l->bytes);
		for (const char *u = l->users; *u;) {
			size_t len = strcspn(u, ",");

			printf("%s\"%.*s\"", u == l->users ? "" : ", ", (int)len, u);
			u += len + (u[len] == ',');
		}
		printf("]}");
	}
	if (json)
		printf("%s]\n", n ? "\n" : "");
}

/* A layer goes out of sha256/ in one rename, then is removed in tmp/. */
static int prune_layer(struct store *s, const struct layer_row *l)
{
	char from[DIGEST_HEX + 16], to[DIGEST_HEX + 32];
	int r;

	snprintf(from, sizeof(from), "sha256/%s", l->hex);
	snprintf(to, sizeof(to), "tmp/%s.prune", l->hex);
	if (renameat(s->root_fd, from, s->root_fd, to) < 0)
		return log_error_errno(-errno, "layer store %s/%s", s->root, from);
	if ((r = rm_tree_at(s->root_fd, to)) < 0)
		return log_error_errno(r, "layer store %s/%s", s->root, to);
	printf("removed sha256:%s (%llu bytes)\n", l->hex, l->bytes);
	return 0;
}

/* Under the exclusive lock nobody unpacks: all of tmp/ is leftovers. */
static int sweep_tmp(struct store *s)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(s->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
	struct dirent *de;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return log_error_errno(-errno, "layer store %s/tmp", s->root);
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    rm_tree_at(dirfd(d), de->d_name) < 0)
			r = log_error_errno(-errno, "layer store %s/tmp/%s", s->root, de->d_name);
	return r;
}

static int prune(struct store *s, const struct layer_row *rows, size_t n)
{
	unsigned long long freed = 0;
	size_t removed = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		if (rows[i].users[0])
			continue;
		if (prune_layer(s, &rows[i]) < 0) {
			r = -EIO;
			continue;
		}
		removed++;
		freed += rows[i].bytes;
	}
	if (sweep_tmp(s) < 0)
		r = -EIO;
	printf("%zu layers removed, %llu bytes freed\n", removed, freed);
	return r;
}

static int forget(const struct ctl_opts *o, struct store *s)
{
	struct cvm c;

	if (!ctl_name_ok(o->forget)) {
		log_error("images --forget '%s': not a workspace name", o->forget);
		return -EINVAL;
	}
	if (cvm_read(o->run_dir, o->forget, &c) == 0 && c.running) {
		log_error("images --forget %s: the CVM is running; stop it first", o->forget);
		return -EBUSY;
	}
	return store_ref_remove(s, o->forget);
}

int ctl_images(const struct ctl_opts *o)
{
	__attribute__((cleanup(store_close))) struct store s = { NULL, -EBADF, -EBADF };
	/* only this verb's table has --layer-store (opts_free frees by table) */
	const char *root = o->layer_store ? o->layer_store : IMAGE_STORE_DEFAULT;
	__attribute__((cleanup(refs_freep))) struct refs *r = calloc(1, sizeof(*r));
	_cleanup_free_ struct layer_row *rows = NULL;
	size_t n = 0;
	int rc;

	image_log_step = "images: ";
	if (!r)
		return CTL_EXIT_FAIL;
	rc = store_open(&s, root, o->prune ? STORE_EXCL : 0);
	if (rc == -ENOENT && !o->forget) { /* no store yet: nothing in it */
		if (o->prune)
			printf("0 layers removed, 0 bytes freed\n");
		else
			print_rows(NULL, 0, o->json);
		return 0;
	}
	if (rc < 0)
		return rc == -ENOENT ? (log_error("layer store %s: none", root), CTL_EXIT_FAIL)
				     : CTL_EXIT_FAIL;
	if (o->forget)
		return forget(o, &s) < 0 ? CTL_EXIT_FAIL : 0;
	if (load_refs(&s, r) < 0 || load_layers(&s, r, &rows, &n) < 0)
		return CTL_EXIT_FAIL;
	if (o->prune)
		return prune(&s, rows, n) < 0 ? CTL_EXIT_FAIL : 0;
	print_rows(rows, n, o->json);
	return fflush(stdout) == 0 ? 0 : CTL_EXIT_FAIL;
}
