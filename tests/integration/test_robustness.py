#!/usr/bin/env python3
"""Robustness: readers that vanish mid-request, 1,000 cgroups read
concurrently, unparsable cgroup files, SIGTERM, daemonizing, and restart
over a stale (ENOTCONN) mountpoint."""
import errno
import json
import os
import random
import signal
import subprocess
import time

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024
NCGROUPS = 1000
BATCH = 50


def responsive(label, d):
    R.check('%s: daemon process alive' % label, d.alive(), d.proc.poll(), 'running',
            detail=d.log_text()[-2000:])
    rc, out, err = T.run(['cat', d.path('proc/meminfo')], timeout=10)
    R.check('%s: a read from the host still works' % label, rc == 0 and 'MemTotal:' in out,
            (rc, out[:200], err), 'meminfo text')


def fd_count(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return -1


# ------------------------------------------------------------ vanishing readers

THREADS_READER = r'''
import os, sys, threading
paths = sys.argv[1:]
def loop():
    while True:
        for p in paths:
            try:
                fd = os.open(p, os.O_RDONLY)
                os.read(fd, 100)
                os.pread(fd, 50, 4000)
                os.close(fd)
            except OSError:
                pass
for _ in range(8):
    threading.Thread(target=loop, daemon=True).start()
threading.Event().wait()
'''


def vanishing(d):
    cg = T.CGroup(T.unique('vanish'))
    cg.set_memory(256 * MIB)
    rnd = random.Random(4242)
    paths = [d.path('proc', f) for f in T.PROC_FILES] + [d.path('sys/devices/system/cpu/online')]
    started = 0
    for _ in range(20):
        batch = []
        for _ in range(20):
            argv = cg.wrap(['cat'] + rnd.sample(paths, 3))
            batch.append(T.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            started += 1
        for p in batch:
            time.sleep(rnd.random() * 0.004)
            T._kill_proc(p)
            T.forget(p)
    for i in range(8):
        p = T.popen(cg.wrap([T.PYTHON, '-c', THREADS_READER] + paths + [d.path('ct')]),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.1 + rnd.random() * 0.2)
        T._kill_proc(p)
        T.forget(p)
    print('# %d short-lived readers and 8 multi-threaded readers killed mid-read' % started)
    responsive('after killed readers', d)
    rc, out, err = T.run(cg.wrap(['cat', d.path('proc/meminfo')]))
    R.eq('after killed readers: a fresh reader in the cgroup sees its limit',
         T.meminfo(out).get('MemTotal'), 262144, detail=err)
    cg.remove()


# ------------------------------------------------------------ 1,000 cgroups

def many(d):
    parent = T.CGroup(T.unique('many'), controllers=('memory',))
    kids = []
    t0 = time.time()
    for i in range(NCGROUPS):
        k = T.CGroup('%s/%d' % (parent.rel, i), controllers=('memory',))
        k.set_memory((64 + i) * MIB)
        kids.append(k)
    t_create = time.time() - t0
    fds_before = fd_count(d.pid)
    wrong, failed = [], []
    t0 = time.time()
    argv_of = lambda i: ['cat', d.path('proc/meminfo'), d.path('proc/stat'),  # noqa: E731
                         d.path('proc/cpuinfo')]
    for i, rc, out, err in T.read_in_batches(kids, argv_of, BATCH):
        if rc != 0:
            failed.append((i, rc, err[:200]))
            continue
        mt = T.meminfo(out).get('MemTotal')
        if mt != (64 + i) * 1024:
            wrong.append((i, mt, (64 + i) * 1024))
    t_read = time.time() - t0
    print('# %d cgroups: created in %.1f s, read in %.1f s; daemon fds %d -> %d' %
          (NCGROUPS, t_create, t_read, fds_before, fd_count(d.pid)))
    R.eq('%d cgroups read concurrently: every reader succeeded' % NCGROUPS, failed[:5], [])
    R.eq('%d cgroups read concurrently: every reader saw its own MemTotal' % NCGROUPS, wrong[:5], [])
    R.check('%d cgroups: daemon fds stay under the 20,000 limit' % NCGROUPS,
            0 < fd_count(d.pid) < 15000, fd_count(d.pid), '< 15000')
    responsive('after %d cgroups' % NCGROUPS, d)
    fds_loaded = fd_count(d.pid)
    t0 = time.time()
    for k in kids:
        k.remove()
    parent.remove()
    print('# removed %d cgroups in %.1f s' % (NCGROUPS, time.time() - t0))
    # removed cgroups are expired by the sampler (every second, after its
    # sampling pass over every cgroup it knows: seconds under ASan on a
    # busy machine). A bound on liveness, not on speed.
    t0 = time.time()
    deadline = t0 + 30
    while time.time() < deadline and fd_count(d.pid) > fds_before + 50:
        time.sleep(0.2)
    print('# fds released in %.1f s' % (time.time() - t0))
    R.check('after removing the %d cgroups the daemon releases their fds (30 s)' % NCGROUPS,
            fd_count(d.pid) <= fds_before + 50, '%d (was %d before, %d loaded)' %
            (fd_count(d.pid), fds_before, fds_loaded), '<= %d' % (fds_before + 50))
    responsive('after removing the cgroups', d)


# ------------------------------------------------------------ garbage fixtures

FILES = ['proc/' + f for f in T.PROC_FILES] + ['proc/pressure/' + f for f in T.PSI_FILES] + \
    ['sys/devices/system/cpu/' + f for f in ('online', 'possible', 'present')]


def garbage():
    base = T.tempdir('garbage-')
    fx = T.V2Fixture(base)
    small_stat = T.memstat_v2({k: 4096 for k in T.MEMSTAT_V2_KEYS})
    host_mem = fx.host_file('meminfo')
    host_total = T.meminfo(host_mem)['MemTotal']
    host_cpus = T.cpulist(T.read_text('/sys/devices/system/cpu/online'))
    cases = {
        'memory.max garbage': {'memory.max': 'garbage\n'},
        'memory.stat truncated': {'memory.max': '268435456\n',
                                  'memory.stat': 'anon 4096\nfile 8192\nkern'},
        'cpu.max and cpuset garbage': {'cpu.max': 'abc def\n', 'cpuset.cpus.effective': 'x-y\n',
                                       'memory.max': '268435456\n'},
        'all files empty': {k: '' for k in ('memory.max', 'memory.current', 'memory.stat',
                                            'memory.swap.max', 'memory.swap.current', 'cpu.max',
                                            'cpu.stat', 'cpuset.cpus.effective', 'io.stat',
                                            'cpu.pressure', 'memory.pressure', 'io.pressure',
                                            'pids.max', 'pids.current')},
        'io.stat and cpu.stat garbage': {'memory.max': '268435456\n',
                                         'io.stat': '8:0 rbytes=abc wbytes\nzzz\n:\n',
                                         'cpu.stat': 'user_usec -5\nsystem_usec\n'},
        'overflowing numbers': {'memory.max': '99999999999999999999999999\n',
                                'memory.current': '18446744073709551615\n',
                                'cpu.max': '99999999999999999999 1\n'},
        'usage above the limit': {'memory.max': '268435456\n', 'memory.current': '536870912\n',
                                  'memory.swap.max': '0\n', 'memory.swap.current': '1048576\n'},
        'cpu.max period 0': {'cpu.max': '100000 0\n', 'memory.max': '268435456\n'},
        'files missing': {k: None for k in ('memory.current', 'memory.stat', 'cpu.stat', 'io.stat',
                                            'cpu.pressure', 'cpuset.cpus.effective')},
    }
    rels = {}
    for i, (label, files) in enumerate(cases.items()):
        rels[label] = 'cvmfs-test-g%d' % i
        fx.cgroup(rels[label], files=dict({'memory.stat': small_stat}, **files))
    d = T.start_daemon(fx.daemon_args())

    def read_all(label, rel, cgroup_text=None, register=True):
        paths = [d.path(f) for f in FILES]
        if register:
            rc, out, err = T.fixture_read(fx, rel, T.probe_argv('--wait', 'read', *paths),
                                          cgroup_text=cgroup_text)
        else:
            rc, out, err = T.run(T.probe_argv('read', *paths))
        try:
            data = json.loads(out)
        except ValueError:
            R.check('%s: reader ran' % label, False, (rc, out[-300:], err[-300:]), 'JSON')
            return None
        errs = {f: data[d.path(f)] for f in FILES if not isinstance(data[d.path(f)], str)}
        R.eq('%s: every file readable' % label, errs, {})
        return {f: data[d.path(f)] for f in FILES if isinstance(data[d.path(f)], str)}

    for label, files in cases.items():
        lab = 'unparsable: ' + label
        v = read_all(lab, rels[label])
        R.check('%s: daemon alive' % lab, d.alive(), d.proc.poll(), 'running',
                detail=d.log_text()[-1500:])
        if not v:
            continue
        mi = T.meminfo(v.get('proc/meminfo', ''))
        total = mi.get('MemTotal')
        R.check('%s: 0 < MemTotal <= host' % lab, isinstance(total, int) and 0 < total <= host_total,
                total, '0 < x <= %d' % host_total)
        bad = [k for k, x in mi.items() if not isinstance(x, int) or
               (k in ('MemFree', 'MemAvailable', 'Cached', 'AnonPages', 'Shmem', 'Slab')
                and isinstance(total, int) and x > total)]
        R.eq('%s: meminfo values numeric and within MemTotal' % lab, bad, [])
        if files.get('memory.max') == '268435456\n':
            R.eq('%s: the parsable memory.max still applies' % lab, total, 262144)
        if label == 'usage above the limit':
            R.eq('%s: MemFree 0' % lab, mi.get('MemFree'), 0)
            R.check('%s: SwapFree <= SwapTotal' % lab, mi.get('SwapFree', 0) <= mi.get('SwapTotal', 0),
                    (mi.get('SwapTotal'), mi.get('SwapFree')), 'SwapFree <= SwapTotal')
        procs = T.cpuinfo_processors(v.get('proc/cpuinfo', ''))
        R.check('%s: cpuinfo has 1..host CPUs, real ids' % lab,
                1 <= len(procs) and set(procs) <= host_cpus, procs, sorted(host_cpus))
        try:
            online = T.cpulist(v.get('sys/devices/system/cpu/online', ''))
        except ValueError:
            online = None
        R.eq('%s: sys cpu/online parses and matches cpuinfo' % lab, online and sorted(online), procs)
        cl = T.stat_cpu_lines(v.get('proc/stat', ''))
        R.check('%s: stat cpu lines well-formed' % lab,
                'cpu' in cl and len(cl) == len(procs) + 1 and all(x >= 0 for x in cl['cpu']), cl,
                'cpu + one line per CPU')

    # the reader's own /proc/PID/cgroup is unparsable, points nowhere, or is missing
    for lab, text in (('unparsable /proc/PID/cgroup', 'nonsense without colons\n'),
                      ('/proc/PID/cgroup names a missing cgroup', '0::/cvmfs-test-does-not-exist\n'),
                      ('/proc/PID/cgroup empty', '')):
        v = read_all(lab, None, cgroup_text=text)
        if v:
            R.eq('%s: host meminfo' % lab, v.get('proc/meminfo'), host_mem)
    v = read_all('no /proc/PID entry at all', None, register=False)
    if v:
        R.eq('no /proc/PID entry at all: host meminfo', v.get('proc/meminfo'), host_mem)
    R.check('unparsable fixtures: daemon alive at the end', d.alive(), d.proc.poll(), 'running',
            detail=d.log_text()[-1500:])
    rc = d.stop()
    R.eq('unparsable fixtures: SIGTERM exit status', rc, 0)
    R.eq('unparsable fixtures: SIGTERM leaves nothing mounted', d.mounts_after_exit, [])


# ------------------------------------------------------------ lifecycle

def sigterm_with_open_file():
    d = T.start_daemon()
    fd = os.open(d.path('proc/meminfo'), os.O_RDONLY)
    ctfd = os.open(d.path('ct'), os.O_RDONLY | os.O_DIRECTORY)
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = 'still running after 10 s'
    R.eq('SIGTERM (a file and ct held open): exit status 0', rc, 0, detail=d.log_text()[-1500:])
    R.eq('SIGTERM: both mounts gone', T.mounts_under(d.mnt), [])
    os.close(fd)
    os.close(ctfd)
    d.stop()


def sigterm_while_reading_held_dirs():
    """SIGTERM while readers keep reading directories they hold open, in
    both trees: their requests wake the session threads after the stop
    began, so a thread may end while the kernel still holds a handle (no
    RELEASE ever comes). The daemon must exit 0, print no unmount error
    and (under LeakSanitizer) free every handle."""
    import threading
    d = T.start_daemon()
    fds = [os.open(d.path(p), os.O_RDONLY | os.O_DIRECTORY) for p in ('ct', 'proc', 'sys')]
    stop = threading.Event()

    def hammer(fd):
        while not stop.is_set():
            try:
                os.lseek(fd, 0, os.SEEK_SET)
                os.listdir(fd)
            except OSError:
                time.sleep(0.001)
    threads = [threading.Thread(target=hammer, args=(fd,), daemon=True) for fd in fds]
    for t in threads:
        t.start()
    time.sleep(0.2)  # the test: the readers hammer for a while before the SIGTERM
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = 'still running after 10 s'
    stop.set()
    for t in threads:
        t.join()
    log = d.log_text()
    R.eq('SIGTERM (held directories being read): exit status 0', rc, 0, detail=log[-1500:])
    R.check('SIGTERM (held directories being read): no unmount error logged',
            'failed to unmount' not in log, log[-1500:], 'no "failed to unmount"')
    R.eq('SIGTERM (held directories being read): both mounts gone', T.mounts_under(d.mnt), [])
    for fd in fds:
        os.close(fd)
    d.stop()


def find_daemon_pid(mnt):
    for e in os.listdir('/proc'):
        if not e.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % e, 'rb') as f:
                args = f.read().split(b'\0')
        except OSError:
            continue
        if mnt.encode() in args and any(a.endswith(b'cvmfsd') for a in args[:1]):
            return int(e)
    return None


def daemonize():
    base = T.tempdir('views-bg-')
    mnt = os.path.join(base, 'mnt')
    os.makedirs(mnt)
    conf = os.path.join(base, 'views.conf')
    with open(conf, 'w') as f:
        f.write('[views]\n')
    T._mounts.extend([mnt, os.path.join(mnt, 'ct')])
    t0 = time.time()
    rc, out, err = T.run([T.CVMFSD, 'views', '-c', conf, mnt], timeout=30)
    R.eq('without -f: the starter exits 0', rc, 0, detail=err)
    R.check('without -f: both mounts present when it returns',
            T.is_mounted(mnt) and T.is_mounted(os.path.join(mnt, 'ct')), T.mounts_under(mnt),
            [mnt, mnt + '/ct'])
    pid = find_daemon_pid(mnt)
    if not R.check('without -f: a daemon process remains', pid is not None):
        return
    rc2, out2, err2 = T.run(['cat', os.path.join(mnt, 'proc/meminfo')], timeout=10)
    R.check('without -f: the daemon answers', rc2 == 0 and 'MemTotal' in out2, (rc2, err2))
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while time.time() < deadline and (T.pid_exists(pid) or T.mounts_under(mnt)):
        time.sleep(0.05)
    R.eq('without -f: SIGTERM -> mounts gone', T.mounts_under(mnt), [])
    R.check('without -f: SIGTERM -> process exited', not T.pid_exists(pid), pid, 'gone')
    print('# daemonized start took %.2f s' % (time.time() - t0))


def stale():
    d1 = T.start_daemon()
    mnt = d1.mnt
    d1.proc.kill()
    d1.proc.wait(timeout=10)
    def err_of(f):
        try:
            f()
            return 0
        except OSError as x:
            return x.errno
    # stat() of the root may still succeed from cached attributes; anything
    # that reaches the (dead) daemon gives ENOTCONN.
    print('# after kill -9: stat(MNT) -> %s' % (errno.errorcode.get(err_of(lambda: os.stat(mnt)), 'ok')))
    # The serving process goes with its supervisor (PR_SET_PDEATHSIG), a
    # moment after the supervisor's exit.
    deadline = time.time() + 5
    while (e := err_of(lambda: os.listdir(mnt))) != errno.ENOTCONN and time.time() < deadline:
        time.sleep(0.02)
    if not R.eq('kill -9: listing the mountpoint gives ENOTCONN (precondition)', e, errno.ENOTCONN):
        return
    d2 = T.Daemon(base=d1.base, mnt=mnt)
    if not R.check('restart over a stale mountpoint mounts', d2.ok, d2.proc.poll(), 'mounted',
                   detail=d2.log_text()[-1500:]):
        return
    rc, out, err = T.run(['cat', os.path.join(mnt, 'proc/meminfo')], timeout=10)
    R.check('restart over a stale mountpoint: reads work', rc == 0 and 'MemTotal' in out, (rc, err))
    R.check('restart over a stale mountpoint: ct works', T.run(['ls', os.path.join(mnt, 'ct')])[0] == 0)
    mps = T.mountpoints()
    R.eq('restart: MNT and MNT/ct mounted once each',
         (mps.count(mnt), mps.count(mnt + '/ct')), (1, 1), detail=T.mounts_under(mnt))
    rc = d2.stop()
    R.eq('restart: SIGTERM exit status 0', rc, 0, detail=d2.log_text()[-1500:])
    R.eq('restart: SIGTERM leaves nothing mounted under MNT', d2.mounts_after_exit, [])


def main():
    T.require()
    d = T.start_daemon()
    vanishing(d)
    many(d)
    rc = d.stop()
    R.eq('main daemon: SIGTERM exit status 0', rc, 0, detail=d.log_text()[-1500:])
    R.eq('main daemon: both mounts gone after SIGTERM', d.mounts_after_exit, [])
    garbage()
    sigterm_with_open_file()
    for _ in range(3):
        sigterm_while_reading_held_dirs()
    daemonize()
    stale()
    R.summary_and_exit()


if __name__ == '__main__':
    main()
