/* views_bench: latency and throughput of whole-file reads of view files.
 *
 * For each FILE in turn, N threads each run their own loop of
 * open / read until EOF / close and time every such operation with
 * CLOCK_MONOTONIC.  This is exactly what `cat`, `free` or `top` do on every
 * refresh, so it is the cost a container pays per look at its /proc.
 *
 * Every operation must yield some bytes: a view that answers with an error
 * or an empty file would otherwise look very fast.  Failed operations are
 * counted, left out of the latency figures, and make the exit status 1. */
#include "cvmfs/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define LAT_INITIAL 65536

struct opts {
	unsigned threads;
	double seconds;		/* run each file this long ... */
	unsigned long iterations; /* ... or this many ops per thread (when > 0) */
	bool tsv;
};

/* Latencies in ns, grown by doubling; one per thread so the loop shares nothing. */
struct lat_buf {
	uint64_t *ns;
	size_t len, cap;
};

struct worker {
	pthread_t tid;
	const char *path;
	const struct opts *o;
	pthread_barrier_t *start;
	struct lat_buf lat;
	unsigned long fails;
	int first_err; /* errno of the first failure; ENODATA for an empty read */
	char buf[READ_BUF];
};

struct result {
	unsigned long ops, fails;
	double wall_s;
	double p50_us, p99_us, max_us, mean_us;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lat_push(struct lat_buf *l, uint64_t ns)
{
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : LAT_INITIAL;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));

		/* Dropping samples would bias the percentiles; better to stop. */
		if (!p) {
			fprintf(stderr, "views_bench: out of memory for %zu samples\n", cap);
			exit(2);
		}
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->len++] = ns;
}

/* One open/read-until-EOF/close.  Returns 0 or a positive errno
 * (ENODATA when the file read as empty). */
