/* The renderers of cvmfsd views over a fixed host (tests/fixtures/proc and
 * sys: 4 CPUs, 8 GiB) and a cgroup v2 fixture tree (tests/fixtures/cgroup2):
 *   cvmfs/mem256    256 MiB, 100 MiB used, 64 MiB swap (8 used), 3 tasks
 *   cvmfs/unlim     no limits
 *   cvmfs/cpuset13  cpus 1,3
 *   cvmfs/quota     cpu.max 150000 100000 over cpus 0-3
 *   cvmfs/mem7g     7 GiB, 1 GiB used (free above the host's MemFree)
 * and the host's sys/block (sda 8:0, dm-0 253:0, loop0) and one NUMA node,
 * plus cgroups written here (huge, half). Each render goes through the real
 * container table and snapshot path, as a FUSE request would. */
#include "check.h"
#include "fixture.h"

#include "views.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define FSHIFT 11
#define FIXED_1 (1UL << FSHIFT)

static char *tmp, *proc_dir, *sys_dir, *cg_dir;
static struct views the_views = { .proc_fd = -1, .sys_cpu_fd = -1 };

static const char *const vnames[VF_NFILES] = {
	[VF_MEMINFO] = "meminfo", [VF_CPUINFO] = "cpuinfo", [VF_STAT] = "stat",
	[VF_UPTIME] = "uptime", [VF_LOADAVG] = "loadavg", [VF_SWAPS] = "swaps",
	[VF_DISKSTATS] = "diskstats", [VF_PSI_CPU] = "pressure/cpu",
	[VF_PSI_MEM] = "pressure/memory", [VF_PSI_IO] = "pressure/io",
	[VF_CPU_ONLINE] = "online", [VF_CPU_POSSIBLE] = "possible",
	[VF_CPU_PRESENT] = "present", [VF_VMSTAT] = "vmstat",
	[VF_BLOCK_STAT] = "block stat", [VF_NODE_CPULIST] = "node cpulist",
	[VF_NODE_CPUMAP] = "node cpumap", [VF_NODE_MEMINFO] = "node meminfo",
};

/* ------------------------------------------------------------------ setup */

static char *join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		abort();
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

