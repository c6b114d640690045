/* cvmfsd disk survives its server (issue 17, doc/cvmfsd-disk.md): the
 * process started is a supervisor (src/common/fuse_survive.c) that has
 * prepared DATA, the layers and the volume, and clones servers sharing
 * its fd table. A server after the first takes the connection over: it
 * closes what its predecessor left but the files the kernel has open
 * (their fds are the file handles), indexes the journal
 * (nodes/journal.c), recounts the usage, empties DATA/work (a copy-up
 * cut short), and counts the open files on their nodes again before
 * libfuse reads the first request. */
#include "fuse/ops.h"
#include "disk_main.h"
#include "volume/volume.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fsutil.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fuse_survive SURV;

/* After an upgrade's exec: the generation carried over. Its first server
 * finds the usage the new binary counted before it (no server ran since
 * the old one was killed), so it does not count again. */
static unsigned exec_gen;

static struct {
	int *fd;
	unsigned n, cap;
} kept;

/* Called first thing in a new server, for each fd it did not inherit
 * from the supervisor: an open file of the kernel's stays. */
static bool keep_open_file(int fd)
{
	uint64_t ino;
	unsigned io;
	uint32_t bid;
	int *grown;

	if (volume_carries(fd)) /* an upgrade carried it: the supervisor's */
		return true;
	if (!journal_open_get(fd, &ino, &io, &bid))
		return false;
	if (kept.n == kept.cap) {
		grown = realloc(kept.fd, (kept.cap * 2 + 64) * sizeof(int));
		if (!grown)
			return true; /* kept, not counted: its RELEASE closes it */
		kept.fd = grown;
		kept.cap = kept.cap * 2 + 64;
	}
	kept.fd[kept.n++] = fd;
	return true;
}

/* What an upgrade's exec keeps: the open files (the kernel's file
 * handles) and the volume's image file and loop device. */
static bool carried(int fd)
{
	uint64_t ino;
	unsigned io;
	uint32_t bid;

	return journal_open_get(fd, &ino, &io, &bid) || volume_carries(fd);
}

int disk_survive_setup(bool upgraded)
{
	int fd = upgraded ? SURV.extra_fd : journal_create(), r;

	if (fd < 0 || (r = journal_attach(fd)) < 0)
		return log_error_errno(fd < 0 ? fd : r, "take-over journal (memfd)");
	SURV.extra_fds[0] = fd;
	SURV.extra_fds[1] = -1;
	SURV.carry_fd = carried;
	exec_gen = upgraded ? SURV.gen : 0;
	/* With a volume, the new binary adopts it through the fds carried. */
	r = volume_on() ? volume_carry_record() : 0;
	if (r < 0)
		log_warn("--volume: recording its fds for an upgrade: %s: SIGUSR2 will be refused",
			 strerror(-r));
	SURV.can_upgrade = r == 0;
	SURV.prog = "cvmfsd disk";
	SURV.restart_ms = disk_ctx->cfg.restart_ms;
	SURV.max_crashes = disk_ctx->cfg.max_crashes;
	SURV.crash_window_s = disk_ctx->cfg.crash_window_s;
	SURV.keep_fd = keep_open_file;
	SURV.no_resend = getenv("CVMFS_DISK_TEST_NO_RESEND") && *getenv("CVMFS_DISK_TEST_NO_RESEND");
	return fuse_survive_setup(&SURV);
}

/* The usage as a recount finds it now (the dead server's figures died
 * with it); the limits stay. */
static int recount(void)
{
	struct acct fresh = { .limit_bytes = disk_ctx->acct.limit_bytes,
			      .limit_inodes = disk_ctx->acct.limit_inodes };
	uint64_t image_inodes = 0;
	int r = scan_all(&fresh, &image_inodes);

	if (r < 0)
		return log_error_errno(r, "--data %s: recount", disk_ctx->cfg.data);
	disk_ctx->acct = fresh;
	disk_ctx->image_inodes = image_inodes;
	return 0;
}

/* Before the session: the journal indexed, the usage recounted, a
 * copy-up cut short undone. */
int disk_survive_prepare(void)
{
	struct timespec t0, t1;
	bool fresh;
	int n, r;

	if (SURV.gen <= 1)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	n = journal_replay();
	if (n < 0)
		return log_error_errno(n, "take-over journal");
	rm_rf_at(disk_ctx->work_fd, 0);
	fresh = exec_gen && SURV.gen == exec_gen + 1;
	if (!fresh && (r = recount()) < 0)
		return r;
	reconnect_after_takeover();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("%s: taking over (generation %u): %d node names, %u open files, usage "
		 "%s: %lld bytes, %lld inodes in %.1f ms", disk_ctx->cfg.name, SURV.gen, n, kept.n,
		 fresh ? "as counted at the exec" : "recounted",
		 (long long)disk_ctx->acct.used_bytes, (long long)disk_ctx->acct.used_inodes,
		 (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	return 0;
}

/* After the session is made, before its loop: the open files counted on
 * their nodes again (found through the journal). */
void disk_survive_restore_opens(void)
{
	for (unsigned i = 0; i < kept.n; i++) {
		open_restore(kept.fd[i]);
		node_request_done();
	}
	free(kept.fd);
	kept.fd = NULL;
	kept.n = kept.cap = 0;
}
