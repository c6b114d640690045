#!/usr/bin/env python3
"""cvm-launch benchmarks, side by side in one run (root; about 1 minute).

1. Start-up: time from cvm-launch's start to the exec of CMD (its own --debug
   line), median of 20 runs, with the workspace disk and the views already
   running (so their start is excluded), in the default mode (user
   namespace, id range from the record) and with --no-userns, interleaved
   in the same run, next to the wall time of
   `unshare --fork --pid --mount chroot IMG /bin/true`, the floor.
2. The views' fast path inside a CVM: bench/views_bench reading /proc/meminfo
   inside a CVM (the per-container tree bound over it) next to the host's own
   /proc/meminfo, p50 and ops/s.

Usage: bench/launch-bench.py [BUILD_DIR]   (default: build)
From a clean clone: installs the dependencies if a tool is missing and
configures and builds BUILD_DIR (bench/benchprep.py). Everything lives in a
cvmfs-test-* temp dir and is removed at the end; the launcher and the
daemons read an empty config of their own there, never the host's
/etc/cvmfs/cvmfs.conf.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import benchprep  # noqa: E402
# Root, the dependencies (scripts/deps.sh if a tool is missing), the build.
BUILD, LT = benchprep.launch_helpers('launch-bench', sys.argv[1:2], ('unshare', 'chroot', 'fusermount3'))
T = LT.T

RUNS = 20
NAME = 'cvmfs-test-lbench-%d' % os.getpid()
NAME_U = NAME + '-u'  # the user-namespaced CVM's workspace
IDS = 100000000  # its range, given so that its disk can be started with the same shift
CONFIG = []  # ['-c', an empty config in the bench's temp dir], set by main()


def add_program(img, path):
    LT._copy(os.path.realpath(path), img)
    for lib in LT._libs(path):
        LT._copy(lib, img)


def start_disk(base, img, name, extra):
    run, mnt = os.path.join(base, 'run'), os.path.join(base, 'mnt', name)
    data = os.path.join(base, 'data-' + name)
    for d in (data, mnt):
        os.makedirs(d, exist_ok=True)
    T._mounts.append(mnt)
    subprocess.run([T.CVMFSD, 'disk', '--name', name, '--data', data, '--limit', '2G',
                    '--image', img, '--run-dir', run] + CONFIG + extra + [mnt], check=True)
    return ['--data', data]


def start_daemons(base, img):
    """The views and two disks (without and with the id shift); returns the
    options of the two modes: {mode: (name, options)}."""
    views = os.path.join(base, 'views')
    run = os.path.join(base, 'run')
    mnt_dir = os.path.join(base, 'mnt')
    for d in (views, run, mnt_dir):
        os.makedirs(d, exist_ok=True)
    # Daemon mode returns once mounted; unmounting the views stops them.
    T._mounts.extend([views, views + '/ct'])
    subprocess.run([T.CVMFSD, 'views'] + CONFIG + [views], check=True)
    # The disks above run without a volume: say so, or the launcher (whose
    # default is a loop volume) refuses them as started with another mode.
    common = ['--views', views, '--run-dir', run, '--mnt-dir', mnt_dir, '--volume', 'none']
    off = start_disk(base, img, NAME, [])
    on = start_disk(base, img, NAME_U, ['--image-idmap', '%d:%d:65536' % (IDS, IDS)])
    return {'no-userns': (NAME, common + off + ['--no-userns']),
            'userns': (NAME_U, common + on + ['--idmap-dir', os.path.join(base, 'idmap'),
                                              '--userns-uid', str(IDS)])}


def stop_daemons(base):
    for pidfile in (os.path.join(base, 'run', 'disk', n + '.pid') for n in (NAME, NAME_U)):
        try:
            pid = int(open(pidfile).read().split()[0])
            os.kill(pid, 15)
        except (OSError, ValueError):
            pass
    time.sleep(1)


def launch(mode, cmd, debug=False):
    name, opts = mode
    argv = [LT.LAUNCH, '--name', name, '--image', LT.image(), '--memory', '512M',
            '--cpus', '1', '--disk', '2G'] + CONFIG + opts + (['-d'] if debug else []) + \
        ['--'] + cmd
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, time.monotonic() - t0


def startup(modes, img):
    """Median start->exec and wall ms per mode, interleaved; and the floor."""
    execs = {m: [] for m in modes}
    walls = {m: [] for m in modes}
    floors = []
    for _ in range(RUNS):
        for m, mode in modes.items():
            p, wall = launch(mode, ['/bin/true'], debug=True)
            r = re.search(r"CMD exec'ed ([0-9.]+) ms after start", p.stderr)
            if p.returncode != 0 or not r:
                sys.exit('launch (%s) failed: rc %d\n%s' % (m, p.returncode, p.stderr[-2000:]))
            execs[m].append(float(r.group(1)))
            walls[m].append(wall * 1e3)
        t0 = time.monotonic()
        subprocess.run(['unshare', '--fork', '--pid', '--mount', 'chroot', img, '/bin/true'],
                       check=True)
        floors.append((time.monotonic() - t0) * 1e3)
    med = statistics.median
    return ({m: med(v) for m, v in execs.items()}, {m: med(v) for m, v in walls.items()},
            med(floors))


def bench_line(out):
    lines = [l for l in out.splitlines() if l.startswith('/proc/meminfo')]
    if not lines:
        return None
    f = lines[-1].split('\t')
    return int(f[4]), float(f[5]), float(f[6]), int(f[3])


def main():
    vb = os.path.join(BUILD, 'bench', 'views_bench')
    if not os.access(vb, os.X_OK):
        sys.exit('launch-bench: %s missing (ninja -C %s)' % (vb, BUILD))
    base = T.tempdir('lbench-')
    CONFIG[:] = ['-c', LT.empty_config(base)]
    img = LT.image()
    add_program(img, vb)
    shutil.copy2(vb, img + '/usr/bin/views_bench')
    modes = start_daemons(base, img)
    try:
        exec_ms, wall_ms, floor_ms = startup(modes, img)
        p, _ = launch(modes['userns'], ['/usr/bin/views_bench', '--tsv', '-s', '2',
                                        '/proc/meminfo'])
        inside = bench_line(p.stdout)
        host = bench_line(subprocess.run([vb, '--tsv', '-s', '2', '/proc/meminfo'],
                                         stdout=subprocess.PIPE, text=True).stdout)
    finally:
        stop_daemons(base)
    print('## cvm-launch benchmark\n')
    print('Start-up, median of %d runs (disk and views already running):\n' % RUNS)
    on, off = 'userns', 'no-userns'
    print('| measure | user namespace (default) ms | --no-userns ms | ratio on ÷ off |')
    print('|---|---:|---:|---:|')
    print('| cvm-launch: start to exec of CMD | %.1f | %.1f | %.2f |'
          % (exec_ms[on], exec_ms[off], exec_ms[on] / exec_ms[off]))
    print('| cvm-launch: whole run of `-- /bin/true` | %.1f | %.1f | %.2f |'
          % (wall_ms[on], wall_ms[off], wall_ms[on] / wall_ms[off]))
    print('| ratio start→exec ÷ unshare floor | %.2f | %.2f | |'
          % (exec_ms[on] / floor_ms, exec_ms[off] / floor_ms))
    print('\n`unshare --fork --pid --mount chroot IMG /bin/true` (the floor): %.1f ms' % floor_ms)
    print('\n/proc/meminfo inside a CVM (per-container views tree) vs the host, 2 s, 1 thread:\n')
    print('| where | ops/s | p50 µs | p99 µs | fails |\n|---|---:|---:|---:|---:|')
    for label, r in (('host /proc/meminfo (kernel)', host), ('inside the CVM (views)', inside)):
        if r:
            print('| %s | %d | %.1f | %.1f | %d |' % (label, r[0], r[1], r[2], r[3]))
        else:
            print('| %s | failed | | | |' % label)
    if inside and host:
        print('\np50 inside ÷ host: %.2f' % (inside[1] / host[1]))


if __name__ == '__main__':
    main()
