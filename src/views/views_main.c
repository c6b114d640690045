/* cvmfsd views: options, mounts, daemon lifecycle. */
#include "fs.h"
#include "ids.h"
#include "status.h"
#include "supervise.h"
#include "survive.h"
#include "views_main.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/daemon.h"
#include "cvmfs/fuse_daemon.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct views *views_ctx;

#define O(field) offsetof(struct views_config, field)
/* The help texts are doc/cvmfsd.md's, shortened. */
static const struct opt_def views_opts[] = {
	{ "config", 'c', OPT_STR, O(config), true, "FILE",
	  "config file (default " CVMFS_CONFIG_FILE ", read if present)" },
	{ "foreground", 'f', OPT_BOOL, O(foreground), false, NULL,
	  "do not daemonise; log to stderr (else syslog)" },
	{ "debug", 'd', OPT_BOOL, O(debug), false, NULL, "trace every lookup" },
	{ "cgroup-root", 0, OPT_STR, O(cgroup_root), false, "DIR",
	  "cgroup hierarchies (default /sys/fs/cgroup)" },
	{ "proc-root", 0, OPT_STR, O(proc_root), false, "DIR", "host /proc (default /proc)" },
	{ "sys-root", 0, OPT_STR, O(sys_root), false, "DIR", "host sysfs (default /sys)" },
	{ "options", 'o', OPT_LIST, O(fuse_opts), false, "FUSEOPTS",
	  "extra libfuse session options (e.g. debug)" },
	{ "cpu-view", 0, OPT_STR, O(cpu_view), false, "quota|cpuset",
	  "visible CPUs: the cpuset cut to the CPU quota (quota, default) or the whole cpuset" },
	{ "ct-parent", 0, OPT_STR, O(ct_parent), false, "NAME",
	  "cgroup of the per-container trees (default cvmfs)" },
	{ "cache-ms", 0, OPT_UINT, O(cache_ms), false, "N",
	  "lifetime of one reading of a container's cgroup files (default 100)" },
	{ "ct-ttl-ms", 0, OPT_UINT, O(ct_ttl_ms), false, "N",
	  "page-cache lifetime of per-container files (default 500)" },
	{ "pid-cache-ms", 0, OPT_UINT, O(pid_cache_ms), false, "N",
	  "how long a pid's cgroup is remembered (default 250)" },
	{ "idle-expire-s", 0, OPT_UINT, O(idle_expire_s), false, "N",
	  "forget a container not read for N s (default 600)" },
	{ "restart-ms", 0, OPT_UINT, O(restart_ms), false, "N",
	  "wait N ms before restarting a crashed server (default 0)" },
	{ "max-crashes", 0, OPT_UINT, O(max_crashes), false, "N",
	  "give up after N crashes within --crash-window-s (default 10, at most 64)" },
	{ "crash-window-s", 0, OPT_UINT, O(crash_window_s), false, "N",
	  "the window of --max-crashes (default 60)" },
	OPT_END,
};
static const char *const views_sections[] = { "views", NULL };

static int str_default(char **field, const char *value)
{
	if (*field)
		return 0;
	*field = strdup(value);
	return *field ? 0 : -ENOMEM;
}

static int views_config_load(int argc, char **argv, char **mountpoint)
{
	struct opt_spec spec = {
		"cvmfsd views", views_opts, views_sections, CVMFS_CONFIG_FILE,
		"[OPTION...] MOUNTPOINT",
		"Per-container /proc and /sys/devices/system/cpu over FUSE: the shared tree at\n"
		"MOUNTPOINT, per-container trees at MOUNTPOINT/ct/NAME. Config file section\n"
		"[views]; the command line wins. See doc/cvmfsd.md.\n",
	};
	struct views_config *c = &views_ctx->cfg;
	int pos, r;

	c->cache_ms = 100;
	c->ct_ttl_ms = 500;
	c->pid_cache_ms = 250;
	c->idle_expire_s = 600;
	c->max_crashes = 10;
	c->crash_window_s = 60;
	r = opts_parse(&spec, c, argc, argv, &pos, NULL);
	if (r != 0)
		return r; /* an error, or OPTS_HELP: the caller exits 0 */
	if (pos != argc - 1) {
		log_error("%s", pos >= argc ? "missing MOUNTPOINT" : "too many arguments");
		return -EINVAL;
	}
	/* Absolute, without touching a possibly stale mount (mountinfo compares). */
	if (argv[pos][0] == '/') {
		*mountpoint = strdup(argv[pos]);
	} else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) || asprintf(mountpoint, "%s/%s", cwd, argv[pos]) < 0)
			*mountpoint = NULL;
	}
	if (!*mountpoint)
		return -ENOMEM;
	if (str_default(&c->cgroup_root, "/sys/fs/cgroup") < 0 ||
	    str_default(&c->proc_root, "/proc") < 0 || str_default(&c->sys_root, "/sys") < 0 ||
	    str_default(&c->cpu_view, "quota") < 0 || str_default(&c->ct_parent, "cvmfs") < 0)
		return -ENOMEM;
	if (strcmp(c->cpu_view, "quota") && strcmp(c->cpu_view, "cpuset")) {
		log_error("bad value for --cpu-view: '%s' (quota or cpuset)", c->cpu_view);
		return -EINVAL;
	}
	if (c->ct_ttl_ms == 0 || c->cache_ms == 0) {
		log_error("--cache-ms and --ct-ttl-ms must be positive");
		return -EINVAL;
	}
	return 0;
}

