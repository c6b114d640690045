/* Options of cvm-launch: one table, config sections [launch] and
 * [launch NAME] (the command line wins over both, [launch NAME] over
 * [launch]), then defaults for everything left unset. */
#include "image.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef CVMFSD_PATH
#define CVMFSD_PATH "cvmfsd"
#endif

#define O(f) offsetof(struct launch_opts, f)
/* The help texts are doc/cvm-launch.md's, shortened. */
static const struct opt_def launch_defs[] = {
	{ "config", 'c', OPT_STR, O(config), true, "FILE",
	  "config file (default " CVMFS_CONFIG_FILE ", read if present)" },
	{ "name", 0, OPT_STR, O(name), false, "NAME",
	  "letters, digits, '.', '_', '-'; not starting with '.' or '-'; at most 64 (required)" },
	{ "image", 0, OPT_LIST, O(image), false, "IMAGE",
	  "DIR[:DIR...] (layers, top first; repeatable), oci:DIR[:TAG] or docker-archive:FILE[:TAG] (required)" },
	{ "layer-store", 0, OPT_STR, O(layer_store), false, "DIR",
	  "where image layers are unpacked (default " IMAGE_STORE_DEFAULT ")" },
	{ "data", 0, OPT_STR, O(data), false, "DATA",
	  "workspace directory (default " CVMFS_STATE_DIR "/workspaces/NAME)" },
	{ "disk", 0, OPT_SIZE, O(disk), false, "SIZE",
	  "disk limit when the launcher starts the disk (default 10G)" },
	{ "memory", 0, OPT_SIZE, O(memory), false, "SIZE", "memory limit (default: none)" },
	{ "memory-high", 0, OPT_SIZE, O(memory_high), false, "SIZE",
	  "v2: reclaim and throttle above SIZE, below --memory (default: none)" },
	{ "io-bps", 0, OPT_SIZE, O(io_bps), false, "SIZE",
	  "read and write bytes/s on the CVM's volume (default: none)" },
	{ "io-iops", 0, OPT_UINT, O(io_iops), false, "N",
	  "read and write operations/s on the CVM's volume (default: none)" },
	{ "cpus", 0, OPT_STR, O(cpus), false, "N",
	  "CPU limit, may be fractional, at least 0.01 (default: none)" },
	{ "cpuset", 0, OPT_STR, O(cpuset), false, "LIST",
	  "CPUs the CVM may use, a subset of the host's online CPUs (default: all)" },
	{ "pids", 0, OPT_UINT, O(pids), false, "N", "task limit (default: none)" },
	{ "hostname", 0, OPT_STR, O(hostname), false, "H", "host name (default NAME)" },
	{ "net", 0, OPT_STR, O(net), false, "private|none|host",
	  "private (default where it works, else none): own namespace, NAT out; none: lo only; host: the host's" },
	{ "publish", 'p', OPT_LIST, O(publish), false, "HOSTPORT:CVMPORT[/tcp|udp]",
	  "with --net private, the host's port to the CVM's; repeatable" },
	{ "bridge", 0, OPT_STR, O(bridge), false, "NAME",
	  "--net private as root: the host bridge (default cvmfs0)" },
	{ "net-range", 0, OPT_STR, O(net_range), false, "CIDR",
	  "--net private as root: the CVMs' addresses (default 10.87.0.0/16)" },
	{ "net-peers", 0, OPT_BOOL, O(net_peers), false, NULL,
	  "--net private as root: reach, and be reached by, other CVMs with it" },
	{ "net-host", 0, OPT_BOOL, O(net_host), false, NULL,
	  "--net private as root: reach the host's own addresses" },
	{ "userns", 0, OPT_BOOL, O(userns), false, NULL,
	  "run in a user namespace (the default; config: userns = yes)" },
	{ "no-userns", 0, OPT_BOOL, O(no_userns), true, NULL,
	  "no user namespace: CVM root is host root (config: userns = no)" },
	{ "unsafe-host-root-caps", 0, OPT_BOOL, O(unsafe_host_root_caps), false, NULL,
	  "with --no-userns, allow --caps beyond Docker's set: no security boundary" },
	{ "idmap-dir", 0, OPT_STR, O(idmap_dir), false, "DIR",
	  "record of the workspaces' id ranges (default " CVMFS_STATE_DIR "/idmap)" },
	{ "userns-base", 0, OPT_UINT, O(userns_base), false, "ID",
	  "lowest id of assigned ranges (default 100000000)" },
	{ "userns-uid", 0, OPT_UINT, O(userns_uid), false, "UID",
	  "host uid of root inside (default: IDMAP_DIR/NAME, else assigned)" },
	{ "userns-gid", 0, OPT_UINT, O(userns_gid), false, "GID",
	  "host gid of root inside (default: as --userns-uid)" },
	{ "userns-count", 0, OPT_UINT, O(userns_count), false, "N",
	  "ids in the range (default 65536)" },
	{ "views", 0, OPT_STR, O(views), false, "MOUNT",
	  "the views' mountpoint (default " CVMFS_STATE_DIR "/views)" },
	{ "run-dir", 0, OPT_STR, O(run_dir), false, "DIR",
	  "locks, pid and figure files (default " CVMFS_RUN_DIR ")" },
	{ "mnt-dir", 0, OPT_STR, O(mnt_dir), false, "DIR",
	  "the disk is mounted at DIR/NAME (default " CVMFS_STATE_DIR "/mnt)" },
	{ "rebuild", 0, OPT_BOOL, O(rebuild), true, NULL,
	  "empty DATA/upper except the --persist paths (and a volume's lanes), then start" },
	{ "cvmfsd", 0, OPT_STR, O(cvmfsd), false, "PATH",
	  "the daemon binary (default: the build's, or env CVMFSD)" },
	{ "cgroup-root", 0, OPT_STR, O(cgroup_root), false, "DIR",
	  "cgroup hierarchies (default /sys/fs/cgroup), also given to a views daemon started" },
	{ "caps", 0, OPT_STR, O(caps), false, "LIST",
	  "capabilities kept, comma-separated: NAME, all, -NAME (default: by mode)" },
	{ "persist", 0, OPT_LIST, O(persist), false, "PATHS",
	  "kept by --rebuild (default /home:/var/lib/docker)" },
	{ "stop-timeout", 0, OPT_UINT, O(stop_timeout), false, "S",
	  "after SIGTERM or SIGINT, PID 1 gets S seconds before SIGKILL (default 30)" },
	{ "console", 0, OPT_STR, O(console), false, "pty|inherit",
	  "CMD's terminal: a new pty (default for systemd) or the launcher's (else)" },
	{ "device", 0, OPT_LIST, O(device), false, "SPEC",
	  "grant a device: 'TYPE MAJOR:MINOR [ACCESS]' or '/dev/PATH [ACCESS]'; repeatable" },
	{ "seccomp", 0, OPT_STR, O(seccomp), false, "default|unconfined",
	  "the default seccomp filter (when absent), or none" },
	{ "volume", 0, OPT_STR, O(volume), false, "loop|block:PATH|none",
	  "the workspace volume (default loop where loop devices work, else none)" },
	{ "volume-dir", 0, OPT_STR, O(volume_dir), false, "DIR",
	  "where the disk keeps loop volumes (passed on only when given)" },
	{ "lanes", 0, OPT_LIST, O(lanes), false, "PATHS",
	  "paths bound from the volume, ':'-separated (passed on only when given)" },
	{ "debug", 'd', OPT_BOOL, O(debug), false, NULL,
	  "time of each step and of the exec of CMD on stderr" },
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

/* An installed cvm-launch finds the cvmfsd installed with it (the same
 * directory); a build's finds the build's (CVMFSD_PATH). */
static int cvmfsd_default(char **s)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - sizeof("/cvmfsd"));

	if (*s)
		return 0;
	if (n > 0 && (exe[n] = '\0', slash = strrchr(exe, '/'))) {
		strcpy(slash + 1, "cvmfsd");
		if (access(exe, X_OK) == 0)
			return str_default(s, exe);
	}
	return str_default(s, CVMFSD_PATH);
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
	struct opt_spec spec = {
		"cvm-launch", launch_defs, sections, CVMFS_CONFIG_FILE,
		"[OPTION...] --name NAME --image IMAGE [--] [CMD [ARG...]]",
		"Start a CVM running CMD (default /sbin/init): cgroup, disk, namespaces, views.\n"
		"Config file sections [launch] and [launch NAME], read in file order; the\n"
		"command line wins. SIZE takes K, M, G, T (powers of 1024).\n"
		"See doc/cvm-launch.md.\n",
	};

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
	/* Never the host's network by default: a private one where the
	 * launcher can make it, else its own namespace with lo only. */
	if (net_default(L) < 0 || str_default(&L->o.bridge, "cvmfs0") < 0 ||
	    str_default(&L->o.net_range, "10.87.0.0/16") < 0)
		return -ENOMEM;
	if (cvmfsd_default(&L->o.cvmfsd) < 0 ||
	    (!L->o.data && asprintf(&L->o.data, CVMFS_STATE_DIR "/workspaces/%s", L->o.name) < 0) ||
	    str_default(&L->o.mnt_dir, CVMFS_STATE_DIR "/mnt") < 0 ||
	    str_default(&L->o.views, CVMFS_STATE_DIR "/views") < 0 ||
	    str_default(&L->o.run_dir, CVMFS_RUN_DIR) < 0 ||
	    str_default(&L->o.cgroup_root, "/sys/fs/cgroup") < 0 ||
	    str_default(&L->o.hostname, L->o.name) < 0 ||
	    str_default(&L->o.idmap_dir, CVMFS_STATE_DIR "/idmap") < 0 ||
	    str_default(&L->o.layer_store, IMAGE_STORE_DEFAULT) < 0 ||
	    str_default(&L->o.caps, caps_default(L->o.userns, !strcmp(L->o.net, "host"))) < 0 ||
	    str_default(&L->o.persist, "/home:/var/lib/docker") < 0)
		return -ENOMEM;
	if (!L->o.disk)
		L->o.disk = 10ULL << 30;
	if (!L->o.stop_timeout)
		L->o.stop_timeout = 30; /* dockerd gives its containers 15 s */
	/* userns_uid/gid stay 0 unless given: idrange.c assigns the range. */
	if (!L->o.userns_count)
		L->o.userns_count = 65536;
	if (!L->o.userns_base)
		L->o.userns_base = USERNS_BASE_DEFAULT;
	if (asprintf(&L->mnt, "%s/%s", L->o.mnt_dir, L->o.name) < 0)
		return -ENOMEM;
	return volume_default(L);
}

