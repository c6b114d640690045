#!/usr/bin/env python3
"""`cvmctl exec` start-up against `nsenter`, side by side in one run (root;
about 30 s).

One CVM runs (default mode: user namespace); each round runs
  cvmctl    cvmctl exec NAME -- /bin/true
  nsenter   nsenter -t INIT -a /bin/true (every namespace, nothing else:
            no cgroups, no capability or seccomp set-up, no sealed copy)
and times the whole command (fork to exit: command to CMD's first
instruction and back). Median of ROUNDS, interleaved, and the ratio.

Usage: bench/exec-bench.py [BUILD_DIR] [--rounds N]
From a clean clone: installs the dependencies if a tool is missing and
builds BUILD_DIR (bench/benchprep.py). Everything is removed at the end.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import benchprep  # noqa: E402

ap = argparse.ArgumentParser(description='cvmctl exec against nsenter (root)')
ap.add_argument('build', nargs='?', default='build')
ap.add_argument('--rounds', type=int, default=30, help='rounds (30)')
ARGS = ap.parse_args()
if ARGS.rounds < 1:
    sys.exit('exec-bench: --rounds must be at least 1')
BUILD, LT = benchprep.launch_helpers('exec-bench', [ARGS.build], ('nsenter',))
T = LT.T
CTL = os.path.join(BUILD, 'src', 'ctl', 'cvmctl')


def timed(argv):
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit('exec-bench: %s: exit %d: %s' % (argv[0], r.returncode, r.stderr.strip()))
    return (time.monotonic() - t0) * 1000


def main():
    w = LT.Workspace('execbench')
    record = os.path.join(w.run_dir, 'launch', w.name + '.json')
    p = T.popen(w.argv(cmd=['sleep', '600']), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(record):
            break
        time.sleep(0.05)
    with open(record) as f:
        init = json.load(f)['init_pid']
    ms = {'cvmctl': [], 'nsenter': []}
    try:
        for _ in range(ARGS.rounds):
            ms['cvmctl'].append(timed([CTL, 'exec', '--run-dir', w.run_dir, w.name, '--',
                                       '/bin/true']))
            ms['nsenter'].append(timed(['nsenter', '-t', str(init), '-a', '/bin/true']))
    finally:
        subprocess.run([CTL, 'stop', '--run-dir', w.run_dir, '--timeout', '5', w.name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.wait(timeout=60)
    med = {k: statistics.median(v) for k, v in ms.items()}
    print('\n| command | median ms (of %d) | ÷ nsenter |' % ARGS.rounds)
    print('|---|---:|---:|')
    for k in ('cvmctl', 'nsenter'):
        print('| %s | %.1f | %.2f |' % (k, med[k], med[k] / med['nsenter']))


if __name__ == '__main__':
    main()
