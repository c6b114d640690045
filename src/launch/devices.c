/* The CVM's device allow-list: which device nodes its processes may open
 * (r, w) or create (m). Everything not listed is refused by the kernel
 * with EPERM, whatever node the CVM finds or makes (on its /dev tmpfs or
 * on its disk) and whatever capability it holds.
 *
 * Enforced on cvmfs/NAME, which the CVM cannot see or leave, in every
 * hierarchy that can (step "cgroup"):
 *   - v1 "devices" controller: devices.deny "a", then devices.allow per
 *     rule, written before cvmfs/NAME/ns is made (a v1 devices cgroup
 *     copies its parent's list when made, and refuses "a" once it has
 *     children);
 *   - cgroup2 (pure v2, or the hybrid's "unified"): a
 *     BPF_PROG_TYPE_CGROUP_DEVICE program attached with BPF_F_ALLOW_MULTI,
 *     so that systemd, dockerd or runc inside may attach their own below;
 *     the kernel runs them all and allows an access only if every one
 *     does. A v1 child can likewise never allow more than its parent.
 * On a hybrid host both apply. Runs in the parent, as host root. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Docker's default list: the nodes a Linux userland expects, plus mknod
 * of any node. runc writes "c *:* m" and "b *:* m" into every container's
 * devices cgroup and fails to start it if the parent (ours) lacks them;
 * making a node opens nothing: reading or writing it is what the r and w
 * bits decide. */
static const struct dev_rule default_rules[] = {
	{ 'c', 1, 3, DEV_RWM, "" },    /* null */
	{ 'c', 1, 5, DEV_RWM, "" },    /* zero */
	{ 'c', 1, 7, DEV_RWM, "" },    /* full */
	{ 'c', 1, 8, DEV_RWM, "" },    /* random */
	{ 'c', 1, 9, DEV_RWM, "" },    /* urandom */
	{ 'c', 5, 0, DEV_RWM, "" },    /* tty */
	{ 'c', 5, 1, DEV_RWM, "" },    /* console */
	{ 'c', 5, 2, DEV_RWM, "" },    /* ptmx */
	{ 'c', 136, -1, DEV_RWM, "" }, /* pts/N */
	{ 'c', 10, 229, DEV_RWM, "" }, /* fuse */
	{ 'c', 10, 200, DEV_RWM, "" }, /* net/tun */
	{ 'c', -1, -1, DEV_M, "" },
	{ 'b', -1, -1, DEV_M, "" },
};

#define DEV_MAX_RULES 64
static struct dev_rule rules[DEV_MAX_RULES];
static size_t n_rules;
static bool enforced; /* some hierarchy took the rules */

/* "rwm" or a part of it; *end after it. */
static int parse_access(const char *s, const char **end, unsigned *access)
{
	*access = 0;
	for (; *s && strchr("rwm", *s); s++)
		*access |= *s == 'r' ? DEV_R : *s == 'w' ? DEV_W : DEV_M;
	*end = s;
	return *access ? 0 : -EINVAL;
}

