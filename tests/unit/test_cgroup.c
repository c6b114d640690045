/* cgroup.h: cpulists, layout detection (v1, v2, hybrid), /proc/PID/cgroup
 * parsing and cg_read over fixture trees in the kernel's file formats. The
 * shipped trees (tests/fixtures/cgroup{1,2}, hybrid) are copied to a temp
 * dir first, so cases can rewrite files in place. */
#include "check.h"
#include "fixture.h"

#include "cvmfs/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define M (1ULL << 20)

static char *tmp;

static char *subdir(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", tmp, name) < 0)
		abort();
	return p;
}

/* ------------------------------------------------------------------ cpulist */

static void expect_cpulist(const char *text, const char *formatted, unsigned count,
			   const char *file, int line)
{
	uint8_t set[CG_MAX_CPUS / 8];
	char buf[4096];

	if (!check_i64(cpulist_parse(text, set), 0, text, file, line))
		return;
	check_u64(cpuset_count(set), count, text, file, line);
	cpulist_format(set, buf, sizeof(buf));
	check_str(buf, formatted, text, file, line);
}

#define CPULIST(t, f, n) expect_cpulist((t), (f), (n), __FILE__, __LINE__)

static void test_cpulist(void)
{
	static const char *const bad[] = { "a", "3-1", "1,,2", "1-", ",1", "1 2", "1;2",
					   "0-3x", "-1", "1--3", "1-+3", "0-3,-2" };
	uint8_t set[CG_MAX_CPUS / 8];
	char buf[64];

	CPULIST("0-3,8,10-11", "0-3,8,10-11", 7);
	CPULIST("0-3,8,10-11\n", "0-3,8,10-11", 7);
	CPULIST("5", "5", 1);
	CPULIST("5\n", "5", 1);
	CPULIST("", "", 0);
	CPULIST("\n", "", 0);
	CPULIST("1,3", "1,3", 2);
	CPULIST("0,2,4-5", "0,2,4-5", 4);
	CPULIST("3,1,2", "1-3", 3);
	CPULIST("1-2,2-3", "1-3", 3);
	CPULIST("7-7", "7", 1);
	CPULIST("0-1023", "0-1023", 1024);
	CPULIST("1023", "1023", 1);

	CHECK_EQ_INT(cpulist_parse("0-3,8,10-11", set), 0);
	CHECK(cpuset_has(set, 0) && cpuset_has(set, 3) && cpuset_has(set, 8) &&
	      cpuset_has(set, 10) && cpuset_has(set, 11));
	CHECK(!cpuset_has(set, 4) && !cpuset_has(set, 9) && !cpuset_has(set, 12));
	CHECK(!cpuset_has(set, CG_MAX_CPUS)); /* out of range is never set */

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!check_i64(cpulist_parse(bad[i], set), -EINVAL, bad[i], __FILE__, __LINE__))
			fprintf(stderr, "  (malformed cpulist \"%s\" accepted, %u cpus)\n",
				bad[i], cpuset_count(set));
	}

	/* A short buffer truncates at a whole entry and stays terminated. */
	CHECK_EQ_INT(cpulist_parse("0,2,4,6,8", set), 0);
	memset(buf, 'X', sizeof(buf));
	cpulist_format(set, buf, 6);
	CHECK_STR(buf, "0,2,4");
	CHECK(buf[6] == 'X');
}

/* ------------------------------------------------------------------ layout */

