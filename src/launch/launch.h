/* cvm-launch: cgroup + namespaces + pivot_root into a workspace disk.
 *
 * The launcher is a list of typed setup steps (run.c) executed in order by
 * the parent; each has an undo run in reverse order on failure and at exit.
 * The last step clones the inner child (child.c), which builds the CVM's
 * root and execs CMD as PID 1 of the new PID namespace. */
#pragma once

#include "cvmfs/cgroup.h"
#include "cvmfs/fsutil.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit status for a failure of the launcher itself (not CMD's), like
 * `docker run`; 126/127 when CMD cannot be executed / is not found. */
#define LAUNCH_EXIT_FAIL 125

struct launch_opts {
	char *config;
	char *name;
	char *image;     /* layer dirs; a reference becomes its store dirs (image.h) */
	char *layer_store; /* the layer store of image references */
	char *data;
	uint64_t disk;
	uint64_t memory; /* 0: no limit */
	uint64_t memory_high; /* 0: none; v2 memory.high, below memory */
	uint64_t io_bps;  /* 0: none; io.max rbps/wbps of the CVM's device */
	uint64_t io_iops; /* 0: none; io.max riops/wiops */
	char *cpus;      /* decimal, may be fractional; NULL: no quota */
	char *cpuset;    /* NULL: the parent's CPUs */
	uint64_t pids;   /* 0: no limit */
	char *hostname;
	char *net;       /* "private", "host" or "none"; default: net.c */
	char *bridge;    /* --net private as root: the host bridge (cvmfs0) */
	char *net_range; /* its IPv4 range, CIDR (10.87.0.0/16) */
	char *publish;   /* HOSTPORT:CVMPORT[/tcp|udp] entries joined by ':' */
	bool net_peers;  /* may reach (and be reached by) other CVMs with it */
	bool net_host;   /* may reach the host's own addresses */
	bool userns;           /* default true; --no-userns / "userns = false" */
	bool no_userns;
	bool unsafe_host_root_caps; /* allow host-affecting caps without userns */
	uint64_t userns_uid;   /* host uid that is root inside; 0: assigned (idrange.c) */
	uint64_t userns_gid;   /* host gid that is root's group inside; 0: assigned */
	uint64_t userns_count; /* uids and gids mapped, from 0 inside; 0: default */
	uint64_t userns_base;  /* first id of assigned ranges */
	char *idmap_dir;       /* the record of assigned ranges, one file per NAME */
	char *views;
	char *run_dir;
	char *mnt_dir;   /* parent of the per-workspace mountpoints */
	bool rebuild;
	char *cvmfsd;
	char *cgroup_root;
	char *caps;      /* comma-separated capability names kept in the CVM */
	char *persist;   /* paths kept by --rebuild, ':'-separated */
	uint64_t stop_timeout; /* seconds between forwarded SIGTERM and SIGKILL */
	char *console;   /* "pty" or "inherit"; default pty when CMD is systemd */
	char *device;    /* --device entries joined by ':' (devices.c) */
	char *seccomp;   /* "default" (NULL) or "unconfined" (seccomp.c) */
	char *volume;    /* "loop", "block:PATH" or "none"; default: volume.c */
	char *volume_dir; /* passed to the disk when given, else its default */
	char *lanes;     /* passed to the disk when given, ':'-separated */
	bool debug;
};

/* A lane: a directory of the volume bound at path inside the CVM, as the
 * disk daemon publishes it in RUN_DIR/disk/NAME.json (volume.c). */
struct lane {
	char *path; /* absolute, inside the CVM ("/home") */
	char *dir;  /* on the host, on the volume ("DATA/lanes/home") */
};

struct launch;

/* A cgroup backend (v1: one directory per controller; v2: one directory). */
struct cg_backend {
	const char *name;
	/* Create cvmfs/NAME and write the limits. On failure leave nothing. */
	int (*create)(struct launch *L);
	/* In the child: move the calling process in (uses fds opened by create). */
	int (*join)(struct launch *L);
	/* Kill what is left (by pid, SIGKILL), wait, remove the directories. */
	void (*destroy)(struct launch *L);
};

extern const struct cg_backend cg_backend_v1;
extern const struct cg_backend cg_backend_v2;

#define LCG_MAX_DIRS (CG_NRES + 4) /* + systemd, unified, devices, freezer */

struct lcg_dir {
	int parent_fd;   /* hierarchy root or unified root */
	char ctl[16];    /* controller name, for messages ("unified" on v2) */
	bool made;       /* we created cvmfs/NAME here */
	bool own_fd;     /* parent_fd is ours to close (not the layout's) */
	int procs_fd;    /* cvmfs/NAME/ns/cgroup.procs, opened for the child's join */
	int leaf_fd;     /* v2: cvmfs/NAME/ns/init/cgroup.procs, else -EBADF */
};

