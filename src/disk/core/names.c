/* Names and relative paths of the union: pure string logic, unit-tested. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool name_valid(const char *name)
{
	return name[0] && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/') &&
	       strlen(name) <= 255;
}

char *path_join_dup(const char *dir, const char *name)
{
	char *s;

	if (!strcmp(dir, "."))
		return strdup(name);
	return asprintf(&s, "%s/%s", dir, name) < 0 ? NULL : s;
}

int path_join(char *buf, size_t size, const char *dir, const char *name)
{
	size_t dlen = strlen(dir); /* before buf (maybe dir) is appended to */
	int n;

	if (!strcmp(dir, "."))
		n = snprintf(buf, size, "%s", name);
	else if (buf == dir)
		n = dlen >= size ? -1 : snprintf(buf + dlen, size - dlen, "/%s", name) + (int)dlen;
	else
		n = snprintf(buf, size, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
