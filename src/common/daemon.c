#include "cvmfs/daemon.h"
#include "cvmfs/log.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void daemon_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("raising the open-file limit to %llu: %s", (unsigned long long)rl.rlim_max,
			 strerror(errno));
}

int daemon_fork(int *notify_fd)
{
	int pfd[2];
	pid_t pid;
	char status = 1;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(pfd[0]);
	setsid();
	*notify_fd = pfd[1];
	return 0;
}

int daemon_start(const char *prog, bool foreground, bool debug, int *notify_fd)
{
	int r;

	*notify_fd = -1;
	if (!foreground && (r = daemon_fork(notify_fd)) < 0)
		return log_error_errno(r, "daemonize");
	log_setup(prog, !foreground, debug);
	daemon_block_signals();
	return 0;
}

void daemon_ready(int notify_fd)
{
	char ok = 0;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (notify_fd < 0) {
		if (null >= 0)
			close(null);
		return;
	}
	if (write(notify_fd, &ok, 1) != 1)
		log_warn("lost the parent before reporting readiness");
	close(notify_fd);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

void daemon_block_signals(void)
{
	sigset_t set;

	stop_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int daemon_wait_stop(void (*on_hup)(void))
{
	sigset_t set;
	int sig = 0;

	stop_signals(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			return -EINTR;
		if (sig != SIGHUP)
			return sig;
		if (on_hup)
			on_hup();
	}
}

/* The main program's NT_GNU_BUILD_ID note, in hex. */
static int find_build_id(struct dl_phdr_info *info, size_t size, void *out)
{
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const char *p = (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
		const char *end = p + info->dlpi_phdr[i].p_memsz;

		if (info->dlpi_phdr[i].p_type != PT_NOTE)
			continue;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const void *)p;
			const unsigned char *desc = (const unsigned char *)(n + 1) + ((n->n_namesz + 3) & ~3u);

			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && n->n_descsz <= 64) {
				for (unsigned j = 0; j < n->n_descsz; j++)
					sprintf((char *)out + 2 * j, "%02x", desc[j]);
				return 1;
			}
			p = (const char *)desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return 1; /* the first object is the main program */
}

const char *daemon_build_id(void)
{
	static char id[129];

	if (!id[0] && (dl_iterate_phdr(find_build_id, id), !id[0]))
		snprintf(id, sizeof(id), "unknown");
	return id;
}
