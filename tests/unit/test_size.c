/* size_parse and uint_parse: SIZE suffixes are powers of 1024, any case. */
#include "check.h"

#include "cvmfs/size.h"

#include <errno.h>

static void expect_size(const char *text, uint64_t want, const char *file, int line)
{
	uint64_t v = 12345;
	int r = size_parse(text, &v);

	if (!check_i64(r, 0, text, file, line))
		return;
	check_u64(v, want, text, file, line);
}

static void expect_size_err(const char *text, int want, const char *file, int line)
{
	uint64_t v = 12345;
	int r = size_parse(text, &v);

	check_i64(r, want, text ? text : "(null)", file, line);
	/* A failed parse leaves the output alone. */
	check_u64(v, 12345, text ? text : "(null)", file, line);
}

static void expect_uint(const char *text, uint64_t want, const char *file, int line)
{
	uint64_t v = 12345;
	int r = uint_parse(text, &v);

	if (!check_i64(r, 0, text, file, line))
		return;
	check_u64(v, want, text, file, line);
}

static void expect_uint_err(const char *text, int want, const char *file, int line)
{
	uint64_t v = 12345;
	int r = uint_parse(text, &v);

	check_i64(r, want, text ? text : "(null)", file, line);
	check_u64(v, 12345, text ? text : "(null)", file, line);
}

#define SIZE_OK(t, w) expect_size((t), (w), __FILE__, __LINE__)
#define SIZE_ERR(t, e) expect_size_err((t), (e), __FILE__, __LINE__)
#define UINT_OK(t, w) expect_uint((t), (w), __FILE__, __LINE__)
#define UINT_ERR(t, e) expect_uint_err((t), (e), __FILE__, __LINE__)

static void test_size_suffixes(void)
{
	SIZE_OK("0", 0);
	SIZE_OK("1", 1);
	SIZE_OK("4096", 4096);
	SIZE_OK("1K", 1024);
	SIZE_OK("1k", 1024);
	SIZE_OK("10M", 10ULL << 20);
	SIZE_OK("10m", 10ULL << 20);
	SIZE_OK("256M", 268435456ULL);
	SIZE_OK("2G", 2ULL << 30);
	SIZE_OK("2g", 2ULL << 30);
	SIZE_OK("3T", 3ULL << 40);
	SIZE_OK("3t", 3ULL << 40);
	SIZE_OK("0G", 0);
	SIZE_OK("007K", 7 * 1024);
	SIZE_OK("10GB", 10ULL << 30); /* "B" after a suffix is tolerated */
	SIZE_OK("10Gb", 10ULL << 30);
}

static void test_size_limits(void)
{
	SIZE_OK("18446744073709551615", UINT64_MAX);
	SIZE_OK("16777215T", 16777215ULL << 40); /* the largest whole T */
	SIZE_OK("17179869183G", 17179869183ULL << 30);
	SIZE_ERR("18446744073709551616", -ERANGE);
	SIZE_ERR("99999999999999999999999", -ERANGE);
	SIZE_ERR("16777216T", -ERANGE); /* exactly 2^64 */
	SIZE_ERR("17179869184G", -ERANGE);
	SIZE_ERR("18014398509481984K", -ERANGE);
	SIZE_ERR("18446744073709551615K", -ERANGE);
}

static void test_size_garbage(void)
{
	SIZE_ERR("", -EINVAL);
	SIZE_ERR(NULL, -EINVAL);
	SIZE_ERR("-1", -EINVAL);
	SIZE_ERR("-1G", -EINVAL);
	SIZE_ERR("+1", -EINVAL);
	SIZE_ERR(" 1", -EINVAL);
	SIZE_ERR("1 ", -EINVAL);
	SIZE_ERR("1 G", -EINVAL);
	SIZE_ERR("G", -EINVAL);
	SIZE_ERR("abc", -EINVAL);
	SIZE_ERR("1X", -EINVAL);
	SIZE_ERR("1P", -EINVAL);
	SIZE_ERR("1.5G", -EINVAL);
	SIZE_ERR("1KK", -EINVAL);
	SIZE_ERR("1GBB", -EINVAL);
	SIZE_ERR("1B", -EINVAL); /* "B" only after a suffix */
	SIZE_ERR("0x10", -EINVAL);
	SIZE_ERR("1G\n", -EINVAL);
}

static void test_uint(void)
{
	UINT_OK("0", 0);
	UINT_OK("42", 42);
	UINT_OK("00042", 42);
	UINT_OK("18446744073709551615", UINT64_MAX);
	UINT_ERR("18446744073709551616", -ERANGE);
	UINT_ERR("", -EINVAL);
	UINT_ERR(NULL, -EINVAL);
	UINT_ERR("-1", -EINVAL);
	UINT_ERR("+1", -EINVAL);
	UINT_ERR(" 1", -EINVAL);
	UINT_ERR("1 ", -EINVAL);
	UINT_ERR("1K", -EINVAL);
	UINT_ERR("12a", -EINVAL);
	UINT_ERR("abc", -EINVAL);
	UINT_ERR("1.0", -EINVAL);
}

int main(void)
{
	test_size_suffixes();
	test_size_limits();
	test_size_garbage();
	test_uint();
	return check_done();
}
