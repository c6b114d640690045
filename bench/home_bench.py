#!/usr/bin/env python3
"""/home inside a CVM against the host's ext4, side by side in one run.

Usage (root): bench/home_bench.py [BUILD_DIR] [--rounds N] [--launches N]
(bench/home-bench.sh is the entry; BUILD_DIR defaults to build.)

Three sides run the same timer (a python3 script, run with `nsenter -a`
inside, directly on the host), in rounds whose order rotates:

  host    a directory of a fresh ext4 made in a sparse file and
          loop-mounted (what the volume is, so both sides are on the same
          kind of file system);
  volume  /home of a CVM in cvm-launch's default mode with --volume loop:
          a lane of the workspace's ext4 volume, bound with no FUSE on it;
  fuse    /home of the same kind of CVM with --volume none: today's
          design, /home on the disk daemon's union (FUSE).

Work, in a fresh directory each round: untar of a ~100 MB tree (30,000
files: generated once with a fixed seed, so every machine measures the
same), create and then delete 20,000 files of 4 KiB, a `git clone
--no-hardlinks` of a local repository of 10,000 files (the host's git and
its libraries in an extra image layer; the line is left out with a reason
where the host has no git), sequential write of 512 MiB (fsync) and its
cold read (the host's page cache dropped in between). Medians over
--rounds (default 3); ratios are host ÷ side (1.0 = native speed).

Launch: `cvm-launch ... -- /bin/true` of a volume workspace the first time
(mkfs included), then --launches times (median) once made, against the
same with --volume none.

Everything lives in one cvmfs-test-hbench-* directory under /var/tmp (the
helpers of tests/launch make the CVMs' temp dirs), removed at the end;
CVMs are stopped through their launchers, mounts of ours unmounted."""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20

TIMER = r'''import json, os, shutil, subprocess, sys, time
spec = json.loads(sys.argv[1])
base, res = spec['dir'], {}
def t(name, fn):
    t0 = time.monotonic(); fn(); res[name] = time.monotonic() - t0
def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
def sync():
    os.sync()
shutil.rmtree(base, ignore_errors=True); os.makedirs(base)
sync()
t('untar', lambda: (sh('tar -xf %s -C %s' % (spec['tar'], base)), sync()))
def create():
    d = base + '/small'; os.mkdir(d); blk = b'x' * 4096
    for i in range(spec['files']):
        with open('%s/f%d' % (d, i), 'wb') as f: f.write(blk)
    sync()
def delete():
    shutil.rmtree(base + '/small'); sync()
t('create', create)
t('delete', delete)
if spec.get('repo'):  # the source on the same file system, copied untimed
    sh('cp -a %s %s/repo' % (spec['repo'], base)); sync()
    t('clone', lambda: (sh('git clone -q --no-hardlinks %s/repo %s/clone' % (base, base)),
                        sync()))
def write():
    blk = b'\xa5' * MiB
    with open(base + '/seq', 'wb') as f:
        for _ in range(spec['seq_mib']): f.write(blk)
        f.flush(); os.fsync(f.fileno())
MiB = 1 << 20
t('seqwrite', write)
print('DROP', flush=True); sys.stdin.readline()
def read():
    with open(base + '/seq', 'rb') as f:
        while f.read(MiB): pass
t('seqread', read)
shutil.rmtree(base, ignore_errors=True); sync()
print('RESULT ' + json.dumps(res), flush=True)
'''


def log(msg):
    print('home-bench: ' + msg, file=sys.stderr, flush=True)


def make_tree(dst, total=100 * MiB, files=30000, seed=14):
    """A source-tree-like tarball: 30,000 files in 1,500 directories,
    sizes drawn from a fixed seed (mostly small, a few large)."""
    rnd = random.Random(seed)
    src = tempfile.mkdtemp(prefix='tree-', dir=os.path.dirname(dst))
    sizes = [int(rnd.paretovariate(1.2) * 600) for _ in range(files)]
    scale = total / sum(sizes)
    for i, s in enumerate(sizes):
        d = os.path.join(src, 'd%d' % (i % 1500))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'f%d.c' % i), 'wb') as f:
            f.write(rnd.randbytes(max(1, int(s * scale))))
    with tarfile.open(dst, 'w') as tf:
        tf.add(src, arcname='tree')
    shutil.rmtree(src)


