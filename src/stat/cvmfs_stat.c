/* cvmfs-stat: every workspace's disk figures, read from the files the
 * daemons publish under RUN_DIR/disk (no daemon round trip). A file whose
 * daemon is gone without a clean stop shows state "crashed". */
#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/disk_status.h"
#include "cvmfs/log.h"
#include "cvmfs/fileio.h"
#include "cvmfs/paths.h"
#include "prometheus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

struct stat_opts {
	char *config;
	char *run_dir;
	char *views;
	bool json, prometheus;
};

#define O(field) offsetof(struct stat_opts, field)
static const struct opt_def stat_opts_defs[] = {
	{ "config", 'c', OPT_STR, O(config), true, "FILE",
	  "config file (default " CVMFS_CONFIG_FILE ", read if present)" },
	{ "run-dir", 0, OPT_STR, O(run_dir), false, "DIR",
	  "read the figures from DIR/disk/NAME.json (default " CVMFS_RUN_DIR ")" },
	{ "json", 0, OPT_BOOL, O(json), true, NULL,
	  "print a JSON array of objects with integer byte counts" },
	{ "prometheus", 0, OPT_BOOL, O(prometheus), true, NULL,
	  "print Prometheus' text format (workspaces and daemons' request counts)" },
	{ "views", 0, OPT_STR, O(views), false, "MOUNT",
	  "with --prometheus: the views daemon's counts from MOUNT.json (default "
	  CVMFS_STATE_DIR "/views)" },
	OPT_END,
};
static const char *const stat_sections[] = { "stat", NULL };

struct table {
	struct disk_status *rows;
	size_t n, cap;
};

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		disk_status_free(&t->rows[i]);
	free(t->rows);
}

/* A FIFO, device or directory named *.json would hang or fool the reader:
 * skipped with one line, like a file too big to be a status file. */
static int load_one(int dfd, const char *dir, const char *file, struct table *t)
{
	char buf[16384]; /* a volume's lanes make the file longer */
	struct disk_status f;
	ssize_t n = read_regular_buf(dfd, file, buf, sizeof(buf));

	if (n == -EINVAL || n == -EISDIR || n == -EFBIG)
		fprintf(stderr, "cvmfs-stat: %s/%s: %s, skipped\n", dir, file,
			file_strerror((int)n));
	if (n < 0)
		return 0; /* being replaced: skip */
	if (disk_status_parse(buf, &f) < 0) {
		disk_status_free(&f);
		return 0; /* not ours: skip */
	}
	if (!strcmp(f.state, "running") && f.pid > 0 && kill((pid_t)f.pid, 0) < 0 && errno == ESRCH)
		snprintf(f.state, sizeof(f.state), "crashed");
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct disk_status *rows = realloc(t->rows, cap * sizeof(*rows));

		if (!rows) {
			disk_status_free(&f);
			return -ENOMEM;
		}
		t->rows = rows;
		t->cap = cap;
	}
	t->rows[t->n++] = f;
	return 0;
}

static int load_all(const char *run_dir, struct table *t)
{
	char path[4096];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r = 0;

	snprintf(path, sizeof(path), "%s/" CVMFS_DISK_DIR, run_dir);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (r == 0 && (de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, CVMFS_DISK_STATUS))
			continue;
		r = load_one(dirfd(d), path, de->d_name, t);
	}
	return r;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct disk_status *)a)->name, ((const struct disk_status *)b)->name);
}

/* Like df -h: powers of 1024, rounded up, one decimal below 10. */
static void human(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	double x = (double)v;
	int u = -1;

	if (v < 1024) {
		snprintf(buf, size, "%llu", (unsigned long long)v);
		return;
	}
	while (x >= 1024 && u < 5) {
		x /= 1024;
		u++;
	}
	if (x < 10) {
		double up = (double)(long long)(x * 10);

		if (up < x * 10)
			up += 1;
		if (up >= 100)
			snprintf(buf, size, "%d%c", 10, units[u]);
		else
			snprintf(buf, size, "%.1f%c", up / 10, units[u]);
	} else {
		long long up = (long long)x;

		if ((double)up < x)
			up++;
		snprintf(buf, size, "%lld%c", up, units[u]);
	}
}

