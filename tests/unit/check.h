/* The C tests' one check kit, speaking TAP (the Python harness,
 * tests/lib/harness.py, prints the same): every check is a numbered test
 * point, "ok N - what" or "not ok N - what" followed by "# " lines with
 * the expected and actual values; check_done() prints the plan "1..N" and
 * "# N checks, P passed, F failed" and gives the exit status (0, 1; 77
 * through check_skip() when the machine lacks what the test needs). One
 * header per test program, so the counters are plain statics; a check from
 * several threads at once is counted right (atomics) and printed whole. */
#pragma once

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned check_passed, check_failed;

/* Prints the test point of one check; the number is its order. */
static inline bool check_point(bool ok, const char *fmt, va_list ap)
{
	unsigned n;

	flockfile(stdout);
	n = __atomic_add_fetch(ok ? &check_passed : &check_failed, 1, __ATOMIC_RELAXED);
	n += __atomic_load_n(ok ? &check_failed : &check_passed, __ATOMIC_RELAXED);
	printf("%s %u - ", ok ? "ok" : "not ok", n);
	vprintf(fmt, ap);
	putchar('\n');
	funlockfile(stdout);
	return ok;
}

/* A check named by a printf format: CHECK_MSG(ok, "mounted %s", path). */
static inline __attribute__((format(printf, 2, 3))) bool check_msg(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	check_point(ok, fmt, ap);
	va_end(ap);
	fflush(stdout);
	return ok;
}

/* A diagnostic line ("# ..."), such as a failed check's values. */
static inline __attribute__((format(printf, 1, 2))) void check_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
}

static inline bool check_bool(bool ok, const char *expr, const char *file, int line)
{
	return check_msg(ok, "%s:%d: CHECK(%s)", file, line, expr);
}

static inline bool check_u64(uint64_t actual, uint64_t expected, const char *expr,
			     const char *file, int line)
{
	bool ok = check_msg(actual == expected, "%s:%d: %s == %" PRIu64, file, line, expr,
			    expected);

	if (!ok)
		check_note("  expected %" PRIu64 ", got %" PRIu64, expected, actual);
	return ok;
}

static inline bool check_i64(int64_t actual, int64_t expected, const char *expr,
			     const char *file, int line)
{
	bool ok = check_msg(actual == expected, "%s:%d: %s == %" PRId64, file, line, expr,
			    expected);

	if (!ok)
		check_note("  expected %" PRId64 ", got %" PRId64, expected, actual);
	return ok;
}

/* Print a string with control characters escaped, so layout bugs show. */
static inline void check_print_escaped(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static inline bool check_mem(const char *actual, size_t alen, const char *expected,
			     size_t elen, const char *expr, const char *file, int line)
{
	bool ok = actual && expected && alen == elen && !memcmp(actual, expected, alen);
	size_t off = 0;

	check_msg(ok, "%s:%d: %s", file, line, expr);
	if (ok)
		return ok;
	while (actual && expected && off < alen && off < elen && actual[off] == expected[off])
		off++;
	printf("#   first difference at byte %zu\n#   expected \"", off);
	if (expected)
		check_print_escaped(expected, elen > 2000 ? 2000 : elen);
	fputs("\"\n#   got      \"", stdout);
	if (actual)
		check_print_escaped(actual, alen > 2000 ? 2000 : alen);
	else
		fputs("(null)", stdout);
	fputs("\"\n", stdout);
	fflush(stdout);
	return ok;
}

static inline bool check_str(const char *actual, const char *expected, const char *expr,
			     const char *file, int line)
{
	return check_mem(actual, actual ? strlen(actual) : 0, expected,
			 expected ? strlen(expected) : 0, expr, file, line);
}

#define CHECK(cond) check_bool(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_MSG(cond, ...) check_msg(!!(cond), __VA_ARGS__)
#define CHECK_EQ_U64(actual, expected)                                         \
	check_u64((uint64_t)(actual), (uint64_t)(expected), #actual, __FILE__, __LINE__)
#define CHECK_EQ_INT(actual, expected)                                         \
	check_i64((int64_t)(actual), (int64_t)(expected), #actual, __FILE__, __LINE__)
#define CHECK_STR(actual, expected)                                            \
	check_str((actual), (expected), #actual, __FILE__, __LINE__)
#define CHECK_MEM(actual, alen, expected, elen)                                \
	check_mem((actual), (alen), (expected), (elen), #actual, __FILE__, __LINE__)

/* The plan and the tally; the exit status of the test program. */
static inline int check_done(void)
{
	printf("1..%u\n# %u checks, %u passed, %u failed\n", check_passed + check_failed,
	       check_passed + check_failed, check_passed, check_failed);
	fflush(stdout);
	return check_failed ? 1 : 0;
}

/* The machine lacks what the rest of the test needs: the plan, the reason,
 * and 77 (meson's skip) unless a check so far failed. */
static inline int check_skip(const char *reason)
{
	unsigned n = check_passed + check_failed;

	printf("1..%u # SKIP %s\n# %u checks, %u passed, %u failed\n", n, reason, n,
	       check_passed, check_failed);
	fflush(stdout);
	return check_failed ? 1 : 77;
}
