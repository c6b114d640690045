#!/usr/bin/env python3
"""Thousands of live containers: 2,500 v1 memory cgroups, each read once and
all kept alive, must each get their own view while the daemon stays within
the machine's open-file limit (20,000 here, hard)."""
import os
import resource
import subprocess
import time

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024
N = 2500
BATCH = 50


def fd_count(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return -1


def main():
    T.require()
    d = T.start_daemon()
    with open('/proc/%d/limits' % d.pid) as f:
        lim = [l for l in f if l.startswith('Max open files')]
    print('# daemon: %s' % (lim[0].strip() if lim else '?'))
    parent = T.CGroup(T.unique('scale'), controllers=('memory',))
    kids = []
    for i in range(N):
        k = T.CGroup('%s/%d' % (parent.rel, i), controllers=('memory',))
        k.set_memory((64 + i) * MIB)
        kids.append(k)
    wrong, failed, first_wrong_fds = [], [], None
    t0 = time.time()
    for i, rc, out, err in T.read_in_batches(kids, lambda i: ['cat', d.path('proc/meminfo')],
                                             BATCH):
        if rc != 0:
            failed.append((i, rc, err[:200]))
        else:
            mt = T.meminfo(out).get('MemTotal')
            if mt != (64 + i) * 1024:
                if first_wrong_fds is None:
                    first_wrong_fds = fd_count(d.pid)
                wrong.append((i, mt, (64 + i) * 1024))
        if i % BATCH == BATCH - 1 and not d.alive():
            break
    fds = fd_count(d.pid)
    print('# %d cgroups read in %.1f s; daemon fds at the end: %d; first wrong view at fds=%s' %
          (N, time.time() - t0, fds, first_wrong_fds))
    R.check('%d live cgroups: daemon alive' % N, d.alive(), d.proc.poll(), 'running',
            detail=d.log_text()[-1500:])
    R.eq('%d live cgroups: every reader succeeded' % N, failed[:5], [])
    R.check('%d live cgroups: every reader saw its own MemTotal' % N, not wrong,
            '%d wrong, first: %r' % (len(wrong), wrong[:3]), 'none wrong')
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    R.check('%d live cgroups: daemon keeps fds well below the open-file limit' % N,
            0 < fds < min(hard, 20000) - 1000, fds, '< %d' % (min(hard, 20000) - 1000))
    rc, out, err = T.run(['cat', d.path('proc/meminfo')], timeout=10)
    R.check('%d live cgroups: a host read still works' % N, rc == 0 and 'MemTotal' in out, (rc, err))
    for k in kids:
        k.remove()
    parent.remove()
    R.summary_and_exit()


if __name__ == '__main__':
    main()
