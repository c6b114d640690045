/* Reading cvmfsd disk's published status (include/cvmfs/disk_status.h):
 * a small reader for the one JSON shape the daemon writes. */
#include "cvmfs/disk_status.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/* The "string" at p: where its text starts and its raw length (escapes
 * as written); past it. */
static const char *string_at(const char *p, const char **start, size_t *len)
{
	const char *q;

	if (*p != '"')
		return NULL;
	for (q = p + 1; *q && *q != '"'; q++)
		if (*q == '\\' && !*++q)
			return NULL;
	if (*q != '"')
		return NULL;
	*start = p + 1;
	*len = (size_t)(q - p - 1);
	return q + 1;
}

static int hex4(const char *s, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
						    : 16;

		if (d > 15)
			return -EINVAL;
		*v = *v * 16 + d;
	}
	return 0;
}

/* The text of n raw bytes at s into out (room for n + 1): JSON's escapes
 * decoded, \u only below 0x80 (the daemon writes no other). */
static int unescape(const char *s, size_t n, char *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		const char *e;
		unsigned v;

		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i >= n)
			return -EINVAL;
		if ((e = strchr(from, s[i])) && *e) {
			out[o++] = to[e - from];
			continue;
		}
		if (s[i] != 'u' || i + 4 >= n || hex4(s + i + 1, &v) < 0 || v == 0 || v >= 0x80)
			return -EINVAL;
		out[o++] = (char)v;
		i += 4;
	}
	out[o] = '\0';
	return 0;
}

/* Into a buffer of its own size: longer is refused, not cut. */
static const char *string_into(const char *p, char *out, size_t size)
{
	_cleanup_free_ char *text = NULL;
	const char *s;
	size_t n;

	p = string_at(p, &s, &n);
	if (!p || !(text = malloc(n + 1)) || unescape(s, n, text) < 0 || strlen(text) >= size)
		return NULL;
	strcpy(out, text);
	return p;
}

/* Into a new allocation (a repeated member is refused). */
static const char *string_dup(const char *p, char **out)
{
	const char *s;
	size_t n;

	if (*out || !(p = string_at(p, &s, &n)) || !(*out = malloc(n + 1)))
		return NULL;
	return unescape(s, n, *out) < 0 ? NULL : p;
}

/* Past any scalar, string, array or object at p. */
static const char *skip_value(const char *p)
{
	const char *s;
	size_t n;
	int depth = 0;

	if (*p != '"' && *p != '[' && *p != '{') {
		const char *end = p + strcspn(p, ",}] \n\t\r");

		return end > p ? end : NULL;
	}
	do {
		if (*p == '"') {
			if (!(p = string_at(p, &s, &n)))
				return NULL;
			continue;
		}
		if (!*p)
			return NULL;
		depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
		p++;
	} while (depth > 0);
	return p;
}

/* Members of the object at p (after its '{'), each handed to fn with p at
 * its value; fn returns the position past the value or NULL. */
typedef const char *(*member_fn)(const char *key, size_t key_len, const char *p, void *arg);

static const char *each_member(const char *p, member_fn fn, void *arg)
{
	const char *key;
	size_t key_len;

	p = skip_ws(p);
	if (*p++ != '{')
		return NULL;
	while (*(p = skip_ws(p)) != '}') {
		if (!(p = string_at(p, &key, &key_len)) || *(p = skip_ws(p)) != ':')
			return NULL;
		if (!(p = fn(key, key_len, skip_ws(p + 1), arg)))
			return NULL;
		p = skip_ws(p);
		if (*p == ',')
			p++;
		else if (*p != '}')
			return NULL;
	}
	return p + 1;
}

static bool key_is(const char *key, size_t len, const char *want)
{
	return strlen(want) == len && !strncmp(key, want, len);
}

static const char *lane_member(const char *key, size_t len, const char *p, void *arg)
{
	struct disk_status_lane *ln = arg;

	if (key_is(key, len, "path"))
		return string_dup(p, &ln->path);
	if (key_is(key, len, "dir"))
		return string_dup(p, &ln->dir);
	return skip_value(p);
}

