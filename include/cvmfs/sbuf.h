/* A growable text buffer for renderers. Appends never fail silently: on
 * allocation failure the buffer is marked and sbuf_error() reports -ENOMEM. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Returns 0 or -ENOMEM. */
int sbuf_error(const struct sbuf *b);
/* Hand the data out (NUL-terminated); the buffer becomes empty. */
char *sbuf_take(struct sbuf *b, size_t *len);

static inline void cleanup_sbufp(struct sbuf *b)
{
	sbuf_free(b);
}
#define _cleanup_sbuf_ __attribute__((cleanup(cleanup_sbufp)))
