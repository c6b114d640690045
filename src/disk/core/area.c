/* Accounting areas by union path, and the OCI/xattr whiteout names. */
#include "core/core.h"

#include <string.h>

/* True when rel is dir itself or below it. */
static bool path_within(const char *rel, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(rel, dir, n) && (rel[n] == '\0' || rel[n] == '/');
}

enum area area_of_path(const char *rel)
{
	while (*rel == '/')
		rel++;
	if (path_within(rel, "var/lib/docker"))
		return AREA_DOCKER;
	if (path_within(rel, "home"))
		return AREA_HOME;
	return AREA_OTHER;
}

const char *area_name(enum area a)
{
	static const char *const names[AREA_N] = { "image", "docker", "home", "other" };

	return a < AREA_N ? names[a] : "?";
}

const char *oci_whiteout_target(const char *name)
{
	size_t n = strlen(OCI_WH_PREFIX);

	if (strncmp(name, OCI_WH_PREFIX, n) || !strcmp(name, OCI_OPAQUE) || !name[n])
		return NULL;
	return name + n;
}

bool oci_is_meta(const char *name)
{
	return !strncmp(name, OCI_WH_PREFIX, strlen(OCI_WH_PREFIX));
}

bool xattr_hidden(const char *name, bool from_lower)
{
	if (!strncmp(name, XATTR_PRIV_PREFIX, strlen(XATTR_PRIV_PREFIX)))
		return true;
	return from_lower && !strncmp(name, XATTR_OVL_PREFIX, strlen(XATTR_OVL_PREFIX));
}

size_t xattr_list_filter(char *list, size_t size, bool from_lower)
{
	size_t in = 0, out = 0;

	while (in < size) {
		size_t len = strnlen(list + in, size - in) + 1;

		if (!xattr_hidden(list + in, from_lower)) {
			memmove(list + out, list + in, len);
			out += len;
		}
		in += len;
	}
	return out;
}
