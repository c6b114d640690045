#!/usr/bin/env python3
"""cgroup v2 through a fixture tree (--cgroup-root, --proc-root): each v2 file
in the kernel's format maps to the right line of the right /proc file."""
import json
import re

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024
KB = 1024
HOST_SWAP_KB = 4194304

SDA = '   8       0 sda 100 0 200 0 300 0 400 0 0 0 0 0 0 0 0 0 0\n'

MEMSTAT_A = {
    'anon': 40 * MIB, 'file': 50 * MIB, 'kernel': 9 * MIB, 'kernel_stack': 1 * MIB,
    'pagetables': 2 * MIB, 'sec_pagetables': 0, 'percpu': 128 * KB, 'sock': 4 * KB,
    'vmalloc': 8 * KB, 'shmem': 3 * MIB, 'zswap': 0, 'zswapped': 0, 'file_mapped': 4 * MIB,
    'file_dirty': 12 * KB, 'file_writeback': 8 * KB, 'swapcached': 1 * MIB,
    'anon_thp': 6 * MIB, 'file_thp': 0, 'shmem_thp': 0, 'inactive_anon': 10 * MIB,
    'active_anon': 30 * MIB, 'inactive_file': 20 * MIB, 'active_file': 26 * MIB,
    'unevictable': 16 * KB, 'slab_reclaimable': 5 * MIB, 'slab_unreclaimable': 2560 * KB,
    'slab': 7680 * KB,
}
PSI = {
    'cpu': 'some avg10=1.11 avg60=2.22 avg300=3.33 total=4444\n'
           'full avg10=0.50 avg60=0.60 avg300=0.70 total=800\n',
    'memory': 'some avg10=0.12 avg60=0.34 avg300=0.56 total=7890\n'
              'full avg10=0.01 avg60=0.02 avg300=0.03 total=456\n',
    'io': 'some avg10=9.87 avg60=6.54 avg300=3.21 total=123456789\n'
          'full avg10=8.76 avg60=5.43 avg300=2.10 total=98765432\n',
}
CPU_STAT_A = ('usage_usec 191340000\nuser_usec 123450000\nsystem_usec 67890000\n'
              'nr_periods 500\nnr_throttled 7\nthrottled_usec 8000\nnr_bursts 0\nburst_usec 0\n')
IO_STAT_A = ('7:0 rbytes=3584 wbytes=4608 rios=5 wios=3 dbytes=0 dios=0\n'
             '8:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=4096 dios=1\n')

FILES = ['proc/' + f for f in T.PROC_FILES] + ['proc/pressure/' + f for f in T.PSI_FILES] + \
    ['sys/devices/system/cpu/' + f for f in ('online', 'possible', 'present')]


def read_as(d, fx, rel):
    """All view files, read by one process registered in cgroup rel."""
    paths = [d.path(f) for f in FILES]
    rc, out, err = T.fixture_read(fx, rel, T.probe_argv('--wait', 'read', *paths))
    try:
        data = json.loads(out)
    except ValueError:
        R.check('reader in %s ran' % rel, False, (rc, out[-500:], err[-500:]), 'JSON')
        return None
    return {f: data[d.path(f)] for f in FILES}


def mem_checks(label, v, expect):
    mi = T.meminfo(v['proc/meminfo'])
    for k, want in expect.items():
        R.eq('%s: meminfo %s' % (label, k), mi.get(k), want)
    return mi


def cpu_checks(label, v, ids):
    procs = T.cpuinfo_processors(v['proc/cpuinfo'])
    R.eq('%s: cpuinfo processors' % label, procs, ids)
    stat_ids = sorted(int(k[3:]) for k in T.stat_cpu_lines(v['proc/stat']) if k != 'cpu')
    R.eq('%s: stat cpuN ids' % label, stat_ids, ids)
    for f in ('online', 'possible', 'present'):
        R.eq('%s: sys cpu/%s' % (label, f), sorted(T.cpulist(v['sys/devices/system/cpu/' + f])), ids)


