/* --net private in a user namespace: pasta (Debian's passt) gives the CVM
 * a tap interface eth0 and carries its traffic through sockets of its own
 * on the host, so the launcher changes nothing of the host's network.
 * pasta forwards nothing but --publish (-t/-u); -T/-U none: no port of
 * the host's loopback shows inside; --no-map-gw: the gateway address is
 * not the host. It runs outside the CVM, as nobody once set up, and is
 * stopped by pid (RUN_DIR/net/NAME.pasta.pid) at exit or at the next
 * launch of NAME. */
#include "net.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PASTA_ARGS (16 + 2 * NET_MAX_PUBLISH)

static void pid_path(struct launch *L, char *buf, size_t size)
{
	snprintf(buf, size, "%s/net/%s.pasta.pid", L->o.run_dir, L->o.name);
}

/* -t HOST:CVM per TCP port, -u per UDP port, "none" for a protocol with no
 * port (pasta's default would forward every port bound inside). */
static int ports_args(struct launch *L, const char **argv, int n, char (*spec)[16])
{
	struct net_publish pub[NET_MAX_PUBLISH];
	size_t np = 0;
	int tcp = 0, udp = 0;

	if (L->o.publish)
		net_publish_parse(L->o.publish, pub, &np); /* checked by step validate */
	for (size_t i = 0; i < np; i++) {
		bool is_tcp = !strcmp(pub[i].proto, "tcp");

		snprintf(spec[i], 16, "%u:%u", pub[i].host_port, pub[i].cvm_port);
		argv[n++] = is_tcp ? "-t" : "-u";
		argv[n++] = spec[i];
		*(is_tcp ? &tcp : &udp) += 1;
	}
	if (!tcp) {
		argv[n++] = "-t";
		argv[n++] = "none";
	}
	if (!udp) {
		argv[n++] = "-u";
		argv[n++] = "none";
	}
	return n;
}

int pasta_start(struct launch *L)
{
	char pidf[PATH_MAX], userns[64], netns[64], spec[NET_MAX_PUBLISH][16], buf[32], as[48];
	const char *argv[PASTA_ARGS];
	int n = 0, e;

	pid_path(L, pidf, sizeof(pidf));
	snprintf(userns, sizeof(userns), "/proc/%d/ns/user", (int)L->child_pid);
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", (int)L->child_pid);
	/* Root: only root may join the CVM's namespaces (this pasta opens
	 * them after its change of uid); it sandboxes itself once set up. */
	snprintf(as, sizeof(as), "0:0");
	const char *fixed[] = { "pasta", "--config-net", "-q", "--no-map-gw", "-I", "eth0",
				"-T", "none", "-U", "none", "-P", pidf, "--runas", as, "--userns", userns,
				"--netns", netns };
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		argv[n++] = fixed[i];
	n = ports_args(L, argv, n, spec);
	argv[n] = NULL;
	e = net_run(NULL, false, argv);
	if (e != 0)
		return step_error(L, e < 0 ? e : -EIO, "pasta (user-mode network)");
	if (read_regular_buf(AT_FDCWD, pidf, buf, sizeof(buf)) <= 0 ||
	    (L->pasta_pid = (pid_t)atoi(buf)) <= 0)
		return step_error(L, -ESRCH, "pasta: no pid in %s", pidf);
	return 0;
}

/* The pid in NAME's pid file, if it is still a pasta. */
static pid_t pasta_of(struct launch *L)
{
	char pidf[PATH_MAX], comm[64], buf[32];
	pid_t pid;

	pid_path(L, pidf, sizeof(pidf));
	if (read_regular_buf(AT_FDCWD, pidf, buf, sizeof(buf)) <= 0 || (pid = atoi(buf)) <= 0)
		return 0;
	snprintf(pidf, sizeof(pidf), "/proc/%d/comm", (int)pid);
	/* Debian's pasta runs as passt.avx2 where the CPU has AVX2. */
	if (read_regular_buf(AT_FDCWD, pidf, comm, sizeof(comm)) <= 0 ||
	    (strncmp(comm, "pasta", 5) && strncmp(comm, "passt", 5)))
		return 0;
	return pid;
}

static void pasta_kill(struct launch *L, pid_t pid)
{
	char pidf[PATH_MAX];

	if (pid > 0 && kill(pid, SIGTERM) == 0 && wait_exit(pid, false, 5) == -ETIMEDOUT)
		kill(pid, SIGKILL);
	pid_path(L, pidf, sizeof(pidf));
	unlink(pidf);
}

void pasta_stop(struct launch *L)
{
	if (L->pasta_pid > 0)
		pasta_kill(L, pasta_of(L) == L->pasta_pid ? L->pasta_pid : 0);
	L->pasta_pid = 0;
}

void pasta_reclaim(struct launch *L)
{
	pasta_kill(L, pasta_of(L));
}
