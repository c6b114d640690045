/* One image layer, from its (compressed) tar bytes into an empty directory
 * of the store, with both digests checked: the blob's as it streams in,
 * the uncompressed tar's (the config's diff_id) as libarchive reads it.
 *
 * Three libarchive objects in a chain: `dec` undoes gzip or zstd (format
 * raw) from the source, `tar` reads entries from dec's output, `disk`
 * writes them. Every entry is checked before it is written (relative,
 * no "..", no symlink among its parents, no device but the char 0/0 of
 * an overlay whiteout, hard links only to what this layer already has);
 * libarchive's SECURE_* flags check the same again. OCI whiteouts
 * (.wh.NAME, .wh..wh..opq) are kept as files: the union reads them in
 * image layers (src/disk/layer.c). Owners (numeric), modes with setuid
 * bits, xattrs (file capabilities), ACLs and times are kept; a
 * user-namespaced CVM sees them shifted by the disk's --image-idmap. */
#include "image.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define EXTRACT_FLAGS                                                                  \
	(ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |             \
	 ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_SPARSE |            \
	 ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |               \
	 ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

struct unpack {
	const struct layer_src *src;
	struct archive *dec, *tar, *disk;
	EVP_MD_CTX *blob_md, *diff_md;
	int dirfd;
	char buf[128 * 1024];
};

static void unpack_free(struct unpack **pu)
{
	struct unpack *u = *pu;

	if (!u)
		return;
	if (u->tar)
		archive_read_free(u->tar);
	if (u->dec)
		archive_read_free(u->dec);
	if (u->disk)
		archive_write_free(u->disk);
	EVP_MD_CTX_free(u->blob_md);
	EVP_MD_CTX_free(u->diff_md);
	free(u);
}

/* dec's source: the layer's bytes as stored, hashed on the way. */
static la_ssize_t blob_read(struct archive *a, void *ctx, const void **buf)
{
	struct unpack *u = ctx;
	long n = u->src->read(u->src->ctx, buf);

	if (n < 0) {
		const char *why = u->src->error ? u->src->error(u->src->ctx) : NULL;

		archive_set_error(a, (int)-n, "%s", why ? why : strerror((int)-n));
		return -1;
	}
	if (n > 0)
		EVP_DigestUpdate(u->blob_md, *buf, (size_t)n);
	return n;
}

/* tar's source: dec's output, the uncompressed tar, hashed on the way. */
static la_ssize_t tar_read(struct archive *a, void *ctx, const void **buf)
{
	struct unpack *u = ctx;
	la_ssize_t n = archive_read_data(u->dec, u->buf, sizeof(u->buf));

	if (n < 0) {
		archive_set_error(a, EIO, "%s", archive_error_string(u->dec));
		return -1;
	}
	*buf = u->buf;
	if (n > 0)
		EVP_DigestUpdate(u->diff_md, u->buf, (size_t)n);
	return n;
}

static int unpack_open(struct unpack *u)
{
	struct archive_entry *e;
	int r;

	u->dec = archive_read_new();
	u->tar = archive_read_new();
	u->disk = archive_write_disk_new();
	u->blob_md = EVP_MD_CTX_new();
	u->diff_md = EVP_MD_CTX_new();
	if (!u->dec || !u->tar || !u->disk || !u->blob_md || !u->diff_md ||
	    !EVP_DigestInit_ex(u->blob_md, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(u->diff_md, EVP_sha256(), NULL))
		return -ENOMEM;
	/* gzip and zstd in-process, and nothing that would run a program */
	archive_read_support_filter_gzip(u->dec);
	archive_read_support_filter_zstd(u->dec);
	archive_read_support_format_raw(u->dec);
	archive_read_support_format_tar(u->tar);
	archive_write_disk_set_options(u->disk, EXTRACT_FLAGS);
	if (archive_read_open(u->dec, u, NULL, blob_read, NULL) != ARCHIVE_OK)
		return -EIO;
	r = archive_read_next_header(u->dec, &e);
	if (r != ARCHIVE_OK)
		return -EIO;
	return archive_read_open(u->tar, u, NULL, tar_read, NULL) == ARCHIVE_OK ? 0 : -EIO;
}

/* "./a//b" -> "a/b"; "." for the layer's root. 0, or -EINVAL for an
 * absolute path or one with a ".." component. */
static int norm_path(const char *in, char *out, size_t size)
{
	size_t n = 0;

	if (!in || in[0] == '/')
		return -EINVAL;
	for (const char *p = in; *p;) {
		size_t len = strcspn(p, "/");

		if (len == 2 && !strncmp(p, "..", 2))
			return -EINVAL;
		if (len && !(len == 1 && p[0] == '.')) {
			if (n + len + 2 > size)
				return -ENAMETOOLONG;
			if (n)
				out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p += len + (p[len] == '/');
	}
	if (!n)
		out[n++] = '.';
	out[n] = '\0';
	return 0;
}

/* The directory holding PATH in the layer, opened without following any
 * symlink and without leaving the layer: -ENOENT if it is still to be
 * made (by libarchive), -ELOOP through a symlink. */
static int open_parent(int dirfd, const char *path, const char **base)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					   RESOLVE_NO_MAGICLINKS };
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	long fd;

	*base = slash ? slash + 1 : path;
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 1,
		 slash ? path : ".");
	fd = syscall(SYS_openat2, dirfd, parent, &how, sizeof(how));
	if (fd < 0)
		return errno == EXDEV ? -ELOOP : -errno;
	return (int)fd;
}

