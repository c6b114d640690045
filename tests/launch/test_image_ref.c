/* Image references and digests (src/launch/image_ref.c): the pure part of
 * --image oci:DIR[:TAG] / docker-archive:FILE[:TAG]. No privileges. */
#include "image.h"

#include "../unit/check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void ref_case(const char *value, int rc, enum image_kind kind, const char *path,
		     const char *tag)
{
	struct image_ref r;

	CHECK_EQ_INT(image_ref_parse(value, &r), rc);
	if (rc == 0) {
		CHECK_EQ_INT(r.kind, kind);
		CHECK_STR(r.path ? r.path : "(null)", path ? path : "(null)");
		CHECK_STR(r.tag ? r.tag : "(null)", tag ? tag : "(null)");
	}
	image_ref_free(&r);
}

static void test_refs(void)
{
	ref_case("/a:/b", 0, IMAGE_DIRS, NULL, NULL);
	ref_case("oci:/img", 0, IMAGE_OCI, "/img", NULL);
	ref_case("oci:/img:v1", 0, IMAGE_OCI, "/img", "v1");
	/* the tag keeps its ':' (a name:tag ref.name) */
	ref_case("oci:img:docker.io/library/busybox:1.36", 0, IMAGE_OCI, "img",
		 "docker.io/library/busybox:1.36");
	ref_case("docker-archive:/x/image.tar", 0, IMAGE_DOCKER, "/x/image.tar", NULL);
	ref_case("docker-archive:/x/image.tar:app:latest", 0, IMAGE_DOCKER, "/x/image.tar",
		 "app:latest");
	ref_case("oci:", -EINVAL, IMAGE_OCI, NULL, NULL);
	ref_case("oci::v1", -EINVAL, IMAGE_OCI, NULL, NULL);
	ref_case("oci:/img:", -EINVAL, IMAGE_OCI, NULL, NULL);
	ref_case("docker-archive:", -EINVAL, IMAGE_DOCKER, NULL, NULL);
	/* only a prefix counts: a directory named oci-base is a directory */
	ref_case("oci-base:/b", 0, IMAGE_DIRS, NULL, NULL);
}

static void test_digests(void)
{
	static const char hex[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	char out[DIGEST_HEX + 1] = "", full[80];

	snprintf(full, sizeof(full), "sha256:%s", hex);
	CHECK_EQ_INT(digest_parse(full, out), 0);
	CHECK_STR(out, hex);
	CHECK_EQ_INT(digest_parse(hex, out), -EINVAL);          /* no algorithm */
	CHECK_EQ_INT(digest_parse("sha512:abc", out), -EINVAL); /* another one */
	CHECK_EQ_INT(digest_parse("sha256:E3B0", out), -EINVAL);
	full[20] = 'E'; /* uppercase: not the canonical form */
	CHECK_EQ_INT(digest_parse(full, out), -EINVAL);
	snprintf(full, sizeof(full), "sha256:%s0", hex); /* too long */
	CHECK_EQ_INT(digest_parse(full, out), -EINVAL);
	CHECK_EQ_INT(digest_parse("sha256:../../../../etc/passwd", out), -EINVAL);
	CHECK_EQ_INT(digest_parse(NULL, out), -EINVAL);
	/* sha256 of "" and of "abc" */
	CHECK_EQ_INT(sha256_hex("", 0, out), 0);
	CHECK_STR(out, hex);
	CHECK_EQ_INT(sha256_hex("abc", 3, out), 0);
	CHECK_STR(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_plan(void)
{
	struct image_plan p = { calloc(IMAGE_MAX_LAYERS + 1, sizeof(struct layer_plan)), 0 };

	CHECK(p.layers);
	CHECK_EQ_INT(image_plan_check(&p, "x"), -EINVAL); /* no layer */
	p.n = IMAGE_MAX_LAYERS;
	CHECK_EQ_INT(image_plan_check(&p, "x"), 0);
	p.n = IMAGE_MAX_LAYERS + 1;
	CHECK_EQ_INT(image_plan_check(&p, "x"), -E2BIG);
	image_plan_free(&p);
}

int main(void)
{
	test_refs();
	test_digests();
	test_plan();
	return check_done();
}
