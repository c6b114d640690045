#include "cvmfs/fileio.h"
#include "cvmfs/cleanup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t read_fd_buf(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size - 1) {
		ssize_t n = pread(fd, buf + got, size - 1 - got, (off_t)got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (got == size - 1) {
		char extra;
		ssize_t n = pread(fd, &extra, 1, (off_t)got);

		if (n > 0)
			return -EFBIG;
	}
	return (ssize_t)got;
}

ssize_t read_at_buf(int dirfd, const char *name, char *buf, size_t size)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return read_fd_buf(fd, buf, size);
}

int read_file_alloc(int dirfd, const char *path, char **out, size_t *len)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t cap = 4096, got = 0;

	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (got + 1 >= cap) {
			char *p = realloc(buf, cap * 2);

			if (!p)
				return -ENOMEM;
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + got, cap - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = TAKE_PTR(buf);
	if (len)
		*len = got;
	return 0;
}

int open_regular(int dirfd, const char *path)
{
	return open_regular_flags(dirfd, path, O_RDONLY);
}

int open_regular_flags(int dirfd, const char *path, int flags)
{
	_cleanup_close_ int fd = openat(dirfd, path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return TAKE_FD(fd);
}

ssize_t read_regular_buf(int dirfd, const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = open_regular(dirfd, path);

	if (fd < 0)
		return fd;
	return read_fd_buf(fd, buf, size);
}

int read_regular_alloc(int dirfd, const char *path, size_t max, char **out,
		       size_t *len)
{
	_cleanup_close_ int fd = open_regular(dirfd, path);
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	if (fd < 0)
		return fd;
	/* One byte more than allowed tells "exactly max" from "more". */
	buf = malloc(max + 2);
	if (!buf)
		return -ENOMEM;
	n = read_fd_buf(fd, buf, max + 2);
	if (n < 0)
		return (int)n;
	if ((size_t)n > max)
		return -EFBIG;
	*out = TAKE_PTR(buf);
	if (len)
		*len = (size_t)n;
	return 0;
}

const char *file_strerror(int r)
{
	if (r == -EINVAL)
		return "not a regular file";
	return strerror(-r);
}

int parse_u64_or_max(const char *text, uint64_t *v)
{
	char *end;
	unsigned long long x;

	while (isspace((unsigned char)*text))
		text++;
	if (!strncmp(text, "max", 3)) {
		*v = UINT64_MAX;
		return 0;
	}
	if (*text == '-') { /* v1 "-1" means unlimited; other negatives are garbage */
		if (text[1] == '1' && !isdigit((unsigned char)text[2])) {
			*v = UINT64_MAX;
			return 0;
		}
		return -EINVAL;
	}
	if (!isdigit((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	x = strtoull(text, &end, 10);
	if (errno)
		return -errno;
	if (*end && !isspace((unsigned char)*end))
		return -EINVAL;
	*v = x;
	return 0;
}

int kv_lookup_u64(const char *text, const char *key, uint64_t *v)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, klen) && (p[klen] == ' ' || p[klen] == '\t'))
			return parse_u64_or_max(p + klen + 1, v);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

int kv_token_u64(const char *line, const char *key, uint64_t *v)
{
	size_t klen = strlen(key);
	const char *p = line;

	while (*p && *p != '\n') {
		while (*p == ' ')
			p++;
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return parse_u64_or_max(p + klen + 1, v);
		while (*p && *p != ' ' && *p != '\n')
			p++;
	}
	return -ENOENT;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