static int setup(void)
{
	char *cpu;
	int r;

	tmp = fx_tmpdir("render");
	proc_dir = join(tmp, "proc");
	sys_dir = join(tmp, "sys");
	cg_dir = join(tmp, "cgroup2");
	fx_copy_fixture("proc", proc_dir);
	fx_copy_fixture("sys", sys_dir);
	fx_copy_fixture("cgroup2", cg_dir);

	/* More cgroups, written before anything reads them. */
	fx_write(cg_dir, "cvmfs/huge/cgroup.procs", "");
	fx_write(cg_dir, "cvmfs/huge/memory.max", "68719476736\n"); /* 64 GiB > host */
	fx_write(cg_dir, "cvmfs/huge/memory.current", "1048576\n");
	fx_write(cg_dir, "cvmfs/huge/cpuset.cpus.effective", "0-3\n");
	fx_write(cg_dir, "cvmfs/half/cgroup.procs", "");
	fx_write(cg_dir, "cvmfs/half/cpu.max", "50000 100000\n");
	fx_write(cg_dir, "cvmfs/half/cpuset.cpus.effective", "2-3\n");
	fx_write(cg_dir, "cvmfs/half/cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
	fx_write(cg_dir, "cvmfs/foreign/cgroup.procs", "");
	fx_write(cg_dir, "cvmfs/foreign/cpuset.cpus.effective", "6-7\n"); /* none of the host's */
	fx_write(cg_dir, "cvmfs/one13/cgroup.procs", "");
	fx_write(cg_dir, "cvmfs/one13/cpu.max", "100000 100000\n");
	fx_write(cg_dir, "cvmfs/one13/cpuset.cpus.effective", "1,3\n");
	fx_write(cg_dir, "cvmfs/over/cgroup.procs", "");
	fx_write(cg_dir, "cvmfs/over/memory.max", "104857600\n");
	fx_write(cg_dir, "cvmfs/over/memory.current", "157286400\n"); /* above its limit */
	fx_write(cg_dir, "cvmfs/over/memory.stat", "anon 100\nfile 0\nactive_file 4194304\n"
						  "inactive_file 4194304\nslab_reclaimable 0\n");
	fx_write(cg_dir, "cvmfs/over/memory.swap.max", "10737418240\n"); /* 10 GiB > host */
	fx_write(cg_dir, "cvmfs/over/memory.swap.current", "1073741824\n");
	/* mem7g: swap not accounted (no memory.swap.current). */
	fx_unlink(cg_dir, "cvmfs/mem7g/memory.swap.current");

	views_ctx = &the_views;
	views_ctx->cfg.cache_ms = 1;
	views_ctx->cfg.ct_ttl_ms = 500;
	views_ctx->cfg.pid_cache_ms = 250;
	views_ctx->cfg.idle_expire_s = 600;
	views_ctx->cfg.cpu_view = strdup("quota");
	views_ctx->cfg.ct_parent = strdup("cvmfs");
	r = cg_layout_open(cg_dir, &views_ctx->layout);
	if (r < 0)
		return r;
	views_ctx->proc_fd = open(proc_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cpu = join(sys_dir, "devices/system/cpu");
	views_ctx->sys_cpu_fd = open(cpu, O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(cpu);
	if (views_ctx->proc_fd < 0 || views_ctx->sys_cpu_fd < 0)
		return -errno;
	views_thread_enter();
	r = containers_init();
	if (r < 0)
		return r;
	return host_init();
}

static void teardown(void)
{
	containers_fini();
	host_fini();
	cg_layout_close(&views_ctx->layout);
	close(views_ctx->proc_fd);
	close(views_ctx->sys_cpu_fd);
	free(views_ctx->cfg.cpu_view);
	free(views_ctx->cfg.ct_parent);
	fx_rm_tree(tmp);
	free(proc_dir);
	free(sys_dir);
	free(cg_dir);
	free(tmp);
}

/* ------------------------------------------------------------------ helpers */

struct text {
	char *data;
	size_t len;
};

/* Render file f for a reader in cgroup path (NULL: no cgroup information),
 * whose PID namespace started at pidns_start (0: the host's). */
static struct text render_ns(const char *path, enum vfile f, uint64_t pidns_start)
{
	struct view_caller who;
	struct sbuf b;
	struct text t;
	int r;

	sbuf_init(&b);
	memset(&who, 0, sizeof(who));
	who.pidns_start = pidns_start;
	urcu_memb_read_lock();
	if (path) {
		who.c = container_of_path(path);
		who.snap = who.c ? container_snapshot(who.c) : NULL;
		if (!CHECK(who.snap != NULL))
			fprintf(stderr, "  no snapshot for %s\n", path);
		if (!who.snap)
			who.c = NULL;
	}
	r = render_file(f, &who, &b);
	urcu_memb_read_unlock();
	if (!check_i64(r, 0, vnames[f], __FILE__, __LINE__))
		fprintf(stderr, "  rendering %s for %s\n", vnames[f], path ? path : "(none)");
	t.data = sbuf_take(&b, &t.len);
	return t;
}

static struct text render(const char *path, enum vfile f)
{
	return render_ns(path, f, 0);
}

/* A per-object file (block device index or node number arg) for path. */
static struct text render_arg(const char *path, enum vfile f, unsigned arg)
{
	struct view_caller who;
	struct sbuf b;
	struct text t;
	int r;

	sbuf_init(&b);
	memset(&who, 0, sizeof(who));
	urcu_memb_read_lock();
	if (path) {
		who.c = container_of_path(path);
		who.snap = who.c ? container_snapshot(who.c) : NULL;
		if (!who.snap)
			who.c = NULL;
	}
	r = render_file_arg(f, arg, &who, &b);
	urcu_memb_read_unlock();
	check_i64(r, 0, vnames[f], __FILE__, __LINE__);
	t.data = sbuf_take(&b, &t.len);
	return t;
}

static struct text sys_file(const char *rel)
{
	struct text t;
	char *p = join(sys_dir, rel);

	t.data = fx_read(p, &t.len);
	free(p);
	if (!t.data)
		abort();
	return t;
}

static struct container *container(const char *path)
{
	struct container *c;

	urcu_memb_read_lock();
	c = container_of_path(path);
	urcu_memb_read_unlock();
	return c;
}

/* The host's file as shipped in the fixture. */
static struct text host(enum vfile f)
{
	struct text t;
	char *p;

	if (f >= VF_CPU_ONLINE && f <= VF_CPU_PRESENT) {
		char rel[64];

		snprintf(rel, sizeof(rel), "devices/system/cpu/%s", vnames[f]);
		p = join(sys_dir, rel);
	} else {
		p = join(proc_dir, vnames[f]);
	}
	t.data = fx_read(p, &t.len);
	free(p);
	if (!t.data)
		abort();
	return t;
}

static struct text cg_file(const char *rel)
{
	struct text t;
	char *p = join(cg_dir, rel);

	t.data = fx_read(p, &t.len);
	free(p);
	if (!t.data)
		abort();
	return t;
}

#define CHECK_TEXT(a, b) CHECK_MEM((a).data, (a).len, (b).data, (b).len)

static void expect_host(const char *path, enum vfile f, const char *file, int line)
{
	struct text got = render(path, f), want = host(f);

	if (!check_mem(got.data, got.len, want.data, want.len, vnames[f], file, line))
		fprintf(stderr, "  (%s for %s should be the host's)\n", vnames[f],
			path ? path : "no cgroup");
	free(got.data);
	free(want.data);
}

#define EXPECT_HOST(path, f) expect_host((path), (f), __FILE__, __LINE__)

/* Split text into lines (each without its '\n'); returns the count. */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;

	for (char *p = text; *p && n < max;) {
		char *nl = strchr(p, '\n');

		lines[n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/* "processor\t: N" blocks of cpuinfo, each with its trailing blank line. */
static size_t split_blocks(const char *text, const char **start, size_t *len, size_t max)
{
	size_t n = 0;

	for (const char *p = text; *p && n < max;) {
		const char *end = strstr(p, "\n\n");

		start[n] = p;
		len[n] = end ? (size_t)(end - p) + 2 : strlen(p);
		p += len[n++];
	}
	return n;
}

/* A host cpuinfo block with the per-package counts a container sees. */
static char *block_with_counts(const char *b, size_t len, unsigned n)
{
	struct sbuf out;
	char *copy = strndup(b, len), *lines[64];
	size_t nl = split_lines(copy, lines, 64);

	sbuf_init(&out);
	for (size_t i = 0; i < nl; i++) {
		if (!strncmp(lines[i], "siblings\t:", 10))
			sbuf_printf(&out, "siblings\t: %u\n", n);
		else if (!strncmp(lines[i], "cpu cores\t:", 11))
			sbuf_printf(&out, "cpu cores\t: %u\n", n);
		else
			sbuf_printf(&out, "%s\n", lines[i]);
	}
	free(copy);
	return sbuf_take(&out, NULL);
}

static unsigned block_cpu(const char *b)
{
	const char *colon = strchr(b, ':');

	return colon && !strncmp(b, "processor\t:", 11) ? (unsigned)strtoul(colon + 1, NULL, 10)
							: ~0u;
}

/* cpuinfo must be exactly the host's blocks of cpus[], counts set to n. */
static void expect_cpuinfo(const char *path, const unsigned *cpus, unsigned n,
			   const char *file, int line)
{
	struct text got = render(path, VF_CPUINFO), h = host(VF_CPUINFO);
	const char *hs[16], *gs[16];
	size_t hl[16], gl[16];
	size_t nh = split_blocks(h.data, hs, hl, 16), ng = split_blocks(got.data, gs, gl, 16);
	struct sbuf want;

	sbuf_init(&want);
	for (unsigned i = 0; i < n; i++) {
		for (size_t j = 0; j < nh; j++) {
			if (block_cpu(hs[j]) == cpus[i]) {
				char *b = block_with_counts(hs[j], hl[j], n);

				sbuf_puts(&want, b);
				free(b);
			}
		}
	}
	check_u64(ng, n, "number of processor blocks", file, line);
	for (size_t j = 0; j < ng && j < n; j++)
		check_u64(block_cpu(gs[j]), cpus[j], "processor id", file, line);
	if (!check_mem(got.data, got.len, want.data, want.len, "cpuinfo", file, line))
		fprintf(stderr, "  (cpuinfo for %s)\n", path);
	free(got.data);
	free(h.data);
	sbuf_free(&want);
}

#define EXPECT_CPUINFO(path, ...)                                                   \
	do {                                                                        \
		static const unsigned cpus_[] = { __VA_ARGS__ };                    \
		expect_cpuinfo((path), cpus_, sizeof(cpus_) / sizeof(cpus_[0]),     \
			       __FILE__, __LINE__);                                 \
	} while (0)

static void expect_text(const char *path, enum vfile f, const char *want,
			const char *file, int line)
{
	struct text got = render(path, f);

	if (!check_mem(got.data, got.len, want, strlen(want), vnames[f], file, line))
		fprintf(stderr, "  (%s for %s)\n", vnames[f], path);
	free(got.data);
}

#define EXPECT_TEXT(path, f, want) expect_text((path), (f), (want), __FILE__, __LINE__)

/* ------------------------------------------------------------------ stat */

struct cpu_line {
	char name[16];
	unsigned long long v[10];
};

/* Parse the cpu lines of a stat text; other lines are returned in rest. */
static size_t parse_stat(const char *text, struct cpu_line *cl, size_t max,
			 char **rest, size_t *nrest, size_t max_rest)
{
	char *copy = strdup(text), *lines[256];
	size_t nl = split_lines(copy, lines, 256), n = 0;

	*nrest = 0;
	for (size_t i = 0; i < nl; i++) {
		if (!strncmp(lines[i], "cpu", 3) && n < max) {
			struct cpu_line *c = &cl[n++];
			int k = sscanf(lines[i], "%15s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
				       c->name, &c->v[0], &c->v[1], &c->v[2], &c->v[3], &c->v[4],
				       &c->v[5], &c->v[6], &c->v[7], &c->v[8], &c->v[9]);

			CHECK_EQ_INT(k, 11);
			/* The kernel writes "cpu  " (two spaces) for the total. */
			if (!strcmp(c->name, "cpu"))
				CHECK(!strncmp(lines[i], "cpu  ", 5));
		} else if (*nrest < max_rest) {
			rest[(*nrest)++] = strdup(lines[i]);
		}
	}
	free(copy);
	return n;
}

static void free_rest(char **rest, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rest[i]);
}

/* The stat view of path shows exactly cpus[], its total is the sum of the
 * per-CPU lines, and the other lines are the host's. */
static void expect_stat_cpus(const char *path, const unsigned *cpus, unsigned n,
			     struct cpu_line *out, const char *file, int line)
{
	struct text got = render(path, VF_STAT), h = host(VF_STAT);
	struct cpu_line cl[64], hcl[64];
	char *rest[64], *hrest[64];
	size_t nrest, nhrest;
	size_t ncl = parse_stat(got.data, cl, 64, rest, &nrest, 64);
	unsigned long long sum[10] = { 0 };

	parse_stat(h.data, hcl, 64, hrest, &nhrest, 64);
	check_u64(ncl, n + 1, "cpu lines", file, line);
	if (ncl >= 1)
		check_str(cl[0].name, "cpu", "first line", file, line);
	for (unsigned i = 0; i < n && i + 1 < ncl; i++) {
		char want[16];

		snprintf(want, sizeof(want), "cpu%u", cpus[i]);
		check_str(cl[i + 1].name, want, "cpu line", file, line);
		for (int k = 0; k < 10; k++)
			sum[k] += cl[i + 1].v[k];
	}
	for (int k = 0; k < 10 && ncl; k++)
		check_u64(cl[0].v[k], sum[k], "cpu total = sum of the cpuN lines", file, line);
	/* Only user, system and idle are accounted. */
	for (size_t i = 0; i < ncl; i++)
		check_bool(!cl[i].v[1] && !cl[i].v[4] && !cl[i].v[5] && !cl[i].v[6] &&
			   !cl[i].v[7] && !cl[i].v[8] && !cl[i].v[9],
			   "nice, iowait, irq... are 0", file, line);
	/* The other lines: the host's, in order, procs_* and ctxt from the
	 * cgroup, intr and softirq with every column 0. */
	check_u64(nrest, nhrest, "non-cpu lines", file, line);
	for (size_t i = 0; i < nrest && i < nhrest; i++) {
		if (!strncmp(hrest[i], "procs_", 6)) {
			check_bool(!strncmp(rest[i], hrest[i], 14), "procs_* line in place", file,
				   line);
		} else if (!strncmp(hrest[i], "ctxt ", 5)) {
			check_bool(!strncmp(rest[i], "ctxt ", 5), "ctxt line in place", file, line);
		} else if (!strncmp(hrest[i], "intr ", 5) || !strncmp(hrest[i], "softirq ", 8)) {
			char *zeros = strdup(hrest[i]);

			for (char *p = strchr(zeros, ' '); p && *p; p++)
				if (*p != ' ')
					*p = '0';
			for (char *p = zeros, *q = zeros; ; p++) { /* squeeze "00" to "0" */
				if (*p == '0' && p > zeros && p[-1] == '0')
					continue;
				*q++ = *p;
				if (!*p)
					break;
			}
			check_str(rest[i], zeros, "intr/softirq line, all 0", file, line);
			free(zeros);
		} else {
			check_str(rest[i], hrest[i], "host stat line", file, line);
		}
	}
	if (out && ncl)
		memcpy(out, cl, ncl * sizeof(*cl));
	free_rest(rest, nrest);
	free_rest(hrest, nhrest);
	free(got.data);
	free(h.data);
}

#define EXPECT_STAT_CPUS(path, out, ...)                                            \
	do {                                                                        \
		static const unsigned cpus_[] = { __VA_ARGS__ };                    \
		expect_stat_cpus((path), cpus_, sizeof(cpus_) / sizeof(cpus_[0]),   \
				 (out), __FILE__, __LINE__);                        \
	} while (0)

/* ------------------------------------------------------------------ tests */

static void test_host_view(void)
{
	for (int f = 0; f < VF_NFILES; f++)
		if (!vfile_has_arg((enum vfile)f))
			EXPECT_HOST(NULL, (enum vfile)f);
}

static void expect_host_objs(const char *path)
{
	static const struct { enum vfile f; const char *rel; } objs[] = {
		{ VF_NODE_CPULIST, "devices/system/node/node0/cpulist" },
		{ VF_NODE_CPUMAP, "devices/system/node/node0/cpumap" },
		{ VF_NODE_MEMINFO, "devices/system/node/node0/meminfo" },
	};
	struct text got, want;

	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		got = render_arg(path, objs[i].f, 0);
		want = sys_file(objs[i].rel);
		CHECK_TEXT(got, want);
		free(got.data);
		free(want.data);
	}
	got = render_arg(path, VF_BLOCK_STAT, (unsigned)block_index("sda"));
	want = sys_file("block/sda/stat");
	CHECK_TEXT(got, want);
	free(got.data);
	free(want.data);
}

static void test_unlimited(void)
{
	for (int f = 0; f < VF_NFILES; f++)
		if (!vfile_has_arg((enum vfile)f))
			EXPECT_HOST("/cvmfs/unlim", (enum vfile)f);
	/* A limit above the host's memory is no limit. */
	for (int f = 0; f < VF_NFILES; f++)
		if (!vfile_has_arg((enum vfile)f))
			EXPECT_HOST("/cvmfs/huge", (enum vfile)f);
	expect_host_objs(NULL);
	expect_host_objs("/cvmfs/unlim");
}

struct kb_field {
	const char *key;
	unsigned long long kb;
};

/* A meminfo line in the kernel's show_val_kb() layout. */
static bool kernel_kb_line(const char *line)
{
	size_t len = strlen(line), klen;
	const char *colon = strchr(line, ':');

	if (!colon || len < 27 || strcmp(line + len - 3, " kB"))
		return false;
	klen = (size_t)(colon - line) + 1;
	if (klen > 16)
		return false;
	for (size_t i = klen; i < 16; i++)
		if (line[i] != ' ')
			return false;
	/* the value: right-aligned in 8 columns (or wider, unpadded) */
	size_t vlen = len - 3 - 16, i = 16;

	while (i < len - 3 && line[i] == ' ')
		i++;
	if (i == len - 3)
		return false;
	for (size_t j = i; j < len - 3; j++)
		if (line[j] < '0' || line[j] > '9')
			return false;
	return vlen == 8 || (vlen > 8 && i == 16);
}

static void expect_meminfo(const char *path, const struct kb_field *want, size_t nwant,
			   const char *file, int line)
{
	struct text got = render(path, VF_MEMINFO), h = host(VF_MEMINFO);
	bool nl_end = got.len && got.data[got.len - 1] == '\n';
	char *gl[128], *hl[128];
	size_t ng = split_lines(got.data, gl, 128), nh = split_lines(h.data, hl, 128);
	size_t seen = 0;

	check_bool(nl_end, "meminfo ends with a newline", file, line);

	check_u64(ng, nh, "meminfo lines", file, line);
	for (size_t i = 0; i < ng && i < nh; i++) {
		const char *colon = strchr(gl[i], ':');
		size_t klen = colon ? (size_t)(colon - gl[i]) : 0;
		const struct kb_field *w = NULL;

		if (!check_bool(colon && !strncmp(gl[i], hl[i], klen + 1), "same key order", file,
				line)) {
			fprintf(stderr, "  line %zu: \"%s\" vs host \"%s\"\n", i, gl[i], hl[i]);
			continue;
		}
		for (size_t k = 0; k < nwant; k++)
			if (strlen(want[k].key) == klen && !strncmp(want[k].key, gl[i], klen))
				w = &want[k];
		if (!w) {
			check_str(gl[i], hl[i], "meminfo line not overridden", file, line);
			continue;
		}
		seen++;
		char label[32], expect[64];

		snprintf(label, sizeof(label), "%s:", w->key);
		snprintf(expect, sizeof(expect), "%-16s%8llu kB", label, w->kb);
		check_str(gl[i], expect, w->key, file, line);
		if (!check_bool(kernel_kb_line(gl[i]), "kernel layout %-16s%8llu kB", file, line))
			fprintf(stderr, "  \"%s\"\n", gl[i]);
	}
	check_u64(seen, nwant, "overridden meminfo fields", file, line);
	free(got.data);
	free(h.data);
}

/* text has the line "KEY:<pad>VALUE kB" in the kernel's layout. */
static bool has_kb_line(const char *text, const char *key, unsigned long long kb)
{
	char label[32], line[64];
	const char *p;

	snprintf(label, sizeof(label), "%s:", key);
	snprintf(line, sizeof(line), "%-16s%8llu kB\n", label, kb);
	p = strstr(text, line);
	if (!p || (p != text && p[-1] != '\n')) {
		fprintf(stderr, "  no line \"%s\" in meminfo\n", label);
		return false;
	}
	return true;
}

static void test_meminfo(void)
{
	/* 256 MiB limit, 100 MiB used; memory.stat of the fixture in kB. */
	static const struct kb_field mem256[] = {
		{ "MemTotal", 262144 },      { "MemFree", 159744 },
		{ "MemAvailable", 202752 },  /* free + active/inactive file + slab_reclaimable */
		{ "Buffers", 0 },            { "Cached", 39936 }, /* file - swapcached */
		{ "SwapCached", 1024 },      { "Active", 22528 },
		{ "Inactive", 69632 },       { "Active(anon)", 2048 },
		{ "Inactive(anon)", 49152 }, { "Active(file)", 20480 },
		{ "Inactive(file)", 20480 }, { "Unevictable", 0 },
		{ "SwapTotal", 65536 },      { "SwapFree", 57344 },
		{ "Dirty", 132 },            { "Writeback", 4 },
		{ "AnonPages", 51200 },      { "Mapped", 8192 },
		{ "Shmem", 2048 },           { "KReclaimable", 2048 },
		{ "Slab", 3072 },            { "SReclaimable", 2048 },
		{ "SUnreclaim", 1024 },      { "KernelStack", 320 },
		{ "PageTables", 640 },       { "AnonHugePages", 4096 },
	};
	struct text h = host(VF_MEMINFO), got;
	char *hl[128];
	size_t nh = split_lines(h.data, hl, 128);

	expect_meminfo("/cvmfs/mem256", mem256, sizeof(mem256) / sizeof(mem256[0]), __FILE__,
		       __LINE__);

	/* Every line of the host fixture is itself in the kernel's layout
	 * (but those the kernel prints with their own formats). */
	for (size_t i = 0; i < nh; i++)
		if (strncmp(hl[i], "HugePages_", 10) && strncmp(hl[i], "HardwareCorrupted:", 18) &&
		    !kernel_kb_line(hl[i]))
			if (!CHECK(!"host fixture line in kernel layout"))
				fprintf(stderr, "  \"%s\"\n", hl[i]);
	free(h.data);

	/* Limit - usage above the host's MemFree: capped by the host's. */
	got = render("/cvmfs/mem7g", VF_MEMINFO);
	CHECK(has_kb_line(got.data, "MemTotal", 7340032));
	CHECK(has_kb_line(got.data, "MemFree", 5123456));
	/* No swap accounting: no swap. */
	CHECK(has_kb_line(got.data, "SwapTotal", 0));
	CHECK(has_kb_line(got.data, "SwapFree", 0));
	free(got.data);

	/* Usage above the limit: nothing free; swap capped by the host's. */
	got = render("/cvmfs/over", VF_MEMINFO);
	CHECK(has_kb_line(got.data, "MemTotal", 102400));
	CHECK(has_kb_line(got.data, "MemFree", 0));
	CHECK(has_kb_line(got.data, "MemAvailable", 8192));
	CHECK(has_kb_line(got.data, "SwapTotal", 2097148));
	CHECK(has_kb_line(got.data, "SwapFree", 2097148 - 1048576));
	free(got.data);

	/* CPU-limited only: the host's meminfo. */
	EXPECT_HOST("/cvmfs/cpuset13", VF_MEMINFO);
	EXPECT_HOST("/cvmfs/quota", VF_MEMINFO);
}

static void test_swaps(void)
{
	char want[256];

	snprintf(want, sizeof(want), "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
				     "%-40s%s\t%s\t%s%s\t%s%s\n",
		 "none", "file\t", "65536", "\t", "8192", "\t", "-2");
	EXPECT_TEXT("/cvmfs/mem256", VF_SWAPS, want);
	/* Swap not accounted: the header alone. */
	EXPECT_TEXT("/cvmfs/mem7g", VF_SWAPS, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
	EXPECT_HOST("/cvmfs/cpuset13", VF_SWAPS);
}

static void test_cpuset(void)
{
	EXPECT_CPUINFO("/cvmfs/cpuset13", 1, 3);
	EXPECT_STAT_CPUS("/cvmfs/cpuset13", NULL, 1, 3);
	EXPECT_TEXT("/cvmfs/cpuset13", VF_CPU_ONLINE, "1,3\n");
	EXPECT_TEXT("/cvmfs/cpuset13", VF_CPU_POSSIBLE, "1,3\n");
	EXPECT_TEXT("/cvmfs/cpuset13", VF_CPU_PRESENT, "1,3\n");
	/* A cpuset sharing no CPU with the host's: the host's view. */
	EXPECT_HOST("/cvmfs/foreign", VF_CPUINFO);
	EXPECT_HOST("/cvmfs/foreign", VF_CPU_ONLINE);
	EXPECT_HOST("/cvmfs/foreign", VF_STAT);
}

static void test_quota(void)
{
	/* ceil(150000 / 100000) = 2 CPUs: the first two of the cpuset. */
	EXPECT_CPUINFO("/cvmfs/quota", 0, 1);
	EXPECT_STAT_CPUS("/cvmfs/quota", NULL, 0, 1);
	EXPECT_TEXT("/cvmfs/quota", VF_CPU_ONLINE, "0-1\n");
	/* Half a CPU over cpus 2-3: one CPU, its real id. */
	EXPECT_CPUINFO("/cvmfs/half", 2);
	EXPECT_TEXT("/cvmfs/half", VF_CPU_ONLINE, "2\n");
	/* One CPU of quota over cpus 1,3: cpu1. */
	EXPECT_CPUINFO("/cvmfs/one13", 1);
	EXPECT_STAT_CPUS("/cvmfs/one13", NULL, 1);
	EXPECT_TEXT("/cvmfs/one13", VF_CPU_ONLINE, "1\n");

	/* cpu_view = cpuset ignores the quota. */
	free(views_ctx->cfg.cpu_view);
	views_ctx->cfg.cpu_view = strdup("cpuset");
	EXPECT_HOST("/cvmfs/quota", VF_CPUINFO);
	EXPECT_HOST("/cvmfs/quota", VF_CPU_ONLINE);
	EXPECT_HOST("/cvmfs/quota", VF_STAT);
	EXPECT_CPUINFO("/cvmfs/half", 2, 3);
	EXPECT_TEXT("/cvmfs/half", VF_CPU_ONLINE, "2-3\n");
	EXPECT_CPUINFO("/cvmfs/cpuset13", 1, 3);
	free(views_ctx->cfg.cpu_view);
	views_ctx->cfg.cpu_view = strdup("quota");
	EXPECT_CPUINFO("/cvmfs/quota", 0, 1);
}

static void write_cpu_stat(const char *cg, unsigned long long user_us,
			   unsigned long long sys_us)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "%s/cpu.stat", cg);
	fx_writef(cg_dir, rel,
		  "usage_usec %llu\nuser_usec %llu\nsystem_usec %llu\nnr_periods 0\n"
		  "nr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
		  user_us + sys_us, user_us, sys_us);
	sleep_ms(3); /* past cache_ms: the next read takes a new snapshot */
}

static bool cpu_lines_ge(const struct cpu_line *a, const struct cpu_line *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 10; k++)
			if (a[i].v[k] < b[i].v[k]) {
				fprintf(stderr, "  %s field %d went back: %llu -> %llu\n", a[i].name,
					k + 1, b[i].v[k], a[i].v[k]);
				return false;
			}
	return true;
}

static void test_stat_counters(void)
{
	struct cpu_line a[8], b[8], c[8];
	long hz = sysconf(_SC_CLK_TCK);

	CHECK_EQ_INT(hz, 100); /* USER_HZ: ticks = usec / 10000 */

	/* mem256: 2 s user, 1 s system over cpus 0-3. */
	EXPECT_STAT_CPUS("/cvmfs/mem256", a, 0, 1, 2, 3);
	CHECK_EQ_U64(a[0].v[0], 200);
	CHECK_EQ_U64(a[0].v[2], 100);
	for (int i = 1; i <= 4; i++)
		CHECK(a[i].v[0] == 50 && a[i].v[2] == 25);
	CHECK(a[0].v[3] > 0); /* idle: elapsed capacity - used */

	/* cpuset13: 2.01 s user, 1.23 s system: 201 and 123 ticks over 2 CPUs. */
	EXPECT_STAT_CPUS("/cvmfs/cpuset13", a, 1, 3);
	CHECK_EQ_U64(a[0].v[0], 201);
	CHECK_EQ_U64(a[0].v[2], 123);
	CHECK(a[1].v[0] + a[2].v[0] == 201 && a[1].v[0] >= 100 && a[1].v[0] <= 101);
	CHECK(a[1].v[2] + a[2].v[2] == 123);

	/* The usage file goes down (a counter reset, a moved task): no counter
	 * of the view goes back. */
	write_cpu_stat("cvmfs/cpuset13", 1000000, 500000);
	EXPECT_STAT_CPUS("/cvmfs/cpuset13", b, 1, 3);
	CHECK(cpu_lines_ge(b, a, 3));
	/* ... and it goes up again past the old value. */
	write_cpu_stat("cvmfs/cpuset13", 5000000, 2000000);
	EXPECT_STAT_CPUS("/cvmfs/cpuset13", c, 1, 3);
	CHECK(cpu_lines_ge(c, b, 3));
	CHECK_EQ_U64(c[0].v[0], 500);
	CHECK_EQ_U64(c[0].v[2], 200);
	/* Many reads in a row stay monotonic. */
	for (int i = 0; i < 5; i++) {
		memcpy(a, c, sizeof(a));
		write_cpu_stat("cvmfs/cpuset13", 5000000 - (unsigned long long)i * 300000,
			       2000000 + (unsigned long long)i * 10000);
		EXPECT_STAT_CPUS("/cvmfs/cpuset13", c, 1, 3);
		CHECK(cpu_lines_ge(c, a, 3));
	}

	/* procs_running/procs_blocked are the cgroup's: mem256 has one task
	 * running (4242) and one in D state (4244). */
	{
		struct text t = render("/cvmfs/mem256", VF_STAT);

		CHECK(strstr(t.data, "\nprocs_running 1\n") != NULL);
		CHECK(strstr(t.data, "\nprocs_blocked 1\n") != NULL);
		CHECK(strstr(t.data, "\nbtime 1716800000\n") != NULL);
		/* ctxt: its threads' switches (schedstat: 1200 + 34 + 6) */
		CHECK(strstr(t.data, "\nctxt 1240\n") != NULL);
		free(t.data);
	}
	/* A reader in a PID namespace started 100 s ago: btime as its uptime
	 * says (now - 100 s), the host's in the host's namespace. */
	{
		struct timespec rt;
		uint64_t start = boottime_ns() - 100ULL * 1000000000ULL;
		struct text t = render_ns("/cvmfs/mem256", VF_STAT, start);
		const char *bl = strstr(t.data, "\nbtime ");
		long long btime = bl ? atoll(bl + 7) : 0;

		clock_gettime(CLOCK_REALTIME, &rt);
		CHECK(btime >= rt.tv_sec - 101 && btime <= rt.tv_sec - 99);
		free(t.data);
	}
}

static unsigned long long vm_value(const char *text, const char *key)
{
	size_t k = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, k) && l[k] == ' ')
			return strtoull(l + k + 1, NULL, 10);
	return ~0ULL;
}

