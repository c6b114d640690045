/* Per-CVM sysctls: the table of knobs and their treatment, values kept per
 * CVM instance, the kernel's parsing and range checks (see sysctl.h). The
 * store is under one mutex: sysctls are read and written a few times per
 * boot, never on a hot path. doc/cvmfsd-views.md lists why each is here. */
#include "sysctl.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYSCTL_DIR_IDX 0xffffu

enum sc_how { SC_INT, SC_ULONG, SC_REFUSE };

struct sc_def {
	const char *key; /* the dotted name; '.' -> '/' under /proc/sys */
	enum sc_how how;
	long long min, max;
};

/* Who writes them at start: systemd PID 1 (fs.file-max), systemd-sysctl's
 * /usr/lib/sysctl.d (pid_max, protected_*, upstream's 50-default.conf:
 * sysrq, core_uses_pid; 50-coredump.conf: core_pattern), dockerd
 * (keys.root_*), kubelet (vm.*, kernel.panic*, keys.root_*). */
static const struct sc_def defs[] = {
	{ "fs.file-max", SC_ULONG, 0, LONG_MAX },
	{ "fs.protected_fifos", SC_INT, 0, 2 },
	{ "fs.protected_hardlinks", SC_INT, 0, 1 },
	{ "fs.protected_regular", SC_INT, 0, 2 },
	{ "fs.protected_symlinks", SC_INT, 0, 1 },
	{ "kernel.core_uses_pid", SC_INT, INT_MIN, INT_MAX },
	{ "kernel.keys.root_maxbytes", SC_INT, 1, INT_MAX },
	{ "kernel.keys.root_maxkeys", SC_INT, 1, INT_MAX },
	{ "kernel.panic", SC_INT, INT_MIN, INT_MAX },
	{ "kernel.panic_on_oops", SC_INT, INT_MIN, INT_MAX },
	{ "kernel.pid_max", SC_INT, 301, 4194304 },
	{ "kernel.sysrq", SC_INT, INT_MIN, INT_MAX },
	{ "vm.overcommit_memory", SC_INT, 0, 2 },
	{ "vm.panic_on_oom", SC_INT, 0, 2 },
	/* The host's core dump handler, run as host root: never the CVM's. */
	{ "kernel.core_pattern", SC_REFUSE, 0, 0 },
};
#define NDEFS ARRAY_SIZE(defs)

struct sc_store {
	unsigned ct;
	dev_t dev;
	ino_t ino;          /* the CVM instance: its cgroup directory */
	bool set[NDEFS];
	long long val[NDEFS];
	struct timespec mtime[NDEFS];
	struct sc_store *next;
};

static pthread_mutex_t sc_lock = PTHREAD_MUTEX_INITIALIZER; /* protects stores */
static struct sc_store *stores;

fuse_ino_t sysctl_dir_ino(unsigned ct_id)
{
	return SYSCTL_BIT | ((fuse_ino_t)ct_id << 16) | SYSCTL_DIR_IDX;
}

static unsigned ino_ct(fuse_ino_t ino)
{
	return (unsigned)((ino & ~SYSCTL_BIT) >> 16);
}

static int ino_def(fuse_ino_t ino)
{
	unsigned i = (unsigned)(ino & 0xffff);

	return i == SYSCTL_DIR_IDX || i == 0 || i > NDEFS ? -1 : (int)i - 1;
}

static void def_path(const struct sc_def *d, char *buf, size_t size)
{
	snprintf(buf, size, "sys/%s", d->key);
	for (char *c = buf; *c; c++)
		if (*c == '.')
			*c = '/';
}

