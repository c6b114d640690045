/* Cgroup layout detection and /proc/PID/cgroup parsing. */
#include "cvmfs/cgroup.h"
#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const res_names[CG_NRES] = {
	[CG_MEMORY] = "memory", [CG_CPU] = "cpu", [CG_CPUACCT] = "cpuacct",
	[CG_CPUSET] = "cpuset", [CG_BLKIO] = "blkio", [CG_PIDS] = "pids",
};
/* The same resources under their v2 controller names. */
static const char *const v2_names[CG_NRES] = {
	[CG_MEMORY] = "memory", [CG_CPU] = "cpu", [CG_CPUACCT] = "cpu",
	[CG_CPUSET] = "cpuset", [CG_BLKIO] = "io", [CG_PIDS] = "pids",
};

static bool word_in_list(const char *list, const char *word, char sep)
{
	size_t n = strlen(word);
	const char *p = list;

	while (p && *p) {
		if (!strncmp(p, word, n) && (p[n] == sep || p[n] == '\0' ||
					     isspace((unsigned char)p[n])))
			return true;
		p = strchr(p, sep);
		if (p)
			p++;
	}
	return false;
}

/* v1 hierarchies may be co-mounted ("cpu,cpuacct"); find the dir serving res. */
static int open_v1_hierarchy(int rootfd, const char *res)
{
	_cleanup_closedir_ DIR *d = NULL;
	int dfd = openat(rootfd, res, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;

	if (dfd >= 0)
		return dfd;
	dfd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (strchr(e->d_name, ',') && word_in_list(e->d_name, res, ','))
			return openat(rootfd, e->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	return -ENOENT;
}

static int open_unified(int rootfd, bool *pure)
{
	if (faccessat(rootfd, "cgroup.controllers", F_OK, 0) == 0) {
		*pure = true;
		return openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	*pure = false;
	if (faccessat(rootfd, "unified/cgroup.controllers", F_OK, 0) == 0)
		return openat(rootfd, "unified", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return -ENOENT;
}

int cg_layout_open(const char *root, struct cg_layout *l)
{
	_cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	char controllers[512] = "";
	bool pure = false;

	for (int r = 0; r < CG_NRES; r++) {
		l->hier_fd[r] = -1;
		l->is_v2[r] = false;
	}
	l->unified_fd = -1;
	l->unified_psi = false;
	if (rootfd < 0)
		return -errno;
	l->unified_fd = open_unified(rootfd, &pure);
	if (l->unified_fd >= 0)
		read_at_buf(l->unified_fd, "cgroup.controllers", controllers,
			    sizeof(controllers));
	for (int r = 0; r < CG_NRES; r++) {
		int fd = pure ? -1 : open_v1_hierarchy(rootfd, res_names[r]);

		if (fd >= 0) {
			l->hier_fd[r] = fd;
		} else if (l->unified_fd >= 0 &&
			   (r == CG_CPUACCT || word_in_list(controllers, v2_names[r], ' '))) {
			/* v2 always accounts CPU usage in cpu.stat */
			l->hier_fd[r] = dup(l->unified_fd);
			l->is_v2[r] = true;
		}
	}
	if (l->unified_fd >= 0)
		l->unified_psi = faccessat(l->unified_fd, "cpu.pressure", F_OK, 0) == 0 ||
				 pure;
	if (l->unified_fd < 0 && l->hier_fd[CG_MEMORY] < 0 && l->hier_fd[CG_CPU] < 0)
		return -ENOENT;
	return 0;
}

void cg_layout_close(struct cg_layout *l)
{
	for (int r = 0; r < CG_NRES; r++) {
		if (l->hier_fd[r] >= 0)
			close(l->hier_fd[r]);
		l->hier_fd[r] = -1;
	}
	if (l->unified_fd >= 0)
		close(l->unified_fd);
	l->unified_fd = -1;
}

bool cg_layout_has(const struct cg_layout *l, enum cg_res r)
{
	return l->hier_fd[r] >= 0;
}

static void copy_path(char *dst, const char *src, size_t len)
{
	if (len >= 256)
		len = 255;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

int cg_paths_parse(const struct cg_layout *l, const char *text, struct cg_paths *p)
{
	const char *line = text;

	memset(p, 0, sizeof(*p));
	while (line && *line) {
		const char *c1 = strchr(line, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *end = strchr(line, '\n');
		size_t plen;

		if (!c1 || !c2 || (end && c2 > end))
			return -EINVAL;
		if (!end)
			end = line + strlen(line);
		plen = (size_t)(end - (c2 + 1));
		if (c2 == c1 + 1) {
			copy_path(p->unified, c2 + 1, plen);
		} else {
			char ctl[128];
			size_t clen = MIN((size_t)(c2 - c1 - 1), sizeof(ctl) - 1);

			memcpy(ctl, c1 + 1, clen);
			ctl[clen] = '\0';
			for (int r = 0; r < CG_NRES; r++)
				if (!l->is_v2[r] && word_in_list(ctl, res_names[r], ','))
					copy_path(p->path[r], c2 + 1, plen);
		}
		line = *end ? end + 1 : end;
	}
	for (int r = 0; r < CG_NRES; r++)
		if (l->is_v2[r])
			memcpy(p->path[r], p->unified, sizeof(p->unified));
	return 0;
}

void cg_paths_uniform(const struct cg_layout *l, const char *path, struct cg_paths *p)
{
	memset(p, 0, sizeof(*p));
	copy_path(p->unified, path, strlen(path));
	for (int r = 0; r < CG_NRES; r++)
		if (cg_layout_has(l, r))
			copy_path(p->path[r], path, strlen(path));
}

int cg_paths_key(const struct cg_paths *p, char *key, size_t size)
{
	size_t off = 0;

	for (int r = 0; r < CG_NRES; r++) {
		int n = snprintf(key + off, size - off, "%s\n", p->path[r]);

		if (n < 0 || (size_t)n >= size - off)
			return -ENAMETOOLONG;
		off += (size_t)n;
	}
	return 0;
}

int cpulist_parse(const char *text, uint8_t *set)
{
	const char *p = text;

	memset(set, 0, CG_MAX_CPUS / 8);
	while (*p && *p != '\n') {
		char *end;
		unsigned long a, b;

		if (!isdigit((unsigned char)*p)) /* strtoul would take a sign */
			return -EINVAL;
		a = strtoul(p, &end, 10);
		b = a;
		if (*end == '-') {
			p = end + 1;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			b = strtoul(p, &end, 10);
			if (end == p || b < a)
				return -EINVAL;
		}
		for (unsigned long c = a; c <= b && c < CG_MAX_CPUS; c++)
			cpuset_set(set, (unsigned)c);
		p = end;
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return 0;
}

void cpulist_format(const uint8_t *set, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned c = 0; c < CG_MAX_CPUS; c++) {
		unsigned e = c;
		int n;

		if (!cpuset_has(set, c))
			continue;
		while (e + 1 < CG_MAX_CPUS && cpuset_has(set, e + 1))
			e++;
		if (e == c)
			n = snprintf(buf + off, size - off, "%s%u", off ? "," : "", c);
		else
			n = snprintf(buf + off, size - off, "%s%u-%u", off ? "," : "", c, e);
		if (n < 0 || (size_t)n >= size - off)
			return;
		off += (size_t)n;
		c = e;
	}
}

unsigned cpuset_count(const uint8_t *set)
{
	unsigned n = 0;

	for (unsigned i = 0; i < CG_MAX_CPUS / 8; i++)
		n += (unsigned)__builtin_popcount(set[i]);
	return n;
}