static void test_vmstat(void)
{
	struct text t = render("/cvmfs/mem256", VF_VMSTAT), h = host(VF_VMSTAT);
	char *tl[256], *hl[256];
	char *tcopy = strndup(t.data, t.len), *hcopy = strndup(h.data, h.len);
	size_t nt = split_lines(tcopy, tl, 256), nh, same = 0;

	/* mem256's memory.stat in pages (4 KiB), THPs (2 MiB), kB; its events. */
	CHECK_EQ_U64(vm_value(t.data, "nr_anon_pages"), 52428800 / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_file_pages"), 41943040 / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_inactive_anon"), 50331648 / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_zone_inactive_anon"), 50331648 / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_mapped"), 8388608 / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_dirty"), 135168 / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_zone_write_pending"), (135168 + 4096) / 4096);
	CHECK_EQ_U64(vm_value(t.data, "nr_kernel_stack"), 327680 / 1024);
	CHECK_EQ_U64(vm_value(t.data, "nr_anon_transparent_hugepages"), 2);
	CHECK_EQ_U64(vm_value(t.data, "nr_free_pages"), (268435456 - 104857600) / 4096);
	CHECK_EQ_U64(vm_value(t.data, "pgfault"), 12345);
	CHECK_EQ_U64(vm_value(t.data, "pgmajfault"), 12);
	CHECK_EQ_U64(vm_value(t.data, "pswpin"), 256);
	CHECK_EQ_U64(vm_value(t.data, "pswpout"), 512);
	CHECK_EQ_U64(vm_value(t.data, "workingset_refault_file"), 47);
	CHECK_EQ_U64(vm_value(t.data, "oom_kill"), 1);
	/* io.stat: 8:0 and 253:0 read 1048576 + 1040384 bytes, wrote 2 x 2 MiB */
	CHECK_EQ_U64(vm_value(t.data, "pgpgin"), (1048576 + 1040384) / 1024);
	CHECK_EQ_U64(vm_value(t.data, "pgpgout"), 4096);
	CHECK_EQ_U64(vm_value(t.data, "pgalloc_normal"), 0);
	/* The host's keys in the host's order. */
	nh = split_lines(hcopy, hl, 256);
	CHECK_EQ_U64(nt, nh);
	for (size_t i = 0; i < nt && i < nh; i++)
		same += strcspn(tl[i], " ") == strcspn(hl[i], " ") &&
			!strncmp(tl[i], hl[i], strcspn(hl[i], " "));
	CHECK_EQ_U64(same, nh);
	free(tcopy);
	free(hcopy);
	free(t.data);
	free(h.data);
	/* A CPU-only limit: memory gauges are the host's, events the cgroup's. */
	t = render("/cvmfs/cpuset13", VF_VMSTAT);
	h = host(VF_VMSTAT);
	CHECK_EQ_U64(vm_value(t.data, "nr_free_pages"), vm_value(h.data, "nr_free_pages"));
	CHECK(vm_value(t.data, "pgalloc_normal") == 0);
	free(t.data);
	free(h.data);
}

