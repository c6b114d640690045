#!/usr/bin/env python3
"""PID namespaces: /proc/uptime counts from the start of the reader's PID
namespace init, so `uptime` and `top` inside a fresh namespace show ~0 min."""
import re

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024

INSIDE = r'''
sleep 2
cat /proc/uptime
python3 -c 'import os, time; print(time.clock_gettime(time.CLOCK_BOOTTIME), os.sysconf("SC_CLK_TCK"))'
cut -d' ' -f22 /proc/1/stat
echo ---
uptime
echo ---
top -bn1 | head -5
echo ---
cat "$1/proc/uptime"
'''


def expected_uptime(section):
    """uptime line, then CLOCK_BOOTTIME and CLK_TCK, then the start time of
    the namespace's init (pid 1 of the fresh /proc) in ticks since boot."""
    try:
        lines = section.splitlines()
        boot, hz = lines[1].split()
        return float(boot) - int(lines[2]) / float(hz)
    except (ValueError, IndexError):
        return None


def parse_uptime(text):
    try:
        up, idle = text.split()
        return float(up), float(idle)
    except ValueError:
        return None, None


def run_case(label, d, cg, ncpus):
    argv = T.ns_argv(d.mnt, ['sh', '-c', INSIDE, 'cvt-inside', d.mnt])
    if cg:
        argv = cg.wrap(argv)
    rc, out, err = T.run(argv, timeout=60)
    host_up = T.host_uptime()
    parts = out.split('---\n')
    if not R.check('%s: namespace ran' % label, rc == 0 and len(parts) == 4, (rc, out, err),
                   'rc 0 and 4 sections'):
        return
    up, idle = parse_uptime(parts[0].splitlines()[0] if parts[0] else '')
    want = expected_uptime(parts[0])
    R.check('%s: /proc/uptime inside (bound view) >= 2 s (slept 2 s)' % label,
            up is not None and up >= 1.9, parts[0], '>= 2')
    R.check('%s: /proc/uptime inside == time since the namespace init started (+-0.5 s)' % label,
            up is not None and want is not None and abs(up - want) < 0.5, up,
            '%.2f' % want if want is not None else parts[0])
    if host_up > 30:
        R.check('%s: the host\'s uptime is larger' % label, up is not None and host_up > up + 20,
                (host_up, up), 'host > inside')
    R.check('%s: idle <= uptime x visible CPUs' % label,
            up is not None and 0 <= idle <= up * ncpus + 0.5, parts[0], 'idle <= %d x up' % ncpus)
    R.check('%s: `uptime` says up 0 min' % label, re.search(r'up\s+0 min', parts[1]) is not None,
            parts[1], 'up 0 min')
    R.check('%s: `top -bn1` header says up 0 min' % label,
            re.search(r'^top - .* up\s+0 min', parts[2]) is not None, parts[2], 'top - ... up 0 min')
    up2, _ = parse_uptime(parts[3])
    R.check('%s: MNT/proc/uptime read directly inside the namespace agrees' % label,
            up2 is not None and up is not None and 0 <= up2 - up < 1.5, (parts[0], parts[3]),
            'same namespace uptime')


def main():
    T.require()
    d = T.start_daemon()
    ncpus = len(T.cpulist(T.read_text('/sys/devices/system/cpu/online')))

    unl = T.CGroup(T.unique('pidns-unl'))
    run_case('pidns, unlimited cgroup', d, unl, ncpus)
    lim = T.CGroup(T.unique('pidns-lim'))
    lim.set_memory(256 * MIB)
    lim.set_quota(100000, 100000)
    run_case('pidns, 256M / 1 CPU', d, lim, 1)

    # Without a PID namespace the host's uptime shows through the view.
    rc, data, out, err = T.run_json(unl.wrap(T.probe_argv('read', d.path('proc/uptime'),
                                                          '/proc/uptime')))
    if R.check('host-namespace reader ran', data is not None, err):
        v, h = parse_uptime(data[d.path('proc/uptime')])[0], parse_uptime(data['/proc/uptime'])[0]
        R.check('host-namespace reader sees the host uptime', v is not None and abs(v - h) < 2,
                v, h)
    # Readers in PID namespaces without any bind: the shared file alone. The
    # namespaces follow one another, so the kernel reuses their nsfs inode
    # numbers: each must still count from its own init.
    for i in range(3):
        script = ('sleep 1; cat "$0"; python3 -c \'import os, time; print('
                  'time.clock_gettime(time.CLOCK_BOOTTIME), os.sysconf("SC_CLK_TCK"))\'; '
                  'cut -d" " -f22 /proc/1/stat')
        rc, out, err = T.run(unl.wrap(T.ns_argv(d.mnt, ['sh', '-c', script, d.path('proc/uptime')],
                                                bind=False)))
        up, _ = parse_uptime(out.splitlines()[0] if out else '')
        want = expected_uptime(out)
        R.check('pidns reader #%d of MNT/proc/uptime (no binds, consecutive namespaces) '
                'counts from its own init (+-0.5 s)' % (i + 1),
                up is not None and want is not None and up >= 0.9 and abs(up - want) < 0.5,
                (rc, out, err), 'uptime %s' % ('%.2f' % want if want is not None else '?'))
    unl.remove()
    lim.remove()
    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.summary_and_exit()


if __name__ == '__main__':
    main()
