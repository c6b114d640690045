/* See ids.h. A record: struct rec, then len bytes of name. Writes are one
 * write(2) each on an O_APPEND memfd; nothing is noted while replaying. */
#include "ids.h"
#include "fs.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct rec {
	uint8_t kind;
	uint8_t pad;
	uint16_t len;
	uint32_t arg;
};

static int journal = -1;
static bool replaying;

void ids_attach(int fd)
{
	journal = fd;
	if (fd >= 0 && fcntl(fd, F_SETFL, O_APPEND) < 0)
		log_warn("ids journal: %s", strerror(errno));
}

void ids_note(enum ids_kind kind, unsigned arg, const char *name)
{
	size_t len = strlen(name);
	struct rec r = { (uint8_t)kind, 0, (uint16_t)len, arg };
	struct iovec iov[2] = { { &r, sizeof(r) }, { (void *)name, len } };

	if (journal < 0 || replaying || len >= PATH_MAX)
		return;
	if (writev(journal, iov, 2) != (ssize_t)(sizeof(r) + len))
		log_warn("ids journal: %s: a restart may give this id another meaning",
			 strerror(errno));
}

static int replay_one(const struct rec *r, const char *name)
{
	switch (r->kind) {
	case IDS_CT: {
		struct ct *c = ct_intern(name);

		return c && c->id == r->arg ? 0 : -EPROTO;
	}
	case IDS_ANON:
		return ct_skip_id() == r->arg ? 0 : -EPROTO;
	case IDS_BLOCK:
		return block_index(name) == (int)r->arg ? 0 : -EPROTO;
	case IDS_PASS:
		return pnode_intern(r->arg, name) ? 0 : -ENOMEM;
	}
	return -EPROTO;
}

int ids_replay(void)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	size_t len = 0, off = 0;
	int r;

	if (journal < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", journal);
	r = read_file_alloc(AT_FDCWD, path, &buf, &len);
	if (r < 0)
		return log_error_errno(r, "ids journal");
	replaying = true;
	while (r == 0 && off + sizeof(struct rec) <= len) {
		struct rec rc;
		char name[PATH_MAX];

		memcpy(&rc, buf + off, sizeof(rc));
		if (off + sizeof(rc) + rc.len > len || rc.len >= sizeof(name)) {
			r = -EPROTO;
			break;
		}
		memcpy(name, buf + off + sizeof(rc), rc.len);
		name[rc.len] = '\0';
		r = replay_one(&rc, name);
		off += sizeof(rc) + rc.len;
	}
	replaying = false;
	if (r < 0)
		return log_error_errno(r, "ids journal: record at %zu", off);
	return 0;
}
