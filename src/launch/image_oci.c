/* oci:DIR[:TAG]: an OCI image layout (index.json -> manifest -> config and
 * layers, every blob under blobs/sha256/HEX and checked against its
 * digest before use). TAG is matched against the manifests'
 * org.opencontainers.image.ref.name annotation; without TAG the index
 * must hold exactly one manifest. */
#include "image.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_MAX (4 << 20)
#define REF_NAME "org.opencontainers.image.ref.name"

static void json_putp(json_t **j)
{
	json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(json_putp)))

/* A JSON file of the layout (index.json), or a blob checked against HEX. */
static json_t *load_json(const struct image_ref *r, const char *rel, const char *hex)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	char got[DIGEST_HEX + 1];
	json_error_t err = { 0 };
	size_t len;
	json_t *j;
	int n;

	if (asprintf(&path, "%s/%s", r->path, rel) < 0)
		return NULL;
	if ((n = read_regular_alloc(AT_FDCWD, path, JSON_MAX, &text, &len)) < 0) {
		img_error("--image oci:%s: %s: %s", r->path, rel, file_strerror(n));
		return NULL;
	}
	if (hex && (sha256_hex(text, len, got) < 0 || strcmp(got, hex))) {
		img_error("--image oci:%s: %s: digest mismatch: the file is sha256:%s", r->path, rel,
			  got);
		return NULL;
	}
	if (!(j = json_loadb(text, len, 0, &err)) || !json_is_object(j)) {
		img_error("--image oci:%s: %s: not a JSON object (%s, line %d)", r->path, rel,
			  j ? "wrong type" : err.text, err.line);
		json_decref(j);
	}
	return json_is_object(j) ? j : NULL;
}

/* The blob a descriptor names, loaded and checked. */
static json_t *load_desc(const struct image_ref *r, json_t *desc, const char *what)
{
	char hex[DIGEST_HEX + 1], rel[DIGEST_HEX + 16];

	if (digest_parse(json_string_value(json_object_get(desc, "digest")), hex) < 0) {
		img_error("--image oci:%s: the %s's descriptor has no sha256 digest", r->path, what);
		return NULL;
	}
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
	return load_json(r, rel, hex);
}

static const char *ref_name(json_t *desc)
{
	return json_string_value(json_object_get(json_object_get(desc, "annotations"), REF_NAME));
}

static void list_tags(json_t *mans, char *out, size_t size)
{
	size_t i, at = 0;
	json_t *m;

	out[0] = '\0';
	json_array_foreach(mans, i, m)
		if (ref_name(m) && at < size)
			at += (size_t)snprintf(out + at, size - at, "%s%s", at ? ", " : "", ref_name(m));
	if (!at)
		snprintf(out, size, "none");
}

/* The manifest descriptor of index.json that r names. */
static json_t *pick_manifest(const struct image_ref *r, json_t *index)
{
	json_t *mans = json_object_get(index, "manifests"), *m, *found = NULL;
	size_t i, n = 0;
	char tags[512];

	json_array_foreach(mans, i, m)
		if (!r->tag || (ref_name(m) && !strcmp(ref_name(m), r->tag))) {
			found = m;
			n++;
		}
	if (n == 1)
		return found;
	list_tags(mans, tags, sizeof(tags));
	if (!n)
		img_error("--image oci:%s%s%s: %s (tags: %s)", r->path, r->tag ? ":" : "",
			  r->tag ? r->tag : "", r->tag ? "no image with this tag" : "no image in index.json",
			  tags);
	else
		img_error("--image oci:%s%s%s: %zu images match: name one with oci:DIR:TAG (tags: %s)",
			  r->path, r->tag ? ":" : "", r->tag ? r->tag : "", n, tags);
	return NULL;
}

static int plan_layer(const struct image_ref *r, json_t *desc, json_t *diff, struct layer_plan *l)
{
	if (digest_parse(json_string_value(json_object_get(desc, "digest")), l->blob) < 0 ||
	    digest_parse(json_string_value(diff), l->diff) < 0) {
		img_error("--image oci:%s: a layer without a sha256 digest or diff_id", r->path);
		return -EINVAL;
	}
	if (asprintf(&l->src, "%s/blobs/sha256/%s", r->path, l->blob) < 0)
		return -ENOMEM;
	return 0;
}

/* The layers, bottom first, each with its config's diff_id (required by
 * the image spec; the store is keyed by it). */
static int plan_layers(const struct image_ref *r, json_t *man, json_t *config,
		       struct image_plan *p)
{
	json_t *layers = json_object_get(man, "layers"), *l;
	json_t *diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	size_t i;
	int rc;

	if (!json_is_array(layers) || !json_is_array(diffs) ||
	    json_array_size(layers) != json_array_size(diffs)) {
		img_error("--image oci:%s: the manifest's layers and the config's rootfs.diff_ids do not match",
			  r->path);
		return -EINVAL;
	}
	p->layers = calloc(json_array_size(layers) + 1, sizeof(*p->layers));
	if (!p->layers)
		return -ENOMEM;
	json_array_foreach(layers, i, l) {
		if ((rc = plan_layer(r, l, json_array_get(diffs, i), &p->layers[i])) < 0)
			return rc;
		p->n++;
	}
	return 0;
}

int oci_plan(const struct image_ref *r, struct image_plan *p)
{
	_cleanup_json_ json_t *index = load_json(r, "index.json", NULL);
	_cleanup_json_ json_t *man = NULL, *config = NULL;
	json_t *desc = index ? pick_manifest(r, index) : NULL;
	const char *mt = json_string_value(json_object_get(desc, "mediaType"));
	int rc;

	if (!desc)
		return -EINVAL;
	if (mt && strstr(mt, "index")) {
		img_error("--image oci:%s: an index of several platforms: copy one platform's image "
			  "(skopeo copy --override-arch)", r->path);
		return -EINVAL;
	}
	if (!(man = load_desc(r, desc, "manifest")) ||
	    !(config = load_desc(r, json_object_get(man, "config"), "config")))
		return -EINVAL;
	if ((rc = plan_layers(r, man, config, p)) < 0)
		return rc;
	return image_plan_check(p, r->path);
}

/* ---- unpacking the layers: each blob file read in turn ---- */

struct file_src {
	int fd;
	char buf[128 * 1024];
};

static long file_read(void *ctx, const void **buf)
{
	struct file_src *f = ctx;
	ssize_t n = read(f->fd, f->buf, sizeof(f->buf));

	*buf = f->buf;
	return n < 0 ? -errno : (long)n;
}

static int fetch_one(struct store *s, const struct image_ref *r, const struct layer_plan *l)
{
	_cleanup_free_ struct file_src *f = malloc(sizeof(*f));
	_cleanup_free_ char *what = NULL;
	_cleanup_close_ int fd = -EBADF;

	if (!f || asprintf(&what, "--image oci:%s: layer sha256:%s", r->path, l->blob) < 0)
		return -ENOMEM;
	fd = open(l->src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return img_error_errno(-errno, "%s: blobs/sha256/%s", what, l->blob);
	f->fd = fd;
	return store_fetch(s, l->diff, &(struct layer_src){ file_read, f, NULL, what }, l->blob);
}

int oci_fetch(struct store *s, const struct image_ref *r, const struct image_plan *p)
{
	int rc;

	for (size_t i = 0; i < p->n; i++)
		if (!store_has(s, p->layers[i].diff) && (rc = fetch_one(s, r, &p->layers[i])) < 0)
			return rc;
	return 0;
}
