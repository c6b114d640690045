#!/usr/bin/env python3
"""Per-container trees: MNT/ct/NAME/{proc,sys} answer for the cgroup
/cvmfs/NAME whoever reads them, and follow limit changes within ct-ttl."""
import errno
import os
import time

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024


def stat_errno(path):
    try:
        os.stat(path)
        return 0
    except OSError as e:
        return e.errno


def memtotal(path):
    try:
        return T.meminfo(T.read_text(path)).get('MemTotal')
    except OSError as e:
        return 'error %s' % errno.errorcode.get(e.errno, e.errno)


def main():
    T.require()
    name = 'cvmfs-test-ct%d' % os.getpid()
    name2 = 'cvmfs-test-ct%d-b' % os.getpid()
    cg = T.CGroup('cvmfs/' + name, controllers=('memory', 'cpu', 'cpuacct'))
    cg.set_memory(300 * MIB)
    cg.set_quota(100000, 100000)
    d = T.start_daemon()
    ctdir = d.path('ct', name)
    host_cpus = sorted(T.cpulist(T.read_text('/sys/devices/system/cpu/online')))

    mi_path = os.path.join(ctdir, 'proc', 'meminfo')
    text = T.read_text(mi_path)
    R.eq('ct meminfo MemTotal (300M) read from the host', T.meminfo(text).get('MemTotal'), 307200)
    R.eq('ct meminfo MemTotal line format', [l for l in text.splitlines() if l.startswith('MemTotal')],
         ['MemTotal:         307200 kB'])
    R.eq('ct meminfo st_size is the content length', os.stat(mi_path).st_size, len(text.encode('latin-1')))
    cpuinfo = T.read_text(os.path.join(ctdir, 'proc', 'cpuinfo'))
    R.eq('ct cpuinfo: quota 1 CPU -> 1 processor', len(T.cpuinfo_processors(cpuinfo)), 1)
    online = T.read_text(os.path.join(ctdir, 'sys/devices/system/cpu/online'))
    R.eq('ct sys cpu/online lists the cpuinfo CPU', sorted(T.cpulist(online)),
         T.cpuinfo_processors(cpuinfo))
    cpudirs = sorted(n for n in os.listdir(os.path.join(ctdir, 'sys/devices/system/cpu'))
                     if n.startswith('cpu') and n[3:].isdigit())
    R.eq('ct sys cpu dir lists only the visible cpuN', cpudirs,
         ['cpu%d' % c for c in T.cpuinfo_processors(cpuinfo)])
    stat = T.stat_cpu_lines(T.read_text(os.path.join(ctdir, 'proc', 'stat')))
    R.eq('ct stat cpuN lines', sorted(k for k in stat if k != 'cpu'),
         ['cpu%d' % c for c in T.cpuinfo_processors(cpuinfo)])
    R.check('ct listing: NAME present in ls MNT/ct', name in os.listdir(d.path('ct')),
            os.listdir(d.path('ct')), 'contains ' + name)
    R.eq('ct listing: NAME has proc, sys and sysctl (doc/cvmfsd-views.md)',
         sorted(os.listdir(ctdir)), ['proc', 'sys', 'sysctl'])
    R.eq('ct listing: NAME/proc', sorted(os.listdir(os.path.join(ctdir, 'proc'))),
         sorted(list(T.PROC_FILES) + ['pressure']))

    # whoever reads: a process in another, limited cgroup sees the ct's values
    other = T.CGroup(T.unique('ct-other'))
    other.set_memory(128 * MIB)
    rc, data, out, err = T.run_json(other.wrap(T.probe_argv('read', mi_path, d.path('proc/meminfo'))))
    if R.check('reader in another cgroup ran', data is not None, (rc, err)):
        R.eq('ct meminfo read from another cgroup is the ct\'s', T.meminfo(data[mi_path]).get('MemTotal'),
             307200)
        R.eq('...while the shared tree answers for that reader', T.meminfo(data[d.path('proc/meminfo')]).get('MemTotal'),
             131072)
    other.remove()

    # limit change shows within ct-ttl (default 500 ms); poll up to 2 s
    cg.set_memory(400 * MIB)
    t0 = time.time()
    seen = None
    while time.time() - t0 < 2.0:
        seen = memtotal(mi_path)
        if seen == 409600:
            break
        time.sleep(0.05)
    took = time.time() - t0
    R.eq('ct meminfo follows a limit change to 400M within 2 s (took %.2f s)' % took, seen, 409600)
    R.check('ct change latency <= ct-ttl + cache-ms + 0.9 s slack (1.5 s)', took <= 1.5,
            '%.2f s' % took, '<= 1.5 s')

    # unknown names
    missing = d.path('ct', 'cvmfs-test-nonexistent-%d' % os.getpid())
    R.eq('lookup of a name with no cgroup fails with ENOENT', stat_errno(missing), errno.ENOENT)
    R.eq('reading a file under such a name fails with ENOENT',
         stat_errno(os.path.join(missing, 'proc', 'meminfo')), errno.ENOENT)

    # a cgroup created and removed without ever being looked up
    cg2 = T.CGroup('cvmfs/' + name2, controllers=('memory',))
    cg2.remove()
    R.eq('lookup of a removed, never-seen name fails', stat_errno(d.path('ct', name2)), errno.ENOENT)

    # rmdir of the cgroup: gone from the listing, lookups fail soon after
    cg.remove()
    R.check('after rmdir: NAME gone from ls MNT/ct', name not in os.listdir(d.path('ct')),
            os.listdir(d.path('ct')), 'without ' + name)
    t0 = time.time()
    e = 0
    while time.time() - t0 < 3.0:
        e = stat_errno(ctdir)
        if e == errno.ENOENT:
            break
        time.sleep(0.1)
    R.eq('after rmdir: lookup of NAME fails with ENOENT within 3 s (took %.2f s)' % (time.time() - t0),
         e, errno.ENOENT)
    cg.remove_parents()
    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.check('daemon answers on the shared tree', 'MemTotal' in T.read_text(d.path('proc/meminfo')))
    R.summary_and_exit()


if __name__ == '__main__':
    main()
