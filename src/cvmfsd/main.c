/* cvmfsd: one binary, one subcommand per daemon kind. */
#include "../disk/disk_main.h"
#include "../views/views_main.h"
#include "cvmfs/daemon.h"

#include <stdio.h>
#include <string.h>

/* The subcommands' options are in their own --help (from their option
 * tables), so that this list never falls behind them. */
static void usage(FILE *f)
{
	fprintf(f, "usage: cvmfsd COMMAND [OPTION...] MOUNTPOINT\n"
		   "Commands:\n"
		   "  views   per-container /proc and /sys views over FUSE, one daemon per host\n"
		   "  disk    the quota-enforced union file system of one workspace\n"
		   "Every option of a command: 'cvmfsd views --help', 'cvmfsd disk --help'.\n"
		   "See doc/cvmfsd.md and doc/cvmfsd-disk.md.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	daemon_raise_nofile();
	if (!strcmp(argv[1], "views"))
		return cvmfsd_views_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "disk"))
		return cvmfsd_disk_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "cvmfsd: unknown command '%s' (expected: views or disk)\n", argv[1]);
	return 2;
}