static bool same_dir(int a, int b)
{
	struct stat sa, sb;

	return a >= 0 && b >= 0 && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static bool is_dir_named(int fd, const char *root, const char *name)
{
	char path[4096];
	int d;
	bool r;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	d = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	r = same_dir(fd, d);
	if (d >= 0)
		close(d);
	return r;
}

static void test_layout_v2(void)
{
	char *root = subdir("cgroup2");
	char *lim = subdir("v2-limited");
	struct cg_layout l;

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	CHECK(l.unified_fd >= 0);
	CHECK(l.unified_psi);
	for (int r = 0; r < CG_NRES; r++) {
		CHECK(cg_layout_has(&l, r));
		CHECK(l.is_v2[r]);
		CHECK(same_dir(l.hier_fd[r], l.unified_fd));
	}
	cg_layout_close(&l);
	CHECK(l.unified_fd == -1 && l.hier_fd[CG_MEMORY] == -1);

	/* Controllers the root does not offer are absent; CPU usage is core. */
	fx_write(lim, "cgroup.controllers", "cpu memory pids\n");
	fx_write(lim, "cgroup.procs", "1\n");
	CHECK_EQ_INT(cg_layout_open(lim, &l), 0);
	CHECK(cg_layout_has(&l, CG_MEMORY) && l.is_v2[CG_MEMORY]);
	CHECK(cg_layout_has(&l, CG_CPU) && l.is_v2[CG_CPU]);
	CHECK(cg_layout_has(&l, CG_CPUACCT) && l.is_v2[CG_CPUACCT]);
	CHECK(cg_layout_has(&l, CG_PIDS));
	CHECK(!cg_layout_has(&l, CG_CPUSET));
	CHECK(!cg_layout_has(&l, CG_BLKIO));
	cg_layout_close(&l);

	/* "cpuset" must not be taken for "cpu", nor "io" for anything else. */
	fx_write(lim, "cgroup.controllers", "cpuset misc\n");
	CHECK_EQ_INT(cg_layout_open(lim, &l), 0);
	CHECK(cg_layout_has(&l, CG_CPUSET));
	CHECK(!cg_layout_has(&l, CG_CPU));
	CHECK(!cg_layout_has(&l, CG_MEMORY));
	CHECK(!cg_layout_has(&l, CG_BLKIO));
	cg_layout_close(&l);
	free(root);
	free(lim);
}

static void check_v1_dirs(const struct cg_layout *l, const char *root)
{
	CHECK(is_dir_named(l->hier_fd[CG_MEMORY], root, "memory"));
	CHECK(is_dir_named(l->hier_fd[CG_CPU], root, "cpu,cpuacct"));
	CHECK(is_dir_named(l->hier_fd[CG_CPUACCT], root, "cpu,cpuacct"));
	CHECK(is_dir_named(l->hier_fd[CG_CPUSET], root, "cpuset"));
	CHECK(is_dir_named(l->hier_fd[CG_BLKIO], root, "blkio"));
	CHECK(is_dir_named(l->hier_fd[CG_PIDS], root, "pids"));
	for (int r = 0; r < CG_NRES; r++)
		CHECK(!l->is_v2[r]);
}

static void test_layout_v1(void)
{
	char *root = subdir("cgroup1");
	char *bare = subdir("v1-bare");
	struct cg_layout l;

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	check_v1_dirs(&l, root);
	CHECK(l.unified_fd < 0);
	CHECK(!l.unified_psi);
	cg_layout_close(&l);

	/* Without the cpu/cpuacct symlinks the co-mounted dir is still found. */
	fx_copy_fixture("cgroup1", bare);
	fx_unlink(bare, "cpu");
	fx_unlink(bare, "cpuacct");
	CHECK_EQ_INT(cg_layout_open(bare, &l), 0);
	check_v1_dirs(&l, bare);
	cg_layout_close(&l);
	free(root);
	free(bare);
}

static void test_layout_hybrid(void)
{
	char *root = subdir("hybrid");
	char *empty = subdir("empty-root");
	char *missing = subdir("no-such-dir");
	struct cg_layout l;

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	check_v1_dirs(&l, root);
	CHECK(is_dir_named(l.unified_fd, root, "unified"));
	CHECK(!l.unified_psi); /* no *.pressure in this unified tree */
	cg_layout_close(&l);

	fx_write(root, "unified/cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
					       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	CHECK(l.unified_psi);
	CHECK(!l.is_v2[CG_CPU]);
	cg_layout_close(&l);

	CHECK_EQ_INT(mkdir(empty, 0755), 0);
	CHECK_EQ_INT(cg_layout_open(empty, &l), -ENOENT);
	cg_layout_close(&l); /* safe after a failed open */
	CHECK_EQ_INT(cg_layout_open(missing, &l), -ENOENT);
	for (int r = 0; r < CG_NRES; r++)
		CHECK(l.hier_fd[r] == -1);
	free(root);
	free(empty);
	free(missing);
}

/* ------------------------------------------------------------------ paths */

static const char v1_text[] =
	"12:pids:/cvmfs/a\n"
	"11:hugetlb:/\n"
	"10:cpu,cpuacct:/cvmfs/b\n"
	"9:memory:/cvmfs/a\n"
	"8:net_cls,net_prio:/\n"
	"7:cpuset:/cvmfs\n"
	"6:blkio:/cvmfs/a\n"
	"5:devices:/system.slice/ssh.service\n"
	"4:freezer:/\n"
	"3:perf_event:/\n"
	"2:rdma:/\n"
	"1:name=systemd:/system.slice/ssh.service\n"
	"0::/system.slice/ssh.service\n";

static void test_paths(void)
{
	char *r1 = subdir("cgroup1"), *r2 = subdir("cgroup2"), *rh = subdir("hybrid");
	struct cg_layout l1, l2, lh;
	struct cg_paths p, q;
	char k1[2048], k2[2048];
	char longtext[1024];

	CHECK_EQ_INT(cg_layout_open(r1, &l1), 0);
	CHECK_EQ_INT(cg_layout_open(r2, &l2), 0);
	CHECK_EQ_INT(cg_layout_open(rh, &lh), 0);

	CHECK_EQ_INT(cg_paths_parse(&l1, v1_text, &p), 0);
	CHECK_STR(p.path[CG_MEMORY], "/cvmfs/a");
	CHECK_STR(p.path[CG_CPU], "/cvmfs/b");
	CHECK_STR(p.path[CG_CPUACCT], "/cvmfs/b");
	CHECK_STR(p.path[CG_CPUSET], "/cvmfs");
	CHECK_STR(p.path[CG_BLKIO], "/cvmfs/a");
	CHECK_STR(p.path[CG_PIDS], "/cvmfs/a");
	CHECK_STR(p.unified, "/system.slice/ssh.service");

	/* Hybrid: the same, the unified line kept separately. */
	CHECK_EQ_INT(cg_paths_parse(&lh, v1_text, &q), 0);
	CHECK(!memcmp(&p, &q, sizeof(p)));

	/* Separate cpu and cpuacct hierarchies, no trailing newline. */
	CHECK_EQ_INT(cg_paths_parse(&l1, "3:cpuacct:/acct\n2:cpu:/cpu\n1:cpuset:/set", &p), 0);
	CHECK_STR(p.path[CG_CPU], "/cpu");
	CHECK_STR(p.path[CG_CPUACCT], "/acct");
	CHECK_STR(p.path[CG_CPUSET], "/set");
	CHECK_STR(p.path[CG_MEMORY], "");

	/* v2: every resource follows the 0:: line; v1 lines are ignored. */
	CHECK_EQ_INT(cg_paths_parse(&l2, "0::/cvmfs/mem256\n", &p), 0);
	for (int r = 0; r < CG_NRES; r++)
		CHECK_STR(p.path[r], "/cvmfs/mem256");
	CHECK_STR(p.unified, "/cvmfs/mem256");
	CHECK_EQ_INT(cg_paths_parse(&l2, "4:memory:/elsewhere\n0::/x/y", &p), 0);
	CHECK_STR(p.path[CG_MEMORY], "/x/y");
	CHECK_EQ_INT(cg_paths_parse(&l2, "0::/a:b\n", &p), 0);
	CHECK_STR(p.path[CG_CPU], "/a:b");
	CHECK_EQ_INT(cg_paths_parse(&l2, "0::/\n", &p), 0);
	CHECK_STR(p.path[CG_PIDS], "/");

	CHECK_EQ_INT(cg_paths_parse(&l2, "garbage\n", &p), -EINVAL);
	CHECK_EQ_INT(cg_paths_parse(&l1, "1:memory\n", &p), -EINVAL);

	/* An over-long path is cut, never overflows. */
	memset(longtext, 'a', sizeof(longtext));
	memcpy(longtext, "0::/", 4);
	longtext[sizeof(longtext) - 2] = '\n';
	longtext[sizeof(longtext) - 1] = '\0';
	CHECK_EQ_INT(cg_paths_parse(&l2, longtext, &p), 0);
	CHECK(strlen(p.unified) < sizeof(p.unified));

	/* Keys: equal paths, equal keys; any difference, different keys. */
	CHECK_EQ_INT(cg_paths_parse(&l1, v1_text, &p), 0);
	CHECK_EQ_INT(cg_paths_parse(&l1, v1_text, &q), 0);
	CHECK_EQ_INT(cg_paths_key(&p, k1, sizeof(k1)), 0);
	CHECK_EQ_INT(cg_paths_key(&q, k2, sizeof(k2)), 0);
	CHECK_STR(k1, k2);
	snprintf(q.path[CG_CPUSET], sizeof(q.path[CG_CPUSET]), "/cvmfs/a");
	CHECK_EQ_INT(cg_paths_key(&q, k2, sizeof(k2)), 0);
	CHECK(strcmp(k1, k2) != 0);
	CHECK_EQ_INT(cg_paths_key(&p, k1, 8), -ENAMETOOLONG);

	/* A named cgroup in every hierarchy the layout has. */
	cg_paths_uniform(&l1, "/cvmfs/a", &p);
	for (int r = 0; r < CG_NRES; r++)
		CHECK_STR(p.path[r], "/cvmfs/a");
	CHECK_STR(p.unified, "/cvmfs/a");

	cg_layout_close(&l1);
	cg_layout_close(&l2);
	cg_layout_close(&lh);
	free(r1);
	free(r2);
	free(rh);
}

/* ------------------------------------------------------------------ cg_read */

static int read_cg(const struct cg_layout *l, const char *path, struct cg_values *v)
{
	struct cg_paths p;
	struct cg_handle h;
	int r;

	memset(v, 0x5a, sizeof(*v)); /* cg_read must set everything */
	cg_paths_uniform(l, path, &p);
	r = cg_handle_open(l, &p, &h);
	if (r < 0)
		return r;
	r = cg_read(&h, v);
	cg_handle_close(&h);
	return r;
}

static bool cpuset_is(const struct cg_values *v, const char *list)
{
	uint8_t want[CG_MAX_CPUS / 8];

	return cpulist_parse(list, want) == 0 && !memcmp(want, v->cpuset, sizeof(want));
}

static const struct cg_iodev *iodev(const struct cg_values *v, unsigned maj, unsigned min)
{
	for (unsigned i = 0; i < v->n_io; i++)
		if (v->io[i].major == maj && v->io[i].minor == min)
			return &v->io[i];
	return NULL;
}

static char *fixture_text(const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	return fx_read(path, NULL);
}

static void test_read_v2(void)
{
	char *root = subdir("cgroup2");
	struct cg_layout l;
	struct cg_values *v = malloc(sizeof(*v));
	const struct cg_iodev *d;
	char *t;

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/mem256", v), 0);
	CHECK_EQ_U64(v->mem_limit, 256 * M);
	CHECK_EQ_U64(v->mem_usage, 100 * M);
	CHECK_EQ_U64(v->ms.anon, 50 * M);
	CHECK_EQ_U64(v->ms.file, 40 * M);
	CHECK_EQ_U64(v->ms.shmem, 2 * M);
	CHECK_EQ_U64(v->ms.mapped, 8 * M);
	CHECK_EQ_U64(v->ms.dirty, 135168);
	CHECK_EQ_U64(v->ms.writeback, 4096);
	CHECK_EQ_U64(v->ms.active_anon, 2 * M);
	CHECK_EQ_U64(v->ms.inactive_anon, 48 * M);
	CHECK_EQ_U64(v->ms.active_file, 20 * M);
	CHECK_EQ_U64(v->ms.inactive_file, 20 * M);
	CHECK_EQ_U64(v->ms.unevictable, 0);
	CHECK_EQ_U64(v->ms.slab_reclaimable, 2 * M);
	CHECK_EQ_U64(v->ms.slab_unreclaimable, M);
	CHECK_EQ_U64(v->ms.kernel_stack, 327680);
	CHECK_EQ_U64(v->ms.pagetables, 655360);
	CHECK_EQ_U64(v->ms.anon_thp, 4 * M);
	CHECK_EQ_U64(v->ms.swapcached, M);
	CHECK(v->swap_accounted);
	CHECK_EQ_U64(v->swap_limit, 64 * M);
	CHECK_EQ_U64(v->swap_usage, 8 * M);
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);
	CHECK_EQ_U64(v->cpu_period_us, 100000);
	CHECK_EQ_U64(v->cpu_user_ns, 2000000000ULL);
	CHECK_EQ_U64(v->cpu_system_ns, 1000000000ULL);
	CHECK(v->cpuset_known);
	CHECK(cpuset_is(v, "0-3"));
	CHECK_EQ_U64(v->pids_max, 64);
	CHECK_EQ_U64(v->pids_current, 3);
	CHECK_EQ_U64(v->n_io, 2);
	d = iodev(v, 8, 0);
	CHECK(d != NULL);
	if (d) {
		CHECK_EQ_U64(d->rbytes, 1048576);
		CHECK_EQ_U64(d->wbytes, 2097152);
		CHECK_EQ_U64(d->rios, 100);
		CHECK_EQ_U64(d->wios, 200);
		CHECK_EQ_U64(d->dbytes, 4096);
		CHECK_EQ_U64(d->dios, 1);
	}
	d = iodev(v, 253, 0);
	CHECK(d && d->rbytes == 1040384 && d->rios == 98 && d->wios == 200);
	CHECK(v->has_psi);
	t = fixture_text("cgroup2/cvmfs/mem256/cpu.pressure");
	CHECK_STR(v->psi[0], t);
	free(t);
	t = fixture_text("cgroup2/cvmfs/mem256/memory.pressure");
	CHECK_STR(v->psi[1], t);
	free(t);
	t = fixture_text("cgroup2/cvmfs/mem256/io.pressure");
	CHECK_STR(v->psi[2], t);
	free(t);

	/* "max" everywhere: unlimited; swap accounted but unlimited. */
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/unlim", v), 0);
	CHECK_EQ_U64(v->mem_limit, CG_UNLIMITED);
	CHECK_EQ_U64(v->mem_usage, 50 * M);
	CHECK(v->swap_accounted);
	CHECK_EQ_U64(v->swap_limit, CG_UNLIMITED);
	CHECK_EQ_U64(v->pids_max, CG_UNLIMITED);
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);
	CHECK_EQ_U64(v->n_io, 0);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/cpuset13", v), 0);
	CHECK(v->cpuset_known && cpuset_is(v, "1,3"));
	CHECK_EQ_U64(v->cpu_user_ns, 2010000000ULL);
	CHECK_EQ_U64(v->cpu_system_ns, 1230000000ULL);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/quota", v), 0);
	CHECK_EQ_U64(v->cpu_quota_us, 150000);
	CHECK_EQ_U64(v->cpu_period_us, 100000);

	/* The root cgroup has no limit files: unlimited. */
	CHECK_EQ_INT(read_cg(&l, "/", v), 0);
	CHECK_EQ_U64(v->mem_limit, CG_UNLIMITED);
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);
	CHECK_EQ_U64(v->pids_max, CG_UNLIMITED);

	cg_layout_close(&l);
	free(v);
	free(root);
}

