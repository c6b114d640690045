/* docker-archive:FILE[:TAG]: a `docker save` tar (gzip or zstd allowed):
 * manifest.json names each image's config and its layer tars in the
 * archive; the config's rootfs.diff_ids are their digests. Read in two
 * passes: the small JSON files first, then the layers the store misses,
 * each streamed from the archive into libarchive's unpacker. Both the
 * legacy layout (ID/layer.tar, HEX.json) and Docker 25's (blobs/sha256/HEX)
 * are read; where a name holds a digest, the file must match it. */
#include "image.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_MAX (4 << 20)   /* one JSON file */
#define META_TOTAL (64 << 20) /* all kept in pass one */

struct meta {
	char *name;
	char *text;
	size_t len;
};

struct metas {
	struct meta *m;
	size_t n, total;
};

static void metas_free(struct metas *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		free(ms->m[i].name);
		free(ms->m[i].text);
	}
	free(ms->m);
}

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static void json_putp(json_t **j)
{
	json_decref(*j);
}

static const char *entry_name(struct archive_entry *e)
{
	const char *n = archive_entry_pathname(e);

	while (n && !strncmp(n, "./", 2))
		n += 2;
	return n ? n : "";
}

static struct archive *archive_open_file(const struct image_ref *r)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, r->path, 1 << 16) != ARCHIVE_OK) {
		img_error("--image docker-archive:%s: %s", r->path, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int keep_meta(struct archive *a, struct archive_entry *e, struct metas *ms)
{
	la_int64_t size = archive_entry_size(e);
	struct meta *more, *m;

	if (archive_entry_filetype(e) != AE_IFREG || size > META_MAX ||
	    ms->total + (size_t)size > META_TOTAL)
		return 0;
	if (!(more = realloc(ms->m, (ms->n + 1) * sizeof(*more))))
		return -ENOMEM;
	ms->m = more;
	m = &ms->m[ms->n];
	*m = (struct meta){ strdup(entry_name(e)), malloc((size_t)size + 1), (size_t)size };
	ms->n++;
	if (!m->name || !m->text)
		return -ENOMEM;
	if (archive_read_data(a, m->text, m->len) != size)
		return -EIO;
	m->text[m->len] = '\0';
	ms->total += m->len;
	return 0;
}

/* Pass one: every small file that may be JSON the manifest points at. */
static int read_metas(const struct image_ref *r, struct metas *ms)
{
	__attribute__((cleanup(archive_freep))) struct archive *a = archive_open_file(r);
	struct archive_entry *e;
	int rc;

	if (!a)
		return -EINVAL;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *n = entry_name(e);
		size_t len = strlen(n);

		if ((len > 5 && !strcmp(n + len - 5, ".json")) || !strncmp(n, "blobs/sha256/", 13)) {
			if ((rc = keep_meta(a, e, ms)) < 0) {
				img_error("--image docker-archive:%s: %s: %s", r->path, n,
					  rc == -EIO ? archive_error_string(a) : strerror(-rc));
				return rc == -ENOMEM ? rc : -EBADMSG;
			}
		}
	}
	if (rc == ARCHIVE_EOF)
		return 0;
	img_error("--image docker-archive:%s: %s", r->path, archive_error_string(a));
	return -EBADMSG;
}

/* The digest a name carries: HEX.json (legacy config) or blobs/sha256/HEX. */
static bool name_digest(const char *name, char hex[DIGEST_HEX + 1])
{
	char d[DIGEST_HEX + 8];
	const char *base = !strncmp(name, "blobs/sha256/", 13) ? name + 13 : name;
	size_t len = strcspn(base, ".");

	if (len != DIGEST_HEX || (base[len] && strcmp(base + len, ".json")))
		return false;
	snprintf(d, sizeof(d), "sha256:%.*s", DIGEST_HEX, base);
	return digest_parse(d, hex) == 0;
}

static json_t *meta_json(const struct image_ref *r, const struct metas *ms, const char *name)
{
	char want[DIGEST_HEX + 1], got[DIGEST_HEX + 1];
	json_error_t err = { 0 };
	json_t *j;

	for (size_t i = 0; i < ms->n; i++) {
		if (strcmp(ms->m[i].name, name))
			continue;
		if (name_digest(name, want) &&
		    (sha256_hex(ms->m[i].text, ms->m[i].len, got) < 0 || strcmp(got, want))) {
			img_error("--image docker-archive:%s: %s: digest mismatch: the file is sha256:%s",
				  r->path, name, got);
			return NULL;
		}
		if (!(j = json_loadb(ms->m[i].text, ms->m[i].len, 0, &err)))
			img_error("--image docker-archive:%s: %s: not JSON (%s, line %d)", r->path, name,
				  err.text, err.line);
		return j;
	}
	img_error("--image docker-archive:%s: no %s in the archive (not a docker save archive?)",
		  r->path, name);
	return NULL;
}

static bool has_tag(json_t *image, const char *tag)
{
	json_t *t;
	size_t i;

	json_array_foreach(json_object_get(image, "RepoTags"), i, t) {
		const char *s = json_string_value(t);
		size_t n = strlen(tag);

		if (s && (!strcmp(s, tag) || (!strchr(tag, ':') && !strncmp(s, tag, n) &&
					      !strcmp(s + n, ":latest"))))
			return true;
	}
	return false;
}

static json_t *pick_image(const struct image_ref *r, json_t *manifest)
{
	json_t *img, *found = NULL;
	size_t i, n = 0;

	json_array_foreach(manifest, i, img)
		if (!r->tag || has_tag(img, r->tag)) {
			found = img;
			n++;
		}
	if (n == 1)
		return found;
	if (!n)
		img_error("--image docker-archive:%s%s%s: %s", r->path, r->tag ? ":" : "",
			  r->tag ? r->tag : "", r->tag ? "no image with this tag" : "no image in manifest.json");
	else
		img_error("--image docker-archive:%s: %zu images: name one with docker-archive:FILE:TAG",
			  r->path, n);
	return NULL;
}

static int plan_from(const struct image_ref *r, json_t *img, json_t *config, struct image_plan *p)
{
	json_t *layers = json_object_get(img, "Layers"), *l;
	json_t *diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	size_t i;

	if (!json_is_array(layers) || !json_is_array(diffs) ||
	    json_array_size(layers) != json_array_size(diffs)) {
		img_error("--image docker-archive:%s: manifest.json's Layers and the config's rootfs.diff_ids do not match",
			  r->path);
		return -EINVAL;
	}
	if (!(p->layers = calloc(json_array_size(layers) + 1, sizeof(*p->layers))))
		return -ENOMEM;
	json_array_foreach(layers, i, l) {
		struct layer_plan *lp = &p->layers[p->n];
		const char *src = json_string_value(l);

		if (!src || digest_parse(json_string_value(json_array_get(diffs, i)), lp->diff) < 0) {
			img_error("--image docker-archive:%s: layer %zu: no path or no sha256 diff_id",
				  r->path, i);
			return -EINVAL;
		}
		while (!strncmp(src, "./", 2))
			src += 2;
		if (!name_digest(src, lp->blob))
			lp->blob[0] = '\0';
		if (!(lp->src = strdup(src)))
			return -ENOMEM;
		p->n++;
	}
	return image_plan_check(p, r->path);
}

int docker_plan(const struct image_ref *r, struct image_plan *p)
{
	__attribute__((cleanup(metas_free))) struct metas ms = { 0 };
	__attribute__((cleanup(json_putp))) json_t *manifest = NULL, *config = NULL;
	json_t *img;
	int rc;

	if ((rc = read_metas(r, &ms)) < 0)
		return rc;
	if (!(manifest = meta_json(r, &ms, "manifest.json")))
		return -EINVAL;
	if (!(img = pick_image(r, manifest)))
		return -EINVAL;
	if (!json_string_value(json_object_get(img, "Config")) ||
	    !(config = meta_json(r, &ms, json_string_value(json_object_get(img, "Config")))))
		return -EINVAL;
	return plan_from(r, img, config, p);
}

/* ---- pass two: the layers the store misses, streamed ---- */

struct entry_src {
	struct archive *a;
	char buf[128 * 1024];
};

static long entry_read(void *ctx, const void **buf)
{
	struct entry_src *es = ctx;
	la_ssize_t n = archive_read_data(es->a, es->buf, sizeof(es->buf));

	*buf = es->buf;
	return n < 0 ? -EIO : (long)n;
}

static const char *entry_error(void *ctx)
{
	return archive_error_string(((struct entry_src *)ctx)->a);
}

static int fetch_entry(struct store *s, const struct image_ref *r, struct archive *a,
		       const struct layer_plan *l)
{
	_cleanup_free_ struct entry_src *es = malloc(sizeof(*es));
	_cleanup_free_ char *what = NULL;

	if (!es || asprintf(&what, "--image docker-archive:%s: layer %s (sha256:%s)", r->path,
			    l->src, l->diff) < 0)
		return -ENOMEM;
	es->a = a;
	return store_fetch(s, l->diff, &(struct layer_src){ entry_read, es, entry_error, what }, l->blob);
}

static const struct layer_plan *wanted(struct store *s, const struct image_plan *p,
				       const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->layers[i].src, name) && !store_has(s, p->layers[i].diff))
			return &p->layers[i];
	return NULL;
}

int docker_fetch(struct store *s, const struct image_ref *r, const struct image_plan *p)
{
	__attribute__((cleanup(archive_freep))) struct archive *a = NULL;
	struct archive_entry *e;
	const struct layer_plan *l;
	int rc;

	for (l = p->layers; l < p->layers + p->n && store_has(s, l->diff); l++)
		;
	if (l == p->layers + p->n)
		return 0; /* every layer is in the store: the archive is not read again */
	if (!(a = archive_open_file(r)))
		return -EINVAL;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK)
		if ((l = wanted(s, p, entry_name(e))) && (rc = fetch_entry(s, r, a, l)) < 0)
			return rc;
	if (rc != ARCHIVE_EOF) {
		img_error("--image docker-archive:%s: %s", r->path, archive_error_string(a));
		return -EBADMSG;
	}
	for (l = p->layers; l < p->layers + p->n; l++)
		if (!store_has(s, l->diff)) {
			img_error("--image docker-archive:%s: layer %s of manifest.json is not in the archive",
				  r->path, l->src);
			return -EINVAL;
		}
	return 0;
}
