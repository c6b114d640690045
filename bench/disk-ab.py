#!/usr/bin/env python3
"""disk-ab.py: the request path of two cvmfsd disk builds, paired.

    bench/disk-ab.py [BUILD] BASELINE_BUILD      (as root)

Issue 17's rule is that no request path gets more than 2 % slower. The
whole-workload bench (disk-bench.sh) cannot show 2 %: its run-to-run spread
is larger. This one is built to resolve it:
  - three mounts in one run on one fresh ext4 (a loop-mounted sparse file):
    `this` (BUILD's cvmfsd disk), `this-2` (the same binary again: an A/A
    control whose spread is the measurement's own noise) and `base`
    (BASELINE's);
  - small workloads that live on the request path with the backing
    filesystem warm (no disk reads): create, lookup after the kernel
    dropped its dentries and inodes (echo 2 > drop_caches: FORGET and
    LOOKUP, ext4's blocks stay cached), stat, open+read+close, chmod,
    rename, unlink, mkdir+rmdir;
  - DISK_AB_ROUNDS rounds (default 15); in each round every workload runs
    on the three mounts in a fresh random order;
  - per round and workload, the time the workload took and the CPU time
    the daemon spent (supervisor and servers, every thread:
    se.sum_exec_runtime, ns resolution);
  - reported as the median of the per-round ratios this ÷ base and
    this-2 ÷ this, with their interquartile range: a cost shows as a
    this ÷ base median above 1 by more than the A/A control's spread.
Workload size: DISK_AB_FILES (default 4000) files per round.
Everything lives under one mktemp -d /tmp/cvmfs-test-diskab-XXXX; daemons
are stopped by pid, mounts unmounted, the temp dir removed, whatever
happens.
"""
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchprep  # noqa: E402

ROUNDS = int(os.environ.get('DISK_AB_ROUNDS', '15'))
NFILES = int(os.environ.get('DISK_AB_FILES', '4000'))
WHO = 'disk-ab'


def die(msg):
    sys.exit('%s: %s' % (WHO, msg))


def tasks_of(pid):
    """Every thread of pid and of its child processes (the servers)."""
    out = []
    try:
        kids = []
        for t in os.listdir('/proc/%d/task' % pid):
            out.append('/proc/%d/task/%s' % (pid, t))
            with open('/proc/%d/task/%s/children' % (pid, t)) as f:
                kids += [int(k) for k in f.read().split()]
        for k in kids:
            out += tasks_of(k)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def cpu_ns(pid):
    total = 0.0
    for t in tasks_of(pid):
        try:
            with open(t + '/sched') as f:
                for line in f:
                    if line.startswith('se.sum_exec_runtime'):
                        total += float(line.split(':')[1]) * 1e6
        except FileNotFoundError:
            pass
    return total


class Mounts:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='cvmfs-test-diskab-', dir='/tmp')
        self.fs = os.path.join(self.tmp, 'fs')
        self.fs_mounted = False
        self.daemons = []  # (pid, mountpoint)

    def make_fs(self):
        img = os.path.join(self.tmp, 'fs.img')
        with open(img, 'wb') as f:
            f.truncate(2 << 30)
        subprocess.run(['mkfs.ext4', '-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0',
                        img], check=True)
        os.mkdir(self.fs)
        subprocess.run(['mount', '-o', 'loop', img, self.fs], check=True)
        self.fs_mounted = True
        lower = os.path.join(self.fs, 'lower', 'dir')
        os.makedirs(lower)
        with open(os.path.join(lower, 'readme'), 'w') as f:
            f.write('hello\n')
        open(os.path.join(self.tmp, 'empty.conf'), 'w').close()

    def start(self, label, cvmfsd):
        d = os.path.join(self.fs, label)
        mnt = os.path.join(d, 'mnt')
        os.makedirs(mnt)
        log = open(os.path.join(d, 'log'), 'w')
        p = subprocess.Popen([cvmfsd, 'disk', '-f', '-c', os.path.join(self.tmp, 'empty.conf'),
                              '--name', 'cvmfs-test-diskab-%d-%s' % (os.getpid(), label),
                              '--data', os.path.join(d, 'data'), '--limit', '8G',
                              '--image', os.path.join(self.fs, 'lower'),
                              '--run-dir', os.path.join(self.tmp, 'run'), mnt],
                             stdout=log, stderr=subprocess.STDOUT)
        self.daemons.append((p, mnt))
        for _ in range(100):
            if os.path.ismount(mnt):
                return p.pid, mnt
            if p.poll() is not None:
                break
            time.sleep(0.1)
        die('%s: not mounted (see %s)' % (label, os.path.join(d, 'log')))

    def close(self):
        for p, _ in self.daemons:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, mnt in self.daemons:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if os.path.ismount(mnt):
                if subprocess.run(['fusermount3', '-u', mnt]).returncode != 0:
                    subprocess.run(['umount', '-l', mnt])
        if self.fs_mounted and subprocess.run(['umount', self.fs]).returncode != 0:
            subprocess.run(['umount', '-l', self.fs])
        if not any(line.split()[4].startswith(self.tmp + '/')
                   for line in open('/proc/self/mountinfo')):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print('%s: something still mounted under %s; left in place' % (WHO, self.tmp),
                  file=sys.stderr)


def drop_dentries():
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2')


