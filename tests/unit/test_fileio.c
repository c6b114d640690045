/* fileio.h: the allocation-free readers and parsers under every cgroup read. */
#include "check.h"
#include "fixture.h"

#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_parse_u64_or_max(void)
{
	uint64_t v = 0;

	CHECK_EQ_INT(parse_u64_or_max("42\n", &v), 0);
	CHECK_EQ_U64(v, 42);
	CHECK_EQ_INT(parse_u64_or_max("  7", &v), 0);
	CHECK_EQ_U64(v, 7);
	CHECK_EQ_INT(parse_u64_or_max("max\n", &v), 0);
	CHECK_EQ_U64(v, UINT64_MAX);
	CHECK_EQ_INT(parse_u64_or_max("-1\n", &v), 0); /* v1 unlimited */
	CHECK_EQ_U64(v, UINT64_MAX);
	CHECK_EQ_INT(parse_u64_or_max("150000 100000\n", &v), 0); /* first field */
	CHECK_EQ_U64(v, 150000);
	CHECK_EQ_INT(parse_u64_or_max("18446744073709551615", &v), 0);
	CHECK_EQ_U64(v, UINT64_MAX);
	v = 5;
	CHECK(parse_u64_or_max("18446744073709551616", &v) < 0);
	CHECK(parse_u64_or_max("", &v) < 0);
	CHECK(parse_u64_or_max("\n", &v) < 0);
	CHECK(parse_u64_or_max("garbage", &v) < 0);
	CHECK(parse_u64_or_max("12abc", &v) < 0);
	CHECK(parse_u64_or_max("-5", &v) < 0);
	/* Only "-1" means unlimited; other negative numbers are malformed. */
	CHECK(parse_u64_or_max("-10", &v) < 0);
	CHECK(parse_u64_or_max("-123456", &v) < 0);
	CHECK_EQ_U64(v, 5);
}

static void test_kv(void)
{
	static const char stat[] = "anon 100\nfile 200\nfile_mapped 300\n"
				   "anon_thp 400\nslab_reclaimable 5\nslab 6\n";
	static const char line[] = "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0";
	uint64_t v = 0;

	CHECK_EQ_INT(kv_lookup_u64(stat, "anon", &v), 0);
	CHECK_EQ_U64(v, 100);
	CHECK_EQ_INT(kv_lookup_u64(stat, "file", &v), 0);
	CHECK_EQ_U64(v, 200);
	CHECK_EQ_INT(kv_lookup_u64(stat, "file_mapped", &v), 0);
	CHECK_EQ_U64(v, 300);
	CHECK_EQ_INT(kv_lookup_u64(stat, "slab", &v), 0);
	CHECK_EQ_U64(v, 6);
	CHECK_EQ_INT(kv_lookup_u64(stat, "mapped", &v), -ENOENT); /* not a prefix match */
	CHECK_EQ_INT(kv_lookup_u64(stat, "fil", &v), -ENOENT);
	CHECK_EQ_INT(kv_lookup_u64("", "anon", &v), -ENOENT);
	CHECK_EQ_INT(kv_lookup_u64("user\t12\n", "user", &v), 0);
	CHECK_EQ_U64(v, 12);

	CHECK_EQ_INT(kv_token_u64(line, "rbytes", &v), 0);
	CHECK_EQ_U64(v, 1024);
	CHECK_EQ_INT(kv_token_u64(line, "wios", &v), 0);
	CHECK_EQ_U64(v, 4);
	CHECK_EQ_INT(kv_token_u64(line, "dios", &v), 0);
	CHECK_EQ_U64(v, 0);
	CHECK_EQ_INT(kv_token_u64(line, "ios", &v), -ENOENT);
	CHECK_EQ_INT(kv_token_u64(line, "bytes", &v), -ENOENT);
	/* Stops at the end of the line. */
	CHECK_EQ_INT(kv_token_u64("8:0 rios=1\n8:16 wios=2\n", "wios", &v), -ENOENT);
}