/* Limits are the minimum over the cgroup and its ancestors. */
static void test_read_v2_ancestors(void)
{
	char *root = subdir("cgroup2");
	struct cg_layout l;
	struct cg_values *v = malloc(sizeof(*v));

	fx_write(root, "cvmfs/nest/cgroup.procs", "");
	fx_write(root, "cvmfs/nest/memory.max", "536870912\n");
	fx_write(root, "cvmfs/nest/memory.swap.max", "0\n");
	fx_write(root, "cvmfs/nest/cpu.max", "200000 100000\n");
	fx_write(root, "cvmfs/nest/pids.max", "50\n");
	fx_write(root, "cvmfs/nest/child/cgroup.procs", "");
	fx_write(root, "cvmfs/nest/child/memory.max", "max\n");
	fx_write(root, "cvmfs/nest/child/memory.current", "1048576\n");
	fx_write(root, "cvmfs/nest/child/memory.swap.max", "max\n");
	fx_write(root, "cvmfs/nest/child/memory.swap.current", "0\n");
	fx_write(root, "cvmfs/nest/child/cpu.max", "max 100000\n");
	fx_write(root, "cvmfs/nest/child/pids.max", "max\n");
	fx_write(root, "cvmfs/nest/child/grand/cgroup.procs", "");
	fx_write(root, "cvmfs/nest/child/grand/memory.max", "1073741824\n");
	fx_write(root, "cvmfs/nest/child/grand/memory.swap.current", "0\n");
	fx_write(root, "cvmfs/nest/child/grand/cpu.max", "300000 1000000\n");
	fx_write(root, "cvmfs/nest/child/grand/pids.max", "80\n");
	fx_write(root, "cvmfs/nest/child/grand2/cgroup.procs", "");
	fx_write(root, "cvmfs/nest/child/grand2/cpu.max", "250000 100000\n");
	fx_write(root, "cvmfs/nest/child/grand2/memory.max", "268435456\n");
	fx_write(root, "cvmfs/nest/child/grand2/pids.max", "10\n");

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/nest/child", v), 0);
	CHECK_EQ_U64(v->mem_limit, 512 * M);
	CHECK_EQ_U64(v->mem_usage, M);
	CHECK(v->swap_accounted);
	CHECK_EQ_U64(v->swap_limit, 0);
	CHECK_EQ_U64(v->cpu_quota_us, 200000);
	CHECK_EQ_U64(v->cpu_period_us, 100000);
	CHECK_EQ_U64(v->pids_max, 50);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/nest/child/grand", v), 0);
	CHECK_EQ_U64(v->mem_limit, 512 * M);
	CHECK_EQ_U64(v->swap_limit, 0);
	CHECK_EQ_U64(v->cpu_quota_us, 300000); /* 0.3 CPU beats 2 CPUs */
	CHECK_EQ_U64(v->cpu_period_us, 1000000);
	CHECK_EQ_U64(v->pids_max, 50);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/nest/child/grand2", v), 0);
	CHECK_EQ_U64(v->mem_limit, 256 * M);
	CHECK_EQ_U64(v->cpu_quota_us, 200000); /* 2.5 CPUs capped by 2 */
	CHECK_EQ_U64(v->cpu_period_us, 100000);
	CHECK_EQ_U64(v->pids_max, 10);
	/* No memory.swap.current: swap is not accounted here. */
	CHECK(!v->swap_accounted);

	/* The cpuset controller not enabled for a child (no cpuset.* files in
	 * it): its tasks run on the nearest ancestor's effective cpus. */
	fx_write(root, "cvmfs/nest/cgroup.subtree_control", "cpu memory pids\n");
	fx_write(root, "cvmfs/nest/cpuset.cpus", "2-3\n");
	fx_write(root, "cvmfs/nest/cpuset.cpus.effective", "2-3\n");
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/nest", v), 0);
	CHECK(v->cpuset_known && cpuset_is(v, "2-3"));
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/nest/child", v), 0);
	if (!CHECK(v->cpuset_known && cpuset_is(v, "2-3")))
		fprintf(stderr, "  child without cpuset files: known=%d, %u cpus\n",
			v->cpuset_known, cpuset_count(v->cpuset));

	/* A cgroup missing from the tree: its nearest ancestor answers. */
	{
		struct cg_paths p;
		struct cg_handle h;

		cg_paths_uniform(&l, "/cvmfs/mem256/gone/deeper", &p);
		CHECK_EQ_INT(cg_handle_open(&l, &p, &h), 0);
		CHECK_STR(h.path[CG_MEMORY], "cvmfs/mem256");
		CHECK_EQ_INT(cg_read(&h, v), 0);
		CHECK_EQ_U64(v->mem_limit, 256 * M);
		cg_handle_close(&h);
	}

	cg_layout_close(&l);
	free(v);
	free(root);
}