static void print_table(const struct table *t)
{
	char lim[16], used[16], avail[16], img[16], dock[16], home[16], oth[16], pct[8], in[48];

	printf("%-16s %-8s %6s %6s %6s %4s %6s %6s %6s %6s %s\n", "NAME", "STATE", "LIMIT", "USED",
	       "AVAIL", "USE%", "IMAGE", "DOCKER", "HOME", "OTHER", "INODES");
	for (size_t i = 0; i < t->n; i++) {
		const struct disk_status *f = &t->rows[i];

		human(f->limit_bytes, lim, sizeof(lim));
		human(f->used_bytes, used, sizeof(used));
		human(f->avail_bytes, avail, sizeof(avail));
		human(f->area_bytes[DISK_AREA_IMAGE], img, sizeof(img));
		human(f->area_bytes[DISK_AREA_DOCKER], dock, sizeof(dock));
		human(f->area_bytes[DISK_AREA_HOME], home, sizeof(home));
		human(f->area_bytes[DISK_AREA_OTHER], oth, sizeof(oth));
		if (f->limit_bytes)
			snprintf(pct, sizeof(pct), "%llu%%",
				 (unsigned long long)((f->used_bytes * 100 + f->limit_bytes - 1) /
						      f->limit_bytes));
		else
			snprintf(pct, sizeof(pct), "-");
		if (f->inodes_limit)
			snprintf(in, sizeof(in), "%llu/%llu", (unsigned long long)f->inodes_used,
				 (unsigned long long)f->inodes_limit);
		else
			snprintf(in, sizeof(in), "%llu", (unsigned long long)f->inodes_used);
		printf("%-16s %-8s %6s %6s %6s %4s %6s %6s %6s %6s %s\n", f->name, f->state, lim,
		       used, avail, pct, img, dock, home, oth, in);
	}
}

/* Sparse loop volumes promise more than their files hold: per host file
 * system, what they may still take against what it has free; a warning
 * when the promise exceeds it (volume-alloc = full volumes promise nothing
 * more). One line per host file system, after the table. */