static void test_read(void)
{
	char *dir = fx_tmpdir("fileio");
	char buf[8], big[64];
	char *all = NULL;
	size_t len = 0;
	int dfd, fd;

	fx_write(dir, "seven", "1234567");
	fx_write(dir, "eight", "12345678");
	fx_write(dir, "empty", "");
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0);

	CHECK_EQ_INT(read_at_buf(dfd, "seven", buf, sizeof(buf)), 7);
	CHECK_STR(buf, "1234567");
	CHECK_EQ_INT(read_at_buf(dfd, "eight", buf, sizeof(buf)), -EFBIG);
	CHECK_EQ_INT(read_at_buf(dfd, "empty", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "");
	CHECK_EQ_INT(read_at_buf(dfd, "missing", buf, sizeof(buf)), -ENOENT);

	/* An fd kept open re-reads from offset 0 and sees rewritten text. */
	fd = openat(dfd, "seven", O_RDONLY | O_CLOEXEC);
	CHECK_EQ_INT(read_fd_buf(fd, big, sizeof(big)), 7);
	fx_write(dir, "seven", "99\n");
	CHECK_EQ_INT(read_fd_buf(fd, big, sizeof(big)), 3);
	CHECK_STR(big, "99\n");
	close(fd);

	{
		char *text = malloc(100001);

		for (int i = 0; i < 100000; i++)
			text[i] = (char)('a' + i % 26);
		text[100000] = '\0';
		fx_write(dir, "large", text);
		CHECK_EQ_INT(read_file_alloc(dfd, "large", &all, &len), 0);
		CHECK_EQ_U64(len, 100000);
		CHECK(all && !memcmp(all, text, 100001));
		free(text);
		free(all);
	}
	CHECK_EQ_INT(read_file_alloc(dfd, "missing", &all, &len), -ENOENT);

	fd = openat(dfd, "written", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK_EQ_INT(write_all(fd, "hello\n", 6), 0);
	close(fd);
	CHECK_EQ_INT(read_at_buf(dfd, "written", big, sizeof(big)), 6);
	CHECK_STR(big, "hello\n");

	close(dfd);
	fx_rm_tree(dir);
	free(dir);
}

/* open_regular and its readers: a FIFO without a writer must not block
 * (alarm() turns a hang into a failure), devices and directories are
 * refused, sizes are bounded. */
static void test_regular_only(void)
{
	char *dir = fx_tmpdir("regular"), *all = NULL, buf[16];
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t len = 0;
	int fd;

	fx_write(dir, "ten", "0123456789");
	CHECK_EQ_INT(mkfifoat(dfd, "fifo", 0600), 0);
	CHECK_EQ_INT(mkdirat(dfd, "sub", 0700), 0);
	alarm(20);
	fd = open_regular(dfd, "ten");
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ_INT(open_regular(dfd, "fifo"), -EINVAL);
	CHECK_EQ_INT(open_regular(dfd, "sub"), -EISDIR);
	CHECK_EQ_INT(open_regular(AT_FDCWD, "/dev/zero"), -EINVAL);
	CHECK_EQ_INT(open_regular(AT_FDCWD, "/dev/null"), -EINVAL);
	CHECK_EQ_INT(open_regular(dfd, "missing"), -ENOENT);
	CHECK_EQ_INT(read_regular_buf(dfd, "fifo", buf, sizeof(buf)), -EINVAL);
	CHECK_EQ_INT(read_regular_buf(dfd, "ten", buf, sizeof(buf)), 10);
	CHECK_STR(buf, "0123456789");
	CHECK_EQ_INT(read_regular_buf(dfd, "ten", buf, 10), -EFBIG);
	CHECK_EQ_INT(read_regular_alloc(dfd, "ten", 10, &all, &len), 0);
	CHECK_EQ_U64(len, 10);
	CHECK_STR(all, "0123456789");
	free(all);
	all = NULL;
	CHECK_EQ_INT(read_regular_alloc(dfd, "ten", 9, &all, &len), -EFBIG);
	CHECK(!all);
	CHECK_EQ_INT(read_regular_alloc(AT_FDCWD, "/dev/zero", 9, &all, &len), -EINVAL);
	CHECK_EQ_INT(read_regular_alloc(dfd, "fifo", 9, &all, &len), -EINVAL);
	alarm(0);
	CHECK_STR(file_strerror(-EINVAL), "not a regular file");
	CHECK_STR(file_strerror(-EISDIR), "Is a directory");
	close(dfd);
	fx_rm_tree(dir);
	free(dir);
}

int main(void)
{
	test_parse_u64_or_max();
	test_kv();
	test_read();
	test_regular_only();
	return check_done();
}