struct launch {
	struct launch_opts o;
	const char *step;      /* current step, prefixes error lines */
	char *cmd_default[2];
	char **cmd;            /* argv of CMD */
	char *mnt;             /* MNT_DIR/NAME */
	uint64_t cpuset_bits[CG_MAX_CPUS / 64];
	bool cpuset_given;
	double cpus;
	bool systemd;          /* basename of CMD is "systemd" */

	/* validate */
	struct image_state *img; /* an image reference's layers, until step image */
	int lock_fd;
	char *lock_path;
	/* cgroup */
	const struct cg_backend *cg;
	struct cg_layout layout;
	bool layout_open;
	struct lcg_dir dirs[LCG_MAX_DIRS];
	int n_dirs;
	/* views */
	pid_t views_pid;       /* > 0 when we started the views daemon */
	/* disk */
	pid_t disk_pid;        /* > 0 when we started the disk daemon */
	bool discard_upper;    /* --rebuild with a volume: the disk empties upper */
	char volume_note[512]; /* why --volume defaulted to none, said at start */
	struct lane *lanes;    /* read from the disk's status after step disk */
	size_t n_lanes;
	/* child */
	pid_t child_pid;
	int console_master;    /* --console pty: the launcher's end, else -1 */
	int console_slave;     /* until the clone; the child's stdio */
	char console_path[64]; /* the slave in the host's /dev/pts */
	int exit_status;
	double t_start;
	/* net (net*.c) */
	int lease_fd;          /* the address's lease, flock'ed while the CVM runs */
	int net_lock_fd;       /* the name's network lock (net_lease.c) */
	uint32_t addr;         /* the CVM's IPv4 address, host order; 0: none */
	char veth[16];         /* the host's end of the veth pair */
	bool net_rules;        /* our nft tables may exist */
	pid_t pasta_pid;       /* user-mode network helper, > 0 when started */
};

