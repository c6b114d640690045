/* cvmctl stop: the CVM's init is asked to stop as it expects to be (systemd
 * in a container powers off on SIGRTMIN+4; any other init gets SIGTERM),
 * killed after --timeout; then we wait for its launcher to undo everything
 * (cgroups, disk, record) and exit. */
#include "ctl.h"
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_DEFAULT 30
/* The launcher's undos after init is gone: up to 30 s for its disk daemon. */
#define CLEANUP_TIMEOUT 60

static int pidfd_of(pid_t pid, unsigned long long start)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0 && proc_start_ticks(pid) != start) {
		close(fd);
		return -ESRCH;
	}
	return fd < 0 ? -errno : fd;
}

/* 1 once the process of pidfd has exited, 0 at the timeout. */
static int wait_pidfd(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n > 0;
}

static int signal_init(int fd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0 && errno != ESRCH
		       ? -errno : 0;
}

int ctl_stop(const struct ctl_opts *o, const char *name)
{
	int timeout = o->timeout ? (int)MIN(o->timeout, 86400) : STOP_TIMEOUT_DEFAULT;
	_cleanup_close_ int init = -EBADF, launcher = -EBADF;
	struct cvm c;
	int sig;

	if (cvm_find(o->run_dir, name, &c) < 0)
		return CTL_EXIT_FAIL;
	launcher = pidfd_of(c.launcher_pid, c.launcher_start);
	init = pidfd_of(c.init_pid, c.init_start);
	if (launcher < 0 || init < 0) {
		log_error("%s: stopped while we looked", name);
		return CTL_EXIT_FAIL;
	}
	sig = c.systemd ? SIGRTMIN + 4 : SIGTERM;
	if (signal_init(init, sig) < 0) {
		log_error("stop: %s: signal %d to init (pid %d): %s", name, sig, (int)c.init_pid,
			  strerror(errno));
		return CTL_EXIT_FAIL;
	}
	if (!wait_pidfd(init, timeout * 1000)) {
		log_warn("stop: %s: init (pid %d) still there after %d s: SIGKILL", name,
			 (int)c.init_pid, timeout);
		signal_init(init, SIGKILL);
	}
	if (!wait_pidfd(launcher, CLEANUP_TIMEOUT * 1000)) {
		log_error("stop: %s: the launcher (pid %d) has not exited %d s after its init",
			  name, (int)c.launcher_pid, CLEANUP_TIMEOUT);
		return CTL_EXIT_FAIL;
	}
	/* A launcher killed outright leaves its record: it is stale now. */
	cvm_remove_record(o->run_dir, name);
	return 0;
}
