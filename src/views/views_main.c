/* cvmfsd views: options, mounts, daemon lifecycle. */
#include "fs.h"
#include "status.h"
#include "supervise.h"
#include "views_main.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/daemon.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct views *V;

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
	struct views_config *c = &V->cfg;
	int pos, r;

	c->cache_ms = 100;
	c->ct_ttl_ms = 500;
	c->pid_cache_ms = 250;
	c->idle_expire_s = 600;
	r = opts_parse(&spec, c, argc, argv, &pos, NULL);
	if (r != 0)
		return r; /* an error, or OPTS_HELP: the caller exits 0 */
	if (pos != argc - 1) {
		fprintf(stderr, "cvmfsd views: %s\n",
			pos >= argc ? "missing MOUNTPOINT" : "too many arguments");
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
		fprintf(stderr, "cvmfsd views: bad value for --cpu-view: '%s' (quota or cpuset)\n",
			c->cpu_view);
		return -EINVAL;
	}
	if (c->ct_ttl_ms == 0 || c->cache_ms == 0) {
		fprintf(stderr, "cvmfsd views: --cache-ms and --ct-ttl-ms must be positive\n");
		return -EINVAL;
	}
	return 0;
}

static int open_roots(void)
{
	char cpu[PATH_MAX];
	struct stat st;
	int r;

	r = cg_layout_open(V->cfg.cgroup_root, &V->layout);
	if (r < 0) {
		fprintf(stderr, "cvmfsd views: --cgroup-root %s: no cgroup hierarchy found: %s\n",
			V->cfg.cgroup_root, strerror(-r));
		return r;
	}
	V->proc_fd = open(V->cfg.proc_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (V->proc_fd < 0) {
		fprintf(stderr, "cvmfsd views: --proc-root %s: %s\n", V->cfg.proc_root, strerror(errno));
		return -errno;
	}
	snprintf(cpu, sizeof(cpu), "%s/devices/system/cpu", V->cfg.sys_root);
	V->sys_cpu_fd = open(cpu, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (V->sys_cpu_fd < 0) {
		fprintf(stderr, "cvmfsd views: --sys-root: %s: %s\n", cpu, strerror(errno));
		return -errno;
	}
	if (stat("/proc/self/ns/pid", &st) == 0)
		V->self_pidns = st.st_ino;
	return 0;
}

/* Is PATH the mount point of a live or dead cvmfs FUSE mount? */
static bool is_cvmfs_mount(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mnt[PATH_MAX], fstype[256];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%255s", fstype) != 1)
			continue;
		if (!strcmp(mnt, path) && !strncmp(fstype, "fuse.cvmfs", 10))
			return true;
	}
	return false;
}

/* A daemon killed with SIGKILL leaves "Transport endpoint is not connected"
 * behind; stat() may still succeed from cached attributes, opening does not.
 * A live cvmfs mount there means another daemon serves it. */
static int recover_stale(const char *path)
{
	for (int tries = 0; tries < 8; tries++) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0) {
			close(fd);
			if (is_cvmfs_mount(path)) {
				log_error("%s: already served by a running cvmfsd", path);
				return -EBUSY;
			}
			return 0;
		}
		if (errno != ENOTCONN) {
			log_error("%s: %s", path, strerror(errno));
			return -errno;
		}
		log_warn("%s: stale mount from a previous run, detaching it", path);
		if (umount2(path, MNT_DETACH) < 0) {
			log_error("%s: umount: %s", path, strerror(errno));
			return -errno;
		}
	}
	return -EBUSY;
}

struct session {
	struct fuse_session *se;
	pthread_t thread;
	bool running;
	char mountpoint[PATH_MAX];
};

static struct session sessions[2];

