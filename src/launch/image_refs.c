/* STORE/refs/NAME: which layers workspace NAME uses, in lines an admin can
 * read ("image REF", "data DIR", "layer sha256:HEX" bottom first). The
 * launcher writes it once the workspace's disk serves those layers and
 * leaves it when the workspace stops: `cvmctl images --prune` never
 * removes a layer a ref names, stopped workspace or not. */
#include "image.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REF_MAX (1 << 20)

static int ref_text(const char *name, const char *image, const char *data,
		    const struct image_plan *p, char **out)
{
	size_t size = strlen(name) + strlen(image) + strlen(data) + 128 + p->n * (DIGEST_HEX + 16);
	char *t = malloc(size);
	int at;

	if (!t)
		return -ENOMEM;
	at = snprintf(t, size, "# the image layers of workspace %s (cvmctl images)\nimage %s\ndata %s\n",
		      name, image, data);
	for (size_t i = 0; i < p->n; i++)
		at += snprintf(t + at, size - (size_t)at, "layer sha256:%s\n", p->layers[i].diff);
	*out = t;
	return at;
}

int store_ref_write(struct store *s, const char *name, const char *image, const char *data,
		    const struct image_plan *p)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int fd = -EBADF;
	char tmp[320], dst[300];
	int n = ref_text(name, image, data, p, &text);

	if (n < 0)
		return n;
	snprintf(dst, sizeof(dst), "refs/%s", name);
	snprintf(tmp, sizeof(tmp), "refs/.%s.%d", name, (int)getpid());
	fd = openat(s->root_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, text, (size_t)n) < 0 || fsync(fd) < 0 ||
	    renameat(s->root_fd, tmp, s->root_fd, dst) < 0) {
		int r = img_error_errno(-errno, "layer store %s/%s", s->root, dst);

		unlinkat(s->root_fd, tmp, 0);
		return r;
	}
	return 0;
}

int store_ref_remove(struct store *s, const char *name)
{
	char p[300];

	snprintf(p, sizeof(p), "refs/%s", name);
	if (unlinkat(s->root_fd, p, 0) < 0 && errno != ENOENT)
		return img_error_errno(-errno, "layer store %s/%s", s->root, p);
	return 0;
}

int store_ref_layers(struct store *s, const char *name, struct ref_layers *out)
{
	_cleanup_free_ char *text = NULL;
	char p[300], *save = NULL, hex[DIGEST_HEX + 1];
	size_t len;
	int r;

	*out = (struct ref_layers){ 0 };
	snprintf(p, sizeof(p), "refs/%s", name);
	if ((r = read_regular_alloc(s->root_fd, p, REF_MAX, &text, &len)) < 0)
		return r;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "layer ", 6) || digest_parse(l + 6, hex) < 0)
			continue;
		char (*more)[DIGEST_HEX + 1] = realloc(out->hex, (out->n + 1) * sizeof(*more));

		if (!more)
			return -ENOMEM;
		out->hex = more;
		memcpy(out->hex[out->n++], hex, sizeof(hex));
	}
	return 0;
}

void ref_layers_free(struct ref_layers *l)
{
	free(l->hex);
	*l = (struct ref_layers){ 0 };
}
