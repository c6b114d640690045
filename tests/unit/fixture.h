/* Temporary directory trees for the unit tests: copies of the shipped
 * fixtures under tests/fixtures/ (so tests may change them freely), files
 * written in place (an fd kept open by the code under test sees the new
 * content, as with a kernel cgroup file), and stderr capture. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifndef CVMFS_FIXTURES
#error "CVMFS_FIXTURES must name the source tree's tests/fixtures directory"
#endif

/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'ed path or exits. */
char *fx_tmpdir(const char *tag);
/* Copy the shipped fixture tree tests/fixtures/NAME to DST (created);
 * symlinks are copied as symlinks. Exits on failure. */
void fx_copy_fixture(const char *name, const char *dst);
/* Write TEXT to ROOT/REL, creating parent directories, truncating in place. */
void fx_write(const char *root, const char *rel, const char *text);
void fx_writef(const char *root, const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Remove ROOT/REL (a file or symlink). */
void fx_unlink(const char *root, const char *rel);
/* Read a whole file into malloc'ed memory (NUL-terminated); NULL if absent. */
char *fx_read(const char *path, size_t *len);
/* rm -rf PATH. */
void fx_rm_tree(const char *path);

/* Send stderr into a temp file until fx_stderr_end(), which returns what was
 * written (malloc'ed) and restores stderr. */
void fx_stderr_begin(void);
char *fx_stderr_end(void);
