#!/usr/bin/env python3
"""fuse-rtt.py: the fixed cost of one FUSE request, cvmfsd disk (with and
without passthrough) against fuse-overlayfs and native ext4, side by side
in one run.

    python3 bench/fuse-rtt.py [BUILD_DIR]        (as root; default build)

From a clean clone: installs the dependencies (scripts/deps.sh) if a tool
is missing and builds BUILD_DIR (scripts/build.sh) first.

Every metadata-heavy figure of the disk (untar, cold find, Docker builds)
is a request count times this cost, so it is worth measuring alone:

  isatty     ioctl(TCGETS) on an open file: one request that neither
             daemon handles (libfuse answers ENOSYS, the kernel returns
             ENOTTY and asks again next time): transport only
  open+close open(O_RDONLY) and close of a 4 KiB file whose entry and
             attributes the kernel has: OPEN (and a RELEASE the caller does
             not wait for)
  open+read  the same with a read of the whole file, 4 KiB (from the
             page cache after the first round) and 1 MiB (which cvmfsd disk
             hands to the kernel: FUSE passthrough from 128 KiB up)
  stat       fstat of an open file with valid attributes: no request, the
             kernel's own path (the floor)

Each figure is the median of 5 rounds of N calls (FUSE_RTT_N, default
5000), the targets taking turns; printed as µs per call and as ratios to
native. Everything lives in one mktemp -d /tmp/cvmfs-test-rtt-XXXX; the
daemons are started as children, stopped by pid, their mounts unmounted,
the directory removed, whatever happens.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import benchprep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get('FUSE_RTT_N', 5000))
ROUNDS = 5
TOOLS = ('fuse-overlayfs', 'fusermount3', 'umount')


def die(msg):
    print('fuse-rtt: ' + msg, file=sys.stderr)
    sys.exit(1)


def wait_mounted(path, proc, what):
    for _ in range(500):
        if os.path.ismount(path):
            return
        if proc.poll() is not None:
            die('%s exited with %d' % (what, proc.returncode))
        time.sleep(0.02)
    die('%s did not mount %s' % (what, path))


def per_call(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def workloads(path, big):
    fd = os.open(path, os.O_RDONLY)

    def isatty():
        os.isatty(fd)

    def open_close():
        os.close(os.open(path, os.O_RDONLY))

    def open_read_close():
        f = os.open(path, os.O_RDONLY)
        os.read(f, 8192)
        os.close(f)

    def open_read_big_close():
        f = os.open(big, os.O_RDONLY)
        while os.read(f, 1 << 20):
            pass
        os.close(f)

    def fstat():
        os.fstat(fd)
    return fd, (('isatty', isatty), ('open+close', open_close),
                ('open+read 4 KiB+close', open_read_close),
                ('open+read 1 MiB+close', open_read_big_close), ('stat', fstat))


def main():
    if os.geteuid() != 0:
        die('must run as root')
    build = benchprep.prepare('fuse-rtt', sys.argv[1:2], TOOLS)
    cvmfsd = os.path.join(build, 'src', 'cvmfsd')
    if not os.access(cvmfsd, os.X_OK):
        die('%s missing after building %s' % (cvmfsd, build))
    for tool in TOOLS:
        if not shutil.which(tool):
            die('missing tool: %s (not installed by scripts/deps.sh)' % tool)
    tmp = tempfile.mkdtemp(prefix='cvmfs-test-rtt-')
    procs, mounts = [], []
    try:
        d = {k: os.path.join(tmp, k) for k in ('native', 'lower', 'upper', 'work', 'fo', 'run')}
        for p in d.values():
            os.makedirs(p)
        open(os.path.join(tmp, 'none.conf'), 'w').close()
        fo = subprocess.Popen(['fuse-overlayfs', '-f', '-o', 'lowerdir=%s,upperdir=%s,workdir=%s'
                               % (d['lower'], d['upper'], d['work']), d['fo']],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(fo)
        mounts.append(d['fo'])
        wait_mounted(d['fo'], fo, 'fuse-overlayfs')
        for name, extra in (('disk', []), ('disk-np', ['--no-passthrough'])):
            top = os.path.join(tmp, name)
            os.makedirs(top)
            disk = subprocess.Popen([cvmfsd, 'disk', '-f', '--name', name,
                                     '--data', os.path.join(tmp, name + '.data'),
                                     '--run-dir', d['run'], '--limit', '1G', '--image', d['lower'],
                                     '-c', os.path.join(tmp, 'none.conf')] + extra + [top],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(disk)
            mounts.append(top)
            wait_mounted(top, disk, 'cvmfsd disk')
        targets = (('native ext4', d['native']), ('fuse-overlayfs', d['fo']),
                   ('cvmfsd disk', os.path.join(tmp, 'disk')),
                   ('cvmfsd disk --no-passthrough', os.path.join(tmp, 'disk-np')))
        fds, loads = [], {}
        for label, top in targets:
            f, g = os.path.join(top, 'f'), os.path.join(top, 'g')
            with open(f, 'wb') as out:
                out.write(b'x' * 4096)
            with open(g, 'wb') as out:
                out.write(os.urandom(1 << 20))
            fd, loads[label] = workloads(f, g)
            fds.append(fd)
        res = {}
        for _ in range(ROUNDS):
            for label, _top in targets:
                for name, fn in loads[label]:
                    per_call(fn, N // 10)  # warm
                    res.setdefault((label, name), []).append(per_call(fn, N))
        for fd in fds:
            os.close(fd)
        report(targets, res)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for m in mounts:
            if os.path.ismount(m):
                subprocess.run(['fusermount3', '-u', m], stderr=subprocess.DEVNULL)
            if os.path.ismount(m):
                subprocess.run(['umount', '-l', m], stderr=subprocess.DEVNULL)
        if not any(os.path.ismount(m) for m in mounts):
            shutil.rmtree(tmp, ignore_errors=True)


def report(targets, res):
    names = ('isatty', 'open+close', 'open+read 4 KiB+close', 'open+read 1 MiB+close', 'stat')
    print('## FUSE request cost (%s, %d CPUs, %s; median of %d rounds of %d calls)\n'
          % (time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime()), os.cpu_count(),
             os.uname().release, ROUNDS, N))
    print('| call (µs) | ' + ' | '.join(t for t, _ in targets) + ' | ' +
          ' | '.join('%s ÷ native' % t for t, _ in targets[1:]) + ' |')
    print('|---|' + '---:|' * (2 * len(targets) - 1))
    for name in names:
        med = [statistics.median(res[(t, name)]) for t, _ in targets]
        print('| %s | %s | %s |' % (name, ' | '.join('%.2f' % m for m in med),
                                    ' | '.join('%.1fx' % (m / med[0]) for m in med[1:])))


if __name__ == '__main__':
    main()