static const char *lanes_at(const char *p, struct disk_status *s)
{
	if (s->lanes || *p++ != '[')
		return NULL;
	while (*(p = skip_ws(p)) != ']') {
		struct disk_status_lane *more = realloc(s->lanes, (s->n_lanes + 1) * sizeof(*more));

		if (!more)
			return NULL;
		s->lanes = more;
		s->lanes[s->n_lanes] = (struct disk_status_lane){ NULL, NULL };
		p = each_member(p, lane_member, &s->lanes[s->n_lanes++]);
		if (!p || !s->lanes[s->n_lanes - 1].path || !s->lanes[s->n_lanes - 1].dir)
			return NULL;
		p = skip_ws(p);
		if (*p == ',')
			p++;
		else if (*p != ']')
			return NULL;
	}
	return p + 1;
}

static uint64_t *figure_of(struct disk_status *s, const char *key, size_t len)
{
	static const char *const areas[DISK_AREAS] = { "image_bytes", "docker_bytes",
							"home_bytes", "other_bytes" };
	struct {
		const char *key;
		uint64_t *field;
	} const figures[] = {
		{ "limit_bytes", &s->limit_bytes },   { "used_bytes", &s->used_bytes },
		{ "avail_bytes", &s->avail_bytes },   { "inodes_used", &s->inodes_used },
		{ "inodes_limit", &s->inodes_limit }, { "known_inodes", &s->known_inodes },
		{ "requests", &s->requests },	      { "errors", &s->errors },
	};

	for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++)
		if (key_is(key, len, figures[i].key))
			return figures[i].field;
	for (int i = 0; i < DISK_AREAS; i++)
		if (key_is(key, len, areas[i]))
			return &s->area_bytes[i];
	return NULL;
}

/* A number: pid (signed) or a figure; others are skipped. */
static const char *number_at(const char *p, struct disk_status *s, const char *key, size_t len)
{
	uint64_t *field = figure_of(s, key, len);
	char *end;

	errno = 0;
	if (key_is(key, len, "pid"))
		s->pid = strtol(p, &end, 10);
	else if (field && *p != '-')
		*field = strtoull(p, &end, 10);
	else
		return skip_value(p);
	return end == p || errno ? NULL : end;
}

static const char *status_member(const char *key, size_t len, const char *p, void *arg)
{
	struct disk_status *s = arg;

	if (key_is(key, len, "name"))
		return string_into(p, s->name, sizeof(s->name));
	if (key_is(key, len, "state"))
		return string_into(p, s->state, sizeof(s->state));
	if (key_is(key, len, "volume"))
		return string_dup(p, &s->volume);
	if (key_is(key, len, "volume_mnt"))
		return string_dup(p, &s->volume_mnt);
	if (key_is(key, len, "data"))
		return string_dup(p, &s->data);
	if (key_is(key, len, "image"))
		return string_dup(p, &s->image);
	if (key_is(key, len, "image_idmap"))
		return string_dup(p, &s->image_idmap);
	if (key_is(key, len, "lanes"))
		return lanes_at(p, s);
	if (*p == '-' || (*p >= '0' && *p <= '9'))
		return number_at(p, s, key, len);
	return skip_value(p);
}

int disk_status_parse(const char *text, struct disk_status *s)
{
	*s = (struct disk_status){ 0 };
	errno = 0;
	if (!each_member(text, status_member, s))
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	if (*skip_ws(text) != '{' || !s->name[0] || !s->state[0])
		return -EINVAL;
	return 0;
}

void disk_status_free(struct disk_status *s)
{
	for (size_t i = 0; i < s->n_lanes; i++) {
		free(s->lanes[i].path);
		free(s->lanes[i].dir);
	}
	free(s->lanes);
	free(s->volume);
	free(s->volume_mnt);
	free(s->data);
	free(s->image);
	free(s->image_idmap);
	*s = (struct disk_status){ 0 };
}

int disk_status_load(const char *run_dir, const char *name, struct disk_status *s)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t len;
	int r;

	*s = (struct disk_status){ 0 };
	if (!(path = cvmfs_disk_file(run_dir, name, CVMFS_DISK_STATUS)))
		return -ENOMEM;
	r = read_regular_alloc(AT_FDCWD, path, DISK_STATUS_MAX, &text, &len);
	return r < 0 ? r : disk_status_parse(text, s);
}
