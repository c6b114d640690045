/* Small-file reading without allocation on the hot path: pread into a
 * caller's buffer, and allocation-free parsers over the text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read a whole small file at fd from offset 0 into buf (NUL-terminated).
 * Returns bytes read, -EFBIG if it does not fit, or -errno. */
ssize_t read_fd_buf(int fd, char *buf, size_t size);
/* openat(dirfd, name) + read_fd_buf + close. */
ssize_t read_at_buf(int dirfd, const char *name, char *buf, size_t size);
/* Read a whole file of any size into malloc'ed memory. */
int read_file_alloc(int dirfd, const char *path, char **out, size_t *len);
/* Open PATH (relative to DIRFD) for reading only if it is a regular file.
 * O_NONBLOCK|O_NOCTTY so that a FIFO cannot block the open and a tty cannot
 * become our terminal; then fstat decides. Returns the fd, -EISDIR for a
 * directory, -EINVAL for any other special file (FIFO, device, socket), or
 * -errno. For config, state, status and pid files: anything that names
 * them may be a FIFO or /dev/zero by mistake or on purpose. */
int open_regular(int dirfd, const char *path);
/* The same with open(2) flags of the caller's (O_WRONLY | O_CREAT, ...;
 * created files get mode 0600). */
int open_regular_flags(int dirfd, const char *path, int flags);
/* open_regular + read_fd_buf: -EFBIG when the file does not fit in buf. */
ssize_t read_regular_buf(int dirfd, const char *path, char *buf, size_t size);
/* open_regular + read at most MAX bytes into malloc'ed memory
 * (NUL-terminated); -EFBIG when the file holds more. */
int read_regular_alloc(int dirfd, const char *path, size_t max, char **out,
		       size_t *len);
/* Text for an error of open_regular and the readers above ("not a regular
 * file" for -EINVAL), else strerror. */
const char *file_strerror(int r);
/* Parse one unsigned integer value, or "max" as UINT64_MAX, from file text. */
int parse_u64_or_max(const char *text, uint64_t *v);
/* In "key value\n" text, find key and parse its unsigned value.
 * Returns 0, or -ENOENT when the key is absent. */
int kv_lookup_u64(const char *text, const char *key, uint64_t *v);
/* In "key=value key=value" token text (one line), find key's value. */
int kv_token_u64(const char *line, const char *key, uint64_t *v);
/* Write a whole buffer to fd (for tests and state files). */
int write_all(int fd, const void *buf, size_t len);
