/* cvmctl list: the CVMs recorded in RUN_DIR/launch, as a table or JSON.
 * A record whose launcher is gone is listed as stopped once and removed. */
#include "ctl.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CVMS 1024

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct cvm *)a)->name, ((const struct cvm *)b)->name);
}

static void human(unsigned long long v, char *out, size_t size)
{
	static const char units[] = "BKMGTP";
	int u = 0;

	if (!v) {
		snprintf(out, size, "-");
		return;
	}
	while (v >= 1024 && v % 1024 == 0 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(out, size, "%llu%c", v, u ? units[u] : 'B');
}

static long long uptime_of(const struct cvm *c)
{
	long long up = (long long)time(NULL) - c->started;

	return c->running && up > 0 ? up : 0;
}

static void print_table(const struct cvm *cs, size_t n)
{
	printf("%-24s %8s %-8s %8s %6s %-8s %8s %10s %s\n", "NAME", "PID", "STATE", "MEMORY",
	       "CPUS", "CPUSET", "DISK", "UPTIME", "NETWORK");
	for (size_t i = 0; i < n; i++) {
		const struct cvm *c = &cs[i];
		char mem[32], disk[32], up[32];
		long long s = uptime_of(c);

		human(c->memory, mem, sizeof(mem));
		human(c->disk, disk, sizeof(disk));
		snprintf(up, sizeof(up), c->running ? "%lld:%02lld:%02lld" : "-", s / 3600,
			 s / 60 % 60, s % 60);
		printf("%-24s %8d %-8s %8s %6s %-8s %8s %10s %s%s%s\n", c->name, (int)c->init_pid,
		       c->running ? "running" : "stopped", mem, *c->cpus ? c->cpus : "-",
		       *c->cpuset ? c->cpuset : "-", disk, up, *c->net ? c->net : "-",
		       *c->address ? " " : "", c->address);
	}
}

static void print_json(const struct cvm *cs, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct cvm *c = &cs[i];

		printf("%s\n  {\"name\": \"%s\", \"pid\": %d, \"launcher_pid\": %d, "
		       "\"state\": \"%s\", \"systemd\": %s, \"userns\": %s, \"memory\": %llu, "
		       "\"cpus\": \"%s\", \"cpuset\": \"%s\", \"disk\": %llu, \"pids\": %llu, "
		       "\"uptime\": %lld, \"net\": \"%s\", \"address\": \"%s\"}",
		       i ? "," : "", c->name, (int)c->init_pid, (int)c->launcher_pid,
		       c->running ? "running" : "stopped", c->systemd ? "true" : "false",
		       c->userns ? "true" : "false", c->memory, c->cpus, c->cpuset, c->disk,
		       c->pids, uptime_of(c), c->net, c->address);
	}
	printf("%s]\n", n ? "\n" : "");
}

/* NAME.json of every CVM; the stale are removed once read. */
static size_t read_all(const char *run_dir, struct cvm *cs)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *e;
	size_t n = 0;

	if (asprintf(&dir, "%s/" CVMFS_LAUNCH_DIR, run_dir) < 0 || !(d = opendir(dir)))
		return 0;
	while ((e = readdir(d)) && n < MAX_CVMS) {
		size_t len = strlen(e->d_name);
		char name[128];

		if (len <= 5 || len - 5 >= sizeof(name) ||
		    strcmp(e->d_name + len - 5, CVMFS_RECORD))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
		if (!ctl_name_ok(name) || cvm_read(run_dir, name, &cs[n]) < 0)
			continue;
		if (!cs[n].running && proc_start_ticks(cs[n].launcher_pid) != cs[n].launcher_start)
			cvm_remove_record(run_dir, name);
		n++;
	}
	return n;
}

int ctl_list(const struct ctl_opts *o)
{
	_cleanup_free_ struct cvm *cs = calloc(MAX_CVMS, sizeof(*cs));
	size_t n;

	if (!cs)
		return CTL_EXIT_FAIL;
	n = read_all(o->run_dir, cs);
	qsort(cs, n, sizeof(*cs), by_name);
	if (o->json)
		print_json(cs, n);
	else
		print_table(cs, n);
	return fflush(stdout) == 0 ? 0 : CTL_EXIT_FAIL;
}
