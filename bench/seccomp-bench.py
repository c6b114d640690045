#!/usr/bin/env python3
"""The cost of cvm-launch's default seccomp filter, side by side in one run
(root; about 2 minutes).

Inside one CVM image, launched alternately with the default filter and with
--seccomp unconfined (ROUNDS times each, interleaved, both in the default
mode), these workloads:
  getppid   a tight loop of getppid(2) (the cheapest system call: the
            filter's share is largest), ns per call
  getpid    getpid(2) (raw syscall, no libc cache), ns per call
  read      read(2) of 1 byte from /dev/zero, ns per call
  futex     FUTEX_WAKE on a word nobody waits on, ns per call
  stat      stat(2) of /etc/passwd in a loop, ns per call
  sysinfo   sysinfo(2): with the filter it is trapped and answered by the
            views daemon's supervisor; unconfined, the kernel's; ns per call
  affinity  sched_getaffinity(0, 128, ...): trapped likewise, ns per call
  untar     tar -x of a tarball of /usr/share/doc into the CVM's /tmp
            (tmpfs: thousands of open/write/close/utimensat/chmod), seconds
Reported: the median and the best (minimum) of each, and filter/unconfined
for both (the minimum is the steadier figure on a busy machine).

Usage: bench/seccomp-bench.py [BUILD_DIR]   (default: build)
From a clean clone: installs the dependencies if a tool is missing and
configures and builds BUILD_DIR (bench/benchprep.py). Everything lives in a
cvmfs-test-* temp dir and is removed at the end; the CVMs read an empty
config there (launchtest.Workspace), never the host's /etc/cvmfs/cvmfs.conf.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import benchprep  # noqa: E402
# Root, the dependencies (scripts/deps.sh if a tool is missing), the build.
BUILD, LT = benchprep.launch_helpers('seccomp-bench', sys.argv[1:2], ('gcc', 'tar', 'fusermount3'))
T = LT.T

ROUNDS = 9
LOOP_C = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
	long n = atol(argv[2]);
	struct stat st;
	struct sysinfo si;
	static int word;
	unsigned long mask[16];
	char c;
	int fd = open("/dev/zero", O_RDONLY);
	const char *w = argv[1];
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (!strcmp(w, "getppid"))
			getppid();
		else if (!strcmp(w, "getpid"))
			syscall(SYS_getpid);
		else if (!strcmp(w, "read"))
			(void)!read(fd, &c, 1);
		else if (!strcmp(w, "futex"))
			syscall(SYS_futex, &word, FUTEX_WAKE, 1, NULL, NULL, 0);
		else if (!strcmp(w, "sysinfo"))
			sysinfo(&si);
		else if (!strcmp(w, "affinity"))
			syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
		else
			stat("/etc/passwd", &st);
	}
	printf("%s %.1f\n", argv[1], (now() - t0) / n * 1e9);
	return 0;
}
'''


def prepare(img, tmp):
    src = os.path.join(tmp, 'loop.c')
    with open(src, 'w') as f:
        f.write(LOOP_C)
    subprocess.run(['gcc', '-O2', '-static', '-o', img + '/usr/bin/sysloop', src], check=True)
    tar = shutil.which('tar')
    LT._copy(os.path.realpath(tar), img)
    for lib in LT._libs(tar):
        LT._copy(lib, img)
    if not os.path.lexists(img + '/usr/bin/tar'):
        os.symlink(os.path.realpath(tar), img + '/usr/bin/tar')
    with tarfile.open(img + '/doc.tar', 'w') as t:
        t.add('/usr/share/doc', arcname='doc')
    return sum(len(fs) for _, _, fs in os.walk('/usr/share/doc'))


SCRIPT = ('sysloop getppid 5000000; sysloop getpid 5000000; sysloop read 3000000; '
          'sysloop futex 3000000; sysloop stat 2000000; sysloop sysinfo 20000; '
          'sysloop affinity 20000; mkdir /tmp/x; '
          'python3 -c "import subprocess, time; t = time.monotonic(); '
          'subprocess.run([\'tar\', \'-xf\', \'/doc.tar\', \'-C\', \'/tmp/x\'], check=True); '
          'print(\'untar\', time.monotonic() - t)"')


def run(w, mode):
    extra = ['--seccomp', 'unconfined'] if mode == 'unconfined' else []
    rc, out, err = w.launch(*extra, cmd=['/bin/sh', '-c', SCRIPT], memory='1G', disk='2G',
                            timeout=300)
    if rc != 0:
        sys.exit('launch failed (%s): %s' % (rc, err.strip()[-300:]))
    return {k: float(v) for k, v in (line.split() for line in out.splitlines()
                                     if len(line.split()) == 2)}


def main():
    img = LT.image()
    files = prepare(img, T.tempdir('sbench-'))
    w = LT.Workspace('sbench')
    res = {'default': [], 'unconfined': []}
    for _ in range(ROUNDS):
        for mode in ('default', 'unconfined'):
            res[mode].append(run(w, mode))
    print('seccomp filter cost, %d rounds each, interleaved; untar: %d files of /usr/share/doc'
          % (ROUNDS, files))
    print('filter: the default filter, sysinfo and affinity answered by the supervisor; '
          'unconfined: no filter, the kernel\'s answers')
    print('%-10s %12s %12s %7s   %12s %12s %7s' % ('workload', 'filter', 'unconfined', 'ratio',
                                                  'best filter', 'best unconf', 'ratio'))
    for key, unit in (('getppid', 'ns'), ('getpid', 'ns'), ('read', 'ns'), ('futex', 'ns'),
                      ('stat', 'ns'), ('sysinfo', 'ns'), ('affinity', 'ns'), ('untar', 's')):
        a = [r[key] for r in res['default']]
        b = [r[key] for r in res['unconfined']]
        ma, mb, la, lb = statistics.median(a), statistics.median(b), min(a), min(b)
        print('%-10s %9.3f %-2s %9.3f %-2s %7.3f   %9.3f %-2s %9.3f %-2s %7.3f'
              % (key, ma, unit, mb, unit, ma / mb, la, unit, lb, unit, la / lb))
    if os.environ.get('SECCOMP_BENCH_ALL'):
        for mode, rounds in res.items():
            print(mode, [[round(r[k], 3) for k in sorted(r)] for r in rounds])
    T.cleanup_all()


if __name__ == '__main__':
    main()
