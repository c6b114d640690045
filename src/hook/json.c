/* The little JSON the hook reads: top-level members of the OCI state and
 * of config.json. Values are skipped by structure (strings, nesting), not
 * parsed; only strings and integers are ever taken. */
#include "hook.h"

#include <errno.h>
#include <string.h>

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *string_end(const char *p)
{
	for (p++; *p && *p != '"'; p++)
		if (*p == '\\' && !*++p)
			return NULL;
	return *p ? p + 1 : NULL;
}

/* Past the value at p (any kind), or NULL. */
static const char *value_end(const char *p)
{
	int depth = 0;

	if (*p == '"')
		return string_end(p);
	if (*p != '{' && *p != '[') {
		while (*p && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	for (;;) {
		if (*p == '"') {
			if (!(p = string_end(p)))
				return NULL;
			continue;
		}
		if (!*p)
			return NULL;
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
}

int json_member(const char *obj, const char *key, const char **val, size_t *len)
{
	const char *p = skip_ws(obj), *k, *end;
	size_t klen = strlen(key);

	if (*p++ != '{')
		return -EINVAL;
	for (p = skip_ws(p); *p == '"'; p = skip_ws(p + 1)) {
		k = p + 1;
		if (!(p = string_end(p)))
			return -EINVAL;
		bool match = (size_t)(p - 1 - k) == klen && !memcmp(k, key, klen);

		p = skip_ws(p);
		if (*p++ != ':')
			return -EINVAL;
		p = skip_ws(p);
		if (!(end = value_end(p)))
			return -EINVAL;
		if (match) {
			*val = p;
			*len = (size_t)(end - p);
			return 0;
		}
		p = skip_ws(end);
		if (*p != ',')
			break;
	}
	return -ENOENT;
}

int json_string(const char *val, size_t len, char *out, size_t size)
{
	size_t o = 0;

	if (len < 2 || val[0] != '"' || val[len - 1] != '"')
		return -EINVAL;
	for (size_t i = 1; i + 1 < len; i++) {
		char c = val[i];

		if (c == '\\') {
			c = val[++i];
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
			if (c == 'u' || (c != '"' && c != '\\' && c != '/' && c != '\n' && c != '\t'))
				return -EINVAL; /* no path the hook needs has them */
		}
		if (o + 1 >= size)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}