/* Hot files stay open; a value rewritten in place is seen on the next read,
 * and a removed cgroup reads as -ENOENT. */
static void test_read_v2_live(void)
{
	char *root = subdir("cgroup2");
	struct cg_layout l;
	struct cg_values *v = malloc(sizeof(*v));
	struct cg_paths p;
	struct cg_handle h;

	fx_write(root, "cvmfs/live/cgroup.procs", "");
	fx_write(root, "cvmfs/live/memory.max", "104857600\n");
	fx_write(root, "cvmfs/live/memory.current", "1000\n");
	fx_write(root, "cvmfs/live/cpu.stat", "usage_usec 30\nuser_usec 20\nsystem_usec 10\n");
	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	cg_paths_uniform(&l, "/cvmfs/live", &p);
	CHECK_EQ_INT(cg_handle_open(&l, &p, &h), 0);
	CHECK_EQ_INT(cg_read(&h, v), 0);
	CHECK_EQ_U64(v->mem_usage, 1000);
	CHECK_EQ_U64(v->cpu_user_ns, 20000);
	fx_write(root, "cvmfs/live/memory.current", "2000\n");
	fx_write(root, "cvmfs/live/cpu.stat", "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\n");
	fx_write(root, "cvmfs/live/memory.max", "52428800\n");
	CHECK_EQ_INT(cg_read(&h, v), 0);
	CHECK_EQ_U64(v->mem_usage, 2000);
	CHECK_EQ_U64(v->cpu_user_ns, 2000000);
	CHECK_EQ_U64(v->mem_limit, 50 * M);
	CHECK(cg_handle_alive(&h));
	/* Removed (moved aside, so that its inode stays taken), then
	 * re-created under the same path: another cgroup, never alive. */
	char *live = subdir("cgroup2/cvmfs/live"), *aside = subdir("cgroup2/cvmfs/live.old");

	CHECK_EQ_INT(rename(live, aside), 0);
	CHECK(!cg_handle_alive(&h));
	fx_write(root, "cvmfs/live/cgroup.procs", "");
	CHECK(!cg_handle_alive(&h));
	CHECK_EQ_INT(cg_read(&h, v), -ENOENT);
	cg_handle_close(&h);
	cg_layout_close(&l);
	free(live);
	free(aside);
	free(v);
	free(root);
}