static void test_block_stat(void)
{
	struct text got = render_arg("/cvmfs/mem256", VF_BLOCK_STAT, (unsigned)block_index("sda"));

	/* The diskstats view's sda line (8:0 of io.stat) in sysfs's layout. */
	CHECK_STR(got.data, "     100        0     2048        0      200        0     4096        0"
			    "        0        0        0        1        0        8        0        0"
			    "        0\n");
	free(got.data);
	got = render_arg("/cvmfs/mem256", VF_BLOCK_STAT, (unsigned)block_index("loop0"));
	CHECK_STR(got.data, "       0        0        0        0        0        0        0        0"
			    "        0        0        0        0        0        0        0        0"
			    "        0\n");
	free(got.data);
}

static void test_node_files(void)
{
	struct text t;

	t = render_arg("/cvmfs/cpuset13", VF_NODE_CPULIST, 0);
	CHECK_STR(t.data, "1,3\n");
	free(t.data);
	t = render_arg("/cvmfs/cpuset13", VF_NODE_CPUMAP, 0);
	CHECK_STR(t.data, "a\n"); /* 4 possible CPUs: one hex digit */
	free(t.data);
	t = render_arg("/cvmfs/quota", VF_NODE_CPULIST, 0);
	CHECK_STR(t.data, "0-1\n");
	free(t.data);
	t = render_arg("/cvmfs/mem256", VF_NODE_MEMINFO, 0);
	CHECK(strstr(t.data, "Node 0 MemTotal:         262144 kB\n") == t.data);
	CHECK(strstr(t.data, "\nNode 0 MemFree:          159744 kB\n") != NULL);
	CHECK(strstr(t.data, "\nNode 0 MemUsed:          102400 kB\n") != NULL);
	CHECK(strstr(t.data, "\nNode 0 FilePages:         40960 kB\n") != NULL);
	CHECK(strstr(t.data, "\nNode 0 AnonPages:         51200 kB\n") != NULL);
	CHECK(strstr(t.data, "\nNode 0 HugePages_Total:     0\n") != NULL);
	free(t.data);
}