static int read_whole(const char *path, char *buf, size_t size)
{
	size_t total = 0;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	while ((n = read(fd, buf, size)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		total += (size_t)n;
	}
	close(fd);
	if (!err && total == 0)
		err = ENODATA;
	return err;
}

static void worker_op(struct worker *w)
{
	uint64_t t0 = now_ns();
	int err = read_whole(w->path, w->buf, sizeof(w->buf));
	uint64_t t1 = now_ns();

	if (err) {
		if (!w->fails++)
			w->first_err = err;
		return;
	}
	lat_push(&w->lat, t1 - t0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;

	pthread_barrier_wait(w->start);
	if (o->iterations) {
		for (unsigned long i = 0; i < o->iterations; i++)
			worker_op(w);
	} else {
		uint64_t deadline = now_ns() + (uint64_t)(o->seconds * 1e9);

		while (now_ns() < deadline)
			worker_op(w);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (n == 0)
		return 0;
	if (rank < 1)
		rank = 1;
	return (double)v[rank - 1] / 1000.0;
}

/* Merge the per-thread samples and reduce them to the reported figures. */
static int summarize(struct worker *w, unsigned nw, struct result *r)
{
	_cleanup_free_ uint64_t *all = NULL;
	size_t n = 0, k = 0;
	double sum = 0;

	for (unsigned i = 0; i < nw; i++) {
		n += w[i].lat.len;
		r->fails += w[i].fails;
	}
	r->ops = n;
	if (n == 0)
		return 0;
	all = malloc(n * sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (unsigned i = 0; i < nw; i++) {
		memcpy(all + k, w[i].lat.ns, w[i].lat.len * sizeof(*all));
		k += w[i].lat.len;
	}
	qsort(all, n, sizeof(*all), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)all[i];
	r->mean_us = sum / (double)n / 1000.0;
	r->p50_us = pct_us(all, n, 50);
	r->p99_us = pct_us(all, n, 99);
	r->max_us = (double)all[n - 1] / 1000.0;
	return 0;
}

static void report_errors(const char *path, struct worker *w, unsigned nw)
{
	for (unsigned i = 0; i < nw; i++) {
		if (!w[i].fails)
			continue;
		fprintf(stderr, "views_bench: %s: thread %u: %lu failed ops, first: %s\n", path, i,
			w[i].fails, w[i].first_err == ENODATA ? "empty read" : strerror(w[i].first_err));
	}
}

static void workers_free(struct worker *w, unsigned nw)
{
	for (unsigned i = 0; i < nw; i++)
		free(w[i].lat.ns);
	free(w);
}

static int bench_file(const char *path, const struct opts *o, struct result *r)
{
	pthread_barrier_t start;
	struct worker *w;
	unsigned started = 0;
	uint64_t t0, t1;
	int rc;

	memset(r, 0, sizeof(*r));
	w = calloc(o->threads, sizeof(*w));
	if (!w)
		return -ENOMEM;
	/* The barrier includes this thread so that the wall clock starts with the workers. */
	pthread_barrier_init(&start, NULL, o->threads + 1);
	for (; started < o->threads; started++) {
		w[started] = (struct worker){ .path = path, .o = o, .start = &start };
		rc = pthread_create(&w[started].tid, NULL, worker_main, &w[started]);
		if (rc) {
			/* Threads already waiting on the barrier can never be released. */
			fprintf(stderr, "views_bench: pthread_create: %s\n", strerror(rc));
			exit(2);
		}
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
	t1 = now_ns();
	pthread_barrier_destroy(&start);
	r->wall_s = (double)(t1 - t0) / 1e9;
	report_errors(path, w, started);
	rc = summarize(w, started, r);
	workers_free(w, started);
	return rc;
}

static void print_header(const struct opts *o)
{
	if (o->tsv)
		printf("file\tthreads\tops\tfails\tops_per_s\tp50_us\tp99_us\tmean_us\tmax_us\n");
	else
		printf("%-44s %7s %10s %6s %12s %9s %9s %9s\n", "file", "threads", "ops", "fails",
		       "ops/s", "p50_us", "p99_us", "max_us");
}

static void print_result(const char *path, const struct opts *o, const struct result *r)
{
	double rate = r->wall_s > 0 ? (double)r->ops / r->wall_s : 0;

	if (o->tsv)
		printf("%s\t%u\t%lu\t%lu\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\n", path, o->threads, r->ops,
		       r->fails, rate, r->p50_us, r->p99_us, r->mean_us, r->max_us);
	else
		printf("%-44s %7u %10lu %6lu %12.0f %9.2f %9.2f %9.2f\n", path, o->threads, r->ops,
		       r->fails, rate, r->p50_us, r->p99_us, r->max_us);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: views_bench [--threads N] [--seconds S | --iterations N] [--tsv] FILE...\n"
		"  -t, --threads N     threads per file, each with its own loop (default 1)\n"
		"  -s, --seconds S     run each file for S seconds (default 2)\n"
		"  -n, --iterations N  instead, N open/read/close ops per thread\n"
		"      --tsv           tab-separated output with a header line\n"
		"Exit status: 0 ok, 1 some op failed or read nothing, 2 usage or setup error.\n");
}

static bool parse_ulong(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && end != s && !*end && s[0] != '-';
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "tsv", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	char *end;
	int c;

	*o = (struct opts){ .threads = 1, .seconds = 2.0 };
	while ((c = getopt_long(argc, argv, "t:s:n:h", lopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!parse_ulong(optarg, &v) || v < 1 || v > 1024)
				goto bad;
			o->threads = (unsigned)v;
			break;
		case 's':
			o->seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(o->seconds > 0 && o->seconds < 86400))
				goto bad;
			break;
		case 'n':
			if (!parse_ulong(optarg, &o->iterations) || o->iterations < 1)
				goto bad;
			break;
		case 'T':
			o->tsv = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind >= argc)
		goto bad;
	return optind;
bad:
	if (optarg && c != '?')
		fprintf(stderr, "views_bench: bad value '%s' for -%c\n", optarg, c);
	usage(stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct result r;
	bool failed = false;
	int first;

	first = parse_args(argc, argv, &o);
	if (first < 0)
		return 2;
	print_header(&o);
	for (int i = first; i < argc; i++) {
		/* One untimed read first: a file that cannot be read at all is a
		 * setup error, and first-touch costs (lookup, cache fill) are not
		 * what this measures. */
		static char buf[READ_BUF];
		int err = read_whole(argv[i], buf, sizeof(buf));

		if (err)
			fprintf(stderr, "views_bench: %s: %s\n", argv[i],
				err == ENODATA ? "empty read" : strerror(err));
		if (bench_file(argv[i], &o, &r) < 0) {
			fprintf(stderr, "views_bench: out of memory\n");
			return 2;
		}
		print_result(argv[i], &o, &r);
		failed |= err || r.fails;
	}
	return failed ? 1 : 0;
}
