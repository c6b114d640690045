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
3. The workspace volume's cost: whole `cvm-launch ... -- /bin/true` runs that
   start and stop everything themselves (views, cgroups, the disk and, with
   --volume loop, its volume: attach, mount, unmount), of a workspace with
   --volume loop next to one with --volume none (today's disk), interleaved:
   the first launch of a new workspace (the volume made: sparse file,
   mkfs.ext4), median of --firsts, and later launches, median of --launches,
   with the median of the per-round ratios. With --baseline OTHER_BUILD the
   same launches of that build's cvm-launch and cvmfsd run in the same
   rounds (a before/after under the same load).

Usage: bench/launch-bench.py [BUILD_DIR] [--volume-only] [--launches N]
                             [--firsts N] [--baseline OTHER_BUILD]
       (BUILD_DIR default: build; --volume-only runs part 3 alone)
From a clean clone: installs the dependencies if a tool is missing and
configures and builds BUILD_DIR (bench/benchprep.py). Everything lives in a
cvmfs-test-* temp dir and is removed at the end; the launcher and the
daemons read an empty config of their own there, never the host's
/etc/cvmfs/cvmfs.conf.
"""
import argparse
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


def parse_args():
    ap = argparse.ArgumentParser(description='cvm-launch benchmarks (root)')
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--volume-only', action='store_true', help='part 3 alone')
    ap.add_argument('--launches', type=int, default=20, help='later launches per mode (20)')
    ap.add_argument('--firsts', type=int, default=3, help='new workspaces per mode (3)')
    ap.add_argument('--baseline', help='another build dir, measured in the same rounds')
    args = ap.parse_args()
    for n in ('launches', 'firsts'):
        if getattr(args, n) < 1:
            sys.exit('launch-bench: bad value for --%s: %d (at least 1)' % (n, getattr(args, n)))
    if args.baseline and not os.access(os.path.join(args.baseline, 'src', 'launch', 'cvm-launch'),
                                       os.X_OK):
        sys.exit('launch-bench: --baseline %s: no src/launch/cvm-launch there' % args.baseline)
    return args


ARGS = parse_args()
# Root, the dependencies (scripts/deps.sh if a tool is missing), the build.
BUILD, LT = benchprep.launch_helpers('launch-bench', [ARGS.build], ('unshare', 'chroot', 'fusermount3'))
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


def launch_wall(build, w, mode):
    """Seconds of one whole `cvm-launch ... -- /bin/true` of workspace w with
    --volume mode, the binaries of build (its cvmfsd through CVMFSD)."""
    argv = w.argv(cmd=['/bin/true'], volume=mode, disk='8G')
    argv[0] = os.path.join(build, 'src', 'launch', 'cvm-launch')
    env = dict(os.environ, CVMFSD=os.path.join(build, 'src', 'cvmfsd'))
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit('launch-bench: %s --volume %s failed: rc %d\n%s'
                 % (argv[0], mode, p.returncode, p.stderr[-2000:]))
    return wall


def volume_rounds(builds):
    """{(label, mode): ([first launches], [later launches])}: every round
    runs each build and mode once, in turn, so all see the same load."""
    runs = [(label, b, mode) for label, b in builds for mode in ('loop', 'none')]
    res = {(label, mode): ([], []) for label, _, mode in runs}
    kept = {}  # the first workspace of each, for the later launches
    for i in range(ARGS.firsts):
        for label, b, mode in runs:
            w = LT.Workspace('vb-%s-%d' % (mode, i))
            res[label, mode][0].append(launch_wall(b, w, mode))
            kept.setdefault((label, mode), w)
    for _ in range(ARGS.launches):
        for label, b, mode in runs:
            res[label, mode][1].append(launch_wall(b, kept[label, mode], mode))
    return res


def print_volume(res, builds):
    med = statistics.median
    print('\nWhole `cvm-launch ... -- /bin/true` runs (views, cgroups and disk started and stopped '
          'by each), --disk 8G, medians; first: %d new workspaces per mode, later: %d launches '
          'per mode, interleaved:\n' % (ARGS.firsts, ARGS.launches))
    print('| build | launch | --volume loop | --volume none | loop ÷ none |')
    print('|---|---|---:|---:|---:|')
    for label, _ in builds:
        loop, none = res[label, 'loop'], res[label, 'none']
        print('| %s | first (loop: sparse file, mkfs.ext4) | %.3f s | %.3f s | %.2f |'
              % (label, med(loop[0]), med(none[0]), med(loop[0]) / med(none[0])))
        print('| %s | later | %.3f s | %.3f s | %.2f |'
              % (label, med(loop[1]), med(none[1]), med(loop[1]) / med(none[1])))
        print('| %s | later, median of the per-round ratios | | | %.2f |'
              % (label, med([a / b for a, b in zip(loop[1], none[1])])))


def volume_part():
    reason = LT.loop_usable()
    if reason:
        print('\nWorkspace volume: not measured: no loop volume here: %s' % reason)
        return
    builds = [('this', BUILD)] + ([('baseline', os.path.abspath(ARGS.baseline))]
                                  if ARGS.baseline else [])
    print_volume(volume_rounds(builds), builds)


def bench_line(out):
    lines = [l for l in out.splitlines() if l.startswith('/proc/meminfo')]
    if not lines:
        return None
    f = lines[-1].split('\t')
    return int(f[4]), float(f[5]), float(f[6]), int(f[3])


def main():
    if ARGS.volume_only:
        print('## cvm-launch benchmark: the workspace volume')
        volume_part()
        return
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
    print('\n## The workspace volume')
    volume_part()


if __name__ == '__main__':
    main()
