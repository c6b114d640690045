/* disk_scale: the two bulk steps of bench/disk-scale.sh and of the scale
 * test, which would take minutes in a shell or Python loop.
 *
 *   disk_scale mktree DIR NFILES [PERDIR [JOBS]]
 *       makes DIR/dNNNNN/NNNNN: NFILES empty regular files, PERDIR (default
 *       1000) per directory, with mknodat (no open/close per file), in JOBS
 *       processes (default 2: the filesystem's work is the cost);
 *   disk_scale walk DIR
 *       lstat()s every object below DIR (a FUSE LOOKUP each, so the kernel
 *       then holds an inode for every one) and prints how many it saw.
 *
 * Exit status 0, or 1 with a message naming the path that failed. */
#include "cvmfs/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "disk_scale: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

/* Directories job, job + jobs, ... of the tree. */
static int mktree_part(int root, unsigned long nfiles, unsigned long perdir, unsigned job,
		       unsigned jobs)
{
	char name[32];

	for (unsigned long d = job; d * perdir < nfiles; d += jobs) {
		_cleanup_close_ int dfd = -EBADF;

		snprintf(name, sizeof(name), "d%05lu", d);
		if (mkdirat(root, name, 0755) < 0 && errno != EEXIST)
			return fail("mkdir", name);
		dfd = openat(root, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return fail("open", name);
		for (unsigned long f = 0; f < perdir && d * perdir + f < nfiles; f++) {
			snprintf(name, sizeof(name), "%05lu", f);
			if (mknodat(dfd, name, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
				return fail("mknod", name);
		}
	}
	return 0;
}

static int mktree(const char *dir, unsigned long nfiles, unsigned long perdir, unsigned jobs)
{
	_cleanup_close_ int root = -EBADF;
	int status, r = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return fail("mkdir", dir);
	root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return fail("open", dir);
	if (!perdir || !jobs || jobs > 64) {
		fprintf(stderr, "disk_scale: PERDIR and JOBS (1..64) must be positive\n");
		return 2;
	}
	for (unsigned j = 1; j < jobs; j++) {
		pid_t pid = fork();

		if (pid < 0)
			return fail("fork", dir);
		if (pid == 0)
			_exit(mktree_part(root, nfiles, perdir, j, jobs));
	}
	r = mktree_part(root, nfiles, perdir, 0, jobs);
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			r = 1;
	return r;
}

/* Takes dfd. Returns the number of objects below it, or -1. */
static long walk(int dfd, const char *path)
{
	_cleanup_closedir_ DIR *d = fdopendir(dfd);
	struct dirent *de;
	struct stat st;
	long n = 0, sub;

	if (!d) {
		close(dfd);
		fail("opendir", path);
		return -1;
	}
	while ((de = readdir(d))) {
		int cfd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			fail("lstat", de->d_name);
			return -1;
		}
		n++;
		if (!S_ISDIR(st.st_mode))
			continue;
		cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			fail("open", de->d_name);
			return -1;
		}
		sub = walk(cfd, de->d_name);
		if (sub < 0)
			return -1;
		n += sub;
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "mktree"))
		return mktree(argv[2], strtoul(argv[3], NULL, 10),
			      argc > 4 ? strtoul(argv[4], NULL, 10) : 1000,
			      argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 2);
	if (argc == 3 && !strcmp(argv[1], "walk")) {
		int fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		long n = fd < 0 ? -1 : walk(fd, argv[2]);

		if (fd < 0)
			return fail("open", argv[2]);
		if (n < 0)
			return 1;
		printf("%ld\n", n);
		return 0;
	}
	fprintf(stderr, "usage: disk_scale mktree DIR NFILES [PERDIR [JOBS]] | walk DIR\n");
	return 2;
}
