/* RUN_DIR/launch/NAME.json: what cvmctl (doc/cvmctl.md) reads of a running
 * CVM: the launcher's and init's pids (init's start time too, so a reused
 * pid is told apart), its limits and its start. Written atomically (temp
 * file + rename) once CMD is exec'ed, removed when the launcher exits,
 * after its undos: a record whose launcher is gone is stale. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char record_path[PATH_MAX];
static pid_t record_owner; /* only the launcher removes it, not a fork */

static void record_remove(void)
{
	if (record_path[0] && getpid() == record_owner)
		unlink(record_path);
}

unsigned long long proc_start_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (pid <= 0 || read_at_buf(AT_FDCWD, path, buf, sizeof(buf)) < 0 ||
	    !(p = strrchr(buf, ')')))
		return 0;
	/* after ") ": state is field 3, start time field 22 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
		   "%*d %*d %*d %llu", &t) != 1)
		return 0;
	return t;
}

static int record_text(struct launch *L, char *buf, size_t size)
{
	char addr[16];

	return snprintf(buf, size,
			"{\"name\": \"%s\", \"launcher_pid\": %d, \"launcher_start\": %llu, "
			"\"init_pid\": %d, \"init_start\": %llu, \"started\": %lld, \"systemd\": %s, "
			"\"userns\": %s, \"net\": \"%s\", \"memory\": %llu, \"cpus\": \"%s\", "
			"\"cpuset\": \"%s\", \"disk\": %llu, \"pids\": %llu, \"trap\": \"%s\", \"address\": \"%s\"}\n",
			L->o.name, (int)getpid(), proc_start_ticks(getpid()), (int)L->child_pid,
			proc_start_ticks(L->child_pid), (long long)time(NULL),
			L->systemd ? "true" : "false", L->o.userns ? "true" : "false",
			L->o.net, (unsigned long long)L->o.memory, L->o.cpus ? L->o.cpus : "",
			L->o.cpuset ? L->o.cpuset : "", (unsigned long long)L->o.disk,
			(unsigned long long)L->o.pids, notif_socket() ? notif_socket() : "",
			net_addr_str(L, addr));
}

/* Once CMD is exec'ed. A failure costs only cvmctl's view: one warning. */
void record_write(struct launch *L)
{
	char tmp[PATH_MAX + 8], text[1536];
	_cleanup_close_ int fd = -EBADF;
	int len;

	if (L->child_pid <= 0)
		return; /* CMD already ended: nothing to record */
	len = record_text(L, text, sizeof(text));
	snprintf(record_path, sizeof(record_path), "%s/" CVMFS_LAUNCH_DIR "/%s" CVMFS_RECORD,
		 L->o.run_dir, L->o.name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", record_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || len < 0 || (size_t)len >= sizeof(text) ||
	    write_all(fd, text, (size_t)len) < 0 || rename(tmp, record_path) < 0) {
		log_warn("warning: %s: %s (cvmctl will not see CVM %s)", tmp,
			 strerror(errno ? errno : EINVAL), L->o.name);
		unlink(tmp);
		record_path[0] = '\0';
		return;
	}
	if (!record_owner)
		atexit(record_remove);
	record_owner = getpid();
}
