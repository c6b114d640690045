/* Image references (doc/cvm-launch.md, Images): --image is a list of layer
 * directories, an OCI image layout (oci:DIR[:TAG]) or a `docker save`
 * archive (docker-archive:FILE[:TAG]). A reference resolves to the
 * ordered list of layer directories the union takes, each unpacked once,
 * verified, into the content-addressed layer store:
 *
 *   STORE/sha256/HEX/   one layer, HEX = sha256 of its uncompressed tar
 *                       (the config's diff_id), complete once it is there
 *   STORE/tmp/          unpacks in progress (HEX.PID.XXXXXX) and per-layer
 *                       locks (HEX.lock); what a crash leaves is swept
 *   STORE/refs/NAME     the layers workspace NAME uses (written by the
 *                       launcher once its disk serves them, kept when it
 *                       stops): `cvmctl images --prune` keeps them
 *   STORE/lock          flock: shared by a launcher from resolving to
 *                       writing its ref, exclusive while pruning
 *
 * image_ref.c parses, image_oci.c / image_docker.c read the manifests,
 * image_unpack.c unpacks one layer, image_store.c owns the store and
 * image_refs.c its refs; image_resolve.c is the launcher's side (steps
 * validate and image), src/ctl/images.c the admin's (list, prune). */
#pragma once

#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_STORE_DEFAULT CVMFS_STATE_DIR "/layers"
#define DIGEST_HEX 64 /* sha256, lowercase hex */
/* What the union takes (src/disk MAX_LOWER); more is refused up front. */
#define IMAGE_MAX_LAYERS 32

enum image_kind { IMAGE_DIRS, IMAGE_OCI, IMAGE_DOCKER };

struct image_ref {
	enum image_kind kind;
	char *path; /* the layout directory or archive file, as given */
	char *tag;  /* NULL: the only image */
};

/* A layer to have in the store, bottom first in struct image_plan. */
struct layer_plan {
	char diff[DIGEST_HEX + 1]; /* store key: sha256 of the uncompressed tar */
	char blob[DIGEST_HEX + 1]; /* digest of the blob as stored, "" if none */
	char *src;                 /* OCI: the blob file; docker: its path in the archive */
};

struct image_plan {
	struct layer_plan *layers;
	size_t n;
};

/* image_ref.c (pure: unit tested) */
/* 0 and *r filled (IMAGE_DIRS for a plain list, path = NULL), or -EINVAL
 * after one line naming the value. */
int image_ref_parse(const char *value, struct image_ref *r);
void image_ref_free(struct image_ref *r);
/* "sha256:" + 64 lowercase hex digits -> hex; -EINVAL otherwise. */
int digest_parse(const char *s, char hex[DIGEST_HEX + 1]);
/* sha256 of a buffer, lowercase hex. */
int sha256_hex(const void *buf, size_t len, char hex[DIGEST_HEX + 1]);
void image_plan_free(struct image_plan *p);
/* No layer, or more than the union takes: one line, -errno. */
int image_plan_check(const struct image_plan *p, const char *what);

/* image_oci.c, image_docker.c: the plan, manifests verified; one line and
 * -errno on a bad image. */
int oci_plan(const struct image_ref *r, struct image_plan *p);
int docker_plan(const struct image_ref *r, struct image_plan *p);
/* Unpack every layer of the plan missing in the store (image_store.c's
 * per-layer lock held around each). */
struct store;
int oci_fetch(struct store *s, const struct image_ref *r, const struct image_plan *p);
int docker_fetch(struct store *s, const struct image_ref *r, const struct image_plan *p);

/* image_unpack.c: one layer from a byte source into an empty directory,
 * verified (blob digest if expect_blob, the uncompressed digest always).
 * The source hands out compressed (or plain) tar bytes; 0 at its end. */
typedef long (*layer_read_fn)(void *ctx, const void **buf);
struct layer_src {
	layer_read_fn read;
	void *ctx;
	const char *(*error)(void *ctx); /* after a read < 0: why, or NULL */
	const char *what; /* for messages: "--image oci:DIR: layer sha256:HEX" */
};
int layer_unpack(const struct layer_src *src, int dirfd, const char *expect_blob,
		 const char *expect_diff);

/* image_store.c */
struct store {
	char *root;
	int root_fd, lock_fd;
};
/* Open the store and take its lock, shared or (STORE_EXCL) exclusive;
 * STORE_CREATE makes it (0700) if needed, else -ENOENT quietly. */
#define STORE_CREATE 1
#define STORE_EXCL 2
int store_open(struct store *s, const char *root, int flags);
void store_close(struct store *s);
bool store_has(struct store *s, const char *hex);
/* A layer's unpack: lock it, and unless it arrived meanwhile (1) give a
 * fresh directory (0) to unpack into; store_commit moves it into place,
 * store_abort removes it; both drop the lock. */
struct store_unpack {
	char hex[DIGEST_HEX + 1];
	char tmp[128];
	int lock_fd, dir_fd;
};
int store_begin(struct store *s, const char *hex, struct store_unpack *u);
int store_commit(struct store *s, struct store_unpack *u);
void store_abort(struct store *s, struct store_unpack *u);
/* One layer through begin/unpack/commit (or already there). */
int store_fetch(struct store *s, const char *hex, const struct layer_src *src,
		const char *expect_blob);
/* STORE/sha256/HEX:...: the union's list, top first. */
int store_dirs(struct store *s, const struct image_plan *p, char **out);
/* STORE/refs/NAME: write (atomically) or remove. */
int store_ref_write(struct store *s, const char *name, const char *image, const char *data,
		    const struct image_plan *p);
int store_ref_remove(struct store *s, const char *name);
/* The layers refs/NAME names (-ENOENT: no ref). */
struct ref_layers {
	char (*hex)[DIGEST_HEX + 1];
	size_t n;
};
int store_ref_layers(struct store *s, const char *name, struct ref_layers *out);
void ref_layers_free(struct ref_layers *l);

/* Error lines of this module start with it: "validate: " in cvm-launch
 * (the step), "" elsewhere. */
extern const char *image_log_step;
#define img_error(fmt, ...) log_error("%s" fmt, image_log_step, ##__VA_ARGS__)
#define img_error_errno(r, fmt, ...)                                           \
	log_error_errno(r, "%s" fmt, image_log_step, ##__VA_ARGS__)
