#!/usr/bin/env python3
"""Enforcement: dd stops with ENOSPC at the limit and earlier files stay
intact; 16 concurrent writers never take usage past the limit; the inode
limit holds; SIGHUP applies new limits from the config file (grow, and
shrink below usage: nothing lost, new allocation refused)."""
import errno
import hashlib
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
MiB = 1 << 20
conf = os.path.join(base, 'cvmfs.conf')
with open(conf, 'w') as f:
    f.write('[disk]\ninodes = 100000\n[disk ws]\nlimit = 64M\n')
disk = dt.Disk(base, limit=None, config=conf)


def sha(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    fig = disk.figures()
    res.eq('limit from [disk ws]', fig['limit_bytes'], 64 * MiB)
    res.eq('inodes from [disk]', fig['inodes_limit'], 100000)

    keep = {}
    for i in range(3):
        p = os.path.join(m, 'keep%d' % i)
        dt.write_file(p, os.urandom(MiB + i))
        keep[p] = sha(p)
    r = subprocess.run(['dd', 'if=/dev/zero', 'of=%s/fill' % m, 'bs=1M'],
                       capture_output=True, text=True)
    res.check('dd fails', r.returncode != 0)
    res.check('dd says No space left', 'No space left on device' in r.stderr, r.stderr)
    used = disk.fresh_figures()['used_bytes']
    res.check('usage at most the limit', used <= 64 * MiB, used)
    res.check('usage within 2 MiB of the limit', used >= 62 * MiB, used)
    res.eq('earlier files intact', {p: sha(p) for p in keep}, keep)
    # dd's RELEASE, where the daemon measures the file once more (an extent
    # block ext4 allocated at writeback), may come after dd exited.
    deadline = time.time() + 10
    while disk.recount()['used_bytes'] != used and time.time() < deadline:
        time.sleep(0.2)
        used = disk.fresh_figures()['used_bytes']
    res.eq('recount agrees', disk.recount()['used_bytes'], used)
    r = subprocess.run(['dd', 'if=/dev/zero', 'of=%s/fill' % m, 'bs=4k', 'oflag=append',
                        'conv=notrunc'], capture_output=True, text=True)
    used = disk.fresh_figures()['used_bytes']
    res.check('4k appends fill to within 2 blocks', 64 * MiB - 8192 < used <= 64 * MiB, used)
    try:
        os.mkdir(os.path.join(m, 'newdir'))
        res.check('mkdir at the limit fails with ENOSPC', False)
    except OSError as e:
        res.eq('mkdir at the limit fails with ENOSPC', e.errno, errno.ENOSPC)
    os.unlink(os.path.join(m, 'fill'))
    res.check('rm frees at once', os.statvfs(m).f_bavail * 4096 >= 60 * MiB - 4 * MiB)

    # 16 concurrent writers, polled
    peaks = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            sv = os.statvfs(m)
            peaks.append((sv.f_blocks - sv.f_bfree) * sv.f_frsize)
            try:
                peaks.append(disk.figures()['used_bytes'])
            except (OSError, ValueError):
                pass
            time.sleep(0.005)

    def writer(i):
        try:
            with open(os.path.join(m, 'w%02d' % i), 'wb') as f:
                chunk = os.urandom(256 * 1024)
                while True:
                    f.write(chunk)
                    f.flush()
        except OSError as e:
            errs.append(e.errno)

    errs = []
    t = threading.Thread(target=poll)
    t.start()
    ws = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    stop.set()
    t.join()
    res.check('all 16 writers stopped with ENOSPC', errs == [errno.ENOSPC] * 16, errs)
    res.check('usage never passed the limit while polled', max(peaks) <= 64 * MiB,
              max(peaks))
    rc = disk.recount()['used_bytes']
    res.check('recount within the limit', rc <= 64 * MiB, rc)
    # Each writer's close sends its RELEASE after close() returned, and the
    # daemon measures the file once more there (blocks ext4 added since the
    # last write): wait for those, up to 10 s (a bound, not a speed).
    live = disk.fresh_figures()['used_bytes']
    deadline = time.time() + 10
    while live != rc and time.time() < deadline:
        time.sleep(0.1)
        rc, live = disk.recount()['used_bytes'], disk.fresh_figures()['used_bytes']
    res.eq('live == recount after writers', live, rc)
    res.eq('earlier files intact after writers', {p: sha(p) for p in keep}, keep)

    # SIGHUP: grow
    with open(conf, 'w') as f:
        f.write('[disk]\ninodes = 100000\n[disk ws]\nlimit = 128M\n')
    disk.hup()
    dt.wait_for(lambda: dt.df_size(m) == 128 * MiB)
    res.eq('SIGHUP grow: df size', dt.df_size(m), 128 * MiB)
    dt.write_file(os.path.join(m, 'after-grow'), os.urandom(8 * MiB))
    res.check('writes work after grow', os.path.getsize(os.path.join(m, 'after-grow')) == 8 * MiB)
    # SIGHUP: shrink below usage
    with open(conf, 'w') as f:
        f.write('[disk]\ninodes = 100000\n[disk ws]\nlimit = 16M\n')
    disk.hup()
    dt.wait_for(lambda: dt.df_size(m) == 16 * MiB)
    sv = os.statvfs(m)
    res.eq('SIGHUP shrink: df size', sv.f_blocks * sv.f_frsize, 16 * MiB)
    res.eq('SIGHUP shrink: nothing available', sv.f_bavail, 0)
    try:
        dt.write_file(os.path.join(m, 'no'), b'x' * 10)
        res.check('new allocation refused after shrink', False)
    except OSError as e:
        res.eq('new allocation refused after shrink', e.errno, errno.ENOSPC)
    res.eq('nothing lost after shrink', {p: sha(p) for p in keep}, keep)
    # a bad config keeps the old limits
    with open(conf, 'w') as f:
        f.write('[disk ws]\nlimit = lots\n')
    disk.hup()
    dt.wait_for(lambda: 'cvmfs.conf:2' in disk.logtext())
    res.eq('bad config on SIGHUP keeps limits', os.statvfs(m).f_blocks * 4096, 16 * MiB)
    res.check('bad config line reported with file:line', 'cvmfs.conf:2' in disk.logtext(),
              disk.logtext()[-500:])
    for n in os.listdir(m):
        if n.startswith('w') or n in ('after-grow', 'no'):
            os.unlink(os.path.join(m, n))

    # inode limit
    with open(conf, 'w') as f:
        inodes = disk.fresh_figures()['inodes_used'] + 50
        f.write('[disk ws]\nlimit = 64M\ninodes = %d\n' % inodes)
    disk.hup()
    dt.wait_for(lambda: os.statvfs(m).f_files == inodes and dt.df_size(m) == 64 * MiB)
    made, err = 0, None
    try:
        for i in range(100):
            os.mkdir(os.path.join(m, 'i%03d' % i))
            made += 1
    except OSError as e:
        err = e.errno
    res.eq('inode limit: ENOSPC', err, errno.ENOSPC)
    res.eq('inode limit: exactly the allowed count', made, 50)
    fig = disk.fresh_figures()
    res.eq('inodes used == limit', fig['inodes_used'], fig['inodes_limit'])
    res.eq('inodes live == recount', fig['inodes_used'], disk.recount()['inodes_used'])
res.done()
