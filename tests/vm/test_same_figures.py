#!/usr/bin/env python3
"""The v1 and v2 cgroup backends give the same figures for the same limits.

One CVM with --memory 256M --cpus 1.5 --pids 100 --disk 200M --io-bps 1M;
inside: free, /proc/meminfo, nproc, getconf, /proc/stat's CPU lines, its
pids limit at its cgroup root, df, and how long 4 MiB of O_DIRECT writes to
/home take. Every figure is compared with one expected value, the same for
both backends, and printed in one line naming the backend: the main suite
runs it on this machine's v1 hybrid, the VM lane (tests/vm) on Debian 12's
pure v2, and the two lines in CI's log are comparable side by side."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'launch'))
import launchtest as LT  # noqa: E402

T = LT.T
R = T.R

PIDS_MAX = '/sys/fs/cgroup/pids.max' if LT.V2 else '/sys/fs/cgroup/pids/pids.max'
PROBE = r'''
import os, subprocess, time, mmap
def run(*a):
    return subprocess.run(a, stdout=subprocess.PIPE, text=True).stdout
fig = {}
fig['free_total'] = int(run('free', '-b').splitlines()[1].split()[1])
fig['memtotal_kb'] = int(open('/proc/meminfo').readline().split()[1])
fig['nproc'] = int(run('nproc'))
fig['getconf_onln'] = int(run('getconf', '_NPROCESSORS_ONLN'))
fig['stat_cpus'] = sum(1 for l in open('/proc/stat') if l[:3] == 'cpu' and l[3].isdigit())
fig['pids_max'] = open('%s').read().strip()
fig['df_total'] = int(run('df', '-B1', '/').splitlines()[1].split()[1])
fd = os.open('/home/io-probe', os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
buf = mmap.mmap(-1, 65536)
t = time.monotonic()
for _ in range(64):
    os.write(fd, buf)
os.fsync(fd)
fig['io_4mib_s'] = round(time.monotonic() - t, 1)
print(repr(fig))
''' % PIDS_MAX

EXPECTED = {'free_total': 256 << 20, 'memtotal_kb': 256 << 10, 'nproc': 2, 'getconf_onln': 2,
            'stat_cpus': 2, 'pids_max': '100', 'df_total': 200 << 20}


def main():
    LT.require()
    w = LT.Workspace('figures')
    rc, out, err = w.launch('--io-bps', '1M', cmd=['python3', '-c', PROBE], timeout=300,
                            memory='256M', cpus='1.5', pids=100, disk='200M')
    LT.check_clean('figures', w.name)
    R.eq('probe: exit 0', rc, 0, err)
    try:
        fig = eval(out.strip().splitlines()[-1], {})  # our own repr of a dict
    except (IndexError, SyntaxError):
        fig = {}
    print('figures (%s backend): %s' % ('v2' if LT.V2 else 'v1', fig), flush=True)
    for k, want in EXPECTED.items():
        R.eq('%s (%s)' % (k, 'v2' if LT.V2 else 'v1'), fig.get(k), want)
    # 4 MiB at 1 MiB/s: at least 2.5 s on both (io.max, blkio.throttle).
    R.check('io_4mib_s >= 2.5 at --io-bps 1M (%s)' % fig.get('io_4mib_s'),
            (fig.get('io_4mib_s') or 0) >= 2.5, fig.get('io_4mib_s'))
    R.summary_and_exit()


if __name__ == '__main__':
    main()