def make_repo(dst, files=10000):
    """A local git repository of `files` small files (one commit)."""
    os.makedirs(dst)
    for i in range(files):
        d = os.path.join(dst, 'src', 'm%d' % (i % 200))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'f%d.txt' % i), 'w') as f:
            f.write(('line %d\n' % i) * (i % 50 + 1))
    env = dict(os.environ, GIT_AUTHOR_NAME='b', GIT_AUTHOR_EMAIL='b@b', GIT_COMMITTER_NAME='b',
               GIT_COMMITTER_EMAIL='b@b')
    for argv in (['git', 'init', '-q'], ['git', 'add', '-A'], ['git', 'commit', '-q', '-m', 'x']):
        subprocess.run(argv, cwd=dst, env=env, check=True)


class Loopfs:
    """A fresh ext4 in a sparse file on a loop device with direct I/O, as
    cvmfsd disk attaches a volume (LO_FLAGS_DIRECT_IO: no second copy of
    the data in the page cache of the backing file): the host side."""

    def __init__(self, base, size=8 << 30):
        self.img, self.mnt = os.path.join(base, 'host.img'), os.path.join(base, 'host')
        self.dev = None
        os.makedirs(self.mnt)
        with open(self.img, 'wb') as f:
            f.truncate(size)
        subprocess.run(['mkfs.ext4', '-q', '-F', self.img], check=True)
        self.dev = subprocess.run(['losetup', '--find', '--show', '--direct-io=on', self.img],
                                  check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        subprocess.run(['mount', '-o', 'noatime', self.dev, self.mnt], check=True)

    def remove(self):
        if os.path.ismount(self.mnt) and subprocess.run(['umount', self.mnt]).returncode:
            subprocess.run(['umount', '-l', self.mnt])
        if self.dev:
            subprocess.run(['losetup', '-d', self.dev])


def drop_caches():
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


def run_timer(argv, spec):
    p = subprocess.Popen(argv + [json.dumps(spec)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith('DROP'):
            drop_caches()
            p.stdin.write('\n')
            p.stdin.flush()
        elif line.startswith('RESULT '):
            res = json.loads(line[7:])
    if p.wait() != 0:
        raise RuntimeError('timer failed: %s' % argv)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build', nargs='?', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--rounds', type=int, default=int(os.environ.get('HOME_BENCH_ROUNDS', 3)))
    ap.add_argument('--launches', type=int, default=int(os.environ.get('HOME_BENCH_LAUNCHES', 5)))
    ap.add_argument('--seq-mib', type=int, default=512)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ['CVMFS_BUILD'] = build
    os.environ['CVMFSD'] = os.path.join(build, 'src', 'cvmfsd')
    os.environ['CVM_LAUNCH'] = os.path.join(build, 'src', 'launch', 'cvm-launch')
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'launch'))
    import launchtest as LT  # noqa: E402
    T = LT.T
    LT.require()
    reason = LT.loop_usable()
    if reason:
        sys.exit('home-bench: no loop volume here: ' + reason)
    signal.signal(signal.SIGTERM, lambda s, f: (T.cleanup_all(), os._exit(1)))

    base = T.tempdir('hbench-')
    layer = T.tempdir('hlayer-')
    git = shutil.which('git', path='/usr/bin:/bin')
    # A local clone runs git-upload-pack (in git's exec path) as well.
    upload = '/usr/lib/git-core/git-upload-pack'
    if git and not os.access(upload, os.X_OK):
        git = None
    for prog in ['tar', 'cp'] + ([git, upload] if git else []):
        LT._add_program(layer, shutil.which(prog, path='/usr/bin:/bin') or prog)
    bench = os.path.join(layer, 'bench')
    os.makedirs(bench)
    with open(os.path.join(bench, 'timer.py'), 'w') as f:
        f.write(TIMER)
    log('making the 100 MB tree and the 10,000-file repository')
    make_tree(os.path.join(bench, 'tree.tar'))
    if git:
        make_repo(os.path.join(bench, 'repo'))
    image = layer + ':' + LT.image()
    hostfs = Loopfs(base)
    sides, cvms = {}, []
    try:
        def spec(where, d):
            return {'dir': d, 'tar': where + '/bench/tree.tar', 'files': 20000,
                    'repo': (where + '/bench/repo') if git else None, 'seq_mib': args.seq_mib}
        sides['host'] = ([sys.executable, os.path.join(bench, 'timer.py')],
                         spec(layer, hostfs.mnt + '/work'))
        launch = {}
        for mode in ('loop', 'none'):
            w = LT.Workspace('hb-' + mode)
            t0 = time.monotonic()
            rc, out, err = w.launch(cmd=['/bin/true'], volume=mode, disk='8G')
            first = time.monotonic() - t0
            later = []
            for _ in range(args.launches):
                t0 = time.monotonic()
                w.launch(cmd=['/bin/true'], volume=mode, disk='8G')
                later.append(time.monotonic() - t0)
            launch[mode] = (first, statistics.median(later))
            p = T.popen(w.argv(cmd=['/bin/sleep', '100000'], image_dirs=image, volume=mode,
                               disk='8G'))
            cvms.append(p)
            pid = None
            for _ in range(200):
                kids = open('/proc/%d/task/%d/children' % (p.pid, p.pid)).read().split()
                pid = next((k for k in kids if open('/proc/%s/status' % k).read()
                            .split('NSpid:')[1].split('\n')[0].split()[-1] == '1'), None)
                if pid:
                    break
                time.sleep(0.05)
            sides['volume' if mode == 'loop' else 'fuse'] = (
                ['nsenter', '-t', pid, '-a', '/usr/bin/python3', '/bench/timer.py'],
                spec('', '/home/work'))
        res = {k: {} for k in sides}
        order = list(sides)
        for r in range(args.rounds):
            for name in order[r % 3:] + order[:r % 3]:
                log('round %d: %s' % (r + 1, name))
                for k, v in run_timer(*sides[name]).items():
                    res[name].setdefault(k, []).append(v)
    finally:
        for p in cvms:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        hostfs.remove()
        T.cleanup_all()
    names = [('untar', 'untar of a 100 MB tree (30,000 files)'),
             ('create', 'create 20,000 files of 4 KiB'), ('delete', 'delete them'),
             ('clone', 'git clone --no-hardlinks, 10,000 files'),
             ('seqwrite', 'sequential write %d MiB + fsync' % args.seq_mib),
             ('seqread', 'sequential read, cold')]
    print('| work | host ext4 | /home, volume | /home, FUSE (--volume none) | '
          'volume: host ÷ it | FUSE: host ÷ it |')
    print('|---|---:|---:|---:|---:|---:|')
    for key, label in names:
        if key not in res['host']:
            print('| %s | not measured: no git on the host | | | | |' % label)
            continue
        h, v, f = (statistics.median(res[s][key]) for s in ('host', 'volume', 'fuse'))
        print('| %s | %.2f s | %.2f s | %.2f s | %.2f | %.2f |' % (label, h, v, f, h / v, h / f))
    print('\n| launch of `-- /bin/true` | volume (loop) | --volume none |')
    print('|---|---:|---:|')
    print('| first (volume: mkfs) | %.3f s | %.3f s |' % (launch['loop'][0], launch['none'][0]))
    print('| later (median of %d) | %.3f s | %.3f s |'
          % (args.launches, launch['loop'][1], launch['none'][1]))


if __name__ == '__main__':
    main()
