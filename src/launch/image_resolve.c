/* --image as the launcher takes it: a plain list of layer directories is
 * passed on as it is; an image reference (oci:, docker-archive:) becomes
 * the list of its layers in the store (image.h), unpacked where missing.
 * The store's lock is held shared from there until the workspace's ref
 * names those layers (step "image", once the disk serves them), so that
 * `cvmctl images --prune` never removes a layer between the two. */
#include "image.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct image_state {
	struct store store;
	struct image_plan plan;
	char *ref; /* the reference with an absolute path, for the ref file */
};

/* "a:oci:/x" is a list whose second layer is "oci": a reference must be
 * the whole value (given once), and saying so beats "oci: not found". */
static int check_list(const char *value)
{
	_cleanup_free_ char *list = strdup(value);
	char *save = NULL;
	struct stat st;

	if (!list)
		return -ENOMEM;
	for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save))
		if ((!strcmp(d, "oci") || !strcmp(d, "docker-archive")) && stat(d, &st) < 0) {
			img_error("--image '%s': an image reference (%s:...) must be the whole --image value, given once",
				  value, d);
			return -EINVAL;
		}
	return 0;
}

static int absolute_ref(struct image_ref *r, char **text)
{
	char *real = realpath(r->path, NULL);

	if (!real)
		return img_error_errno(-errno, "--image %s:%s", r->kind == IMAGE_OCI ? "oci" : "docker-archive",
				       r->path);
	free(r->path);
	r->path = real;
	if (asprintf(text, "%s:%s%s%s", r->kind == IMAGE_OCI ? "oci" : "docker-archive", real,
		     r->tag ? ":" : "", r->tag ? r->tag : "") < 0)
		return -ENOMEM;
	return 0;
}

static int resolve(struct launch *L, struct image_ref *r, struct image_state *st)
{
	char *dirs = NULL;
	int rc;

	if ((rc = absolute_ref(r, &st->ref)) < 0 ||
	    (rc = store_open(&st->store, L->o.layer_store, STORE_CREATE)) < 0)
		return rc;
	rc = r->kind == IMAGE_OCI ? oci_plan(r, &st->plan) : docker_plan(r, &st->plan);
	if (rc < 0)
		return rc;
	rc = r->kind == IMAGE_OCI ? oci_fetch(&st->store, r, &st->plan)
				  : docker_fetch(&st->store, r, &st->plan);
	if (rc < 0 || (rc = store_dirs(&st->store, &st->plan, &dirs)) < 0)
		return rc;
	log_debug("--image %s: %s", st->ref, dirs);
	free(L->o.image);
	L->o.image = dirs;
	return 0;
}

int image_resolve(struct launch *L)
{
	struct image_ref r;
	int rc;

	image_log_step = "validate: ";
	if ((rc = image_ref_parse(L->o.image, &r)) < 0)
		return rc;
	if (r.kind == IMAGE_DIRS)
		return check_list(L->o.image);
	L->img = calloc(1, sizeof(*L->img));
	if (!L->img) {
		image_ref_free(&r);
		return -ENOMEM;
	}
	L->img->store = (struct store){ NULL, -EBADF, -EBADF };
	rc = resolve(L, &r, L->img);
	image_ref_free(&r);
	return rc;
}

/* Step "image": the workspace's ref names the layers its disk now serves
 * (or, with plain directories, it uses none of the store's). */
int step_image(struct launch *L)
{
	struct store s = { NULL, -EBADF, -EBADF };
	int rc;

	image_log_step = "image: ";
	if (L->img) {
		rc = store_ref_write(&L->img->store, L->o.name, L->img->ref, L->o.data,
				     &L->img->plan);
		image_release(L);
		return rc;
	}
	rc = store_open(&s, L->o.layer_store, 0);
	if (rc == 0)
		rc = store_ref_remove(&s, L->o.name);
	store_close(&s);
	return rc == -ENOENT ? 0 : rc; /* no store, no ref */
}

void image_release(struct launch *L)
{
	if (!L->img)
		return;
	store_close(&L->img->store);
	image_plan_free(&L->img->plan);
	free(L->img->ref);
	free(L->img);
	L->img = NULL;
}
