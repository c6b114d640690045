/* --net private: options, the CVM's resolv.conf, and the order of the
 * network's setup around the clone (doc/cvm-launch.md, Network). As root
 * (--no-userns) the launcher leases an address and wires a veth pair to
 * the host bridge (net_lease.c, net_rules.c); a CVM in a user namespace
 * gets a user-mode network instead (net_user.c), so that its launcher
 * changes nothing of the host's network. */
#include "net.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

bool net_private(const struct launch *L)
{
	return L->o.net && !strcmp(L->o.net, "private");
}

bool net_own_ns(const struct launch *L)
{
	return L->o.net && strcmp(L->o.net, "host") != 0;
}

void net_ntoa(uint32_t a, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

const char *net_addr_str(const struct launch *L, char buf[16])
{
	if (!L->addr)
		return "";
	net_ntoa(L->addr, buf);
	return buf;
}

static const char *const tool_dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };

static bool tool_path(const char *name, char *buf, size_t size)
{
	for (size_t i = 0; i < ARRAY_SIZE(tool_dirs); i++) {
		snprintf(buf, size, "%s/%s", tool_dirs[i], name);
		if (access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

bool net_tool(const char *name)
{
	char path[64];

	return tool_path(name, path, sizeof(path));
}

static _Noreturn void run_child(int in, int err, const char *path, const char *const argv[])
{
	sigset_t none;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	dup2(in >= 0 ? in : null, 0);
	dup2(null, 1);
	dup2(err, 2);
	execv(path, (char *const *)argv);
	_exit(127);
}

/* A failed tool's stderr, its last line, on ours (a daemonising tool
 * keeps a pipe open: a memfd has no such end). */
static void say_stderr(int err, const char *tool)
{
	char buf[1024], *last;
	ssize_t n = pread(err, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	last = strrchr(buf, '\n');
	log_error("%s: %s", tool, last ? last + 1 : buf);
}

/* The input in a memfd rather than a pipe: no SIGPIPE (which the launcher
 * does not block) if the tool exits unread, no size limit. */
static int input_fd(const char *input)
{
	_cleanup_close_ int fd = -EBADF;

	if (!input)
		return -EBADF;
	fd = memfd_create("stdin", MFD_CLOEXEC);
	if (fd < 0 || write_all(fd, input, strlen(input)) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int net_run(const char *input, bool quiet, const char *const argv[])
{
	_cleanup_close_ int err = memfd_create("stderr", MFD_CLOEXEC);
	_cleanup_close_ int in = input_fd(input);
	char path[64];
	int status;
	pid_t pid;

	if (!tool_path(argv[0], path, sizeof(path)))
		return -ENOENT;
	if (err < 0 || (input && in < 0))
		return err < 0 ? -errno : in;
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		run_child(in, err, path, argv);
	if (pid < 0)
		return -errno;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	if (status && !quiet)
		say_stderr(err, argv[0]);
	return status;
}

/* Left out, --net is private where the launcher can make it: pasta for a
 * CVM in a user namespace, ip and nft for one without; else none. */
int net_default(struct launch *L)
{
	bool can = L->o.userns ? net_tool("pasta")
			       : net_tool("ip") && net_tool("nft") && net_tool("nsenter");

	if (L->o.net)
		return 0;
	if (!can) /* the one line a missing feature gets (doc/kernel-features.md) */
		log_info("net: no %s here: --net none (lo only)",
			 L->o.userns ? "pasta" : "ip, nft or nsenter");
	L->o.net = strdup(can ? "private" : "none");
	return L->o.net ? 0 : -ENOMEM;
}

/* The host's resolv.conf, or systemd-resolved's list of upstream servers
 * when the host asks its local stub (127.0.0.53), which the CVM cannot
 * reach; loopback nameservers are left out either way. */
static int resolv_text(char *out, size_t size)
{
	char buf[8192];
	ssize_t n = read_regular_buf(AT_FDCWD, "/etc/resolv.conf", buf, sizeof(buf));
	size_t len = 0;

	if (n >= 0 && strstr(buf, "nameserver 127.") &&
	    read_regular_buf(AT_FDCWD, "/run/systemd/resolve/resolv.conf", buf, sizeof(buf)) >= 0)
		n = 0;
	if (n < 0)
		buf[0] = '\0';
	out[0] = '\0';
	for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "nameserver", 10) &&
		    (strstr(l + 10, " 127.") || strstr(l + 10, " ::1")))
			continue;
		int k = snprintf(out + len, size - len, "%s\n", l);

		if (k < 0 || (size_t)k >= size - len)
			break;
		len += (size_t)k;
	}
	return 0;
}

static int resolv_path(struct launch *L, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/net/%s.resolv.conf", L->o.run_dir, L->o.name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* A detached bind of the file, made by the parent (host root, in the
 * host's mount namespace) for the child, which moves it into place: in a
 * user namespace the child may not be able to walk to RUN_DIR, and a
 * plain bind from an fd of another mount namespace is refused. */
static int resolv_fd = -EBADF;

static int resolv_write(struct launch *L)
{
	char path[PATH_MAX], text[8192];
	_cleanup_close_ int fd = -EBADF;
	int r;

	if ((r = resolv_path(L, path, sizeof(path))) < 0)
		return step_error(L, r, "%s/net", L->o.run_dir);
	resolv_text(text, sizeof(text));
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
		return step_error(L, -errno, "%s", path);
	resolv_fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (resolv_fd < 0)
		return step_error(L, -errno, "%s", path);
	return 0;
}

int net_prepare(struct launch *L)
{
	struct net_range range;
	char dir[PATH_MAX];
	int r;

	if (!net_private(L))
		return 0;
	snprintf(dir, sizeof(dir), "%s/net", L->o.run_dir);
	if ((r = mkdir_p(dir, 0755)) < 0)
		return step_error(L, r, "%s", dir);
	if ((r = resolv_write(L)) < 0)
		return r;
	if (L->o.userns) {
		pasta_reclaim(L);
		return 0;
	}
	net_range_parse(L->o.net_range, &range); /* checked by step validate */
	snprintf(dir, sizeof(dir), NET_DIR "/%s", L->o.bridge);
	if ((r = mkdir_p(dir, 0755)) < 0)
		return step_error(L, r, "%s", dir);
	if ((r = name_lock(L)) < 0)
		return r;
	rules_del(L); /* a crashed launcher's, by name: ours (name_lock) */
	lease_reclaim_name(L);
	if ((r = bridge_lock(L)) == 0 && (r = bridge_ensure(L, &range)) == 0)
		r = lease_take(L, &range);
	bridge_unlock();
	return r;
}

int net_attach(struct launch *L)
{
	struct net_range range;
	int r;

	if (!net_private(L))
		return 0;
	L->step = "net";
	if (L->o.userns)
		return pasta_start(L);
	net_range_parse(L->o.net_range, &range);
	if ((r = rules_add(L, &range)) < 0 || (r = veth_attach(L, &range)) < 0)
		return r;
	return 0;
}

/* Inner child, mounts done, before pivot_root: the CVM's /etc/resolv.conf
 * (looked up inside its root: a symlink there never leads out of it) is
 * our copy of the host's. None in the image: nothing to cover. */
int net_child(struct launch *L)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	_cleanup_close_ int root = -EBADF, fd = -EBADF;
	struct stat st;

	if (!net_private(L) || resolv_fd < 0)
		return 0;
	root = open(L->mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return step_error(L, -errno, "%s", L->mnt);
	fd = (int)syscall(SYS_openat2, root, "etc/resolv.conf", &how, sizeof(how));
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (move_mount(resolv_fd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return step_error(L, -errno, "bind the host's resolv.conf on /etc/resolv.conf");
	return 0;
}

void net_undo(struct launch *L)
{
	char path[PATH_MAX];

	if (!net_private(L))
		return;
	pasta_stop(L);
	if (L->net_rules)
		rules_del(L);
	L->net_rules = false;
	if (L->lease_fd >= 0) {
		lease_drop(L);
		bridge_release(L);
	}
	name_unlock(L);
	if (resolv_fd >= 0)
		close(resolv_fd);
	resolv_fd = -EBADF;
	if (resolv_path(L, path, sizeof(path)) == 0)
		unlink(path);
}