/* Malformed files never crash a read and leave the defaults. */
static void test_read_v2_garbage(void)
{
	static const char *const files[] = {
		"memory.max", "memory.current", "memory.stat", "memory.swap.current",
		"memory.swap.max", "cpu.max", "cpu.stat", "cpuset.cpus.effective", "io.stat",
		"pids.max", "pids.current", "cpu.pressure", "memory.pressure", "io.pressure",
	};
	static const char *const junk[] = {
		"", "\n", "garbage\n", "-7\n", "max max max\n", "\x01\x02\xff\xfe",
		"99999999999999999999999999\n", "8:0\n", "8:0 rbytes=abc wbytes= rios\n",
		"user_usec\nsystem_usec x\n", "0-3-5\n", "max\n",
	};
	char *root = subdir("cgroup2");
	struct cg_layout l;
	struct cg_values *v = malloc(sizeof(*v));
	char *big = malloc(20000);

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	fx_write(root, "cvmfs/junk/cgroup.procs", "");
	for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
		for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
			char rel[128];

			snprintf(rel, sizeof(rel), "cvmfs/junk/%s", files[f]);
			fx_write(root, rel, junk[j]);
		}
		if (!CHECK_EQ_INT(read_cg(&l, "/cvmfs/junk", v), 0))
			continue;
		if (!check_u64(v->mem_limit, CG_UNLIMITED, junk[j], __FILE__, __LINE__) ||
		    !check_u64(v->cpu_quota_us, CG_UNLIMITED, junk[j], __FILE__, __LINE__) ||
		    !check_u64(v->cpu_period_us, 100000, junk[j], __FILE__, __LINE__) ||
		    !check_bool(v->cpuset_known || cpuset_count(v->cpuset) == CG_MAX_CPUS,
				"an unknown cpuset reads as all CPUs", __FILE__, __LINE__) ||
		    !check_bool(v->n_io <= 1, "at most the one parsable device", __FILE__, __LINE__))
			fprintf(stderr, "  with every file containing \"%s\"\n", junk[j]);
		if (v->n_io == 1)
			CHECK(v->io[0].rbytes == 0 && v->io[0].wbytes == 0 && v->io[0].rios == 0);
	}

	/* cpu.max without a period is malformed, not a quota. */
	fx_write(root, "cvmfs/junk/cpu.max", "100000\n");
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/junk", v), 0);
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);
	fx_write(root, "cvmfs/junk/cpu.max", "50000 0\n");
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/junk", v), 0);
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);

	/* Oversized files: rejected whole, not parsed in part. */
	memset(big, ' ', 19999);
	big[19999] = '\0';
	memcpy(big, "anon 1\n", 7);
	fx_write(root, "cvmfs/junk/memory.stat", big);
	memcpy(big, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 47);
	fx_write(root, "cvmfs/junk/cpu.pressure", big);
	fx_write(root, "cvmfs/junk/memory.max", "1048576\n");
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/junk", v), 0);
	CHECK_EQ_U64(v->ms.anon, 0);
	CHECK(!v->has_psi);
	CHECK_EQ_U64(v->mem_limit, M);

	cg_layout_close(&l);
	free(big);
	free(v);
	free(root);
}