def settle(pids):
    """Wait (at most 2 s) until no daemon is working on something left over
    (the FORGETs a drop sends every mount, a release still in flight), so
    that a measurement counts only its own workload."""
    last = None
    for _ in range(40):
        now = [cpu_ns(p) for p in pids]
        if now == last:
            return
        last = now
        time.sleep(0.05)


# Each workload: (key, label, function of the round's directory). They run
# in this order within a round, each on the files the one before left.
BUF = b'x' * 4096


def w_create(d):
    os.mkdir(d)
    for i in range(NFILES):
        fd = os.open('%s/f%d' % (d, i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, BUF)
        os.close(fd)


def w_lookup(d):
    for i in range(NFILES):
        os.lstat('%s/f%d' % (d, i))


def w_read(d):
    for i in range(NFILES):
        fd = os.open('%s/f%d' % (d, i), os.O_RDONLY)
        os.read(fd, 4096)
        os.close(fd)


def w_chmod(d):
    for i in range(NFILES):
        os.chmod('%s/f%d' % (d, i), 0o600)


def w_rename(d):
    for i in range(NFILES):
        os.rename('%s/f%d' % (d, i), '%s/g%d' % (d, i))


def w_unlink(d):
    for i in range(NFILES):
        os.unlink('%s/g%d' % (d, i))
    os.rmdir(d)


def w_mkdir(d):
    for i in range(NFILES // 4):
        os.mkdir('%s-d%d' % (d, i))
    for i in range(NFILES // 4):
        os.rmdir('%s-d%d' % (d, i))


WORKLOADS = [
    ('create', 'create + write 4 KiB + close', w_create, False),
    ('lookup', 'lstat after the kernel dropped dentries (LOOKUP)', w_lookup, True),
    ('read', 'open + read 4 KiB + close', w_read, False),
    ('chmod', 'chmod (SETATTR)', w_chmod, False),
    ('rename', 'rename', w_rename, False),
    ('unlink', 'unlink', w_unlink, False),
    ('mkdir', 'mkdir + rmdir (a quarter as many)', w_mkdir, False),
]


def run_rounds(targets):
    """samples[key][label] = [(seconds, daemon cpu ns)] per round."""
    samples = {k: {t: [] for t in targets} for k, *_ in WORKLOADS}
    for r in range(ROUNDS):
        for key, _, fn, drop in WORKLOADS:
            order = list(targets)
            random.shuffle(order)
            for t in order:
                pid, mnt = targets[t]
                os.sync()
                if drop:
                    drop_dentries()
                settle([p for p, _ in targets.values()])
                c0, t0 = cpu_ns(pid), time.perf_counter()
                fn('%s/r%d' % (mnt, r))
                t1, c1 = time.perf_counter(), cpu_ns(pid)
                samples[key][t].append((t1 - t0, c1 - c0))
        print('%s: round %d of %d done' % (WHO, r + 1, ROUNDS), file=sys.stderr)
    return samples


def ratio_summary(a, b, idx):
    """Median and quartiles of the per-round ratios a[i] / b[i]."""
    rs = sorted(x[idx] / y[idx] for x, y in zip(a, b) if y[idx] > 0)
    if len(rs) < 4:
        return '-'
    q = statistics.quantiles(rs, n=4)
    return '%.3f [%.3f–%.3f]' % (statistics.median(rs), q[0], q[2])


def report(samples, base_dir):
    print('## cvmfsd disk request path, paired (%s, %d CPUs, %d rounds of %d files)' % (
        time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime()), os.cpu_count(), ROUNDS, NFILES))
    print()
    print('Baseline: %s. Each cell: the median of the per-round ratios of time (lower is '
          'better) [interquartile range]. this-2 ÷ this is an A/A control: the same binary '
          'twice, so its spread is the noise of the measurement.' % base_dir)
    print()
    print('| workload | µs per op, this | wall this ÷ base | wall A/A | '
          'daemon CPU this ÷ base | daemon CPU A/A |')
    print('|---|---:|---:|---:|---:|---:|')
    for key, label, *_ in WORKLOADS:
        s = samples[key]
        ops = NFILES // 2 if key == 'mkdir' else NFILES
        us = statistics.median(x[0] for x in s['this']) / ops * 1e6
        print('| %s | %.1f | %s | %s | %s | %s |' % (
            label, us, ratio_summary(s['this'], s['base'], 0),
            ratio_summary(s['this-2'], s['this'], 0), ratio_summary(s['this'], s['base'], 1),
            ratio_summary(s['this-2'], s['this'], 1)))


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 2):
        die('usage: bench/disk-ab.py [BUILD] BASELINE_BUILD')
    build = benchprep.prepare(WHO, args[:-1], ('mkfs.ext4', 'fusermount3'))
    base = os.path.abspath(args[-1])
    bins = {'this': os.path.join(build, 'src', 'cvmfsd'),
            'this-2': os.path.join(build, 'src', 'cvmfsd'),
            'base': os.path.join(base, 'src', 'cvmfsd')}
    for b in bins.values():
        if not os.access(b, os.X_OK):
            die('%s: not an executable cvmfsd (build it first)' % b)
    m = Mounts()
    try:
        m.make_fs()
        targets = {t: m.start(t, b) for t, b in bins.items()}
        print('%s: mounted under %s; load %s' % (WHO, m.fs, open('/proc/loadavg').read()[:14]),
              file=sys.stderr)
        report(run_rounds(targets), base)
    finally:
        m.close()


if __name__ == '__main__':
    main()