static void test_diskstats(void)
{
	struct text h = host(VF_DISKSTATS);
	char *hl[64];
	size_t nh = split_lines(h.data, hl, 64);
	struct sbuf want;

	sbuf_init(&want);
	for (size_t i = 0; i < nh; i++) {
		unsigned maj, min;
		char name[64];
		unsigned long long r[6] = { 0 }; /* rios rsect wios wsect dios dsect */

		if (sscanf(hl[i], "%u %u %63s", &maj, &min, name) != 3)
			continue;
		if (maj == 8 && min == 0) {
			unsigned long long x[6] = { 100, 1048576 / 512, 200, 2097152 / 512, 1, 4096 / 512 };

			memcpy(r, x, sizeof(r));
		} else if (maj == 253 && min == 0) {
			unsigned long long x[6] = { 98, 1040384 / 512, 200, 2097152 / 512, 0, 0 };

			memcpy(r, x, sizeof(r));
		}
		sbuf_printf(&want, "%4u %7u %s %llu 0 %llu 0 %llu 0 %llu 0 0 0 0 %llu 0 %llu 0 0 0\n",
			    maj, min, name, r[0], r[1], r[2], r[3], r[4], r[5]);
	}
	EXPECT_TEXT("/cvmfs/mem256", VF_DISKSTATS, want.data);
	/* Every line: the 3 identifying fields and the kernel's 17 counters. */
	{
		struct text t = render("/cvmfs/cpuset13", VF_DISKSTATS);
		char *tl[64];
		size_t nt = split_lines(t.data, tl, 64);

		CHECK_EQ_U64(nt, nh);
		for (size_t i = 0; i < nt; i++) {
			unsigned n = 0;

			for (char *tok = strtok(tl[i], " "); tok; tok = strtok(NULL, " "))
				n++;
			CHECK_EQ_U64(n, 3 + 17);
		}
		free(t.data);
	}
	sbuf_free(&want);
	free(h.data);
}

