/* See survive_conns.h. The list is views_sv.conns, so that a forked server
 * finds it (and the fds) as it was. */
#include "survive_conns.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_CONNS "CVMFS_VIEWS_CONNS"

static void conn_close_fds(const struct survive_conn *c)
{
	close(c->conn);
	close(c->listener);
	close(c->page);
}

void conns_keep(const struct survive_conn *c)
{
	struct survive_conn *n = realloc(views_sv.conns, (views_sv.nconns + 1) * sizeof(*n));

	if (!n) {
		log_warn("CVM %s: cannot keep its connection: a restart loses it", c->name);
		conn_close_fds(c);
		return;
	}
	views_sv.conns = n;
	views_sv.conns[views_sv.nconns++] = *c;
}

void conns_drop(uint64_t key)
{
	for (unsigned i = 0; i < views_sv.nconns; i++) {
		if (views_sv.conns[i].key != key)
			continue;
		conn_close_fds(&views_sv.conns[i]);
		views_sv.conns[i] = views_sv.conns[--views_sv.nconns];
		return;
	}
}

int conns_to_env(void)
{
	size_t cap = 64 + (size_t)views_sv.nconns * 128, off = 0;
	_cleanup_free_ char *s = malloc(cap);

	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	for (unsigned i = 0; i < views_sv.nconns; i++) {
		const struct survive_conn *c = &views_sv.conns[i];

		off += (size_t)snprintf(s + off, cap - off, "%" PRIu64 ",%d,%d,%d,%s;", c->key,
					c->conn, c->listener, c->page, c->name);
		fcntl(c->conn, F_SETFD, 0);
		fcntl(c->listener, F_SETFD, 0);
		fcntl(c->page, F_SETFD, 0);
	}
	return setenv(ENV_CONNS, s, 1) < 0 ? -errno : 0;
}

void conns_from_env(void)
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
		fcntl(c.conn, F_SETFD, FD_CLOEXEC);
		fcntl(c.listener, F_SETFD, FD_CLOEXEC);
		fcntl(c.page, F_SETFD, FD_CLOEXEC);
		conns_keep(&c);
	}
}