def main():
    T.require(v1=False)
    base = T.tempdir('v2-')
    extra = SDA if not any(l.split()[:2] == ['8', '0'] for l in
                           T.read_text('/proc/diskstats').splitlines()) else ''
    fx = T.V2Fixture(base, meminfo_overrides={'SwapTotal': HOST_SWAP_KB, 'SwapFree': HOST_SWAP_KB},
                     extra_diskstats=extra)
    host_mem = fx.host_file('meminfo')
    host_cpuinfo = fx.host_file('cpuinfo')
    host_disk = fx.host_file('diskstats')
    host_swaps = T.read_text('/proc/swaps')
    host_cpus = sorted(T.cpulist(T.read_text('/sys/devices/system/cpu/online')))
    if host_cpus != [0, 1]:
        T.skip('the fixture assumes online CPUs 0-1, have %r' % host_cpus)

    fx.cgroup('cvmfs-test-a2', files={
        'memory.max': '268435456\n', 'memory.current': '104857600\n',
        'memory.stat': T.memstat_v2(MEMSTAT_A), 'memory.swap.max': '1073741824\n',
        'memory.swap.current': '104857600\n', 'cpu.max': '150000 100000\n',
        'cpuset.cpus.effective': '0-1\n', 'cpu.stat': CPU_STAT_A, 'io.stat': IO_STAT_A,
        'cpu.pressure': PSI['cpu'], 'memory.pressure': PSI['memory'], 'io.pressure': PSI['io']})
    fx.cgroup('cvmfs-test-b2', files={'cpu.max': '50000 100000\n', 'cpu.stat': CPU_STAT_A})
    fx.cgroup('cvmfs-test-c2', files={'cpuset.cpus.effective': '1\n', 'memory.max': '1073741824\n'})
    fx.cgroup('cvmfs-test-par', files={'memory.max': '134217728\n', 'cpu.max': '100000 100000\n'})
    fx.cgroup('cvmfs-test-par/cvmfs-test-kid', files={'memory.max': '536870912\n',
                                                      'cpu.max': 'max 100000\n'})
    fx.cgroup('cvmfs-test-noswap', files={'memory.max': '268435456\n',
                                          'memory.swap.max': None, 'memory.swap.current': None})
    fx.cgroup('cvmfs-test-swapmax', files={'memory.max': '268435456\n',
                                           'memory.swap.current': '52428800\n'})
    fx.cgroup('cvmfs-test-free')

    d = T.start_daemon(fx.daemon_args())

    # A: memory, swap, cpu, io, psi
    v = read_as(d, fx, 'cvmfs-test-a2')
    if v:
        lab = 'v2 A (memory.max 256M)'
        keys = set(T.meminfo(host_mem))
        kb = lambda k: MEMSTAT_A[k] // 1024  # noqa: E731
        expect = {
            'MemTotal': 262144, 'MemFree': 262144 - 102400,
            'Cached': kb('file') - kb('swapcached'), 'SwapCached': kb('swapcached'),
            'Active': kb('active_anon') + kb('active_file'),
            'Inactive': kb('inactive_anon') + kb('inactive_file'),
            'Active(anon)': kb('active_anon'), 'Inactive(anon)': kb('inactive_anon'),
            'Active(file)': kb('active_file'), 'Inactive(file)': kb('inactive_file'),
            'Unevictable': kb('unevictable'), 'AnonPages': kb('anon'), 'Mapped': kb('file_mapped'),
            'Shmem': kb('shmem'), 'Dirty': kb('file_dirty'), 'Writeback': kb('file_writeback'),
            'Slab': kb('slab_reclaimable') + kb('slab_unreclaimable'),
            'SReclaimable': kb('slab_reclaimable'), 'SUnreclaim': kb('slab_unreclaimable'),
            'KernelStack': kb('kernel_stack'), 'PageTables': kb('pagetables'),
            'AnonHugePages': kb('anon_thp'),
            'SwapTotal': 1048576, 'SwapFree': 1048576 - 102400,
        }
        mi = mem_checks(lab, v, {k: x for k, x in expect.items() if k in keys})
        lo, hi = mi.get('MemFree', 0), min(262144, mi.get('MemFree', 0) + kb('file') +
                                           kb('slab_reclaimable'))
        R.check('%s: MemFree < MemAvailable <= min(MemTotal, MemFree + file + SReclaimable)' % lab,
                lo < mi.get('MemAvailable', -1) <= hi, mi.get('MemAvailable'), (lo, hi))
        R.eq('%s: meminfo keys as the host\'s' % lab, T.meminfo_keys(v['proc/meminfo']),
             T.meminfo_keys(host_mem))
        bad = [l for l in v['proc/meminfo'].splitlines() if l.endswith(' kB') and
               int(l.split()[-2]) < 10 ** 8 and
               l != T.kernel_meminfo_line(l.split(':')[0], int(l.split()[-2]))]
        R.eq('%s: meminfo lines in the kernel format' % lab, bad, [])
        sw = v['proc/swaps'].splitlines()
        R.eq('%s: swaps header' % lab, sw[:1], host_swaps.splitlines()[:1])
        R.eq('%s: swaps "none" line (name type size used)' % lab,
             [l.split()[:4] for l in sw[1:]], [['none', 'file', '1048576', '102400']])
        cpu_checks(lab + ' cpu.max 150000/100000, cpuset 0-1', v, [0, 1])
        cl = T.stat_cpu_lines(v['proc/stat'])
        R.eq('%s: stat "cpu" user/nice/system ticks' % lab, cl.get('cpu', [None] * 3)[:3],
             [12345, 0, 6789])
        R.eq('%s: stat per-CPU user ticks split' % lab, sorted(cl.get(k, [0])[0] for k in ('cpu0', 'cpu1')),
             [6172, 6173])
        R.eq('%s: stat per-CPU system ticks split' % lab,
             sorted(cl.get(k, [0, 0, 0])[2] for k in ('cpu0', 'cpu1')), [3394, 3395])
        dl = {tuple(l.split()[:3]): l.split() for l in v['proc/diskstats'].splitlines()}
        hl = [tuple(l.split()[:3]) for l in host_disk.splitlines()]
        R.eq('%s: diskstats devices as the host\'s' % lab, list(dl), hl)
        R.eq('%s: diskstats fields per line' % lab, sorted(set(len(x) for x in dl.values())),
             sorted(set(len(l.split()) for l in host_disk.splitlines())))
        sda = dl.get(('8', '0', 'sda')) or next((x for k, x in dl.items() if k[:2] == ('8', '0')), None)
        R.eq('%s: diskstats 8:0 reads, sectors read, writes, sectors written' % lab,
             [sda[3], sda[5], sda[7], sda[9]] if sda else None, ['10', '2048', '20', '4096'])
        R.eq('%s: diskstats 8:0 discards, sectors discarded' % lab,
             [sda[14], sda[16]] if sda and len(sda) > 16 else sda, ['1', '8'])
        loop0 = dl.get(('7', '0', 'loop0'))
        if loop0:
            R.eq('%s: diskstats 7:0 from io.stat' % lab, [loop0[3], loop0[5], loop0[7], loop0[9]],
                 ['5', '7', '3', '9'])
        others = [x for k, x in dl.items() if k[:2] not in (('8', '0'), ('7', '0'))
                  and any(f != '0' for f in x[3:])]
        R.eq('%s: diskstats devices without io.stat lines are zero' % lab, others, [])
        for f in T.PSI_FILES:
            R.eq('%s: proc/pressure/%s verbatim' % (lab, f), v['proc/pressure/' + f], PSI[f])

    # B: cpu.max 50000/100000 only -> cpu0; memory unlimited -> host meminfo
    v = read_as(d, fx, 'cvmfs-test-b2')
    if v:
        lab = 'v2 B (cpu.max 50000/100000, no memory limit)'
        cpu_checks(lab, v, [0])
        R.eq('%s: meminfo is the host\'s' % lab, v['proc/meminfo'], host_mem)
        R.eq('%s: stat cpu user/system' % lab, T.stat_cpu_lines(v['proc/stat']).get('cpu', [0] * 3)[:3],
             [12345, 0, 6789])
        R.eq('%s: cpuinfo siblings/cpu cores' % lab,
             sorted(set(l.split(':')[1].strip() for l in v['proc/cpuinfo'].splitlines()
                        if l.startswith(('siblings', 'cpu cores')))), ['1'])

    # C: cpuset.cpus.effective "1"
    v = read_as(d, fx, 'cvmfs-test-c2')
    if v:
        lab = 'v2 C (cpuset 1, memory.max 1G)'
        cpu_checks(lab, v, [1])
        mem_checks(lab, v, {'MemTotal': 1048576})

    # D: nested, the parent's smaller limits win
    v = read_as(d, fx, 'cvmfs-test-par/cvmfs-test-kid')
    if v:
        lab = 'v2 nested (parent 128M/1 CPU, child 512M/max)'
        mem_checks(lab, v, {'MemTotal': 131072})
        cpu_checks(lab, v, [0])

    # E: swap not accounted (no memory.swap.* files)
    v = read_as(d, fx, 'cvmfs-test-noswap')
    if v:
        lab = 'v2 no swap accounting'
        mem_checks(lab, v, {'MemTotal': 262144, 'SwapTotal': 0, 'SwapFree': 0})
        R.eq('%s: swaps is the header alone' % lab, v['proc/swaps'].splitlines(),
             host_swaps.splitlines()[:1])

    # F: memory.swap.max "max": capped by the host's swap
    v = read_as(d, fx, 'cvmfs-test-swapmax')
    if v:
        lab = 'v2 memory.swap.max max'
        mem_checks(lab, v, {'SwapTotal': HOST_SWAP_KB, 'SwapFree': HOST_SWAP_KB - 51200})

    # G: no limits at all: the host's files
    v = read_as(d, fx, 'cvmfs-test-free')
    if v:
        lab = 'v2 no limits'
        R.eq('%s: meminfo is the host\'s' % lab, v['proc/meminfo'], host_mem)
        R.eq('%s: cpuinfo is the host\'s' % lab, v['proc/cpuinfo'], host_cpuinfo)
        R.eq('%s: diskstats is the host\'s' % lab, v['proc/diskstats'], host_disk)
        R.eq('%s: swaps is the host\'s' % lab, v['proc/swaps'], host_swaps)
        R.eq('%s: sys cpu/online is the host\'s' % lab, v['sys/devices/system/cpu/online'],
             T.read_text('/sys/devices/system/cpu/online'))

    # loadavg: running/total tasks of the cgroup (cgroup.threads)
    fx.cgroup('cvmfs-test-load', files={'memory.max': '268435456\n'})
    sleepers = [T.popen(['sleep', '60']) for _ in range(2)]
    reader = T.GatedReader(['cat', d.path('proc/loadavg')])
    tids = [p.pid for p in sleepers] + [reader.pid]
    for t in tids:
        fx.register(t, 'cvmfs-test-load')
    fx.set_file('cvmfs-test-load', 'cgroup.threads', ''.join('%d\n' % t for t in tids))
    fx.set_file('cvmfs-test-load', 'cgroup.procs', ''.join('%d\n' % t for t in tids))
    rc, out, err = reader.release()
    m = re.match(r'^(\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\d+)/(\d+) (\d+)\n$', out)
    if R.check('v2 loadavg: kernel format', m is not None, (rc, out, err), 'a.aa b.bb c.cc R/T PID'):
        R.eq('v2 loadavg: total tasks of the cgroup', int(m.group(5)), 3)
        R.check('v2 loadavg: running tasks 1..3', 1 <= int(m.group(4)) <= 3, m.group(4), '1..3')
    for p in sleepers:
        T._kill_proc(p)

    # A limit changed at run time shows after the cache period (cache-ms
    # 100): polled for 2 s, a bound on a busy machine.
    fx.set_file('cvmfs-test-c2', 'memory.max', '536870912\n')

    def shown():
        v = read_as(d, fx, 'cvmfs-test-c2')
        return v if v and T.meminfo(v['proc/meminfo']).get('MemTotal') == 524288 else None
    v = T.wait_for(shown, 2, 'the new memory.max shown', 0.1) or read_as(d, fx, 'cvmfs-test-c2')
    if v:
        mem_checks('v2 C after memory.max -> 512M', v, {'MemTotal': 524288})

    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.summary_and_exit()


if __name__ == '__main__':
    main()
