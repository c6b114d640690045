#!/usr/bin/env python3
"""Durability: after kill -9 the restart recounts (usage == recount) and
fsync'ed data is intact; after a clean stop the restart trusts DATA/state
without a rescan and starts fast over many files; the stopped workspace's
figures stay published with state "stopped"."""
import hashlib
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

NFILES = int(os.environ.get('CVMFS_DISK_NFILES', '100000'))
dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
img = os.path.join(base, 'img')
os.makedirs(os.path.join(img, 'etc'))
dt.write_file(os.path.join(img, 'etc/conf'), 'c' * 10000)
# Many files made before the first start (the first start recounts them).
up = os.path.join(base, 'data', 'upper', 'many')
os.makedirs(up)
for i in range(NFILES // 1000):
    d = os.path.join(up, 'd%04d' % i)
    os.mkdir(d)
    for j in range(1000):
        open(os.path.join(d, str(j)), 'w').close()

# 100,000 files: no inode limit here (test_inodes.py has it).
disk = dt.Disk(base, limit='1G', images=[img], inodes=0)
with dt.checked(res, disk):
    t = disk.start(timeout=240)
    m = re.search(r'recounted usage .* in ([0-9.]+) s', disk.logtext())
    res.check('first start recounts', m is not None, disk.logtext())
    print('# first start over %d files: %.2f s (recount %s s)' % (
        NFILES, t, m.group(1) if m else '?'))
    dt.compare(res, 'first start', disk)
    m_ = disk.mnt
    data = os.urandom(3 << 20)
    with open(os.path.join(m_, 'synced'), 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    with open(os.path.join(m_, 'etc/conf'), 'a') as f:
        f.write('appended')
        os.fsync(f.fileno())
    dt.write_file(os.path.join(m_, 'unsynced'), os.urandom(1 << 20))
    os.unlink(os.path.join(m_, 'many/d0000/1'))
    disk.kill9()
    res.check('kill -9 leaves DATA/state unclean',
              'clean 0' in open(os.path.join(disk.data, 'state')).read())

    disk.start(timeout=240)
    res.check('restart after kill -9 recounts',
              len(re.findall(r'recounted usage \(unclean stop\)', disk.logtext())) == 1,
              disk.logtext())
    res.eq('fsync\'ed data intact', hashlib.sha256(open(os.path.join(m_, 'synced'), 'rb')
                                                 .read()).digest(),
           hashlib.sha256(data).digest())
    res.check('fsync\'ed copy-up intact',
              open(os.path.join(m_, 'etc/conf')).read().endswith('appended'))
    dt.compare(res, 'after kill -9 restart', disk)

    disk.stop()
    res.eq('stopped figures published', disk.figures()['state'], 'stopped')
    res.check('clean stop persists state', 'clean 1' in open(os.path.join(disk.data, 'state')).read())
    t = disk.start(timeout=240)
    res.check('clean restart trusts DATA/state',
              'usage from DATA/state (clean stop)' in disk.logtext(), disk.logtext())
    print('# clean restart over %d files: %.2f s' % (NFILES, t))
    res.check('clean restart in under 10 s', t < 10, t)
    dt.compare(res, 'after clean restart', disk)
res.done()
