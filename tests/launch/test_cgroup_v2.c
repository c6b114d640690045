/* cvm-launch's cgroup v2 backend against a fixture unified hierarchy: this
 * machine's real controllers are on v1, so the v2 path is checked on a tree
 * laid out like cgroupfs (cgroup.controllers, cgroup.subtree_control and a
 * pre-made cvmfs/NAME and cvmfs/NAME/ns with the limit files) — the backend writes the same
 * files there that it would write on a real v2 host. No privileges needed
 * (as root, the --userns delegation by chown is checked too). */
#include "check.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void check_file(const char *root, const char *rel, const char *want)
{
	char path[4096], buf[256];
	_cleanup_close_ int dfd = open(root, O_PATH | O_DIRECTORY);
	ssize_t n;

	snprintf(path, sizeof(path), "%s", rel);
	n = read_at_buf(dfd, path, buf, sizeof(buf));
	if (!CHECK_MSG(n >= 0 && !strcmp(buf, want), "%s is '%s'", rel, want))
		check_note("  got '%s'", n >= 0 ? buf : strerror((int)-n));
}

static void check_prefix(const char *root, const char *rel, const char *want)
{
	char buf[256];
	_cleanup_close_ int dfd = open(root, O_PATH | O_DIRECTORY);
	ssize_t n = read_at_buf(dfd, rel, buf, sizeof(buf));

	if (!CHECK_MSG(n >= 0 && !strncmp(buf, want, strlen(want)), "%s starts with '%s'", rel,
		       want))
		check_note("  got '%s'", n >= 0 ? buf : strerror((int)-n));
}

static void touch(const char *root, const char *rel, const char *content)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(content, f);
	fclose(f);
}

/* --userns (as root only: chown): the CVM's root owns its cgroup. */
static void check_owner(const char *root, const char *rel, uid_t uid)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK_MSG(stat(path, &st) == 0 && st.st_uid == uid && st.st_gid == uid,
		  "%s is owned by %u:%u", rel, (unsigned)uid, (unsigned)uid);
}

/* --io-bps/--io-iops: io.max on both levels for the device of DATA (the
 * fixture's dir: no volume), or the one-line refusal where DATA is on no
 * block device (tmpfs). */
static void check_io(struct launch *L, const char *root)
{
	char want[160];
	struct stat st;
	int r = step_io(L);

	if (stat(root, &st) < 0 || major(st.st_dev) == 0) {
		if (!CHECK_MSG(r == -EOPNOTSUPP, "step_io refuses DATA on no block device"))
			check_note("  got %s", strerror(-r));
		return;
	}
	if (!CHECK_MSG(r >= 0, "step_io")) {
		check_note("  %s", strerror(-r));
		return;
	}
	snprintf(want, sizeof(want), "%u:%u rbps=1048576 wbps=1048576 riops=100 wiops=100",
		 major(st.st_dev), minor(st.st_dev));
	check_file(root, "cvmfs/cvmfs-test-v2/io.max", want);
	check_file(root, "cvmfs/cvmfs-test-v2/ns/io.max", want);
}

static void make_fixture(const char *root)
{
	static const char *const limits[] = { "memory.max", "memory.swap.max", "cpu.max",
					      "cpuset.cpus", "pids.max", "memory.high", "io.max" };
	char path[4096];

	touch(root, "cgroup.controllers", "cpuset cpu io memory pids\n");
	touch(root, "cgroup.subtree_control", "");
	snprintf(path, sizeof(path), "%s/cvmfs/cvmfs-test-v2", root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		snprintf(path, sizeof(path), "%s/cvmfs", root);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/cvmfs/cvmfs-test-v2", root);
		if (mkdir(path, 0755) < 0) {
			perror(path);
			exit(1);
		}
	}
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/cvmfs/cvmfs-test-v2/ns%s", root, i ? "/init" : "");
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			perror(path);
			exit(1);
		}
	}
	touch(root, "cvmfs/cgroup.controllers", "cpuset cpu io memory pids\n");
	touch(root, "cvmfs/cgroup.subtree_control", "");
	touch(root, "cvmfs/cvmfs-test-v2/cgroup.controllers", "cpuset cpu io memory pids\n");
	touch(root, "cvmfs/cvmfs-test-v2/cgroup.subtree_control", "");
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		snprintf(path, sizeof(path), "cvmfs/cvmfs-test-v2/%s", limits[i]);
		touch(root, path, ""); /* cgroupfs files take each write whole */
		snprintf(path, sizeof(path), "cvmfs/cvmfs-test-v2/ns/%s", limits[i]);
		touch(root, path, "");
	}
	/* Empty cgroup.procs: the backend reuses an unused cvmfs/NAME. */
	touch(root, "cvmfs/cvmfs-test-v2/cgroup.procs", "");
	touch(root, "cvmfs/cvmfs-test-v2/ns/cgroup.procs", "");
	touch(root, "cvmfs/cvmfs-test-v2/ns/init/cgroup.procs", "");
}

