#!/usr/bin/env python3
"""A CVM on a real cgroup v2 host (the VM lane runs it: tests/vm): the views
from the real v2 files, and the v2-only limits.

- /proc/stat: one cpu line per CPU of --cpus 1, its time from cpu.stat;
- /proc/diskstats: the volume's line counts the CVM's own writes (io.stat),
  not the host's (the volume's mkfs and the disk daemon wrote it too);
- /proc/pressure/*: the CVM's cgroup's files, not the host's;
- --memory-high: memory.high below memory.max, seen inside;
- --io-bps: io.max on the volume's device, and 4 MiB of O_DIRECT writes to
  /home at 1 MiB/s take seconds, against well under that without it;
- with --no-userns its namespace root's limit files refuse host root
  (nsdelegate) and the limit holds; --net host mounts its own cgroup2;
- a missing kernel feature (SYNC_WAKE_UP on 6.1) is one line.

On a v1 or hybrid host it skips (tests/launch/test_cgroup_v2.c checks the
same files on a fixture tree there)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'launch'))
import launchtest as LT  # noqa: E402
import cvmfstest as T  # noqa: E402
from cvmfstest import R  # noqa: E402

HZ = os.sysconf('SC_CLK_TCK')

PROBE = r'''
import os, time, mmap
def show(tag, path):
    print('== ' + tag)
    with open(path) as f:
        print(f.read(), end='')
s = os.stat('/home')
print('== dev\n%d:%d' % (os.major(s.st_dev), os.minor(s.st_dev)))
fd = os.open('/home/io-probe', os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
buf = mmap.mmap(-1, 65536)
t = time.monotonic()
for _ in range(64):
    os.write(fd, buf)
os.fsync(fd)
print('== io_ms\n%d' % ((time.monotonic() - t) * 1000))
os.close(fd)
show('diskstats', '/proc/diskstats')
show('iostat', '/sys/fs/cgroup/io.stat')
show('stat', '/proc/stat')
show('cpustat', '/sys/fs/cgroup/cpu.stat')
for r in ('cpu', 'memory', 'io'):
    show('psi_' + r, '/proc/pressure/' + r)
    show('cg_psi_' + r, '/sys/fs/cgroup/%s.pressure' % r)
show('memhigh', '/sys/fs/cgroup/memory.high')
show('iomax', '/sys/fs/cgroup/io.max')
'''


def sections(out):
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith('== '):
            cur = line[3:].strip()
            res[cur] = []
        elif cur:
            res[cur].append(line)
    return res


def kv_line(lines, first):
    """{'key': int} of the line starting with first ("some", "8:0")."""
    for line in lines:
        parts = line.split()
        if parts and parts[0] == first:
            return {k: v for k, _, v in (p.partition('=') for p in parts[1:])}
    return {}


def probe(w, *extra, **opts):
    rc, out, err = w.launch(*extra, cmd=['python3', '-c', PROBE], timeout=300, **opts)
    R.eq('probe %s: exit 0' % ' '.join(extra or ['(no io limit)']), rc, 0, err)
    return sections(out), err


def host_line(dev):
    maj, mn = dev.split(':')
    with open('/proc/diskstats') as f:
        for line in f:
            p = line.split()
            if p[0] == maj and p[1] == mn:
                return p
    return None


def main():
    LT.require()
    if not LT.V2:
        T.skip('needs a pure cgroup v2 host (the VM lane, tests/vm, runs it); '
               'tests/launch/test_cgroup_v2.c covers v2 on a fixture tree here')
    w = LT.Workspace('v2host')
    s, err = probe(w, '--io-bps', '1M', cpus='1', memory='256M', memory_high='192M')
    LT.check_clean('io-bps', w.name)
    dev = (s.get('dev') or ['?'])[0]
    # A missing kernel feature: one line at start (doc/kernel-features.md).
    # (The disk's passthrough line comes at FUSE INIT, once the daemonised
    # disk's stderr is /dev/null: tests/disk/test_passthrough.py checks it
    # on a disk in the foreground.)
    kver = tuple(int(x) for x in os.uname().release.split('-')[0].split('.')[:2])
    for since, what in (((6, 6), 'SYNC_WAKE_UP'),):
        if kver < since:
            R.eq('Linux %d.%d < %d.%d: "%s" said once' % (kver + since + (what,)),
                 err.count(what), 1, err)
    # The limits seen inside.
    R.eq('memory.high inside (--memory-high 192M)', s.get('memhigh'), [str(192 << 20)], err)
    R.eq('io.max inside: the volume\'s device at 1 MiB/s',
         [l for l in s.get('iomax', []) if l.startswith(dev + ' ')],
         ['%s rbps=1048576 wbps=1048576 riops=max wiops=max' % dev], s.get('iomax'))
    slow = int((s.get('io_ms') or ['0'])[0])
    R.check('4 MiB O_DIRECT to /home at --io-bps 1M takes >= 2.5 s (%d ms)' % slow,
            slow >= 2500, slow)
    # /proc/stat: 1 CPU, its time the cgroup's.
    stat = s.get('stat', [])
    cpus = [l.split()[0] for l in stat if l.startswith('cpu') and l.split()[0] != 'cpu']
    R.eq('/proc/stat: one cpuN line for --cpus 1', cpus, ['cpu0'], stat[:4])
    tot = next((l.split() for l in stat if l.split()[:1] == ['cpu']), None)
    cg = {l.split()[0]: int(l.split()[1]) for l in s.get('cpustat', []) if len(l.split()) == 2}
    if tot and 'user_usec' in cg:
        view = (int(tot[1]) + int(tot[3])) / HZ
        real = (cg['user_usec'] + cg['system_usec']) / 1e6
        R.check('/proc/stat user+system (%.2f s) = cpu.stat\'s read after (%.2f s), within 3 s'
                % (view, real), real - 3 <= view <= real + 0.5, (view, real))
    else:
        R.check('/proc/stat and cpu.stat read', False, (tot, cg))
    # /proc/diskstats: the volume's line from io.stat, not the host's.
    line = next((l.split() for l in s.get('diskstats', []) if l.split()[:2] == dev.split(':')),
                None)
    io = kv_line(s.get('iostat', []), dev)
    hl = host_line(dev)
    if line and io and hl:
        w_bytes = int(line[9]) * 512
        R.check('/proc/diskstats: the volume\'s sectors written (%d B) >= the 4 MiB written'
                % w_bytes, w_bytes >= 4 << 20, w_bytes)
        R.check('... <= io.stat wbytes read after (%s)' % io.get('wbytes'),
                w_bytes <= int(io.get('wbytes', 0)), (w_bytes, io))
        R.check('... < the host\'s line (%d B: mkfs and the disk daemon too)' % (int(hl[9]) * 512),
                w_bytes < int(hl[9]) * 512, (w_bytes, hl))
    else:
        R.check('/proc/diskstats line, io.stat and host line of %s' % dev, False,
                (line, io, hl, s.get('diskstats')))
    # /proc/pressure: the cgroup's files (read after), not the host's.
    for r in ('cpu', 'memory', 'io'):
        v = kv_line(s.get('psi_' + r, []), 'some')
        c = kv_line(s.get('cg_psi_' + r, []), 'some')
        # The view reads cvmfs/NAME, the CVM ns below it (the same tasks);
        # the kernel updates each group's totals when it is read.
        try:
            ok = abs(int(v['total']) - int(c['total'])) <= 1000000
        except (KeyError, ValueError):
            ok = False
        R.check('/proc/pressure/%s: the cgroup\'s some total (%s us; its own file: %s, '
                'within 1 s)' % (r, v.get('total'), c.get('total')), ok, (v, c))
    # Nothing inside raises its limits: with --no-userns (host root) the
    # limit files of its namespace root are refused (nsdelegate), and 400
    # MiB past 256M is OOM-killed (the binding copy is on cvmfs/NAME).
    rc, out, err = w.launch('--no-userns', cmd=['/bin/sh', '-c',
                            'cd /sys/fs/cgroup && echo 1G > memory.max && echo raised; '
                            'python3 -c "b = bytearray(400 << 20); b[::4096] = '
                            'bytes(len(b[::4096]))"; echo rc=$?'], memory='256M')
    LT.check_clean('no-userns raise', w.name)
    R.check('--no-userns: memory.max at its cgroup namespace root not writable',
            'raised' not in out, out, detail=err)
    R.check('--no-userns: 400 MiB past 256M OOM-killed (137)', 'rc=137' in out, out, detail=err)
    # --net host in a user namespace: /sys is the host's, bound, with the
    # host's cgroup2 at /sys/fs/cgroup; the CVM's own goes over it.
    rc, out, err = w.launch('--net', 'host', cmd=['cat', '/sys/fs/cgroup/memory.max'],
                            memory='256M')
    LT.check_clean('net host', w.name)
    R.eq('--net host: its own cgroup2 at /sys/fs/cgroup', (rc, out.strip()),
         (0, str(256 << 20)), err)
    # Without --io-bps the same writes are far faster: the limit did it.
    s2, _ = probe(w, cpus='1', memory='256M')
    LT.check_clean('no io limit', w.name)
    fast = int((s2.get('io_ms') or ['0'])[0])
    R.check('without --io-bps the same writes take < half (%d ms against %d)' % (fast, slow),
            0 < fast < slow / 2, (fast, slow))
    R.summary_and_exit()


if __name__ == '__main__':
    try:
        main()
    finally:
        T.cleanup_all()