static int parse_num(const char *s, const char **end, int64_t *v)
{
	char *e;

	if (*s == '*') {
		*v = -1;
		*end = s + 1;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	*v = (int64_t)strtoul(s, &e, 10);
	*end = e;
	return *v <= 0xfffff ? 0 : -EINVAL; /* 20-bit minors, 12-bit majors */
}

/* "c 1:3", "b 7:*", "a": type and numbers, as in devices.allow. */
static int parse_numbers(const char *s, const char **end, struct dev_rule *d)
{
	d->type = *s++;
	d->major = d->minor = -1;
	if (d->type == 'a' && *s != ' ') {
		*end = s;
		return 0;
	}
	if (*s++ != ' ' || parse_num(s, &s, &d->major) < 0 || *s++ != ':' ||
	    parse_num(s, &s, &d->minor) < 0)
		return -EINVAL;
	*end = s;
	return 0;
}

/* A device node of the host: its type and numbers; the CVM gets the node
 * too, at the same place under its /dev. */
static int parse_path(struct launch *L, const char *s, const char **end, struct dev_rule *d)
{
	size_t len = strcspn(s, ": ");
	struct stat st;

	if (len >= sizeof(d->path) || strncmp(s, "/dev/", 5) || strstr(s, "/../"))
		return step_error(L, -EINVAL, "--device '%.*s': a path under /dev/ expected",
				  (int)len, s);
	memcpy(d->path, s, len);
	d->path[len] = '\0';
	if (stat(d->path, &st) < 0)
		return step_error(L, -errno, "--device %s", d->path);
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
		return step_error(L, -ENODEV, "--device %s: not a device node", d->path);
	d->type = S_ISCHR(st.st_mode) ? 'c' : 'b';
	d->major = major(st.st_rdev);
	d->minor = minor(st.st_rdev);
	*end = s + len;
	return 0;
}

/* One entry of --device at s; *end after it. */
static int parse_entry(struct launch *L, const char *s, const char **end, struct dev_rule *d)
{
	int r;

	*d = (struct dev_rule){ .access = DEV_RWM };
	if (*s == '/') {
		if ((r = parse_path(L, s, &s, d)) < 0)
			return r;
	} else if (!*s || !strchr("abc", *s) || parse_numbers(s, &s, d) < 0) {
		goto bad;
	}
	if (*s == ' ' && parse_access(s + 1, &s, &d->access) < 0)
		goto bad;
	if (*s && *s != ':')
		goto bad;
	*end = s;
	return 0;
bad:
	return step_error(L, -EINVAL,
			  "--device '%s': expected 'TYPE MAJOR:MINOR [rwm]' (TYPE a, b or c; "
			  "* for any number) or '/dev/PATH [rwm]', several joined by ':'",
			  L->o.device);
}

/* The default list, then each --device entry. Repeated --device options
 * (and config keys) arrive joined by ':', which is also the separator of
 * MAJOR:MINOR: entries are therefore read one after the other, each
 * knowing its own shape. */
int devices_parse(struct launch *L)
{
	const char *s = L->o.device;

	n_rules = 0;
	for (size_t i = 0; i < ARRAY_SIZE(default_rules); i++)
		rules[n_rules++] = default_rules[i];
	while (s && *s) {
		int r;

		if (n_rules == DEV_MAX_RULES)
			return step_error(L, -E2BIG, "--device: more than %d entries",
					  DEV_MAX_RULES - (int)ARRAY_SIZE(default_rules));
		if ((r = parse_entry(L, s, &s, &rules[n_rules])) < 0)
			return r;
		n_rules++;
		if (*s == ':')
			s++;
	}
	return 0;
}

const struct dev_rule *devices_rules(size_t *n)
{
	*n = n_rules;
	return rules;
}

/* "c 1:3 rwm", as devices.allow takes it. */
static void rule_text(const struct dev_rule *d, char *buf, size_t size)
{
	char maj[24] = "*", min[24] = "*";

	if (d->major >= 0)
		snprintf(maj, sizeof(maj), "%lld", (long long)d->major);
	if (d->minor >= 0)
		snprintf(min, sizeof(min), "%lld", (long long)d->minor);
	snprintf(buf, size, "%c %s:%s %s%s%s", d->type, maj, min, d->access & DEV_R ? "r" : "",
		 d->access & DEV_W ? "w" : "", d->access & DEV_M ? "m" : "");
}

/* v1: deny all, then allow the list. A leftover empty cvmfs/NAME/ns of a
 * crashed launcher goes first: "a" is refused once a child exists. */
static int apply_v1(struct launch *L, struct lcg_dir *d)
{
	char path[256], text[64];
	int r;

	snprintf(path, sizeof(path), "cvmfs/%s/ns", L->o.name);
	unlinkat(d->parent_fd, path, AT_REMOVEDIR);
	snprintf(path, sizeof(path), "cvmfs/%s/devices.deny", L->o.name);
	if ((r = lcg_write(d->parent_fd, path, "a")) < 0)
		return step_error(L, r, "devices/%s = a", path);
	snprintf(path, sizeof(path), "cvmfs/%s/devices.allow", L->o.name);
	for (size_t i = 0; i < n_rules; i++) {
		rule_text(&rules[i], text, sizeof(text));
		if ((r = lcg_write(d->parent_fd, path, text)) < 0)
			return step_error(L, r, "devices/%s = %s", path, text);
	}
	return 0;
}

/* cgroup2: the program on cvmfs/NAME. A fixture tree (the v2 backend's
 * test) is no cgroup file system: nothing to attach to there. */
static int apply_v2(struct launch *L, struct lcg_dir *d)
{
	char path[256];
	_cleanup_close_ int fd = -EBADF;
	struct statfs sf;
	int r;

	snprintf(path, sizeof(path), "cvmfs/%s", L->o.name);
	fd = openat(d->parent_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return step_error(L, -errno, "%s/%s", d->ctl, path);
	if (fstatfs(fd, &sf) < 0)
		return step_error(L, -errno, "statfs %s/%s", d->ctl, path);
	if (sf.f_type != CGROUP2_SUPER_MAGIC) {
		log_debug("%s/%s is not a cgroup2 directory: no device program", d->ctl, path);
		return 0;
	}
	if ((r = devices_bpf_attach(fd, rules, n_rules)) < 0)
		return step_error(L, r, "attach the device program to %s/%s", d->ctl, path);
	return 0;
}

int devices_apply(struct launch *L, struct lcg_dir *d)
{
	int r = 0;

	if (!strcmp(d->ctl, "devices"))
		r = apply_v1(L, d);
	else if (!strcmp(d->ctl, "unified"))
		r = apply_v2(L, d);
	else
		return 0;
	if (r == 0)
		enforced = true;
	return r;
}

/* Secure by default: a host with neither a devices controller nor a
 * cgroup2 hierarchy cannot restrict devices; refuse rather than run a CVM
 * that may open every disk of the host. */
int devices_enforced(struct launch *L)
{
	if (enforced)
		return 0;
	return step_error(L, -EOPNOTSUPP, "%s: neither a devices controller nor cgroup2: "
			  "device access cannot be restricted", L->o.cgroup_root);
}

/* --device /dev/PATH: the host's node bound over an empty file at the same
 * place under MNT/dev, as fill_dev binds /dev/null. In the inner child,
 * before pivot_root. */
int devices_bind(struct launch *L)
{
	char dst[PATH_MAX], dir[PATH_MAX];
	int r, fd;

	for (size_t i = 0; i < n_rules; i++) {
		if (!rules[i].path[0])
			continue;
		snprintf(dst, sizeof(dst), "%s%s", L->mnt, rules[i].path);
		snprintf(dir, sizeof(dir), "%s", dst);
		*strrchr(dir, '/') = '\0';
		if ((r = mkdir_p(dir, 0755)) < 0)
			return step_error(L, r, "mkdir %s", dir);
		fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return step_error(L, -errno, "create %s", dst);
		close(fd);
		if (mount(rules[i].path, dst, NULL, MS_BIND, NULL) < 0)
			return step_error(L, -errno, "bind %s on %s", rules[i].path, dst);
	}
	return 0;
}
