#!/usr/bin/env python3
"""/proc/stat counters never go backwards while a CPU burner runs in the
cgroup; top and vmstat work inside and show the container's figures."""
import json
import re

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024
READS = 20

INSIDE = r'''
python3 "$1" series /proc/stat %d 150 > "$2/series.json"
top -bn1 > "$2/top.txt" 2>&1; echo "top rc=$?" >> "$2/top.txt"
vmstat 1 2 > "$2/vmstat.txt" 2>&1; echo "vmstat rc=$?" >> "$2/vmstat.txt"
cat /proc/loadavg > "$2/loadavg.txt"
''' % READS


def check_series(label, texts, want_cpus):
    if not R.check('%s: %d reads of /proc/stat' % (label, READS),
                   isinstance(texts, list) and len(texts) == READS and
                   all(isinstance(t, str) for t in texts), str(texts)[:300], '%d texts' % READS):
        return
    parsed = [T.stat_cpu_lines(t) for t in texts]
    R.eq('%s: same cpu lines in every read' % label, sorted(set(tuple(sorted(p)) for p in parsed)),
         [tuple(sorted(parsed[0]))])
    R.eq('%s: cpuN lines' % label, len([k for k in parsed[0] if k != 'cpu']), want_cpus)
    back = []
    for i in range(1, len(parsed)):
        for k, vals in parsed[i].items():
            prev = parsed[i - 1].get(k)
            if prev is None:
                continue
            for j, (a, b) in enumerate(zip(prev, vals)):
                if b < a:
                    back.append('read %d %s field %d: %d -> %d' % (i, k, j + 1, a, b))
    R.check('%s: no counter goes backwards across %d reads' % (label, READS), not back,
            back[:10], [])
    bad_sum = []
    for i, p in enumerate(parsed):
        per = [v for k, v in p.items() if k != 'cpu']
        if per and 'cpu' in p:
            sums = [sum(col) for col in zip(*per)]
            if sums != p['cpu']:
                bad_sum.append((i, p['cpu'], sums))
    R.check('%s: "cpu" line is the sum of the cpuN lines' % label, not bad_sum, bad_sum[:3], [])
    first, last = parsed[0]['cpu'], parsed[-1]['cpu']
    busy = (last[0] + last[2]) - (first[0] + first[2])
    total = sum(last[:8]) - sum(first[:8])
    R.check('%s: user+system grow while the burner runs' % label, busy > 0, busy, '> 0 ticks')
    # ~2.85 s of reads, visible CPUs x 100 ticks/s of capacity
    R.check('%s: total ticks grow like elapsed time x visible CPUs' % label,
            0.5 * 2.85 * 100 * want_cpus <= total <= 2.0 * 3.5 * 100 * want_cpus, total,
            '~%d ticks' % (285 * want_cpus))
    procs = [l for l in texts[-1].splitlines() if l.startswith('procs_running')]
    R.check('%s: procs_running >= 1' % label, procs and int(procs[0].split()[1]) >= 1, procs,
            '>= 1')


def check_tools(label, top, vmstat, mem_mib, want_cpus):
    R.check('%s: top -bn1 inside works' % label, 'top rc=0' in top, top[-500:], 'rc 0')
    m = re.search(r'MiB Mem\s*:\s*([\d.]+)\s+total', top)
    R.eq('%s: top "MiB Mem" total' % label, m.group(1) if m else top[:500], '%.1f' % mem_mib)
    m = re.search(r'%Cpu\(s\):\s*([\d.]+) us,\s*([\d.]+) sy,\s*([\d.]+) ni,\s*([\d.]+) id', top)
    R.check('%s: top %%Cpu(s) line parses, values in 0..100' % label,
            m is not None and all(0 <= float(x) <= 100 for x in m.groups()), top[:600], '%Cpu(s) line')
    R.check('%s: vmstat 1 2 inside works' % label, 'vmstat rc=0' in vmstat, vmstat[-500:], 'rc 0')
    lines = [l for l in vmstat.splitlines() if re.match(r'^\s*\d', l)]
    hdr = [l for l in vmstat.splitlines() if ' us ' in l or l.strip().startswith('r ')]
    if R.check('%s: vmstat printed 2 samples' % label, len(lines) == 2 and hdr, vmstat, '2 samples'):
        cols = hdr[0].split()
        vals = dict(zip(cols, (int(x) for x in lines[-1].split())))
        cpu = [vals.get(k, 0) for k in ('us', 'sy', 'id', 'wa', 'st')]
        R.check('%s: vmstat us+sy+id+wa+st ~ 100' % label, 97 <= sum(cpu) <= 103, vals, 'sum ~100')
        # one busy loop on the visible CPUs: ~100 % of one CPU, ~100/N % of N
        floor = 30 // want_cpus
        R.check('%s: vmstat shows the burner (us+sy >= %d)' % (label, floor),
                vals.get('us', 0) + vals.get('sy', 0) >= floor, vals, 'us+sy >= %d' % floor)
        R.check('%s: vmstat memory columns within the limit' % label,
                vals.get('free', 1 << 60) <= mem_mib * 1024, vals, 'free <= %d kB' % (mem_mib * 1024))


def run_case(d, label, cg, want_cpus, mem_mib):
    burner = T.popen(cg.wrap(['sh', '-c', 'while :; do :; done']))
    out_dir = T.tempdir('stat-')
    rc, out, err = T.run(cg.wrap(T.ns_argv(d.mnt, ['sh', '-c', INSIDE, 'cvt-stat', T.PROBE,
                                                   out_dir])), timeout=120)
    T._kill_proc(burner)
    T.forget(burner)
    if not R.check('%s: namespace run' % label, rc == 0, (rc, out, err), 'rc 0'):
        return
    try:
        with open(out_dir + '/series.json') as f:
            texts = json.load(f)
    except (OSError, ValueError) as e:
        texts = repr(e)
    check_series(label, texts, want_cpus)
    check_tools(label, T.read_text(out_dir + '/top.txt'), T.read_text(out_dir + '/vmstat.txt'),
                mem_mib, want_cpus)
    la = T.read_text(out_dir + '/loadavg.txt')
    host_la = T.read_text('/proc/loadavg')
    m = re.match(r'^\d+\.\d\d \d+\.\d\d \d+\.\d\d (\d+)/(\d+) \d+\n$', la)
    if R.check('%s: loadavg inside in the kernel format' % label, m is not None, la, 'a b c R/T PID'):
        host_total = int(host_la.split()[3].split('/')[1])
        R.check('%s: loadavg tasks are the cgroup\'s (2 <= total < host\'s %d)' % (label, host_total),
                2 <= int(m.group(2)) < host_total, la, 'cgroup task count')
        R.check('%s: loadavg running >= 1 (burner)' % label, int(m.group(1)) >= 1, la, '>= 1')


def main():
    T.require()
    if not T.shutil.which('vmstat'):
        T.skip('vmstat (procps) missing')
    d = T.start_daemon()
    ncpus = len(T.cpulist(T.read_text('/sys/devices/system/cpu/online')))

    cg = T.CGroup(T.unique('burn1'))
    cg.set_memory(512 * MIB)
    cg.set_quota(100000, 100000)
    run_case(d, '512M / quota 1 CPU', cg, 1, 512)
    cg.remove()

    cg = T.CGroup(T.unique('burnall'))
    cg.set_memory(768 * MIB)
    run_case(d, '768M / all CPUs', cg, ncpus, 768)
    cg.remove()

    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.summary_and_exit()


if __name__ == '__main__':
    main()
