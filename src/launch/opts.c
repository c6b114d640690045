/* Options of cvm-launch: one table, config sections [launch] and
 * [launch NAME] (the command line wins over both, [launch NAME] over
 * [launch]), then defaults for everything left unset. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CVMFSD_PATH
#define CVMFSD_PATH "cvmfsd"
#endif

#define DEFAULT_CAPS                                                          \
	"chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,"        \
	"net_bind_service,net_raw,sys_chroot,mknod,audit_write,setfcap"

#define O(f) offsetof(struct launch_opts, f)
static const struct opt_def launch_defs[] = {
	{ "config", 'c', OPT_STR, O(config), true },
	{ "name", 0, OPT_STR, O(name), false },
	{ "image", 0, OPT_LIST, O(image), false },
	{ "data", 0, OPT_STR, O(data), false },
	{ "disk", 0, OPT_SIZE, O(disk), false },
	{ "memory", 0, OPT_SIZE, O(memory), false },
	{ "cpus", 0, OPT_STR, O(cpus), false },
	{ "cpuset", 0, OPT_STR, O(cpuset), false },
	{ "pids", 0, OPT_UINT, O(pids), false },
	{ "hostname", 0, OPT_STR, O(hostname), false },
	{ "net", 0, OPT_STR, O(net), false },
	{ "userns", 0, OPT_BOOL, O(userns), false },
	{ "userns-uid", 0, OPT_UINT, O(userns_uid), false },
	{ "userns-gid", 0, OPT_UINT, O(userns_gid), false },
	{ "userns-count", 0, OPT_UINT, O(userns_count), false },
	{ "views", 0, OPT_STR, O(views), false },
	{ "run-dir", 0, OPT_STR, O(run_dir), false },
	{ "mnt-dir", 0, OPT_STR, O(mnt_dir), false },
	{ "rebuild", 0, OPT_BOOL, O(rebuild), true },
	{ "cvmfsd", 0, OPT_STR, O(cvmfsd), false },
	{ "cgroup-root", 0, OPT_STR, O(cgroup_root), false },
	{ "caps", 0, OPT_STR, O(caps), false },
	{ "persist", 0, OPT_LIST, O(persist), false },
	{ "stop-timeout", 0, OPT_UINT, O(stop_timeout), false },
	{ "console", 0, OPT_STR, O(console), false },
	{ "debug", 'd', OPT_BOOL, O(debug), false },
	OPT_END,
};
#undef O

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int str_default(char **s, const char *def)
{
	if (*s)
		return 0;
	*s = strdup(def);
	return *s ? 0 : -ENOMEM;
}

/* One pass over the file with both sections: inih reports lines in file
 * order, so [launch NAME] wins over [launch] when it comes later (as in the
 * shipped config); the command line wins over both. */
static const char *find_name(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "--name=", 7))
			return argv[i] + 7;
	}
	return NULL;
}

static int parse_all(struct launch *L, int argc, char **argv, int *first)
{
	const char *name = find_name(argc, argv);
	_cleanup_free_ char *sect = NULL;
	const char *sections[] = { "launch", NULL, NULL };
	struct opt_spec spec = { "cvm-launch", launch_defs, sections,
				 "/etc/cvmfs/cvmfs.conf" };

	if (name && asprintf(&sect, "launch %s", name) < 0)
		return -ENOMEM;
	sections[1] = sect;
	return opts_parse(&spec, &L->o, argc, argv, first, NULL);
}

static int set_defaults(struct launch *L)
{
	const char *env_cvmfsd = getenv("CVMFSD");

	if (!L->o.cvmfsd && env_cvmfsd && *env_cvmfsd)
		L->o.cvmfsd = strdup(env_cvmfsd);
	if (str_default(&L->o.cvmfsd, CVMFSD_PATH) < 0 ||
	    (!L->o.data && asprintf(&L->o.data, "/var/lib/cvmfs/workspaces/%s", L->o.name) < 0) ||
	    str_default(&L->o.mnt_dir, "/var/lib/cvmfs/mnt") < 0 ||
	    str_default(&L->o.views, "/var/lib/cvmfs/views") < 0 ||
	    str_default(&L->o.run_dir, "/run/cvmfs") < 0 ||
	    str_default(&L->o.cgroup_root, "/sys/fs/cgroup") < 0 ||
	    str_default(&L->o.hostname, L->o.name) < 0 ||
	    str_default(&L->o.net, "host") < 0 ||
	    str_default(&L->o.caps, DEFAULT_CAPS) < 0 ||
	    str_default(&L->o.persist, "/home:/var/lib/docker") < 0)
		return -ENOMEM;
	if (!L->o.disk)
		L->o.disk = 10ULL << 30;
	if (!L->o.stop_timeout)
		L->o.stop_timeout = 30; /* dockerd gives its containers 15 s */
	/* The usual first subordinate range (/etc/subuid): never host root. */
	if (!L->o.userns_uid)
		L->o.userns_uid = 100000;
	if (!L->o.userns_gid)
		L->o.userns_gid = 100000;
	if (!L->o.userns_count)
		L->o.userns_count = 65536;
	if (asprintf(&L->mnt, "%s/%s", L->o.mnt_dir, L->o.name) < 0)
		return -ENOMEM;
	return 0;
}

int launch_parse(struct launch *L, int argc, char **argv)
{
	int first = argc, r;
	const char *base;

	r = parse_all(L, argc, argv, &first);
	if (r < 0)
		return r;
	if (!L->o.name) {
		log_error("missing --name");
		return -EINVAL;
	}
	if (!L->o.image) {
		log_error("missing --image");
		return -EINVAL;
	}
	r = set_defaults(L);
	if (r < 0)
		return r;
	/* getopt ("+" mode) stops at "--" or the first positional: both
	 * start CMD. */
	if (first < argc) {
		L->cmd = &argv[first];
	} else {
		L->cmd_default[0] = (char *)"/sbin/init";
		L->cmd_default[1] = NULL;
		L->cmd = L->cmd_default;
	}
	/* systemd as PID 1: a pty console and SIGRTMIN+3 for SIGTERM. A
	 * link to it (/sbin/init) is found once the disk is mounted; the
	 * console default waits for that (step start). */
	base = strrchr(L->cmd[0], '/');
	L->systemd = !strcmp(base ? base + 1 : L->cmd[0], "systemd");
	return 0;
}

void launch_free(struct launch *L)
{
	opts_free(launch_defs, &L->o);
	free(L->mnt);
	free(L->lock_path);
}