int main(void)
{
	char root[] = "/tmp/cvmfs-test-cgv2-XXXXXX";
	struct launch L = { .lock_fd = -EBADF };
	char cmd[4200];
	int r;

	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	make_fixture(root);
	L.step = "cgroup";
	L.o.name = "cvmfs-test-v2";
	L.o.cgroup_root = root;
	L.o.memory = 256ULL << 20;
	L.o.cpus = "1.5";
	L.cpus = 1.5;
	L.o.cpuset = "0-1";
	L.o.pids = 100;
	L.o.memory_high = 192ULL << 20;
	L.o.io_bps = 1048576;
	L.o.io_iops = 100;
	L.o.data = root; /* no volume: io.max is for DATA's device */
	L.o.userns = geteuid() == 0;
	L.o.userns_uid = L.o.userns_gid = 100000;
	r = step_cgroup(&L);
	if (!CHECK_MSG(r >= 0, "step_cgroup")) {
		check_note("  %s", strerror(-r));
	} else {
		CHECK_STR(L.cg->name, "v2");
		check_file(root, "cvmfs/cvmfs-test-v2/memory.max", "268435456");
		check_file(root, "cvmfs/cvmfs-test-v2/memory.swap.max", "0");
		check_file(root, "cvmfs/cvmfs-test-v2/cpu.max", "150000 100000");
		check_file(root, "cvmfs/cvmfs-test-v2/cpuset.cpus", "0-1");
		check_file(root, "cvmfs/cvmfs-test-v2/pids.max", "100");
		/* A regular file keeps overlapping writes; pids is enabled last,
		 * and only after memory, cpu and cpuset succeeded. */
		/* The namespace root below carries the same limits. */
		check_file(root, "cvmfs/cvmfs-test-v2/ns/memory.max", "268435456");
		check_file(root, "cvmfs/cvmfs-test-v2/ns/cpu.max", "150000 100000");
		check_file(root, "cvmfs/cvmfs-test-v2/ns/cpuset.cpus", "0-1");
		check_file(root, "cvmfs/cvmfs-test-v2/ns/pids.max", "100");
		check_file(root, "cvmfs/cvmfs-test-v2/memory.high", "201326592");
		check_file(root, "cvmfs/cvmfs-test-v2/ns/memory.high", "201326592");
		check_io(&L, root);
		check_prefix(root, "cvmfs/cvmfs-test-v2/cgroup.subtree_control", "+pids");
		/* The first process settles in ns/init, so the namespace root
		 * holds none and the CVM may enable controllers there. */
		if (CHECK_MSG(L.dirs[0].leaf_fd >= 0 && lcg_enter_leaf(&L) >= 0,
			      "ns/init/cgroup.procs opened and written"))
			check_file(root, "cvmfs/cvmfs-test-v2/ns/init/cgroup.procs", "0");
		check_prefix(root, "cvmfs/cgroup.subtree_control", "+pids");
		check_prefix(root, "cgroup.subtree_control", "+pids");
		if (L.o.userns) {
			check_owner(root, "cvmfs/cvmfs-test-v2/ns", 100000);
			check_owner(root, "cvmfs/cvmfs-test-v2/ns/cgroup.procs", 100000);
			check_owner(root, "cvmfs/cvmfs-test-v2/ns/memory.max", 0);
			check_owner(root, "cvmfs/cvmfs-test-v2", 0);
			check_owner(root, "cvmfs/cvmfs-test-v2/ns/init", 100000);
			check_owner(root, "cvmfs/cvmfs-test-v2/ns/init/cgroup.procs", 100000);
		}
	}
	undo_cgroup(&L);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", root);
	return check_done();
}