static void test_read_v1(void)
{
	char *root = subdir("cgroup1");
	struct cg_layout l;
	struct cg_values *v = malloc(sizeof(*v));
	const struct cg_iodev *d;

	CHECK_EQ_INT(cg_layout_open(root, &l), 0);

	CHECK_EQ_INT(read_cg(&l, "/cvmfs/a", v), 0);
	/* hierarchical_memory_limit carries the parent's 1 GiB. */
	CHECK_EQ_U64(v->mem_limit, 1024 * M);
	CHECK_EQ_U64(v->mem_usage, 200 * M);
	CHECK(v->swap_accounted);
	CHECK_EQ_U64(v->swap_usage, 20 * M);  /* memsw usage - usage */
	CHECK_EQ_U64(v->swap_limit, 512 * M); /* memsw limit - limit */
	CHECK_EQ_U64(v->ms.file, 100 * M);
	CHECK_EQ_U64(v->ms.anon, 80 * M);
	CHECK_EQ_U64(v->ms.anon_thp, 2 * M);
	CHECK_EQ_U64(v->ms.shmem, 4 * M);
	CHECK_EQ_U64(v->ms.mapped, 10 * M);
	CHECK_EQ_U64(v->ms.dirty, 40960);
	CHECK_EQ_U64(v->ms.active_anon, 20 * M);
	CHECK_EQ_U64(v->ms.inactive_anon, 60 * M);
	CHECK_EQ_U64(v->ms.active_file, 50 * M);
	CHECK_EQ_U64(v->ms.inactive_file, 50 * M);
	/* 25000/50000 (0.5 CPU) beats the parent's 200000/100000. */
	CHECK_EQ_U64(v->cpu_quota_us, 25000);
	CHECK_EQ_U64(v->cpu_period_us, 50000);
	CHECK_EQ_U64(v->cpu_user_ns, 1500000000ULL);
	CHECK_EQ_U64(v->cpu_system_ns, 500000000ULL);
	CHECK(v->cpuset_known && cpuset_is(v, "2-3"));
	CHECK_EQ_U64(v->pids_max, 100); /* "max" here, 100 on the parent */
	CHECK_EQ_U64(v->pids_current, 7);
	CHECK_EQ_U64(v->n_io, 2);
	d = iodev(v, 8, 0);
	CHECK(d != NULL);
	if (d) {
		CHECK_EQ_U64(d->rbytes, 4096000);
		CHECK_EQ_U64(d->wbytes, 8192000);
		CHECK_EQ_U64(d->dbytes, 65536);
		CHECK_EQ_U64(d->rios, 1000);
		CHECK_EQ_U64(d->wios, 2000);
		CHECK_EQ_U64(d->dios, 16);
	}
	d = iodev(v, 253, 0);
	CHECK(d && d->rbytes == 1024 && d->rios == 1 && d->wbytes == 0);
	CHECK(!v->has_psi);

	/* cvmfs/b exists only under cpu,cpuacct: quota -1, the parent's applies;
	 * the other hierarchies fall back to /cvmfs. */
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/b", v), 0);
	CHECK_EQ_U64(v->cpu_quota_us, 200000);
	CHECK_EQ_U64(v->cpu_period_us, 100000);
	CHECK_EQ_U64(v->cpu_user_ns, 0);
	CHECK_EQ_U64(v->mem_limit, 1024 * M);
	CHECK_EQ_U64(v->pids_max, 100);

	/* The root: v1's page-counter maximum means unlimited. */
	CHECK_EQ_INT(read_cg(&l, "/", v), 0);
	CHECK_EQ_U64(v->mem_limit, CG_UNLIMITED);
	CHECK_EQ_U64(v->swap_limit, CG_UNLIMITED);
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);

	/* Kernels before 4.16 have only cpuacct.stat, in USER_HZ ticks. */
	fx_unlink(root, "cpu,cpuacct/cvmfs/a/cpuacct.usage_user");
	fx_unlink(root, "cpu,cpuacct/cvmfs/a/cpuacct.usage_sys");
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/a", v), 0);
	CHECK_EQ_U64(v->cpu_user_ns, 1500000000ULL);
	CHECK_EQ_U64(v->cpu_system_ns, 500000000ULL);

	/* Swap accounting off (no memsw files): SwapTotal 0 in the views. */
	fx_unlink(root, "memory/cvmfs/a/memory.memsw.usage_in_bytes");
	CHECK_EQ_INT(read_cg(&l, "/cvmfs/a", v), 0);
	CHECK(!v->swap_accounted);
	CHECK_EQ_U64(v->swap_usage, 0);

	cg_layout_close(&l);
	free(v);
	free(root);
}

