#!/usr/bin/env python3
"""The inode limit by default: one inode per 16 KiB of the byte limit
(an empty file costs next to nothing of the byte limit, so without it a
small workspace could fill the host's inode table). A 16 MiB disk has
1024 inodes: creating empty files stops there with ENOSPC, df -i shows
it; --inodes and the config key override it (0: no inode limit); SIGHUP
that grows the limit grows the default, and leaves an explicit value."""
import errno
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

MiB = 1 << 20
dt.require_root_fuse()
res = dt.Results()


def fill_inodes(m, most):
    """Creates empty files until an error; (count, errno)."""
    d = os.path.join(m, 'many')
    os.mkdir(d)
    for i in range(most):
        try:
            os.close(os.open(os.path.join(d, 'f%d' % i), os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError as e:
            return i, e.errno
    return most, 0


def limit_after_hup(disk, want):
    """SIGHUP, then the published inode limit once it is `want` (or the
    last one seen after 10 s)."""
    disk.hup()
    t0 = time.time()
    got = None
    while time.time() - t0 < 10:
        got = disk.fresh_figures()['inodes_limit']
        if got == want:
            break
    return got


# Default: 16 MiB -> 1024 inodes, enforced, shown by df -i.
base = dt.tmpdir()
disk = dt.Disk(base, name='ino', limit='16M')
with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    res.eq('16 MiB disk: inodes_limit 1024', disk.figures()['inodes_limit'], 1024)
    res.eq('statfs f_files is the inode limit', os.statvfs(m).f_files, 1024)
    df = subprocess.run(['df', '-i', '-P', m], capture_output=True, text=True)
    res.eq('df -i shows 1024 inodes', df.stdout.splitlines()[-1].split()[1:2], ['1024'])
    n, err = fill_inodes(m, 5000)
    res.eq('creating files stops with ENOSPC', err, errno.ENOSPC)
    res.check('... near 1024 (%d files made)' % n, 1000 <= n <= 1024)
    fig = disk.fresh_figures()
    res.check('inodes used never over the limit (%d)' % fig['inodes_used'],
              fig['inodes_used'] <= 1024)
    try:
        os.mkdir(os.path.join(m, 'd'))
        res.check('mkdir at the inode limit fails', False)
    except OSError as e:
        res.eq('mkdir at the inode limit fails with ENOSPC', e.errno, errno.ENOSPC)
    res.check('the byte limit is far away', fig['used_bytes'] < 8 * MiB, fig['used_bytes'])
    os.unlink(os.path.join(m, 'many', 'f0'))
    os.close(os.open(os.path.join(m, 'again'), os.O_CREAT | os.O_WRONLY, 0o644))
    res.check('deleting one lets one more be made', True)
    dt.compare(res, 'at the inode limit', disk)

# Explicit values win: --inodes N, --inodes 0 (no limit), the config key.
for label, kw, conf, want in (
        ('--inodes 5000', {'inodes': 5000}, '', 5000),
        ('--inodes 0: no inode limit', {'inodes': 0}, '', 0),
        ('config inodes = 300', {}, '[disk]\ninodes = 300\n', 300)):
    b = dt.tmpdir()
    path = os.path.join(b, 'cvmfs.conf')
    with open(path, 'w') as f:
        f.write(conf)
    d = dt.Disk(b, name='ino', limit='16M', config=path, **kw)
    with dt.checked(res, d):
        d.start()
        res.eq('%s: inodes_limit' % label, d.figures()['inodes_limit'], want)
        if want:
            res.eq('%s: statfs f_files' % label, os.statvfs(d.mnt).f_files, want)
        if want == 0:
            n, err = fill_inodes(d.mnt, 1500)
            res.eq('%s: 1,500 files on a 16 MiB disk' % label, (n, err), (1500, 0))
        if want == 300:
            n, err = fill_inodes(d.mnt, 1000)
            res.check('%s: stops with ENOSPC near 300 (%d, %s)' % (label, n, errno.errorcode.get(err)),
                      err == errno.ENOSPC and 290 <= n <= 300)

# SIGHUP: a new limit brings its default; an explicit value stays.
b = dt.tmpdir()
conf = os.path.join(b, 'cvmfs.conf')
with open(conf, 'w') as f:
    f.write('[disk ino]\nlimit = 16M\n')
d = dt.Disk(b, name='ino', limit=None, config=conf)
with dt.checked(res, d):
    d.start()
    res.eq('limit from the file: 1024 inodes', d.figures()['inodes_limit'], 1024)
    with open(conf, 'w') as f:
        f.write('[disk ino]\nlimit = 32M\n')
    res.eq('SIGHUP to 32 MiB: 2048 inodes', limit_after_hup(d, 2048), 2048)
    res.eq('statfs follows', os.statvfs(d.mnt).f_files, 2048)
    with open(conf, 'w') as f:
        f.write('[disk ino]\nlimit = 32M\ninodes = 100\n')
    res.eq('SIGHUP with inodes = 100 in the file', limit_after_hup(d, 100), 100)
    with open(conf, 'w') as f:
        f.write('[disk ino]\nlimit = 64M\n')
    res.eq('SIGHUP without it again: the default for 64 MiB', limit_after_hup(d, 4096), 4096)

b = dt.tmpdir()
conf = os.path.join(b, 'cvmfs.conf')
with open(conf, 'w') as f:
    f.write('[disk ino]\nlimit = 16M\n')
d = dt.Disk(b, name='ino', limit=None, config=conf, inodes=5000)
with dt.checked(res, d):
    d.start()
    with open(conf, 'w') as f:
        f.write('[disk ino]\nlimit = 64M\n')
    got = limit_after_hup(d, 5000)
    res.eq('--inodes 5000 stays across a SIGHUP that changes the limit', got, 5000)
    res.eq('... and the new limit applies', d.figures()['limit_bytes'], 64 * MiB)
res.done()
