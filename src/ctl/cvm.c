/* The launcher's records (src/launch/record.c): reading one, telling a
 * running CVM from a stale record, removing the stale. */
#include "ctl.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD_MAX 4096

/* As cvm-launch's validate: letters, digits, '.', '_', '-'; not starting
 * with '.' or '-'; at most 64. Also keeps NAME a plain file name. */
bool ctl_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

/* The value of "key": a number or a string (the launcher writes no
 * escapes: names, cpus and cpusets have no quotes). */
static int json_get(const char *text, const char *key, char *out, size_t size)
{
	char pat[64];
	const char *p, *end;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if (!(p = strstr(text, pat)))
		return -ENOENT;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	if (*p == '"')
		end = strchr(++p, '"');
	else
		end = p + strcspn(p, ",}\n ");
	if (!end || (size_t)(end - p) >= size)
		return -EINVAL;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return 0;
}

static int json_ull(const char *text, const char *key, unsigned long long *v)
{
	char buf[32], *end;

	if (json_get(text, key, buf, sizeof(buf)) < 0)
		return -EINVAL;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	return errno || *end || end == buf ? -EINVAL : 0;
}

static int parse_record(const char *t, struct cvm *c)
{
	unsigned long long lp, ip, st;
	char b[16];

	if (json_get(t, "name", c->name, sizeof(c->name)) < 0 ||
	    json_ull(t, "launcher_pid", &lp) < 0 || json_ull(t, "init_pid", &ip) < 0 ||
	    json_ull(t, "launcher_start", &c->launcher_start) < 0 ||
	    json_ull(t, "init_start", &c->init_start) < 0 || json_ull(t, "started", &st) < 0 ||
	    json_ull(t, "memory", &c->memory) < 0 || json_ull(t, "disk", &c->disk) < 0 ||
	    json_ull(t, "pids", &c->pids) < 0 || json_get(t, "cpus", c->cpus, sizeof(c->cpus)) < 0 ||
	    json_get(t, "cpuset", c->cpuset, sizeof(c->cpuset)) < 0 ||
	    json_get(t, "net", c->net, sizeof(c->net)) < 0 || lp == 0 || lp > INT_MAX ||
	    ip == 0 || ip > INT_MAX)
		return -EINVAL;
	c->launcher_pid = (pid_t)lp;
	c->init_pid = (pid_t)ip;
	c->started = (long long)st;
	c->systemd = json_get(t, "systemd", b, sizeof(b)) == 0 && !strcmp(b, "true");
	c->userns = json_get(t, "userns", b, sizeof(b)) == 0 && !strcmp(b, "true");
	if (json_get(t, "trap", c->trap, sizeof(c->trap)) < 0)
		c->trap[0] = '\0'; /* a record of an older launcher */
	if (json_get(t, "address", c->address, sizeof(c->address)) < 0)
		c->address[0] = '\0';
	return 0;
}

int cvm_read(const char *run_dir, const char *name, struct cvm *c)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t len;
	int r;

	if (asprintf(&path, "%s/" CVMFS_LAUNCH_DIR "/%s" CVMFS_RECORD, run_dir, name) < 0)
		return -ENOMEM;
	r = read_regular_alloc(AT_FDCWD, path, RECORD_MAX, &text, &len);
	if (r < 0)
		return r;
	if (parse_record(text, c) < 0 || strcmp(c->name, name))
		return -EINVAL;
	/* Both the recorded processes, not others that reuse their pids. */
	c->running = proc_start_ticks(c->launcher_pid) == c->launcher_start &&
		     proc_start_ticks(c->init_pid) == c->init_start;
	return 0;
}

void cvm_remove_record(const char *run_dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/" CVMFS_LAUNCH_DIR "/%s" CVMFS_RECORD, run_dir, name);
	unlink(path);
}

int cvm_find(const char *run_dir, const char *name, struct cvm *c)
{
	int r;

	if (!ctl_name_ok(name)) {
		log_error("'%s': not a CVM name", name);
		return -EINVAL;
	}
	r = cvm_read(run_dir, name, c);
	if (r == -ENOENT) {
		log_error("%s: no such CVM (no %s/" CVMFS_LAUNCH_DIR "/%s" CVMFS_RECORD ")", name,
			  run_dir, name);
		return r;
	}
	if (r < 0) {
		log_error("%s: %s/" CVMFS_LAUNCH_DIR "/%s" CVMFS_RECORD ": %s", name, run_dir, name,
			  r == -EINVAL ? "not a launcher's record" : file_strerror(r));
		return r;
	}
	if (!c->running && proc_start_ticks(c->launcher_pid) == c->launcher_start) {
		log_error("%s: stopping (its init, pid %d, is gone)", name, (int)c->init_pid);
		return -ESRCH;
	}
	if (!c->running) {
		/* Only a launcher that is gone leaves its record: stale. */
		cvm_remove_record(run_dir, name);
		log_error("%s: stopped (its launcher, pid %d, is gone)", name,
			  (int)c->launcher_pid);
		return -ESRCH;
	}
	return 0;
}