static void test_read_hybrid(void)
{
	char *root = subdir("hybrid");
	struct cg_layout l;
	struct cg_values *v = malloc(sizeof(*v));
	struct cg_paths p;
	struct cg_handle h;

	fx_write(root, "memory/ct/cgroup.procs", "");
	fx_write(root, "memory/ct/memory.usage_in_bytes", "4096\n");
	fx_write(root, "memory/ct/memory.stat",
		 "cache 0\nrss 4096\nhierarchical_memory_limit 33554432\n"
		 "hierarchical_memsw_limit 9223372036854771712\ntotal_cache 0\ntotal_rss 4096\n");
	fx_write(root, "unified/ct/cgroup.procs", "");
	fx_write(root, "unified/ct/cpu.pressure", "some avg10=9.99 avg60=0.00 avg300=0.00 total=1\n");
	CHECK_EQ_INT(cg_layout_open(root, &l), 0);
	CHECK_EQ_INT(cg_paths_parse(&l, "4:memory:/ct\n1:name=systemd:/ct\n0::/ct\n", &p), 0);
	CHECK_STR(p.path[CG_MEMORY], "/ct");
	CHECK_STR(p.path[CG_CPU], "");
	CHECK_STR(p.unified, "/ct");
	CHECK_EQ_INT(cg_handle_open(&l, &p, &h), 0);
	CHECK_EQ_INT(cg_read(&h, v), 0);
	CHECK_EQ_U64(v->mem_limit, 32 * M);
	CHECK_EQ_U64(v->mem_usage, 4096);
	CHECK(!v->swap_accounted); /* the fixture has no memsw files */
	CHECK(!v->has_psi);        /* cpu is v1 here: host PSI */
	CHECK_EQ_U64(v->cpu_quota_us, CG_UNLIMITED);
	cg_handle_close(&h);
	cg_layout_close(&l);
	free(v);
	free(root);
}