static int check_parent(int dirfd, const char *path, const char **why)
{
	const char *base;
	int fd = open_parent(dirfd, path, &base);

	if (fd >= 0)
		close(fd);
	if (fd == -ELOOP)
		*why = "a parent directory is a symlink";
	else if (fd == -ENOTDIR)
		*why = "a parent is not a directory";
	else if (fd < 0 && fd != -ENOENT)
		*why = strerror(-fd);
	return fd >= 0 || fd == -ENOENT ? 0 : -EINVAL; /* -ENOENT: libarchive makes it */
}

/* A hard link's target: a non-directory this layer already has, reached
 * without a symlink. */
static int check_hardlink(int dirfd, struct archive_entry *e, const char **why)
{
	char target[PATH_MAX];
	const char *base;
	struct stat st;
	int fd, r;

	if (norm_path(archive_entry_hardlink(e), target, sizeof(target)) < 0) {
		*why = "a hard link out of the layer";
		return -EINVAL;
	}
	fd = open_parent(dirfd, target, &base);
	r = fd < 0 ? fd : fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (r < 0 || S_ISDIR(st.st_mode)) {
		*why = r == -ELOOP ? "a hard link through a symlink"
				   : "a hard link to nothing earlier in the layer";
		return -EINVAL;
	}
	archive_entry_set_hardlink(e, target);
	return 0;
}

static int check_type(struct archive_entry *e, const char **why)
{
	mode_t type = archive_entry_filetype(e);

	if (type == AE_IFCHR && archive_entry_rdevmajor(e) == 0 && archive_entry_rdevminor(e) == 0)
		return 0; /* an overlay whiteout */
	if (type == AE_IFCHR || type == AE_IFBLK) {
		*why = "a device node";
		return -EINVAL;
	}
	if (type == AE_IFSOCK) {
		*why = "a socket";
		return -EINVAL;
	}
	return 0;
}

/* 0, or -EINVAL after one line naming the entry. */
static int check_entry(struct unpack *u, struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e), *why = NULL;
	char path[PATH_MAX];
	int r;

	if (norm_path(name, path, sizeof(path)) < 0) {
		why = name && name[0] == '/' ? "an absolute path" : "a '..' in the path";
		r = -EINVAL;
	} else if ((r = check_parent(u->dirfd, path, &why)) == 0) {
		r = archive_entry_hardlink(e) ? check_hardlink(u->dirfd, e, &why)
					      : check_type(e, &why);
	}
	if (r < 0) {
		img_error("%s: entry '%s': %s: refused", u->src->what, name ? name : "", why);
		return r;
	}
	archive_entry_set_pathname(e, path); /* what was checked is written */
	return 0;
}

