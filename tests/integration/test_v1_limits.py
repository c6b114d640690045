#!/usr/bin/env python3
"""cgroup v1, real cgroups: memory/cpuset/CPU-quota limits as seen by tools
running in a private mount + PID namespace with the views bound over /proc and
/sys/devices/system/cpu; nested cgroups take the minimum of the ancestors."""
import re

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024


def facts_in(d, cg, label):
    rc, data, out, err = T.run_json(cg.wrap(T.ns_argv(d.mnt, T.probe_argv('facts'))), timeout=90)
    if not R.check('%s: probe in namespace ran' % label, data is not None, rc, 0,
                   detail='stdout: %s\nstderr: %s' % (out[-1500:], err[-1500:])):
        return None
    return data


def tool_int(res):
    try:
        return int(res['out'].strip()) if res['rc'] == 0 else ('rc=%s' % res['rc'], res['err'])
    except ValueError:
        return res['out']


def free_total(data):
    for line in data['free_b']['out'].splitlines():
        if line.startswith('Mem:'):
            return int(line.split()[1])
    return None


def check_meminfo_format(label, text, host_text):
    lines = text.splitlines()
    bad = []
    for l in lines:
        m = re.match(r'^([^:]+):\s+(\d+)( kB)?$', l)
        if not m:
            bad.append(l)
            continue
        if m.group(3) and int(m.group(2)) < 10 ** 8 and l != T.kernel_meminfo_line(m.group(1), int(m.group(2))):
            bad.append(l)
    R.check('%s: every meminfo line in the kernel format (%%-16s%%8llu kB)' % label, not bad,
            bad[:5], [])
    R.eq('%s: meminfo keys and order as the host\'s' % label, T.meminfo_keys(text),
         T.meminfo_keys(host_text))


def check_cpu_count(label, data, want, ids=None, check_nproc=False):
    procs = T.cpuinfo_processors(data['cpuinfo'])
    stat_ids = sorted(int(k[3:]) for k in T.stat_cpu_lines(data['stat']) if k != 'cpu')
    online = T.cpulist(data['sys_online']) if isinstance(data['sys_online'], str) else None
    R.eq('%s: getconf _NPROCESSORS_ONLN' % label, tool_int(data['getconf_onln']), want)
    R.eq('%s: getconf _NPROCESSORS_CONF' % label, tool_int(data['getconf_conf']), want)
    R.eq('%s: python3 os.cpu_count()' % label, tool_int(data['py_cpu_count']), want)
    if check_nproc:
        R.eq('%s: nproc' % label, tool_int(data['nproc']), want)
    R.eq('%s: processor lines in /proc/cpuinfo' % label, len(procs), want)
    R.eq('%s: cpuN lines in /proc/stat' % label, len(stat_ids), want)
    R.eq('%s: /sys/devices/system/cpu/online count' % label, len(online or ()), want,
         detail='online=%r' % data['sys_online'])
    for f in ('possible', 'present'):
        R.eq('%s: /sys/devices/system/cpu/%s == online' % (label, f),
             T.cpulist(data['sys_' + f]) if isinstance(data['sys_' + f], str) else data['sys_' + f],
             online)
    R.eq('%s: cpuinfo ids == stat ids == online ids' % label,
         (sorted(procs), stat_ids), (sorted(online or ()), sorted(online or ())))
    cpu_dirs = sorted(int(n[3:]) for n in data['sys_cpu_dir']
                      if n.startswith('cpu') and n[3:].isdigit()) \
        if isinstance(data['sys_cpu_dir'], list) else data['sys_cpu_dir']
    R.eq('%s: cpuN directories in /sys/devices/system/cpu == online' % label, cpu_dirs,
         sorted(online or ()))
    R.check('%s: visible CPU ids are within sched_getaffinity' % label,
            set(procs) <= set(data['affinity']), sorted(procs), data['affinity'])
    if ids is not None:
        R.eq('%s: visible CPU ids' % label, sorted(procs), sorted(ids))
        R.eq('%s: CPU ids == sched_getaffinity(0)' % label, sorted(procs), data['affinity'])
    for key in ('siblings', 'cpu cores'):
        vals = set(l.split(':', 1)[1].strip() for l in data['cpuinfo'].splitlines()
                   if l.startswith(key))
        if vals:
            R.eq('%s: cpuinfo "%s" consistent with the count' % (label, key), vals, {str(want)})


def check_top_mem(label, data, mib):
    m = re.search(r'MiB Mem\s*:\s*([\d.]+)\s+total', data['top']['out'])
    R.check('%s: top -bn1 runs' % label, data['top']['rc'] == 0, data['top'], 'rc 0')
    R.eq('%s: top "MiB Mem" total' % label, m.group(1) if m else data['top']['out'][:400],
         '%.1f' % mib)