static void *session_loop(void *arg)
{
	struct session *s = arg;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();

	fuse_loop_cfg_set_max_threads(cfg, 64);
	fuse_loop_cfg_set_idle_threads(cfg, 8);
	fuse_session_loop_mt(s->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	/* Unmounted from outside (fusermount3 -u): stop the whole daemon. */
	if (!__atomic_load_n(&V->stopping, __ATOMIC_ACQUIRE))
		kill(getpid(), SIGTERM);
	return NULL;
}

static int session_start(struct session *s, const struct fuse_lowlevel_ops *ops,
			 const char *mnt, const char *fsname)
{
	char opts[4096];
	char *argv[] = { "cvmfsd", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int r;

	snprintf(opts, sizeof(opts), "allow_other,default_permissions,fsname=%s,subtype=cvmfs%s%s",
		 fsname, V->cfg.fuse_opts ? "," : "", V->cfg.fuse_opts ? V->cfg.fuse_opts : "");
	snprintf(s->mountpoint, sizeof(s->mountpoint), "%s", mnt);
	s->se = fuse_session_new(&args, ops, sizeof(*ops), NULL);
	fuse_opt_free_args(&args);
	if (!s->se) {
		log_error("-o %s: cannot start a FUSE session", opts);
		return -EINVAL;
	}
	if (fuse_session_mount(s->se, mnt) != 0) {
		log_error("%s: cannot mount", mnt);
		fuse_session_destroy(s->se);
		s->se = NULL;
		return -EIO;
	}
	views_count_replies(s->se);
	r = pthread_create(&s->thread, NULL, session_loop, s);
	if (r) {
		fuse_session_unmount(s->se);
		return -r;
	}
	s->running = true;
	return 0;
}

/* True while a reader still holds a file of the connection open: the
 * detached mount lives on and /dev/fuse shows no error until it closes. */
static bool connection_alive(struct fuse_session *se)
{
	struct pollfd p = { .fd = fuse_session_fd(se), .events = 0 };

	return poll(&p, 1, 0) == 0 || !(p.revents & POLLERR);
}

/* Returns true once the session is gone; false when it is left for the
 * process exit to close (a reader holds a file open, so no RELEASE comes
 * and a loop thread may still be blocked reading /dev/fuse). */
static bool session_stop(struct session *s)
{
	struct timespec ts;

	if (!s->se)
		return true;
	if (!s->running)
		return false;
	fuse_session_exit(s->se);
	/* Detach: CVMs may still hold binds of our files. */
	if (umount2(s->mountpoint, MNT_DETACH) < 0 && errno != EINVAL)
		log_warn("%s: umount: %s", s->mountpoint, strerror(errno));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	/* Open files or binds keep the connection alive; a loop thread then
	 * returns only if a request happens to wake it. Either way the
	 * session stays reachable from here and exiting closes it. */
	s->running = false;
	if (pthread_timedjoin_np(s->thread, NULL, &ts) != 0 || connection_alive(s->se))
		return false;
	/* Detached and the connection is gone: libfuse sees the error on
	 * /dev/fuse, skips its own unmount and frees its copy of the path. */
	fuse_session_unmount(s->se);
	fuse_session_destroy(s->se);
	s->se = NULL;
	return true;
}

static void views_hup(void)
{
	log_info("SIGHUP: the views have no run-time settings to reload");
}

static int views_run(const char *mnt)
{
	char ctmnt[PATH_MAX];
	int notify_fd = -1, r;
	bool gone;

	/* Before daemonising, so that errors reach the terminal. */
	r = recover_stale(mnt);
	if (r < 0)
		return r;
	if (!V->cfg.foreground && (r = daemon_fork(&notify_fd)) < 0)
		return log_error_errno(r, "daemonize");
	log_setup("cvmfsd views", !V->cfg.foreground, V->cfg.debug);
	daemon_block_signals();
	ct_tables_init();
	if ((r = containers_init()) < 0 || (r = host_init()) < 0 || (r = sampler_start()) < 0)
		return log_error_errno(r, "start");
	/* Before the mounts, which a launcher waits for before it looks for
	 * the socket. Not fatal: without it new CVMs trap nothing. */
	if (supervise_start(mnt) < 0)
		log_warn("sysinfo and sched_getaffinity stay the host's in new CVMs");
	r = session_start(&sessions[0], &shared_ops, mnt, "cvmfs-views");
	if (r < 0)
		goto out;
	snprintf(ctmnt, sizeof(ctmnt), "%s/ct", mnt);
	r = session_start(&sessions[1], &ct_ops, ctmnt, "cvmfs-views-ct");
	if (r < 0)
		goto out;
	log_info("serving %s (per-container trees at %s)", mnt, ctmnt);
	views_status_start(mnt); /* not fatal: only the counts go unpublished */
	daemon_ready(notify_fd);
	daemon_wait_stop(views_hup);
	log_info("stopping");
	__atomic_store_n(&V->stopping, true, __ATOMIC_RELEASE);
out:
	__atomic_store_n(&V->stopping, true, __ATOMIC_RELEASE);
	supervise_stop();
	views_status_stop();
	/* ct first: it is mounted inside the shared tree. Both are tried. */
	gone = session_stop(&sessions[1]);
	gone = session_stop(&sessions[0]) && gone;
	if (gone)
		fs_handles_free_all();
	sampler_stop();
	return r;
}

int cvmfsd_views_main(int argc, char **argv)
{
	struct views v = { .proc_fd = -1, .sys_cpu_fd = -1 };
	char *mnt = NULL;
	int r;

	V = &v;
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
