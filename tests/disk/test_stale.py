#!/usr/bin/env python3
"""A restarted cvmfsd disk and the mount its killed predecessor left: the
stale FUSE mount (ENOTCONN) is detached with one warning and the new one
serves in its place -- ONE fuse mount at the mountpoint, not two stacked.
A live mount of another daemon there is refused: one line, EBUSY, non-zero
exit, nothing touched."""
import errno
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()


def fuse_mounts_at(path):
    """Fuse mounts whose mountpoint is path, from /proc/self/mountinfo."""
    path = os.path.realpath(path)
    n = 0
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            mnt = fields[4].encode().decode('unicode_escape')
            fstype = line.split(' - ', 1)[1].split()[0]
            if mnt == path and fstype.startswith('fuse'):
                n += 1
    return n


def listdir_errno(path):
    try:
        os.listdir(path)
        return 0
    except OSError as e:
        return e.errno


os.makedirs(os.path.join(base, 'a'))
d = dt.Disk(os.path.join(base, 'a'), name='stale')
with dt.checked(res, d):
    d.start()
    dt.write_file(os.path.join(d.mnt, 'kept'), b'before the crash\n')
    res.eq('one fuse mount after the first start', fuse_mounts_at(d.mnt), 1)

    # kill -9: the kernel keeps the mount, every access fails ENOTCONN.
    # The daemon's server process follows its supervisor (the pid started)
    # within moments; a request sent meanwhile would end ECONNABORTED.
    server = open('/proc/%d/task/%d/children' % (d.proc.pid, d.proc.pid)).read().split()
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    dt.wait_for(lambda: not any(os.path.exists('/proc/' + p) for p in server))
    res.eq('the killed daemon left a stale mount (ENOTCONN)', listdir_errno(d.mnt),
           errno.ENOTCONN)
    res.eq('the stale mount is still in mountinfo', fuse_mounts_at(d.mnt), 1)

    log0 = len(d.logtext())
    # start() returns once a mount and a status file exist: the stale ones
    # already do, so wait for the new daemon's own "serving" line.
    d.start()
    t0 = time.time()
    while 'serving' not in d.logtext()[log0:] and d.proc.poll() is None and \
            time.time() - t0 < 60:
        time.sleep(0.05)
    new = d.logtext()[log0:]
    res.check('restart: the new daemon serves', 'serving' in new and d.proc.poll() is None, new)
    warns = [x for x in new.splitlines() if 'stale mount' in x]
    res.check('restart: one warning line naming the stale mount',
              len(warns) == 1 and d.mnt in warns[0], new)
    res.eq('restart: ONE fuse mount at the mountpoint, not two stacked',
           fuse_mounts_at(d.mnt), 1)
    with open(os.path.join(d.mnt, 'kept'), 'rb') as f:
        res.eq('restart: serves the data written before the crash', f.read(),
               b'before the crash\n')
    dt.write_file(os.path.join(d.mnt, 'after'), b'x' * 4096)
    res.eq('restart: writes work', os.path.getsize(os.path.join(d.upper(), 'after')), 4096)

    # Another daemon at the same mountpoint while this one lives: refused.
    other = os.path.join(base, 'other')
    os.makedirs(other)
    odata = os.path.join(other, 'data')
    conf = os.path.join(other, 'none.conf')
    open(conf, 'w').close()
    r = subprocess.run([dt.CVMFSD, 'disk', '-f', '--name', 'stale2', '--data', odata,
                        '--limit', '16M', '--run-dir', os.path.join(other, 'run'), '-c', conf,
                        d.mnt], capture_output=True, text=True, timeout=60)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    res.check('live mount: non-zero exit', r.returncode != 0, r.returncode)
    res.check('live mount: one line, EBUSY, naming the mountpoint',
              len(lines) == 1 and lines[0].startswith('cvmfsd disk: ') and d.mnt in lines[0]
              and 'already mounted' in lines[0] and os.strerror(errno.EBUSY) in lines[0],
              r.stderr)
    res.eq('live mount: still one fuse mount', fuse_mounts_at(d.mnt), 1)
    res.check('live mount: nothing created for the refused daemon',
              not os.path.exists(odata) and not os.path.exists(os.path.join(other, 'run')),
              os.listdir(other))
    res.eq('live mount: the running daemon still serves',
           open(os.path.join(d.mnt, 'kept'), 'rb').read(), b'before the crash\n')
    res.check('live mount: the running daemon is alive', d.proc.poll() is None)

    d.stop()
    res.eq('clean stop: no mount left', fuse_mounts_at(d.mnt), 0)

res.done()