static bool userns_on_cli(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--userns"))
			return true;
	return false;
}

/* Before the parse: a limit left out stays LIMIT_UNSET, so that a given 0
 * can be told from it. */
#define LIMIT_UNSET UINT64_MAX

/* 0 is not a limit: refused, never silently "no limit" (memory, pids) or
 * "the default" (disk). Left out, they become 0 for set_defaults: no
 * limit, or the default disk size. */
static int check_limits(struct launch *L)
{
	struct { const char *opt; uint64_t *v; const char *unset; } lim[] = {
		{ "disk", &L->o.disk, "for 10G" },
		{ "memory", &L->o.memory, "for no limit" },
		{ "pids", &L->o.pids, "for no limit" },
		{ "memory-high", &L->o.memory_high, "for none" },
		{ "io-bps", &L->o.io_bps, "for no limit" },
		{ "io-iops", &L->o.io_iops, "for no limit" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		if (*lim[i].v == 0) {
			log_error("--%s 0: not a limit (leave --%s out %s)", lim[i].opt,
				  lim[i].opt, lim[i].unset);
			return -EINVAL;
		}
		if (*lim[i].v == LIMIT_UNSET)
			*lim[i].v = 0;
	}
	if (L->o.memory_high && L->o.memory && L->o.memory_high >= L->o.memory) {
		log_error("--memory-high %llu: not below --memory %llu",
			  (unsigned long long)L->o.memory_high, (unsigned long long)L->o.memory);
		return -EINVAL;
	}
	return 0;
}

/* 0, a negative errno after one line on stderr, or OPTS_HELP after --help
 * (the caller exits 0). */
int launch_parse(struct launch *L, int argc, char **argv)
{
	int first = argc, r;
	const char *base;

	/* Secure by default: --no-userns or "userns = false" opts out. */
	L->o.userns = true;
	L->o.disk = L->o.memory = L->o.pids = LIMIT_UNSET;
	L->o.memory_high = L->o.io_bps = L->o.io_iops = LIMIT_UNSET;
	r = parse_all(L, argc, argv, &first);
	if (r != 0)
		return r; /* an error, or OPTS_HELP */
	if ((r = check_limits(L)) < 0)
		return r;
	if (L->o.no_userns && userns_on_cli(argc, argv)) {
		log_error("--userns and --no-userns: choose one");
		return -EINVAL;
	}
	if (L->o.no_userns)
		L->o.userns = false;
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
	lanes_free(L);
}
