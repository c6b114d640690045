/* cvmfsd: one binary, one subcommand per daemon kind. */
#include "../disk/disk_main.h"
#include "../views/views_main.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: cvmfsd views [-f] [-d] [-c FILE] [--cgroup-root DIR] [--proc-root DIR]\n"
		   "                    [-o FUSEOPTS] MOUNTPOINT\n"
		   "       cvmfsd disk [-f] [-d] --name NAME --data DATA --limit SIZE [--inodes N]\n"
		   "                   [--image DIR[:DIR...]] [--run-dir DIR] [-c FILE]\n"
		   "                   [-o FUSEOPTS] MOUNTPOINT\n"
		   "See cvmfsd(8) in doc/cvmfsd.md and doc/cvmfsd-disk.md.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
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
