/* SIZE values: a number with an optional K, M, G or T suffix (powers of 1024). */
#pragma once

#include <stdint.h>

/* Returns 0 and stores bytes, or -EINVAL for malformed text, -ERANGE on overflow. */
int size_parse(const char *text, uint64_t *bytes);
/* Parse a plain unsigned decimal (no suffix). */
int uint_parse(const char *text, uint64_t *value);
