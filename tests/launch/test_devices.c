/* cvm-launch's device allow-list (src/launch/devices.c, devices_bpf.c):
 *   - --device parsing: the accepted shapes, the refused ones;
 *   - the cgroup2 device program loaded and attached for real to a
 *     cvmfs-test- cgroup under the hybrid's cgroup2 (/sys/fs/cgroup/unified)
 *     or a pure v2 root: a process moved in opens /dev/null's numbers
 *     (c 1:3) but not a loop device's (b 7:0: EPERM), may still make the
 *     block node (mknod is allowed for every node, as runc needs), and a
 *     program attached below (as dockerd/systemd inside would) cannot
 *     widen what the parent's allows.
 * Root and a cgroup2 hierarchy with device programs, else exit 77. */
#include "check.h"
#include "launch.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static void check(const char *what, bool ok, const char *detail)
{
	if (!CHECK_MSG(ok, "%s", what) && detail)
		check_note("  %s", detail);
}

static int parse(const char *spec, size_t *n)
{
	struct launch L = { .o = { .name = (char *)"t", .device = (char *)spec }, .step = "test" };
	int r = devices_parse(&L);

	devices_rules(n);
	return r;
}

static void test_parse(void)
{
	size_t n0, n;
	const struct dev_rule *d;

	check("no --device: the default list", parse(NULL, &n0) == 0 && n0 > 10, NULL);
	check("b 7:0 rw, c 10:* and a joined by ':'",
	      parse("b 7:0 rw:c 10:*:a", &n) == 0 && n == n0 + 3, NULL);
	d = devices_rules(&n) + n0;
	check("b 7:0 rw read as such",
	      d[0].type == 'b' && d[0].major == 7 && d[0].minor == 0 && d[0].access == (DEV_R | DEV_W),
	      NULL);
	check("c 10:* is rwm, any minor", d[1].type == 'c' && d[1].minor == -1 &&
	      d[1].access == DEV_RWM, NULL);
	check("a: any device", d[2].type == 'a' && d[2].major == -1, NULL);
	check("/dev/null r: c 1:3 r, bound at its path", parse("/dev/null r", &n) == 0 &&
	      devices_rules(&n)[n0].major == 1 && devices_rules(&n)[n0].minor == 3 &&
	      devices_rules(&n)[n0].access == DEV_R && !strcmp(devices_rules(&n)[n0].path, "/dev/null"),
	      NULL);
	check("refused: x 1:3", parse("x 1:3", &n) == -EINVAL, NULL);
	check("refused: b 7 (no minor)", parse("b 7", &n) == -EINVAL, NULL);
	check("refused: c 1:3 rwx", parse("c 1:3 rwx", &n) == -EINVAL, NULL);
	check("refused: a path outside /dev", parse("/etc/passwd", &n) == -EINVAL, NULL);
	check("refused: /dev/shm (not a node)", parse("/dev/shm", &n) == -ENODEV, NULL);
	check("refused: a missing node", parse("/dev/cvmfs-test-none", &n) == -ENOENT, NULL);
}

/* In the child, once moved into the cgroup: exit code 0 if every
 * expectation holds, else the number of the first that failed. */
static int probe(const char *dir)
{
	char nul[512], blk[512], blk2[512];
	int fd;

	snprintf(nul, sizeof(nul), "%s/null", dir);
	snprintf(blk, sizeof(blk), "%s/loop", dir);
	snprintf(blk2, sizeof(blk2), "%s/loop-made-inside", dir);
	unlink(blk2);
	fd = open(nul, O_RDWR);
	if (fd < 0)
		return 1;
	close(fd);
	if (open(blk, O_RDONLY) >= 0 || errno != EPERM)
		return 2;
	if (mknod(blk2, S_IFBLK | 0600, makedev(7, 0)) < 0)
		return 3;
	if (open(blk2, O_RDONLY) >= 0 || errno != EPERM)
		return 4;
	return 0;
}

static int run_in(const char *cg, const char *dir)
{
	char procs[512];
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		FILE *f;

		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
		f = fopen(procs, "w");
		if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0)
			_exit(99);
		_exit(probe(dir));
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static const char *cgroup2_root(void)
{
	static const char *const roots[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	struct statfs sf;

	for (size_t i = 0; i < ARRAY_SIZE(roots); i++)
		if (statfs(roots[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
			return roots[i];
	return NULL;
}

static void test_bpf(const char *root, const char *dir)
{
	static const struct dev_rule allow_all = { 'a', -1, -1, DEV_RWM, "" };
	char cg[256], sub[512], msg[64];
	const struct dev_rule *rules;
	size_t n;
	int fd, r;

	snprintf(cg, sizeof(cg), "%s/cvmfs-test-dev-%d", root, getpid());
	snprintf(sub, sizeof(sub), "%s/inner", cg);
	parse(NULL, &n);
	rules = devices_rules(&n);
	if (mkdir(cg, 0755) < 0 || mkdir(sub, 0755) < 0) {
		check("mkdir the test cgroups", false, strerror(errno));
		rmdir(cg);
		return;
	}
	fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = fd < 0 ? -errno : devices_bpf_attach(fd, rules, n);
	check("the program loads and attaches (BPF_F_ALLOW_MULTI)", r == 0, strerror(-r));
	if (r == 0) {
		r = run_in(cg, dir);
		snprintf(msg, sizeof(msg), "probe step %d failed", r);
		check("in the cgroup: c 1:3 opens, b 7:0 EPERM (also a node made there)", r == 0,
		      msg);
		/* What dockerd/systemd inside do: their own program below. */
		int sfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		r = sfd < 0 ? -errno : devices_bpf_attach(sfd, &allow_all, 1);
		check("a program below attaches too", r == 0, strerror(-r));
		r = run_in(sub, dir);
		snprintf(msg, sizeof(msg), "probe step %d failed", r);
		check("below, an allow-all program does not widen the parent's", r == 0, msg);
		if (sfd >= 0)
			close(sfd);
	}
	if (fd >= 0)
		close(fd);
	if (rmdir(sub) < 0 || rmdir(cg) < 0)
		check("remove the test cgroups", false, strerror(errno));
}

int main(void)
{
	char dir[] = "/var/tmp/cvmfs-test-dev-XXXXXX", path[512];
	const char *root;

	test_parse();
	if (geteuid() != 0 || !(root = cgroup2_root())) {
		return check_skip("the device program needs root and a cgroup2 hierarchy");
	}
	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	snprintf(path, sizeof(path), "%s/null", dir);
	if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		snprintf(path, sizeof(path), "%s/loop", dir);
		if (mknod(path, S_IFBLK | 0600, makedev(7, 0)) == 0)
			test_bpf(root, dir);
		else
			check("mknod in the test dir", false, strerror(errno));
	} else {
		check("mknod in the test dir", false, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/null", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/loop", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/loop-made-inside", dir);
	unlink(path);
	rmdir(dir);
	return check_done();
}
