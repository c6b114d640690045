/* Prometheus' text format (version 0.0.4): one HELP and TYPE per family,
 * then its samples, families never interleaved. Label values are escaped
 * (backslash, quote, newline) although workspace names cannot hold them. */
#include "prometheus.h"

#include "cvmfs/fileio.h"
#include "cvmfs/paths.h"
#include "cvmfs/req_counters.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char *const area_names[DISK_AREAS] = { "image", "docker", "home", "other" };
static const char *const states[] = { "running", "stopped", "crashed" };

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(FILE *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(out, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
}

static void sample(FILE *out, const char *name, const char *ws, const char *label,
		   const char *value_of_label, uint64_t v)
{
	fprintf(out, "%s{workspace=\"", name);
	label_value(out, ws);
	if (label) {
		fprintf(out, "\",%s=\"", label);
		label_value(out, value_of_label);
	}
	fprintf(out, "\"} %" PRIu64 "\n", v);
}

/* One figure of every workspace; off is the field's offset in the row. */
static void figure(FILE *out, const struct disk_status *rows, size_t n, const char *name,
		   const char *type, const char *help, size_t off)
{
	family(out, name, type, help);
	for (size_t i = 0; i < n; i++)
		sample(out, name, rows[i].name, NULL, NULL,
		       *(const uint64_t *)((const char *)&rows[i] + off));
}

static void areas_and_states(FILE *out, const struct disk_status *rows, size_t n)
{
	family(out, "cvmfs_workspace_area_bytes", "gauge",
	       "Bytes used per area: image, docker (/var/lib/docker), home (/home), other.");
	for (size_t i = 0; i < n; i++)
		for (int a = 0; a < DISK_AREAS; a++)
			sample(out, "cvmfs_workspace_area_bytes", rows[i].name, "area",
			       area_names[a], rows[i].area_bytes[a]);
	family(out, "cvmfs_workspace_state", "gauge",
	       "1 for the workspace's disk state (running, stopped, crashed), else 0.");
	for (size_t i = 0; i < n; i++)
		for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++)
			sample(out, "cvmfs_workspace_state", rows[i].name, "state", states[s],
			       !strcmp(rows[i].state, states[s]));
}

/* The views daemon's counts, if it publishes them and runs. */
static void views(FILE *out, const char *mnt)
{
	char path[4096], buf[512];
	struct req_counts c = { 0 };
	long pid = 0;
	bool up;

	snprintf(path, sizeof(path), "%s" CVMFS_VIEWS_STATUS, mnt);
	up = read_regular_buf(AT_FDCWD, path, buf, sizeof(buf)) > 0;
	if (up) {
		const char *p = strstr(buf, "\"pid\":");

		pid = p ? strtol(p + 6, NULL, 10) : 0;
		up = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
		req_counts_parse(buf, &c);
	}
	family(out, "cvmfs_views_up", "gauge", "1 if the views daemon publishes its counts and runs.");
	fprintf(out, "cvmfs_views_up %d\n", up);
	if (!up)
		return;
	family(out, "cvmfs_views_requests_total", "counter",
	       "FUSE requests the views daemon answered since it started.");
	fprintf(out, "cvmfs_views_requests_total %" PRIu64 "\n", c.requests);
	family(out, "cvmfs_views_errors_total", "counter",
	       "Of those, the replies carrying an error (ENOENT of a lookup too).");
	fprintf(out, "cvmfs_views_errors_total %" PRIu64 "\n", c.errors);
}

#define F(field) offsetof(struct disk_status, field)
void print_prometheus(FILE *out, const struct disk_status *rows, size_t n, const char *views_mnt)
{
	figure(out, rows, n, "cvmfs_workspace_limit_bytes", "gauge",
	       "Bytes the workspace may allocate, image included.", F(limit_bytes));
	figure(out, rows, n, "cvmfs_workspace_used_bytes", "gauge",
	       "Bytes the workspace uses, image included.", F(used_bytes));
	figure(out, rows, n, "cvmfs_workspace_avail_bytes", "gauge",
	       "Bytes the workspace may still allocate.", F(avail_bytes));
	figure(out, rows, n, "cvmfs_workspace_inodes_used", "gauge",
	       "Inodes the workspace uses, image included.", F(inodes_used));
	figure(out, rows, n, "cvmfs_workspace_inodes_limit", "gauge",
	       "Inodes the workspace may use (0: no limit).", F(inodes_limit));
	areas_and_states(out, rows, n);
	figure(out, rows, n, "cvmfs_disk_requests_total", "counter",
	       "FUSE requests the workspace's disk daemon answered since it started.", F(requests));
	figure(out, rows, n, "cvmfs_disk_errors_total", "counter",
	       "Of those, the replies carrying an error (ENOENT of a lookup too).", F(errors));
	views(out, views_mnt);
}