static void test_pressure(void)
{
	static const char *const files[3] = { "cpu.pressure", "memory.pressure", "io.pressure" };

	for (int i = 0; i < 3; i++) {
		char rel[128];
		struct text want, got;

		snprintf(rel, sizeof(rel), "cvmfs/mem256/%s", files[i]);
		want = cg_file(rel);
		got = render("/cvmfs/mem256", (enum vfile)(VF_PSI_CPU + i));
		CHECK_TEXT(got, want);
		free(want.data);
		free(got.data);
		snprintf(rel, sizeof(rel), "cvmfs/cpuset13/%s", files[i]);
		want = cg_file(rel);
		got = render("/cvmfs/cpuset13", (enum vfile)(VF_PSI_CPU + i));
		CHECK_TEXT(got, want);
		free(want.data);
		free(got.data);
	}
	/* A v2 cgroup without PSI files: the host's. */
	EXPECT_HOST("/cvmfs/half", VF_PSI_CPU);
	EXPECT_HOST("/cvmfs/half", VF_PSI_MEM);
	EXPECT_HOST("/cvmfs/half", VF_PSI_IO);
}

static void test_loadavg(void)
{
	struct container *c = container("/cvmfs/mem256");
	struct text t;
	unsigned long a, b, cc, d, e, f, r, n;
	int pid;

	/* Not yet sampled by the 5 s sampler: load 0; tasks from the cgroup. */
	EXPECT_TEXT("/cvmfs/mem256", VF_LOADAVG, "0.00 0.00 0.00 1/3 12345\n");
	t = render("/cvmfs/cpuset13", VF_LOADAVG);
	CHECK(sscanf(t.data, "%lu.%lu %lu.%lu %lu.%lu %lu/%lu %d", &a, &b, &cc, &d, &e, &f, &r, &n,
		     &pid) == 9);
	CHECK(r >= 1 && n >= r && pid == 12345);
	free(t.data);

	if (!CHECK(c != NULL))
		return;
	/* The kernel prints avenrun + FIXED_1/200 (rounded to 1/100). */
	pthread_mutex_lock(&c->stat_lock);
	c->avenrun[0] = FIXED_1 * 3 / 2;       /* 1.50 */
	c->avenrun[1] = 2 * FIXED_1 + 20;      /* 2.0098 -> 2.01 */
	c->avenrun[2] = 5 * FIXED_1 + 1023;    /* 5.4995 -> 5.50 */
	pthread_mutex_unlock(&c->stat_lock);
	EXPECT_TEXT("/cvmfs/mem256", VF_LOADAVG, "1.50 2.01 5.50 1/3 12345\n");
	pthread_mutex_lock(&c->stat_lock);
	c->avenrun[0] = 12 * FIXED_1;
	c->avenrun[1] = 0;
	c->avenrun[2] = FIXED_1 / 4;
	pthread_mutex_unlock(&c->stat_lock);
	EXPECT_TEXT("/cvmfs/mem256", VF_LOADAVG, "12.00 0.00 0.25 1/3 12345\n");
}

