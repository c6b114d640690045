/* The published figures (RUN_DIR/disk/NAME.json) and the persisted state
 * (DATA/state): formatting and parsing, without allocation. Workspace names
 * are restricted to [A-Za-z0-9._-] (see disk_main.c), so no string in either
 * format ever needs escaping. */
#include "core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void figures_from_acct(struct figures *f, const struct acct *a)
{
	int64_t used = __atomic_load_n(&a->used_bytes, __ATOMIC_RELAXED);
	int64_t inodes = __atomic_load_n(&a->used_inodes, __ATOMIC_RELAXED);

	f->limit_bytes = __atomic_load_n(&a->limit_bytes, __ATOMIC_RELAXED);
	f->used_bytes = used > 0 ? (uint64_t)used : 0;
	f->avail_bytes = f->limit_bytes ? acct_avail(a) : 0;
	for (int i = 0; i < AREA_N; i++) {
		int64_t b = __atomic_load_n(&a->area_bytes[i], __ATOMIC_RELAXED);

		f->area_bytes[i] = b > 0 ? (uint64_t)b : 0;
	}
	f->inodes_used = inodes > 0 ? (uint64_t)inodes : 0;
	f->inodes_limit = __atomic_load_n(&a->limit_inodes, __ATOMIC_RELAXED);
}

/* ,"key":"value" with JSON's escapes, at buf + *at; -ENOSPC when full. */
static int put_string(char *buf, size_t size, size_t *at, const char *key, const char *v)
{
	int n = snprintf(buf + *at, size - *at, ",\"%s\":\"", key);

	if (n < 0 || (size_t)n >= size - *at)
		return -ENOSPC;
	*at += (size_t)n;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		n = c == '"' || c == '\\' ? snprintf(buf + *at, size - *at, "\\%c", c)
		    : c < 0x20		? snprintf(buf + *at, size - *at, "\\u%04x", c)
					: snprintf(buf + *at, size - *at, "%c", c);
		if (n < 0 || (size_t)n >= size - *at)
			return -ENOSPC;
		*at += (size_t)n;
	}
	if (*at + 1 >= size)
		return -ENOSPC;
	buf[(*at)++] = '"';
	buf[*at] = '\0';
	return 0;
}

/* The served data, image and id shift, where known. */
static int put_served(const struct figures *f, char *buf, size_t size, size_t *at)
{
	if ((f->data && put_string(buf, size, at, "data", f->data) < 0) ||
	    (f->image && put_string(buf, size, at, "image", f->image) < 0) ||
	    (f->image_idmap && put_string(buf, size, at, "image_idmap", f->image_idmap) < 0))
		return -ENOSPC;
	return 0;
}

int figures_to_json(const struct figures *f, char *buf, size_t size)
{
	size_t at;
	int n = snprintf(buf, size,
			 "{\"name\":\"%s\",\"state\":\"%s\",\"limit_bytes\":%" PRIu64
			 ",\"used_bytes\":%" PRIu64 ",\"avail_bytes\":%" PRIu64
			 ",\"image_bytes\":%" PRIu64 ",\"docker_bytes\":%" PRIu64
			 ",\"home_bytes\":%" PRIu64 ",\"other_bytes\":%" PRIu64
			 ",\"inodes_used\":%" PRIu64 ",\"inodes_limit\":%" PRIu64
			 ",\"pid\":%ld,\"known_inodes\":%" PRIu64 "%s",
			 f->name, f->state, f->limit_bytes, f->used_bytes, f->avail_bytes,
			 f->area_bytes[AREA_IMAGE], f->area_bytes[AREA_DOCKER],
			 f->area_bytes[AREA_HOME], f->area_bytes[AREA_OTHER], f->inodes_used,
			 f->inodes_limit, f->pid, f->known_inodes,
			 f->extra_json ? f->extra_json : "");

	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	at = (size_t)n;
	if (put_served(f, buf, size, &at) < 0 || at + 3 > size)
		return -ENOSPC;
	memcpy(buf + at, "}\n", 3);
	return (int)at + 2;
}

int state_format(const struct disk_state *s, char *buf, size_t size)
{
	int n = snprintf(buf, size,
			 "version 1\nclean %d\nused_bytes %" PRIu64 "\nused_inodes %" PRIu64 "\n",
			 s->clean ? 1 : 0, s->used_bytes, s->used_inodes);

	for (int i = 0; i < AREA_N && n >= 0 && (size_t)n < size; i++)
		n += snprintf(buf + n, size - (size_t)n, "%s_bytes %" PRIu64 "\n%s_inodes %" PRIu64 "\n",
			      area_name(i), s->area_bytes[i], area_name(i), s->area_inodes[i]);
	if (n >= 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, "image %s\n", s->image);
	return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

static uint64_t *state_field(struct disk_state *s, const char *key)
{
	char k[32];

	if (!strcmp(key, "used_bytes"))
		return &s->used_bytes;
	if (!strcmp(key, "used_inodes"))
		return &s->used_inodes;
	for (int i = 0; i < AREA_N; i++) {
		snprintf(k, sizeof(k), "%s_bytes", area_name(i));
		if (!strcmp(key, k))
			return &s->area_bytes[i];
		snprintf(k, sizeof(k), "%s_inodes", area_name(i));
		if (!strcmp(key, k))
			return &s->area_inodes[i];
	}
	return NULL;
}

/* One "key value" line; unknown keys are an error so that a damaged file
 * leads to a rescan instead of trusted garbage. */
static int state_line(struct disk_state *s, const char *line, size_t len, bool *version)
{
	char key[32];
	const char *sp = memchr(line, ' ', len);
	uint64_t *field;
	char *end;

	if (!sp || (size_t)(sp - line) >= sizeof(key))
		return -EINVAL;
	memcpy(key, line, (size_t)(sp - line));
	key[sp - line] = '\0';
	sp++;
	len -= (size_t)(sp - line);
	if (!strcmp(key, "image")) {
		if (len >= sizeof(s->image))
			return -EINVAL;
		memcpy(s->image, sp, len);
		s->image[len] = '\0';
		return 0;
	}
	errno = 0;
	if (!strcmp(key, "version")) {
		*version = strtoull(sp, &end, 10) == 1;
	} else if (!strcmp(key, "clean")) {
		s->clean = strtoull(sp, &end, 10) == 1;
	} else if ((field = state_field(s, key))) {
		*field = strtoull(sp, &end, 10);
	} else {
		return -EINVAL;
	}
	return errno || end != sp + len || end == sp ? -EINVAL : 0;
}

int state_parse(const char *text, struct disk_state *s)
{
	bool version = false;

	memset(s, 0, sizeof(*s));
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);

		if (len && state_line(s, text, len, &version) < 0) {
			s->clean = false;
			return -EINVAL;
		}
		text += len + (nl ? 1 : 0);
	}
	if (!version) {
		s->clean = false;
		return -EINVAL;
	}
	return 0;
}
