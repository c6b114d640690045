/* Small process and path helpers of the launcher's parent. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A process's first environment inside a CVM: nothing of the host's but
 * TERM, the usual PATH, and HOME. */
int env_fresh(const char *home)
{
	const char *term = getenv("TERM");
	char term_copy[64] = "";

	if (term)
		snprintf(term_copy, sizeof(term_copy), "%s", term);
	if (clearenv() != 0 ||
	    setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1) < 0 ||
	    setenv("HOME", home, 1) < 0 || (term_copy[0] && setenv("TERM", term_copy, 1) < 0))
		return -ENOMEM;
	return 0;
}

bool is_mountpoint(const char *path)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
		return false;
	return stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT &&
	       stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
}

/* fork + exec of a helper daemon. It gets its own session, so a terminal's
 * ^C reaches the CVM through our forwarding, not the daemons behind it, and
 * the signal mask we block in the parent is cleared. */
pid_t spawn(char *const argv[], bool quiet)
{
	sigset_t none;
	pid_t pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	int null = open("/dev/null", O_RDWR);

	if (null >= 0) {
		dup2(null, 0);
		if (quiet)
			dup2(null, 1);
	}
	execv(argv[0], argv);
	log_error("exec %s: %s", argv[0], strerror(errno));
	_exit(127);
}

/* Wait for pid to end, up to timeout_s. A child of ours is reaped and its
 * wait status returned; any other process is watched through a pidfd and 0
 * returned. -ETIMEDOUT if it is still there. */
int wait_exit(pid_t pid, bool is_child, double timeout_s)
{
	_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int status = 0;

	if (pfd < 0)
		return errno == ESRCH ? 0 : -errno;
	struct pollfd p = { pfd, POLLIN, 0 };
	int r = poll(&p, 1, (int)(timeout_s * 1000));

	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	if (is_child && waitpid(pid, &status, 0) < 0)
		return -errno;
	return status;
}

void launch_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGCHLD);
}
