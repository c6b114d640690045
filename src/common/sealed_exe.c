/* A process that enters a CVM runs our binary there until it execs the
 * CVM's command, and that command may be a script whose interpreter is
 * "/proc/self/exe": the kernel then starts our binary again, inside. A
 * process of the CVM can open it through /proc/PID/exe and, once we have
 * exited and it is no longer busy, reopen it for writing: where CVM root is
 * host root (cvm-launch --no-userns) that overwrites the host's binary
 * (CVE-2019-5736 in runc). Running from a sealed memfd copy leaves nothing
 * of the host's to open: /proc/self/exe is the copy, which no one can
 * write (F_SEAL_WRITE) and which goes away with its last user. */
#include "cvmfs/sealed_exe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable even under vm.memfd_noexec=1 */
#endif

#define SEALED_NAME "cvmfs-sealed-exe"

extern char **environ;

bool exe_is_sealed(void)
{
	char link[64];
	ssize_t n = readlink("/proc/self/exe", link, sizeof(link) - 1);

	if (n <= 0)
		return false;
	link[n] = '\0';
	return !strncmp(link, "/memfd:" SEALED_NAME, strlen("/memfd:" SEALED_NAME));
}

static int copy_all(int from, int to)
{
	struct stat st;
	off_t off = 0;

	if (fstat(from, &st) < 0)
		return -errno;
	while (off < st.st_size) {
		ssize_t n = sendfile(to, from, &off, (size_t)(st.st_size - off));

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

int exe_reexec_sealed(char **argv)
{
	int self, mfd, r;

	if (exe_is_sealed())
		return 0;
	self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	mfd = memfd_create(SEALED_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (mfd < 0 && errno == EINVAL) /* before 6.3 */
		mfd = memfd_create(SEALED_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	r = mfd < 0 ? -errno : copy_all(self, mfd);
	close(self);
	if (r == 0 && fcntl(mfd, F_ADD_SEALS,
			    F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		r = -errno;
	if (r == 0) {
		fexecve(mfd, argv, environ);
		r = -errno;
	}
	if (mfd >= 0)
		close(mfd);
	return r;
}
