#include "cvmfs/pathlist.h"

#include <string.h>

enum path_list_match path_list_match(const char *list, const char *rel)
{
	size_t n = strlen(rel);

	for (const char *p = list ? list : ""; *p;) {
		const char *e = strchrnul(p, ':'), *s = p;
		size_t len;

		while (*s == '/' && s < e)
			s++;
		len = (size_t)(e - s);
		if (len == n && !strncmp(s, rel, n))
			return PATH_LIST_EXACT;
		if (len > n && !strncmp(s, rel, n) && s[n] == '/')
			return PATH_LIST_ABOVE;
		p = *e ? e + 1 : e;
	}
	return PATH_LIST_NONE;
}