static void test_uptime(void)
{
	uint64_t now = boottime_ns();
	unsigned long long up_s, up_cs, idle_s, idle_cs;
	struct text t;

	/* A reader whose PID namespace started 100 s ago, in a limited cgroup
	 * not rendered before (the tick history is per container). */
	t = render_ns("/cvmfs/mem7g", VF_UPTIME, now - 100ULL * 1000000000ULL);
	CHECK(sscanf(t.data, "%llu.%2llu %llu.%2llu", &up_s, &up_cs, &idle_s, &idle_cs) == 4);
	CHECK(t.len >= 2 && t.data[t.len - 1] == '\n' && t.data[t.len - 2] != ' ');
	CHECK(strchr(t.data, '.') && strchr(t.data, '.')[3] == ' ');
	CHECK(up_s >= 100 && up_s <= 101);
	/* idle: the visible CPUs' idle ticks, at most 4 CPUs x uptime */
	CHECK(idle_s * 100 + idle_cs <= 4 * (up_s * 100 + up_cs) + 4);
	CHECK(idle_s >= 390);
	free(t.data);

	/* Host PID namespace and no limits: the host's file. */
	EXPECT_HOST("/cvmfs/unlim", VF_UPTIME);
	/* An unlimited reader in a PID namespace: its namespace's uptime, idle
	 * as the host's share. */
	t = render_ns("/cvmfs/unlim", VF_UPTIME, now - 50ULL * 1000000000ULL);
	CHECK(sscanf(t.data, "%llu.%2llu %llu.%2llu", &up_s, &up_cs, &idle_s, &idle_cs) == 4);
	CHECK(up_s >= 50 && up_s <= 51);
	CHECK(idle_s * 100 + idle_cs <= 4 * (up_s * 100 + up_cs) + 4);
	free(t.data);
}

static void test_repeatable(void)
{
	/* Two renders of an unchanged cgroup are identical bytes. */
	static const enum vfile files[] = { VF_MEMINFO, VF_CPUINFO, VF_SWAPS, VF_DISKSTATS,
					    VF_CPU_ONLINE, VF_PSI_IO };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct text a = render("/cvmfs/mem256", files[i]);

		sleep_ms(2);
		struct text b = render("/cvmfs/mem256", files[i]);

		CHECK_TEXT(a, b);
		free(a.data);
		free(b.data);
	}
}

int main(void)
{
	int r = setup();

	if (r < 0) {
		fprintf(stderr, "setup: %s\n", strerror(-r));
		return 99;
	}
	test_host_view();
	test_unlimited();
	test_meminfo();
	test_swaps();
	test_cpuset();
	test_quota();
	test_stat_counters();
	test_vmstat();
	test_block_stat();
	test_node_files();
	test_diskstats();
	test_pressure();
	test_loadavg();
	test_uptime();
	test_repeatable();
	teardown();
	return check_done();
}
