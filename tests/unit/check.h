/* A tiny assertion kit for the unit tests: every check counts, a failure
 * prints file:line with expected and actual values, and check_done() prints
 * "N passed, M failed" and gives the exit status. One header per test
 * program, so the counters are plain statics. */
#pragma once

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned check_passed, check_failed;

static inline bool check_report(bool ok)
{
	if (ok)
		check_passed++;
	else
		check_failed++;
	return ok;
}

static inline bool check_bool(bool ok, const char *expr, const char *file, int line)
{
	if (!check_report(ok))
		fprintf(stderr, "%s:%d: CHECK(%s) failed\n", file, line, expr);
	return ok;
}

static inline bool check_u64(uint64_t actual, uint64_t expected, const char *expr,
			     const char *file, int line)
{
	bool ok = actual == expected;

	if (!check_report(ok))
		fprintf(stderr, "%s:%d: %s: expected %" PRIu64 ", got %" PRIu64 "\n",
			file, line, expr, expected, actual);
	return ok;
}

static inline bool check_i64(int64_t actual, int64_t expected, const char *expr,
			     const char *file, int line)
{
	bool ok = actual == expected;

	if (!check_report(ok))
		fprintf(stderr, "%s:%d: %s: expected %" PRId64 ", got %" PRId64 "\n",
			file, line, expr, expected, actual);
	return ok;
}

/* Print a string with control characters escaped, so layout bugs show. */
static inline void check_print_escaped(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", stderr);
		else if (c == '\t')
			fputs("\\t", stderr);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
}

static inline bool check_mem(const char *actual, size_t alen, const char *expected,
			     size_t elen, const char *expr, const char *file, int line)
{
	bool ok = actual && expected && alen == elen && !memcmp(actual, expected, alen);

	if (!check_report(ok)) {
		size_t off = 0;

		while (actual && expected && off < alen && off < elen &&
		       actual[off] == expected[off])
			off++;
		fprintf(stderr, "%s:%d: %s: first difference at byte %zu\n  expected \"",
			file, line, expr, off);
		if (expected)
			check_print_escaped(expected, elen > 2000 ? 2000 : elen);
		fputs("\"\n  got      \"", stderr);
		if (actual)
			check_print_escaped(actual, alen > 2000 ? 2000 : alen);
		else
			fputs("(null)", stderr);
		fputs("\"\n", stderr);
	}
	return ok;
}

static inline bool check_str(const char *actual, const char *expected, const char *expr,
			     const char *file, int line)
{
	return check_mem(actual, actual ? strlen(actual) : 0, expected,
			 expected ? strlen(expected) : 0, expr, file, line);
}

#define CHECK(cond) check_bool(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ_U64(actual, expected)                                         \
	check_u64((uint64_t)(actual), (uint64_t)(expected), #actual, __FILE__, __LINE__)
#define CHECK_EQ_INT(actual, expected)                                         \
	check_i64((int64_t)(actual), (int64_t)(expected), #actual, __FILE__, __LINE__)
#define CHECK_STR(actual, expected)                                            \
	check_str((actual), (expected), #actual, __FILE__, __LINE__)
#define CHECK_MEM(actual, alen, expected, elen)                                \
	check_mem((actual), (alen), (expected), (elen), #actual, __FILE__, __LINE__)

/* Print the tally; the exit status of the test program. */
static inline int check_done(void)
{
	printf("%u passed, %u failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}