static void print_host_overcommit(const struct table *t)
{
	struct host {
		dev_t dev;
		char dir[1024];
		uint64_t outstanding;
		unsigned n;
	} hosts[16];
	unsigned nh = 0;

	for (size_t i = 0; i < t->n; i++) {
		const char *vol = t->rows[i].volume ? t->rows[i].volume : "none";
		const char *file = vol + 5;
		struct stat st;
		unsigned h;

		if (strncmp(vol, "loop:", 5) || stat(file, &st) < 0)
			continue;
		for (h = 0; h < nh && hosts[h].dev != st.st_dev; h++)
			;
		if (h == nh && nh == ARRAY_SIZE(hosts))
			continue;
		if (h == nh) {
			hosts[nh++] = (struct host){ .dev = st.st_dev };
			snprintf(hosts[h].dir, sizeof(hosts[h].dir), "%.*s",
				 (int)(strrchr(file, '/') - file), file);
		}
		hosts[h].n++;
		if ((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size)
			hosts[h].outstanding += (uint64_t)st.st_size - (uint64_t)st.st_blocks * 512;
	}
	for (unsigned h = 0; h < nh; h++) {
		char out[16], fr[16];
		struct statvfs sv;
		uint64_t avail;

		if (statvfs(hosts[h].dir, &sv) < 0)
			continue;
		avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		human(hosts[h].outstanding, out, sizeof(out));
		human(avail, fr, sizeof(fr));
		printf("%s%s: %u volume%s may still take %s, the host has %s free%s\n",
		       hosts[h].outstanding > avail ? "WARNING: " : "", hosts[h].dir, hosts[h].n,
		       hosts[h].n == 1 ? "" : "s", out, fr,
		       hosts[h].outstanding > avail ? " (overcommitted: a full host file system "
						      "makes their writes fail with EIO)"
						    : "");
	}
}

static void print_json(const struct table *t)
{
	printf("[");
	for (size_t i = 0; i < t->n; i++) {
		const struct disk_status *f = &t->rows[i];

		printf("%s\n  {\"name\": \"%s\", \"state\": \"%s\", \"limit_bytes\": %llu, "
		       "\"used_bytes\": %llu, \"avail_bytes\": %llu, \"image_bytes\": %llu, "
		       "\"docker_bytes\": %llu, \"home_bytes\": %llu, \"other_bytes\": %llu, "
		       "\"inodes_used\": %llu, \"inodes_limit\": %llu, \"requests\": %llu, "
		       "\"errors\": %llu}",
		       i ? "," : "", f->name, f->state, (unsigned long long)f->limit_bytes,
		       (unsigned long long)f->used_bytes, (unsigned long long)f->avail_bytes,
		       (unsigned long long)f->area_bytes[DISK_AREA_IMAGE],
		       (unsigned long long)f->area_bytes[DISK_AREA_DOCKER],
		       (unsigned long long)f->area_bytes[DISK_AREA_HOME],
		       (unsigned long long)f->area_bytes[DISK_AREA_OTHER],
		       (unsigned long long)f->inodes_used, (unsigned long long)f->inodes_limit,
		       (unsigned long long)f->requests, (unsigned long long)f->errors);
	}
	printf("%s]\n", t->n ? "\n" : "");
}

/* Keep only the named rows, in name order; 1 names an unknown workspace. */
static int select_names(struct table *t, char **names, int n)
{
	for (int i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < t->n && strcmp(t->rows[j].name, names[i]); j++)
			;
		if (j == t->n) {
			fprintf(stderr, "cvmfs-stat: %s: no such workspace\n", names[i]);
			return 1;
		}
	}
	for (size_t j = 0; j < t->n;) {
		bool keep = false;

		for (int i = 0; i < n && !keep; i++)
			keep = !strcmp(t->rows[j].name, names[i]);
		if (keep)
			j++;
		else {
			disk_status_free(&t->rows[j]);
			t->rows[j] = t->rows[--t->n];
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opt_spec spec = {
		"cvmfs-stat", stat_opts_defs, stat_sections, CVMFS_CONFIG_FILE,
		"[OPTION...] [NAME...]",
		"Disk figures of every workspace (with NAMEs, of those only), read from the\n"
		"files each cvmfsd disk publishes under RUN_DIR/disk. Config file section\n"
		"[stat]; the command line wins. See doc/cvmfs-stat.md.\n",
	};
	struct stat_opts o = { 0 };
	struct table t = { 0 };
	int pos, r;

	/* One line naming the bad option or config line is the whole error. */
	log_setup("cvmfs-stat", false, false);
	r = opts_parse(&spec, &o, argc, argv, &pos, NULL);
	if (r != 0) { /* an error, or the help printed (OPTS_HELP) */
		opts_free(stat_opts_defs, &o);
		return r < 0 ? 2 : 0;
	}
	r = load_all(o.run_dir ? o.run_dir : CVMFS_RUN_DIR, &t);
	if (r < 0) {
		fprintf(stderr, "cvmfs-stat: %s/disk: %s\n", o.run_dir ? o.run_dir : CVMFS_RUN_DIR,
			strerror(-r));
		table_free(&t);
		opts_free(stat_opts_defs, &o);
		return 1;
	}
	if (pos < argc && select_names(&t, argv + pos, argc - pos))
		r = 1;
	if (r == 0) {
		if (t.n) /* rows is NULL without any: not qsort's to get */
			qsort(t.rows, t.n, sizeof(*t.rows), by_name);
		if (o.prometheus)
			print_prometheus(stdout, t.rows, t.n,
					 o.views ? o.views : CVMFS_STATE_DIR "/views");
		else if (o.json)
			print_json(&t);
		else {
			print_table(&t);
			print_host_overcommit(&t);
		}
	}
	table_free(&t);
	opts_free(stat_opts_defs, &o);
	return r;
}