/* The host's current text of d (through the views' proc root). */
static int host_sysctl_text(const struct sc_def *d, char *buf, size_t size)
{
	char path[128];
	_cleanup_close_ int fd = -EBADF;
	ssize_t n;

	def_path(d, path, sizeof(path));
	fd = openat(views_ctx->proc_fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

int sysctl_lookup(fuse_ino_t parent, const char *name, fuse_ino_t *ino)
{
	char text[64];

	if (ino_def(parent) >= 0)
		return -ENOTDIR;
	for (size_t i = 0; i < NDEFS; i++) {
		if (strcmp(defs[i].key, name))
			continue;
		/* Absent on the host: nothing to stand in for. */
		if (host_sysctl_text(&defs[i], text, sizeof(text)) < 0)
			return -ENOENT;
		*ino = SYSCTL_BIT | ((fuse_ino_t)ino_ct(parent) << 16) | (i + 1);
		return 0;
	}
	return -ENOENT;
}

void sysctl_list(fuse_ino_t dir, void (*add)(void *ctx, const char *name, fuse_ino_t ino,
					     mode_t mode), void *ctx)
{
	char text[64];

	for (size_t i = 0; i < NDEFS; i++)
		if (host_sysctl_text(&defs[i], text, sizeof(text)) >= 0)
			add(ctx, defs[i].key,
			    SYSCTL_BIT | ((fuse_ino_t)ino_ct(dir) << 16) | (i + 1), S_IFREG);
}

/* The CVM instance of tree ct_id: its cgroup directory, in the first
 * hierarchy that has it. Anonymous trees have no sysctls. */
static int instance_of(unsigned ct_id, char *name, size_t size, struct stat *st)
{
	struct ct *c;
	bool named;

	views_read_lock();
	c = ct_get(ct_id);
	if ((named = c && !c->anon))
		snprintf(name, size, "%s", c->name);
	urcu_memb_read_unlock(); /* an anonymous tree may go with its container */
	return named ? ct_cgroup_stat(name, st) : -ENOENT;
}

/* The store of tree ct_id's current instance, made (empty) on first use;
 * a new instance of the same name replaces the old one's. Under sc_lock. */
static struct sc_store *store_locked(unsigned ct_id, const struct stat *st)
{
	struct sc_store *s;

	for (s = stores; s && s->ct != ct_id; s = s->next)
		;
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return NULL;
		s->ct = ct_id;
		s->next = stores;
		stores = s;
	}
	if (s->dev != st->st_dev || s->ino != st->st_ino) {
		memset(s->set, 0, sizeof(s->set));
		s->dev = st->st_dev;
		s->ino = st->st_ino;
	}
	return s;
}

/* The text a reader of (ct_id, i) sees; its mtime when known. */
static int value_text(unsigned ct_id, int i, char *buf, size_t size, struct timespec *mtime)
{
	char name[256];
	struct stat st;
	struct sc_store *s;
	bool set = false;
	int r;

	if ((r = instance_of(ct_id, name, sizeof(name), &st)) < 0)
		return r;
	clock_gettime(CLOCK_REALTIME, mtime); /* the host's: may change at any time */
	pthread_mutex_lock(&sc_lock);
	s = store_locked(ct_id, &st);
	if (s && (set = s->set[i])) {
		*mtime = s->mtime[i];
		r = snprintf(buf, size, defs[i].how == SC_ULONG ? "%llu\n" : "%lld\n",
			     s->val[i]);
	}
	pthread_mutex_unlock(&sc_lock);
	if (!s)
		return -ENOMEM;
	return set ? r : host_sysctl_text(&defs[i], buf, size);
}

int sysctl_read(fuse_req_t req, fuse_ino_t ino, char *buf, size_t size)
{
	struct timespec mtime;
	int i = ino_def(ino);

	(void)req;
	if (i < 0)
		return -EISDIR;
	return value_text(ino_ct(ino), i, buf, size, &mtime);
}

/* The host uid that is root in PID's user namespace (0 outside any):
 * the owner its root sees, so that CVM root may write and its other
 * users may not, as on a VM. -1 where that namespace maps no root. */
static long long ns_root_uid(pid_t pid)
{
	char path[64], line[128];
	_cleanup_fclose_ FILE *f = NULL;
	unsigned long long in, out, count;

	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llu %llu %llu", &in, &out, &count) == 3 && in == 0 && count)
			return (long long)out;
	return -1;
}

int sysctl_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	long long owner = ns_root_uid(fuse_req_ctx(req)->pid);
	char text[64];
	int i = ino_def(ino), n;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = st->st_gid = owner < 0 ? 65534 : (uid_t)owner;
	if (i < 0) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	n = value_text(ino_ct(ino), i, text, sizeof(text), &st->st_mtim);
	if (n < 0)
		return n;
	/* Refused ones read-only, as the kernel shows them; CVM root's
	 * CAP_DAC_OVERRIDE still lets the write through, to be logged. */
	st->st_mode = S_IFREG | (defs[i].how == SC_REFUSE ? 0444 : 0644);
	st->st_nlink = 1;
	st->st_size = n;
	st->st_ctim = st->st_mtim;
	return 0;
}

/* The kernel's proc_dointvec/proc_doulongvec parsing of one value:
 * leading blanks, an optional '-', a number in base 0 (0x.., 0..), then a
 * blank or the end; the rest is ignored. Nothing, a bad character, an
 * overflow or a value out of [min, max]: -EINVAL. */
static int parse_value(const struct sc_def *d, const char *data, size_t size, long long *val)
{
	char text[64], *p = text, *end;
	unsigned long long u;
	bool neg;

	if (size >= sizeof(text))
		size = sizeof(text) - 1; /* the kernel reads at most a page; a number is short */
	memcpy(text, data, size);
	text[size] = '\0';
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if ((neg = *p == '-'))
		p++;
	if (*p < '0' || *p > '9' || (neg && d->how == SC_ULONG))
		return -EINVAL;
	errno = 0;
	u = strtoull(p, &end, 0);
	if (errno || (*end && *end != ' ' && *end != '\t' && *end != '\n') ||
	    u > (neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX))
		return -EINVAL;
	*val = neg ? (long long)(0 - u) : (long long)u;
	return *val < d->min || *val > d->max ? -EINVAL : 0;
}

static int store_value(unsigned ct_id, int i, long long val)
{
	char name[256];
	struct stat st;
	struct sc_store *s;
	int r;

	if ((r = instance_of(ct_id, name, sizeof(name), &st)) < 0)
		return r;
	pthread_mutex_lock(&sc_lock);
	if ((s = store_locked(ct_id, &st))) {
		s->set[i] = true;
		s->val[i] = val;
		clock_gettime(CLOCK_REALTIME, &s->mtime[i]);
	}
	pthread_mutex_unlock(&sc_lock);
	if (!s)
		return -ENOMEM;
	log_info("sysctl %s = %lld in CVM %s (its own: emulated, not the host's)", defs[i].key,
		 val, name);
	return 0;
}

int sysctl_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int i = ino_def(ino), r;
	long long val;

	if (i < 0)
		return -EISDIR;
	if ((long long)ctx->uid != ns_root_uid(ctx->pid))
		return -EACCES; /* only root of the CVM, as for the kernel's 0644 */
	if (defs[i].how == SC_REFUSE) {
		log_warn("sysctl %s: write by pid %d refused (host-wide, never a CVM's)",
			 defs[i].key, (int)ctx->pid);
		return -EACCES;
	}
	/* As the kernel's default sysctl_writes_strict: a numeric write past
	 * offset 0 is taken and ignored. */
	if (off > 0)
		return (int)size;
	if ((r = parse_value(&defs[i], data, size, &val)) < 0)
		return r;
	if ((r = store_value(ino_ct(ino), i, val)) < 0)
		return r;
	return (int)size;
}
