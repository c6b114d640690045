/* Image references and digests: the pure part of --image (image.h). */
#include "image.h"

#include "cvmfs/log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *image_log_step = "";

static const struct {
	const char *prefix;
	enum image_kind kind;
} kinds[] = {
	{ "oci:", IMAGE_OCI },
	{ "docker-archive:", IMAGE_DOCKER },
};

/* PREFIX PATH [":" TAG]: PATH up to the first ':' (as containers/image
 * reads it), so a TAG may hold ':' ("docker.io/library/busybox:1.36"). */
static int split_ref(const char *value, const char *rest, struct image_ref *r)
{
	size_t len = strcspn(rest, ":");

	if (!len) {
		img_error("--image '%s': no path after the type", value);
		return -EINVAL;
	}
	if (rest[len] == ':' && !rest[len + 1]) {
		img_error("--image '%s': an empty tag after ':'", value);
		return -EINVAL;
	}
	r->path = strndup(rest, len);
	r->tag = rest[len] ? strdup(rest + len + 1) : NULL;
	if (!r->path || (rest[len] && !r->tag))
		return -ENOMEM;
	return 0;
}

int image_ref_parse(const char *value, struct image_ref *r)
{
	*r = (struct image_ref){ IMAGE_DIRS, NULL, NULL };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].prefix);

		if (strncmp(value, kinds[i].prefix, n))
			continue;
		r->kind = kinds[i].kind;
		return split_ref(value, value + n, r);
	}
	return 0;
}

void image_ref_free(struct image_ref *r)
{
	free(r->path);
	free(r->tag);
	*r = (struct image_ref){ IMAGE_DIRS, NULL, NULL };
}

int digest_parse(const char *s, char hex[DIGEST_HEX + 1])
{
	static const char prefix[] = "sha256:";

	if (!s || strncmp(s, prefix, sizeof(prefix) - 1))
		return -EINVAL;
	s += sizeof(prefix) - 1;
	if (strlen(s) != DIGEST_HEX || strspn(s, "0123456789abcdef") != DIGEST_HEX)
		return -EINVAL;
	memcpy(hex, s, DIGEST_HEX + 1);
	return 0;
}

void image_plan_free(struct image_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->layers[i].src);
	free(p->layers);
	*p = (struct image_plan){ 0 };
}

int image_plan_check(const struct image_plan *p, const char *what)
{
	if (!p->n) {
		img_error("--image %s: the image has no layers", what);
		return -EINVAL;
	}
	if (p->n > IMAGE_MAX_LAYERS) {
		img_error("--image %s: %zu layers, the union takes at most %d", what, p->n,
			  IMAGE_MAX_LAYERS);
		return -E2BIG;
	}
	return 0;
}

int sha256_hex(const void *buf, size_t len, char hex[DIGEST_HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (!EVP_Digest(buf, len, d, &n, EVP_sha256(), NULL) || n != DIGEST_HEX / 2)
		return -EIO;
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return 0;
}