/* Error line "cvm-launch: STEP: ...: strerror"; returns r. */
#define step_error(L, r, fmt, ...)                                             \
	log_error_errno(r, "%s: " fmt, (L)->step, ##__VA_ARGS__)

/* opts.c */
int launch_parse(struct launch *L, int argc, char **argv);
void launch_free(struct launch *L);
double now_s(void);

/* validate.c */
int step_validate(struct launch *L);
void undo_validate(struct launch *L);

/* image_resolve.c: --image oci:DIR[:TAG] / docker-archive:FILE[:TAG]
 * (image.h) into the store's layer directories, in step validate; step
 * image records the workspace's layers in the store once its disk serves
 * them; image_release (undo_validate) lets go of the store. */
int image_resolve(struct launch *L);
int step_image(struct launch *L);
void image_release(struct launch *L);

/* cgroup.c */
int step_cgroup(struct launch *L);
void undo_cgroup(struct launch *L);
int lcg_write(int dirfd, const char *file, const char *value);
/* In the child, once its cgroup namespace is rooted at cvmfs/NAME/ns: on
 * v2 move down into ns/init, so the root holds no process and the CVM may
 * enable controllers there (v2 forbids both in one cgroup). */
int lcg_enter_leaf(struct launch *L);
/* Step "io" (after "disk"): --io-bps/--io-iops on the CVM's device. */
int step_io(struct launch *L);

/* daemons.c */
int step_views(struct launch *L);
void undo_views(struct launch *L);
int step_rebuild(struct launch *L);
int step_disk(struct launch *L);
void undo_disk(struct launch *L);
bool is_mountpoint(const char *path);

/* util.c */
int env_fresh(const char *home); /* clearenv but TERM; PATH, HOME */
pid_t spawn(char *const argv[], bool quiet);
/* The signals the launcher takes itself: SIGTERM, SIGINT, SIGHUP, SIGCHLD. */
void launch_signals(sigset_t *set);
int wait_exit(pid_t pid, bool is_child, double timeout_s);

/* child.c */
int step_child(struct launch *L);
void undo_child(struct launch *L);
int launch_wait(struct launch *L);

/* mounts.c: the inner child's mount sequence, before pivot_root */
int child_mounts(struct launch *L);
int child_pivot(struct launch *L);
int child_cgroupfs(struct launch *L);
/* inner.c: the views of the CVM's own containers (dockerd's runtime):
 * their sources cloned by the parent, moved into place by the child */
int inner_prepare(struct launch *L);
int child_inner(struct launch *L);

/* mounts.c, in the parent before the clone: the top-level mountpoints */
int mounts_prepare(struct launch *L);

/* idrange.c: the CVM's id range, recorded per workspace in IDMAP_DIR.
 * Assigned ranges start at --userns-base, in blocks of USERNS_BLOCK ids. */
#define USERNS_BASE_DEFAULT 100000000ULL
#define USERNS_BLOCK 65536ULL
int idrange_assign(struct launch *L);

/* devices.c, devices_bpf.c: the device allow-list (doc/cvm-launch.md,
 * Devices). A rule as devices.allow writes it; path: the host node that
 * --device /dev/PATH also binds into the CVM's /dev, else "". */
#define DEV_R 1U
#define DEV_W 2U
#define DEV_M 4U
#define DEV_RWM (DEV_R | DEV_W | DEV_M)
struct dev_rule {
	char type;            /* 'a' (any), 'b', 'c' */
	int64_t major, minor; /* -1: any */
	unsigned access;      /* DEV_R | DEV_W | DEV_M */
	char path[64];
};
int devices_parse(struct launch *L);            /* step validate */
const struct dev_rule *devices_rules(size_t *n);
int devices_apply(struct launch *L, struct lcg_dir *d); /* step cgroup, per hierarchy */
int devices_enforced(struct launch *L);         /* step cgroup, after create */
int devices_bind(struct launch *L);             /* inner child, before pivot_root */
int devices_bpf_attach(int cgroup_fd, const struct dev_rule *rules, size_t n);

/* seccomp.c: the default filter (doc/cvm-launch.md, Seccomp) */
int seccomp_parse(struct launch *L);   /* step validate */
int seccomp_install(struct launch *L); /* inner child, right before exec */
/* The same filter for any process (cvmctl exec): deny_bpf without a user
 * namespace; trapping, its listener sent on, after a notif_open() that
 * found a supervisor. Needs no_new_privs or CAP_SYS_ADMIN. */
int seccomp_install_filter(bool deny_bpf, const char *name);
/* notif.c: sysinfo and sched_getaffinity answered by the views daemon */
int notif_prepare(struct launch *L); /* parent, before the clone */
int notif_start(struct launch *L);   /* parent, after the clone */
void notif_stop(struct launch *L);   /* undo_child, the CVM gone */
int notif_child_fd(void);            /* the child's end; < 0: trap nothing */
int notif_send_fd(int sock, int fd, const char *name);
/* The same for any process (cvmctl exec): open before the fork (1: a
 * supervisor answers at sock_path, trap; 0: none, trap nothing), run
 * after it, end once the process is gone. */
int notif_open(const char *name, const char *sock_path);
int notif_run(void);
void notif_end(void);
/* The supervisor's socket while trapping (the record says it), else NULL. */
const char *notif_socket(void);

/* volume.c: the workspace volume is the disk daemon's (--volume); the
 * launcher picks the mode, passes it on and binds the lanes the daemon
 * publishes (doc/cvm-launch.md, Volume). */
bool volume_on(const struct launch *L);
int volume_default(struct launch *L);     /* opts: --volume left out */
int volume_validate(struct launch *L);    /* step validate */
/* Step disk, once the daemon serves: its published volume must be the one
 * this launch asks for (-EBUSY, one line, otherwise); fills L->lanes. */
int volume_status(struct launch *L, pid_t pid);
int lanes_prepare(struct launch *L);      /* parent, before the clone */
int lanes_bind(struct launch *L);         /* inner child, before pivot_root */
void lanes_free(struct launch *L);

/* net.c, net_lease.c, net_rules.c, net_user.c: --net private
 * (doc/cvm-launch.md, Network). As root (--no-userns) a veth pair on the
 * host bridge, a leased address, nft rules per CVM; with a user namespace
 * a user-mode network (pasta). */
int net_default(struct launch *L);     /* opts: --net left out */
int net_validate(struct launch *L);    /* step validate: one line per bad value */
int net_prepare(struct launch *L);     /* parent, before the clone */
int net_attach(struct launch *L);      /* parent, child cloned (and mapped) */
int net_child(struct launch *L);       /* inner child, before pivot_root */
void net_undo(struct launch *L);       /* parent, CVM gone */
bool net_private(const struct launch *L);
bool net_own_ns(const struct launch *L); /* not --net host */
const char *net_addr_str(const struct launch *L, char buf[16]);

/* caps.c */
/* Without a user namespace only Docker's set (no net_raw with --net host)
 * unless --unsafe-host-root-caps: one line and -EPERM otherwise. */
int caps_policy(struct launch *L);
/* The default of --caps for this mode (see caps.c). */
const char *caps_default(bool userns, bool host_net);
/* "all": every capability in the launcher's bounding set. */
int caps_parse(const char *list, uint64_t *mask);
int caps_check(const char *list, char *missing, size_t size);
int caps_drop(const char *list);
/* caps_drop of a mask: the bounding set to it, then E, P, I to it. */
int caps_drop_mask(uint64_t mask);

/* record.c: RUN_DIR/launch/NAME.json for cvmctl, once CMD is exec'ed;
 * removed at the launcher's exit. */
void record_write(struct launch *L);
/* Field 22 of /proc/PID/stat, start time in clock ticks after boot (0 if
 * PID is gone): with the pid, it names one process (cvmctl checks both). */
unsigned long long proc_start_ticks(pid_t pid);
