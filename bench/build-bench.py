#!/usr/bin/env python3
"""A parallel build inside a --cpus 1 --cpuset 0-1 CVM (issue 18's speed
item), before and after sched_getaffinity is answered for the CVM (root;
about 5 minutes).

The build: `make -j$(nproc)` of FILES generated C files (no headers; each
~0.3 s of cc1 -O2 here) in the CVM's /tmp, with the host's gcc, cc1, as and
make copied into the image. Three ways, ROUNDS times each, interleaved:
  trapped    the default: the views' supervisor answers sched_getaffinity
             with ceil(quota) = 1 CPU, so nproc says 1 and make runs -j1;
  untrapped  the same filter, but no supervisor answered when the CVM
             started (its socket renamed away for that launch): nothing is
             trapped, nproc says 2, make runs -j2 against a quota of 1 CPU
             (what every CVM did before the supervisor);
  unconfined --seccomp unconfined: no filter at all (also -j2).
Reported per way: -jN, the median and best wall time, and the peak memory
of the CVM (its memory.max_usage_in_bytes, v1). The quota's throttling is
counted on cvmfs/NAME, out of the CVM's sight, and gone with it.

Usage: bench/build-bench.py [BUILD_DIR]   (default: build; ROUNDS=N, FILES=N)
Everything lives in a cvmfs-test-* temp dir and is removed at the end.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import benchprep  # noqa: E402
BUILD, LT = benchprep.launch_helpers('build-bench', sys.argv[1:2], ('gcc', 'make', 'as'))
T = LT.T

ROUNDS = int(os.environ.get('ROUNDS', '5'))
FILES = int(os.environ.get('FILES', '40'))

INSIDE = r'''
import os, subprocess, time
def cg(ctl, name):
    for base in ('/sys/fs/cgroup/%s' % ctl, '/sys/fs/cgroup'):
        try:
            return open('%s/%s' % (base, name)).read()
        except OSError:
            pass
    return ''
subprocess.run(['cp', '-r', '/proj', '/tmp/p'], check=True)
n = len(os.sched_getaffinity(0))
t0 = time.monotonic()
subprocess.run(['make', '-s', '-j%d' % n, '-C', '/tmp/p'], check=True)
print('jobs', n)
print('secs', time.monotonic() - t0)
print('peak_mib', int(cg('memory', 'memory.max_usage_in_bytes') or 0) / 2**20)
'''


def source(i):
    out = ['long f%d_%d(long x) { long s = 0; for (long j = 0; j < x; j++) { '
           's += (j * %d) ^ (s >> 3); if (s %% 7 == %d) s -= j; } return s + %d; }'
           % (i, k, k + 1, k % 7, i) for k in range(60)]
    out.append('long g%d(long x) { return %s; }'
               % (i, ' + '.join('f%d_%d(x)' % (i, k) for k in range(60))))
    return '\n'.join(out) + '\n'


def prepare(img):
    for prog in ('make', 'gcc', 'as', 'cp'):
        LT._add_program(img, shutil.which(prog))
    cc1 = subprocess.run(['gcc', '-print-prog-name=cc1'], stdout=subprocess.PIPE,
                         text=True).stdout.strip()
    LT._copy(cc1, img)
    LT._copy('/usr/include/stdc-predef.h', img)  # cc1 includes it first, always
    for lib in LT._libs(cc1):
        LT._copy(lib, img)
    proj = img + '/proj'
    os.makedirs(proj)
    for i in range(FILES):
        with open('%s/f%d.c' % (proj, i), 'w') as f:
            f.write(source(i))
    with open(proj + '/Makefile', 'w') as f:
        f.write('OBJ = %s\nall: $(OBJ)\n%%.o: %%.c\n\tgcc -O2 -c $< -o $@\n'
                % ' '.join('f%d.o' % i for i in range(FILES)))
    with open(img + '/build.py', 'w') as f:
        f.write(INSIDE)


def run(w, mode, holder):
    sock = holder.views + '.sock'
    extra = ['--seccomp', 'unconfined'] if mode == 'unconfined' else []
    if mode == 'untrapped':
        os.rename(sock, sock + '.off')
    try:
        p = T.popen(w.argv(*extra, memory='1G', cpus=1, cpuset='0-1', disk='2G',
                           cmd=['python3', '/build.py']),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if mode == 'untrapped':
            time.sleep(3)  # past the launcher's connect (a 1-3 s start here)
    finally:
        if mode == 'untrapped':
            os.rename(sock + '.off', sock)
    out, err = p.communicate(timeout=600)
    T.forget(p)
    if p.returncode != 0:
        sys.exit('%s: launch failed (%s): %s' % (mode, p.returncode, err.strip()[-1500:]))
    res = {k: float(v) for k, v in (line.split() for line in out.splitlines()
                                     if len(line.split()) == 2)}
    want = 1 if mode == 'trapped' else 2
    if res.get('jobs') != want:
        sys.exit('%s: nproc said %s, not %d: %s' % (mode, res.get('jobs'), want, err[-400:]))
    return res


def main():
    img = LT.image()
    prepare(img)
    # A CVM that holds the shared views daemon for the whole run, so that
    # its socket can be taken away for an untrapped launch.
    holder = LT.Workspace('bbench-hold')
    hp = T.popen(holder.argv(memory='256M', cmd=['sleep', '3600']), stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(holder.views + '.sock'):
            break
        time.sleep(0.05)
    w = LT.Workspace('bbench')
    w.views = holder.views
    res = {m: [] for m in ('trapped', 'untrapped', 'unconfined')}
    load = open('/proc/loadavg').read().split()[0]
    for _ in range(ROUNDS):
        for mode in res:
            res[mode].append(run(w, mode, holder))
    print('make -j$(nproc) of %d files (gcc -O2 -c) in a --cpus 1 --cpuset 0-1 CVM, %d rounds '
          'each, interleaved (load average before: %s)'
          % (FILES, ROUNDS, load))
    print('%-11s %4s %10s %10s %9s' % ('way', '-j', 'median s', 'best s', 'peak MiB'))
    for mode, rounds in res.items():
        secs = [r['secs'] for r in rounds]
        print('%-11s %4d %10.2f %10.2f %9.0f'
              % (mode, rounds[0]['jobs'], statistics.median(secs), min(secs),
                 statistics.median(r['peak_mib'] for r in rounds)))
        print('  all: %s' % ' '.join('%.2f' % x for x in secs))
    print('load average after: %s' % open('/proc/loadavg').read().split()[0])
    hp.terminate()
    T.cleanup_all()


if __name__ == '__main__':
    main()