def main():
    T.require()
    host_meminfo = T.read_text('/proc/meminfo')
    host_cpus = sorted(T.cpulist(T.read_text('/sys/devices/system/cpu/online')))
    if len(host_cpus) < 2:
        T.skip('needs at least 2 online CPUs, have %r' % host_cpus)
    d = T.start_daemon()

    # 1a. memory 512M, cpuset = the last online CPU
    cpu = host_cpus[-1]
    cg = T.CGroup(T.unique('cpuset'))
    cg.set_memory(512 * MIB)
    cg.set_cpuset(str(cpu))
    data = facts_in(d, cg, 'cpuset+512M')
    if data:
        label = 'cpuset %d, 512M' % cpu
        R.eq('%s: free -b total' % label, free_total(data), 536870912,
             detail=data['free_b']['out'] + data['free_b']['err'])
        mi = data['meminfo'] if isinstance(data['meminfo'], str) else ''
        R.eq('%s: MemTotal line' % label,
             [l for l in mi.splitlines() if l.startswith('MemTotal:')],
             ['MemTotal:         524288 kB'])
        check_meminfo_format(label, mi, host_meminfo)
        m = T.meminfo(mi)
        R.check('%s: MemFree <= MemAvailable <= MemTotal' % label,
                m.get('MemFree', -1) <= m.get('MemAvailable', -1) <= 524288,
                (m.get('MemFree'), m.get('MemAvailable'), m.get('MemTotal')), 'ordered')
        hm = T.meminfo(host_meminfo)
        keys = ('MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'SwapCached',
                'Active', 'Inactive', 'AnonPages', 'Mapped', 'Shmem', 'Slab', 'SwapTotal',
                'SwapFree')
        over_host = [(k, m.get(k), hm.get(k)) for k in keys
                     if k in hm and isinstance(m.get(k), int) and m[k] > hm[k] * 1.05 + 1024]
        R.eq('%s: meminfo values capped by the host\'s' % label, over_host, [])
        over_total = [(k, m.get(k)) for k in keys[:13]
                      if k not in ('MemTotal', 'SwapTotal') and isinstance(m.get(k), int)
                      and m[k] > 524288]
        R.eq('%s: memory figures within MemTotal' % label, over_total, [])
        sw = data['swaps'].splitlines() if isinstance(data['swaps'], str) else []
        R.eq('%s: /proc/swaps header' % label, sw[:1], T.read_text('/proc/swaps').splitlines()[:1])
        if hm.get('SwapTotal') == 0:
            R.eq('%s: no host swap -> SwapTotal 0 and swaps header only' % label,
                 (m.get('SwapTotal'), len(sw)), (0, 1))
        check_cpu_count(label, data, 1, ids=[cpu], check_nproc=True)
        check_top_mem(label, data, 512)
    cg.remove()

    # 1b. CPU quota, cpuset = all CPUs
    for quota, want in ((100000, 1), (150000, 2)):
        cg = T.CGroup(T.unique('quota%d' % quota))
        cg.set_quota(quota, 100000)
        data = facts_in(d, cg, 'quota %d' % quota)
        if data:
            label = 'quota %d/100000, all CPUs' % quota
            check_cpu_count(label, data, min(want, len(host_cpus)))
            R.eq('%s: nproc (affinity based) is not below the view' % label,
                 isinstance(tool_int(data['nproc']), int) and
                 tool_int(data['nproc']) >= min(want, len(host_cpus)), True)
        cg.remove()

    # 2. nested cgroups: the minimum over the ancestors wins
    parent = T.CGroup(T.unique('nest'))
    parent.set_memory(256 * MIB)
    parent.set_quota(100000, 100000)
    kid = T.CGroup(parent.rel + '/kid')
    kid.set_memory(1024 * MIB)
    kid.set_quota(-1, 100000)
    data = facts_in(d, kid, 'nested')
    if data:
        label = 'nested (parent 256M/1 CPU, child 1G/no quota)'
        R.eq('%s: free -b total' % label, free_total(data), 256 * MIB,
             detail=data['free_b']['out'])
        R.eq('%s: MemTotal kB' % label, T.meminfo(data['meminfo']).get('MemTotal'), 262144)
        check_cpu_count(label, data, 1)
        check_top_mem(label, data, 256)
    # the reverse: a child tighter than its parent
    kid2 = T.CGroup(parent.rel + '/kid2')
    kid2.set_memory(128 * MIB)
    data = facts_in(d, kid2, 'nested-tight-child')
    if data:
        R.eq('nested (parent 256M, child 128M): MemTotal kB',
             T.meminfo(data['meminfo']).get('MemTotal'), 131072)
    kid.remove()
    kid2.remove()
    parent.remove()

    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.summary_and_exit()


if __name__ == '__main__':
    main()
