#!/usr/bin/env python3
"""A reader whose cgroups set no limit sees the host's files: byte-identical
except for fields that change between two reads."""
import re

import cvmfstest as T
from cvmfstest import R

SYS_CPU = '/sys/devices/system/cpu'


def no_mhz(text):
    return '\n'.join(l for l in text.splitlines() if not l.startswith('cpu MHz'))


def first_tokens(text):
    return [l.split()[0] if l.split() else '' for l in text.splitlines()]


def compare(label, view, host):
    """view/host: dicts name -> text (or an error dict)."""
    for name in view:
        if not R.check('%s: %s readable' % (label, name), isinstance(view[name], str),
                       view[name], 'text'):
            return
    m_v, m_h = T.meminfo(view['meminfo']), T.meminfo(host['meminfo'])
    R.eq('%s: meminfo keys (in order)' % label, T.meminfo_keys(view['meminfo']),
         T.meminfo_keys(host['meminfo']))
    for k in ('MemTotal', 'SwapTotal', 'HugePages_Total', 'Hugepagesize'):
        if k in m_h:
            R.eq('%s: meminfo %s' % (label, k), m_v.get(k), m_h[k])
    R.eq('%s: meminfo line layout (label and unit columns)' % label,
         [re.sub(r'\d+', 'N', l) for l in view['meminfo'].splitlines()],
         [re.sub(r'\d+', 'N', l) for l in host['meminfo'].splitlines()])
    R.eq('%s: cpuinfo identical except "cpu MHz"' % label, no_mhz(view['cpuinfo']),
         no_mhz(host['cpuinfo']))
    R.eq('%s: stat line keys' % label, first_tokens(view['stat']), first_tokens(host['stat']))
    btime_v = [l for l in view['stat'].splitlines() if l.startswith('btime')]
    btime_h = [l for l in host['stat'].splitlines() if l.startswith('btime')]
    R.eq('%s: stat btime' % label, btime_v, btime_h)
    cv, ch = T.stat_cpu_lines(view['stat']), T.stat_cpu_lines(host['stat'])
    R.check('%s: stat cpu counters within 2 s of the host\'s' % label,
            all(k in ch and len(cv[k]) == len(ch[k]) and
                all(abs(a - b) <= 200 * len(ch) for a, b in zip(cv[k], ch[k])) for k in cv),
            cv, ch)
    R.check('%s: uptime format' % label,
            re.match(r'^\d+\.\d\d \d+\.\d\d\n$', view['uptime']) is not None, view['uptime'],
            'N.NN N.NN')
    try:
        uv, uh = float(view['uptime'].split()[0]), float(host['uptime'].split()[0])
    except (ValueError, IndexError):
        uv, uh = None, None
    R.check('%s: uptime equals the host\'s (within 2 s)' % label,
            uv is not None and abs(uv - uh) < 2, view['uptime'], host['uptime'])
    R.check('%s: loadavg format' % label,
            re.match(r'^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n$', view['loadavg'])
            is not None, view['loadavg'], 'kernel format')
    try:
        lv, lh = float(view['loadavg'].split()[2]), float(host['loadavg'].split()[2])
    except (ValueError, IndexError):
        lv = lh = None
    R.check('%s: loadavg 15-min as the host\'s' % label, lv is not None and abs(lv - lh) < 0.2,
            view['loadavg'], host['loadavg'])
    R.eq('%s: swaps identical' % label, view['swaps'], host['swaps'])
    R.eq('%s: diskstats devices' % label,
         [l.split()[:3] for l in view['diskstats'].splitlines()],
         [l.split()[:3] for l in host['diskstats'].splitlines()])
    R.eq('%s: diskstats column layout' % label,
         [re.sub(r'\d+', 'N', l) for l in view['diskstats'].splitlines()],
         [re.sub(r'\d+', 'N', l) for l in host['diskstats'].splitlines()])
    for f in T.PSI_FILES:
        k = 'pressure/' + f
        if k in host and isinstance(host[k], str):
            R.eq('%s: %s layout' % (label, k), [re.sub(r'[\d.]+', 'N', l) for l in view[k].splitlines()],
                 [re.sub(r'[\d.]+', 'N', l) for l in host[k].splitlines()])
    for f in ('online', 'possible', 'present'):
        R.eq('%s: sys cpu/%s identical' % (label, f), view['sys/' + f], host['sys/' + f])
    for k in view:
        if k.startswith('sys/cpu') and '/topology/' in k:
            R.eq('%s: %s passes through' % (label, k), view[k], host[k])


def gather(d, wrap):
    files = {}
    for f in T.PROC_FILES:
        files[f] = ('/proc/' + f, d.path('proc', f))
    for f in T.PSI_FILES:
        files['pressure/' + f] = ('/proc/pressure/' + f, d.path('proc', 'pressure', f))
    for f in ('online', 'possible', 'present'):
        files['sys/' + f] = (SYS_CPU + '/' + f, d.path('sys/devices/system/cpu', f))
    for c in sorted(T.cpulist(T.read_text(SYS_CPU + '/online'))):
        for t in ('core_cpus_list', 'physical_package_id', 'thread_siblings_list'):
            rel = 'cpu%d/topology/%s' % (c, t)
            files['sys/' + rel] = (SYS_CPU + '/' + rel, d.path('sys/devices/system/cpu', rel))
    order = []
    for k, (h, v) in files.items():
        order += [v, h]  # view first, then the host's right after
    rc, data, out, err = T.run_json(wrap(T.probe_argv('read', *order)))
    if data is None:
        return None, None
    return ({k: data[v] for k, (h, v) in files.items()},
            {k: data[h] for k, (h, v) in files.items()})


def main():
    T.require()
    d = T.start_daemon()
    cg = T.CGroup(T.unique('unlimited'))  # no limits set
    view, host = gather(d, cg.wrap)
    if R.check('reader in an unlimited cgroup ran', view is not None):
        compare('unlimited cgroup', view, host)

    # The listing of the cpu directory is the real one.
    rc, data, out, err = T.run_json(cg.wrap(T.probe_argv(
        'ls', d.path('sys/devices/system/cpu'), SYS_CPU, d.path('proc'), d.path('proc/pressure'))))
    if R.check('listing probe ran', data is not None, err):
        R.eq('sys/devices/system/cpu listing as the host\'s', data[d.path('sys/devices/system/cpu')],
             data[SYS_CPU])
        R.eq('proc listing', data[d.path('proc')],
             sorted(list(T.PROC_FILES) + ['pressure']))
        R.eq('proc/pressure listing', data[d.path('proc/pressure')], sorted(T.PSI_FILES))
    cg.remove()
    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.summary_and_exit()


if __name__ == '__main__':
    main()
