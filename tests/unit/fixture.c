#include "fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fixture: %s %s: %s\n", what, path, strerror(errno));
	exit(99); /* meson: a hard error, not a test failure */
}

char *fx_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/cvmfs-%s-XXXXXX", base, tag) < 0)
		die("asprintf", tag);
	if (!mkdtemp(path))
		die("mkdtemp", path);
	return path;
}

static void mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			die("mkdir", path);
		*p = '/';
	}
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("mkdir", path);
}

static void copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		die("open", src);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		die("create", dst);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			die("write", dst);
	if (n < 0)
		die("read", src);
	close(in);
	close(out);
}

static void copy_tree(const char *src, const char *dst)
{
	struct stat st;
	char s[PATH_MAX], d[PATH_MAX];
	DIR *dir;
	struct dirent *e;

	if (lstat(src, &st) < 0)
		die("lstat", src);
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(src, s, sizeof(s) - 1);

		if (n < 0)
			die("readlink", src);
		s[n] = '\0';
		if (symlink(s, dst) < 0)
			die("symlink", dst);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		copy_file(src, dst);
		return;
	}
	snprintf(d, sizeof(d), "%s", dst);
	mkdir_p(d);
	dir = opendir(src);
	if (!dir)
		die("opendir", src);
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(s, sizeof(s), "%s/%s", src, e->d_name);
		snprintf(d, sizeof(d), "%s/%s", dst, e->d_name);
		copy_tree(s, d);
	}
	closedir(dir);
}

void fx_copy_fixture(const char *name, const char *dst)
{
	char src[PATH_MAX];

	snprintf(src, sizeof(src), "%s/%s", CVMFS_FIXTURES, name);
	copy_tree(src, dst);
}

void fx_write(const char *root, const char *rel, const char *text)
{
	char path[PATH_MAX];
	char *slash;
	size_t len = strlen(text);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	mkdir_p(path);
	*slash = '/';
	/* In place, like a kernel file: an fd already open sees the new text. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create", path);
	if (write(fd, text, len) != (ssize_t)len)
		die("write", path);
	close(fd);
}

void fx_writef(const char *root, const char *rel, const char *fmt, ...)
{
	va_list ap;
	char *text;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (r < 0)
		die("vasprintf", rel);
	fx_write(root, rel, text);
	free(text);
}

void fx_unlink(const char *root, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (unlink(path) < 0)
		die("unlink", path);
}

char *fx_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, got = 0, n;

	if (!f)
		return NULL;
	do {
		if (got + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				die("realloc", path);
		}
		n = fread(buf + got, 1, cap - got - 1, f);
		got += n;
	} while (n > 0);
	fclose(f);
	buf[got] = '\0';
	if (len)
		*len = got;
	return buf;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "fixture: remove %s: %s\n", path, strerror(errno));
	return 0;
}

void fx_rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int saved_stderr = -1;
static char *capture_path;

void fx_stderr_begin(void)
{
	char *dir = fx_tmpdir("stderr");
	int fd;

	if (asprintf(&capture_path, "%s/err", dir) < 0)
		die("asprintf", dir);
	free(dir);
	fflush(stderr);
	saved_stderr = dup(2);
	fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (saved_stderr < 0 || fd < 0)
		die("capture", capture_path);
	dup2(fd, 2);
	close(fd);
}

char *fx_stderr_end(void)
{
	char *text;
	char *slash;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	saved_stderr = -1;
	text = fx_read(capture_path, NULL);
	unlink(capture_path);
	slash = strrchr(capture_path, '/');
	*slash = '\0';
	rmdir(capture_path);
	free(capture_path);
	capture_path = NULL;
	return text ? text : strdup("");
}