static pid_t seen[16];
static unsigned n_seen;

static void collect(pid_t tid, void *arg)
{
	(void)arg;
	if (n_seen < 16)
		seen[n_seen] = tid;
	n_seen++;
}

static int cmp_pid(const void *a, const void *b)
{
	return *(const pid_t *)a - *(const pid_t *)b;
}

static void test_tasks(void)
{
	char *r2 = subdir("cgroup2"), *r1 = subdir("cgroup1");
	struct cg_layout l;
	struct cg_paths p;
	struct cg_handle h;

	fx_write(r2, "cvmfs/tasks/cgroup.procs", "100\n");
	fx_write(r2, "cvmfs/tasks/cgroup.threads", "100\n101\n");
	fx_write(r2, "cvmfs/tasks/sub/cgroup.procs", "102\n");
	fx_write(r2, "cvmfs/tasks/sub/cgroup.threads", "102\n");
	fx_write(r2, "cvmfs/tasks/sub/deeper/cgroup.threads", "103\n");
	CHECK_EQ_INT(cg_layout_open(r2, &l), 0);
	cg_paths_uniform(&l, "/cvmfs/tasks", &p);
	CHECK_EQ_INT(cg_handle_open(&l, &p, &h), 0);
	n_seen = 0;
	CHECK_EQ_INT(cg_for_each_task(&h, collect, NULL), 0);
	CHECK_EQ_U64(n_seen, 4);
	qsort(seen, n_seen < 16 ? n_seen : 16, sizeof(seen[0]), cmp_pid);
	CHECK(seen[0] == 100 && seen[1] == 101 && seen[2] == 102 && seen[3] == 103);
	cg_handle_close(&h);
	cg_layout_close(&l);

	/* v1 lists threads in "tasks" of the cpu hierarchy. */
	fx_write(r1, "cpu,cpuacct/cvmfs/a/tasks", "4242\n4243\n");
	CHECK_EQ_INT(cg_layout_open(r1, &l), 0);
	cg_paths_uniform(&l, "/cvmfs/a", &p);
	CHECK_EQ_INT(cg_handle_open(&l, &p, &h), 0);
	n_seen = 0;
	CHECK_EQ_INT(cg_for_each_task(&h, collect, NULL), 0);
	CHECK_EQ_U64(n_seen, 2);
	cg_handle_close(&h);
	cg_layout_close(&l);
	free(r1);
	free(r2);
}

int main(void)
{
	char *p;

	tmp = fx_tmpdir("cgroup");
	p = subdir("cgroup1");
	fx_copy_fixture("cgroup1", p);
	free(p);
	p = subdir("cgroup2");
	fx_copy_fixture("cgroup2", p);
	free(p);
	p = subdir("hybrid");
	fx_copy_fixture("hybrid", p);
	free(p);

	test_cpulist();
	test_layout_v2();
	test_layout_v1();
	test_layout_hybrid();
	test_paths();
	test_read_v2();
	test_read_v2_ancestors();
	test_read_v2_live();
	test_read_v2_garbage();
	test_read_v1();
	test_read_hybrid();
	test_tasks();

	fx_rm_tree(tmp);
	free(tmp);
	return check_done();
}