static int archive_fail(struct unpack *u, struct archive *a, const char *name)
{
	const char *msg = archive_error_string(a);

	if (name)
		img_error("%s: entry '%s': %s", u->src->what, name, msg ? msg : "failed");
	else
		img_error("%s: %s", u->src->what, msg ? msg : "unreadable");
	return -EBADMSG;
}

static int copy_data(struct unpack *u, struct archive_entry *e)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(u->tar, &buf, &size, &off)) == ARCHIVE_OK)
		if (archive_write_data_block(u->disk, buf, size, off) != ARCHIVE_OK)
			return archive_fail(u, u->disk, archive_entry_pathname(e));
	if (r != ARCHIVE_EOF)
		return archive_fail(u, u->tar, archive_entry_pathname(e));
	return 0;
}

static int extract_all(struct unpack *u)
{
	struct archive_entry *e;
	int r;

	while ((r = archive_read_next_header(u->tar, &e)) == ARCHIVE_OK) {
		if ((r = check_entry(u, e)) < 0)
			return r;
		if (archive_write_header(u->disk, e) != ARCHIVE_OK)
			return archive_fail(u, u->disk, archive_entry_pathname(e));
		if (archive_entry_size(e) > 0 && (r = copy_data(u, e)) < 0)
			return r;
		if (archive_write_finish_entry(u->disk) != ARCHIVE_OK)
			return archive_fail(u, u->disk, archive_entry_pathname(e));
	}
	if (r != ARCHIVE_EOF)
		return archive_fail(u, u->tar, NULL);
	/* directories' times and modes are set last */
	return archive_write_close(u->disk) == ARCHIVE_OK ? 0 : archive_fail(u, u->disk, NULL);
}

/* The rest of both streams (tar's end blocks, compression trailers) goes
 * into the digests too: they cover every byte. */
static int drain(struct unpack *u)
{
	const void *buf;
	la_ssize_t n;

	while ((n = tar_read(u->tar, u, &buf)) > 0)
		;
	if (n < 0)
		return archive_fail(u, u->tar, NULL);
	while ((n = blob_read(u->dec, u, &buf)) > 0)
		;
	return n < 0 ? archive_fail(u, u->dec, NULL) : 0;
}

static void md_hex(EVP_MD_CTX *md, char hex[DIGEST_HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	EVP_DigestFinal_ex(md, d, &len);
	for (unsigned i = 0; i < len && i < DIGEST_HEX / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int verify(struct unpack *u, const char *expect_blob, const char *expect_diff)
{
	char blob[DIGEST_HEX + 1] = "", diff[DIGEST_HEX + 1] = "";

	md_hex(u->blob_md, blob);
	md_hex(u->diff_md, diff);
	if (expect_blob && *expect_blob && strcmp(blob, expect_blob)) {
		img_error("%s: digest mismatch: the blob is sha256:%s, its manifest says sha256:%s",
			  u->src->what, blob, expect_blob);
		return -EBADMSG;
	}
	if (strcmp(diff, expect_diff)) {
		img_error("%s: digest mismatch: the uncompressed layer is sha256:%s, its config says sha256:%s",
			  u->src->what, diff, expect_diff);
		return -EBADMSG;
	}
	return 0;
}

static void fchdir_back(int *fd)
{
	if (*fd >= 0 && fchdir(*fd) < 0)
		img_error("cannot return to the working directory: %s", strerror(errno));
	cleanup_closep(fd);
}

int layer_unpack(const struct layer_src *src, int dirfd, const char *expect_blob,
		 const char *expect_diff)
{
	__attribute__((cleanup(unpack_free))) struct unpack *u = calloc(1, sizeof(*u));
	__attribute__((cleanup(fchdir_back))) int cwd = -EBADF;
	int r;

	if (!u)
		return -ENOMEM;
	u->src = src;
	u->dirfd = dirfd;
	if ((r = unpack_open(u)) < 0)
		return r == -ENOMEM ? r : archive_fail(u, u->dec, NULL);
	/* libarchive writes relative to the working directory */
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || fchdir(dirfd) < 0)
		return img_error_errno(-errno, "%s: entering the unpack directory", src->what);
	if ((r = extract_all(u)) < 0 || (r = drain(u)) < 0)
		return r;
	return verify(u, expect_blob, expect_diff);
}
