/* The views on the common supervisor (survive.h): their extra fds and
 * the launchers' connections, which an upgrade's exec carries in the
 * environment. */
#include "survive.h"
#include "supervise.h"
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fuse_takeover.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_CONNS "CVMFS_VIEWS_CONNS"

static bool conn_kept(int fd);
static int conns_to_env(void);
static void on_message(char kind, const void *data, int *fds, int nfds);

_Static_assert(sizeof(struct survive_conn) <= FUSE_SURVIVE_MSG, "a keeper message");

struct fuse_survive views_sv = {
	.prog = "cvmfsd views", .can_upgrade = true, .extra_fds = { -1, -1 },
	.carry_fd = conn_kept, .before_exec = conns_to_env, .fork_servers = true,
	.nconns = 2, .on_message = on_message, .keeper = -1,
	.fuse_fds = { -1, -1 }, .init_stores = { -1, -1 },
};
struct survive_conn *views_conns;
unsigned views_nconns;
static bool upgraded;

static void conn_close_fds(const struct survive_conn *c)
{
	close(c->conn);
	close(c->listener);
	close(c->page);
}

static bool conn_kept(int fd)
{
	for (unsigned i = 0; i < views_nconns; i++)
		if (fd == views_conns[i].conn || fd == views_conns[i].listener ||
		    fd == views_conns[i].page)
			return true;
	return false;
}

static void conns_keep(const struct survive_conn *c)
{
	struct survive_conn *n = realloc(views_conns, (views_nconns + 1) * sizeof(*n));

	if (!n) {
		log_warn("CVM %s: cannot keep its connection: a restart loses it", c->name);
		conn_close_fds(c);
		return;
	}
	views_conns = n;
	views_conns[views_nconns++] = *c;
}

static void conns_drop(uint64_t key)
{
	for (unsigned i = 0; i < views_nconns; i++) {
		if (views_conns[i].key != key)
			continue;
		conn_close_fds(&views_conns[i]);
		views_conns[i] = views_conns[--views_nconns];
		return;
	}
}

/* Before the exec: the list into the environment (their fds: carry_fd). */
static int conns_to_env(void)
{
	size_t cap = 64 + (size_t)views_nconns * 128, off = 0;
	_cleanup_free_ char *s = malloc(cap);

	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	for (unsigned i = 0; i < views_nconns; i++) {
		const struct survive_conn *c = &views_conns[i];

		off += (size_t)snprintf(s + off, cap - off, "%" PRIu64 ",%d,%d,%d,%s;", c->key,
					c->conn, c->listener, c->page, c->name);
	}
	return setenv(ENV_CONNS, s, 1) < 0 ? -errno : 0;
}

static void conns_from_env(void)
{
	const char *e = getenv(ENV_CONNS);
	_cleanup_free_ char *copy = e ? strdup(e) : NULL;
	char *save = NULL;

	unsetenv(ENV_CONNS);
	for (char *t = copy ? strtok_r(copy, ";", &save) : NULL; t; t = strtok_r(NULL, ";", &save)) {
		struct survive_conn c = { 0 };
		int name_at = 0;

		if (sscanf(t, "%" SCNu64 ",%d,%d,%d,%n", &c.key, &c.conn, &c.listener, &c.page,
			   &name_at) != 4 || !name_at)
			continue;
		snprintf(c.name, sizeof(c.name), "%s", t + name_at);
		conns_keep(&c);
	}
}

/* Supervisor: 'K' keep a connection (its fds copied), 'D' drop one. */
static void on_message(char kind, const void *data, int *fds, int nfds)
{
	struct survive_conn c;

	memcpy(&c, data, sizeof(c));
	if (kind == 'K' && nfds == 3) {
		c.conn = fds[0], c.listener = fds[1], c.page = fds[2];
		c.name[sizeof(c.name) - 1] = '\0';
		conns_keep(&c);
		return;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (kind == 'D')
		conns_drop(c.key);
}

void survive_keep_conn(const struct survive_conn *c)
{
	int fds[3] = { c->conn, c->listener, c->page };

	fuse_survive_send(&views_sv, 'K', c, sizeof(*c), fds, 3);
}

void survive_drop_conn(uint64_t key)
{
	struct survive_conn c = { .key = key };

	fuse_survive_send(&views_sv, 'D', &c, sizeof(c), NULL, 0);
}

/* The connections first: set_carried_cloexec (fuse_survive.c) names them. */
bool survive_inherited(void)
{
	conns_from_env();
	upgraded = fuse_survive_inherited(&views_sv);
	return upgraded;
}

int survive_run(const char *mnt, int notify_fd)
{
	const char *no = getenv("CVMFS_VIEWS_TEST_NO_RESEND");
	int r;

	views_sv.restart_ms = views_ctx->cfg.restart_ms;
	views_sv.max_crashes = views_ctx->cfg.max_crashes;
	views_sv.crash_window_s = views_ctx->cfg.crash_window_s;
	views_sv.no_resend = no && *no;
	if (upgraded) {
		supervise_sock_adopt(mnt, views_sv.extra_fds[SV_SOCK]);
	} else {
		views_sv.extra_fds[SV_IDS] = fuse_takeover_store_new("cvmfs-views-ids");
		if (views_sv.extra_fds[SV_IDS] < 0)
			return log_error_errno(views_sv.extra_fds[SV_IDS], "memfd"), 1;
		views_sv.extra_fds[SV_SOCK] = supervise_sock_open(mnt);
	}
	if (fuse_survive_setup(&views_sv) < 0)
		return 1;
	r = fuse_survive_run(&views_sv, notify_fd);
	if (r >= 0)
		supervise_sock_close();
	return r;
}