static int open_roots(void)
{
	char cpu[PATH_MAX];
	struct stat st;
	int r;

	r = cg_layout_open(views_ctx->cfg.cgroup_root, &views_ctx->layout);
	if (r < 0)
		return log_error_errno(r, "--cgroup-root %s: no cgroup hierarchy found",
				       views_ctx->cfg.cgroup_root);
	views_ctx->proc_fd = open(views_ctx->cfg.proc_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (views_ctx->proc_fd < 0)
		return log_error_errno(-errno, "--proc-root %s", views_ctx->cfg.proc_root);
	snprintf(cpu, sizeof(cpu), "%s/devices/system/cpu", views_ctx->cfg.sys_root);
	views_ctx->sys_cpu_fd = open(cpu, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (views_ctx->sys_cpu_fd < 0)
		return log_error_errno(-errno, "--sys-root: %s", cpu);
	if (stat("/proc/self/ns/pid", &st) == 0)
		views_ctx->self_pidns = st.st_ino;
	return 0;
}

static struct fuse_daemon sessions[2] = {
	{ .fsname = "cvmfs-views", .subtype = "cvmfs", .max_threads = 64, .grace_s = 2 },
	{ .fsname = "cvmfs-views-ct", .subtype = "cvmfs", .max_threads = 64, .grace_s = 2 },
};

/* A tree's session; its connection outlives this process (survive.h). */
static int session_start(int i, const struct fuse_lowlevel_ops *ops, struct fs_tree *tree,
			 const char *mnt)
{
	struct fuse_daemon *s = &sessions[i];
	int r;

	s->extra_opts = views_ctx->cfg.fuse_opts;
	s->stopping = &views_ctx->stopping;
	s->survive = true;
	s->userdata = tree;
	s->init_store = views_sv.init_stores[i];
	s->takeover_fd = views_sv.fuse_fds[i];
	r = fuse_daemon_start(s, ops, sizeof(*ops), mnt);
	if (r == 0 && views_sv.fuse_fds[i] < 0)
		fuse_survive_mounted_at(&views_sv, (unsigned)i, fuse_session_fd(s->se));
	return r;
}

static void views_hup(void)
{
	log_info("SIGHUP: the views have no run-time settings to reload");
}

/* One server process: the caches, the trees' sessions, the system-call
 * supervisor thread. */
static int views_serve(const char *mnt)
{
	char ctmnt[PATH_MAX];
	int r;
	bool gone;

	ct_tables_init();
	fs_set_generation(views_sv.gen);
	ids_attach(views_sv.extra_fds[SV_IDS]);
	if ((r = containers_init()) < 0 || (r = host_init()) < 0 || (r = sampler_start()) < 0 ||
	    (r = ids_replay()) < 0)
		return log_error_errno(r, "start");
	/* Before the mounts, which a launcher waits for before it looks for
	 * the socket. Not fatal: without it new CVMs trap nothing. */
	if (supervise_start(mnt, views_sv.extra_fds[SV_SOCK]) < 0)
		log_warn("sysinfo and sched_getaffinity stay the host's in new CVMs");
	r = session_start(SV_SHARED, &views_shared_ops, &views_shared_tree, mnt);
	if (r < 0)
		goto out;
	snprintf(ctmnt, sizeof(ctmnt), "%s/ct", mnt);
	r = session_start(SV_CT, &views_ct_ops, &views_ct_tree, ctmnt);
	if (r < 0)
		goto out;
	log_info("serving %s (per-container trees at %s)", mnt, ctmnt);
	views_status_start(mnt); /* not fatal: only the counts go unpublished */
	fuse_survive_ready(&views_sv, views_ctx->cfg.foreground);
	daemon_wait_stop(views_hup);
	log_info("stopping");
out:
	__atomic_store_n(&views_ctx->stopping, true, __ATOMIC_RELEASE);
	supervise_stop();
	views_status_stop();
	/* ct first: it is mounted inside the shared tree. Both are tried. */
	gone = fuse_daemon_stop(&sessions[SV_CT]);
	gone = fuse_daemon_stop(&sessions[SV_SHARED]) && gone;
	if (gone)
		fs_handles_free_all();
	sampler_stop();
	return r;
}

/* The supervisor returns its exit status; a server serves. */
static int views_run(const char *mnt)
{
	int notify_fd = -1, r;

	if (survive_inherited()) { /* an upgrade: the daemon runs on */
		log_setup("cvmfsd views", !views_ctx->cfg.foreground, views_ctx->cfg.debug);
		daemon_block_signals();
	} else {
		/* Before daemonising, so that errors reach the terminal. */
		r = fuse_daemon_recover_stale(mnt);
		if (r < 0 || (r = daemon_start("cvmfsd views", views_ctx->cfg.foreground,
					       views_ctx->cfg.debug, &notify_fd)) < 0)
			return r;
	}
	r = survive_run(mnt, notify_fd);
	if (r >= 0)
		return r ? -EIO : 0;
	return views_serve(mnt);
}

int cvmfsd_views_main(int argc, char **argv)
{
	struct views v = { .proc_fd = -1, .sys_cpu_fd = -1 };
	char *mnt = NULL;
	int r;

	views_ctx = &v;
	log_setup("cvmfsd views", false, false);
	r = views_config_load(argc, argv, &mnt);
	if (r == 0)
		r = open_roots();
	if (r == 0)
		r = views_run(mnt);
	if (v.containers)
		containers_fini();
	host_fini();
	cg_layout_close(&v.layout);
	if (v.proc_fd >= 0)
		close(v.proc_fd);
	if (v.sys_cpu_fd >= 0)
		close(v.sys_cpu_fd);
	opts_free(views_opts, &v.cfg);
	free(mnt);
	return r < 0 ? 1 : 0;
}
