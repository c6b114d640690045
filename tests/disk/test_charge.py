#!/usr/bin/env python3
"""Charging is exact: after a mixed workload the live figures equal a fresh
recount of upper + image (distinct inodes, st_blocks * 512), per area too;
deleting frees at once; df shows the limit as the size."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
img = os.path.join(base, 'img')
os.makedirs(os.path.join(img, 'usr/share'))
os.makedirs(os.path.join(img, 'home/old'))
dt.write_file(os.path.join(img, 'usr/share/big'), os.urandom(300000))
dt.write_file(os.path.join(img, 'home/old/f'), os.urandom(5000))
os.link(os.path.join(img, 'usr/share/big'), os.path.join(img, 'usr/share/big.link'))

disk = dt.Disk(base, limit='256M', images=[img])
MiB = 1 << 20
with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    dt.compare(res, 'at start', disk)
    df = subprocess.run(['df', '-B1', '--output=size', m], capture_output=True, text=True)
    res.eq('df -B1 size == limit', int(df.stdout.split()[1]), 256 * MiB)

    os.makedirs(os.path.join(m, 'home/alice'))
    os.makedirs(os.path.join(m, 'var/lib/docker/overlay2/x'))
    os.makedirs(os.path.join(m, 'tmp'))
    dt.write_file(os.path.join(m, 'home/alice/a'), os.urandom(3 * MiB))
    dt.write_file(os.path.join(m, 'var/lib/docker/overlay2/x/layer'), os.urandom(2 * MiB + 7))
    # sparse file, then fallocate, punch a hole, truncate
    with open(os.path.join(m, 'tmp/sparse'), 'wb') as f:
        f.seek(50 * MiB)
        f.write(b'end')
    fd = os.open(os.path.join(m, 'tmp/sparse'), os.O_RDWR)
    os.posix_fallocate(fd, 0, 4 * MiB)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
    r = libc.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
                       ctypes.c_long(MiB), ctypes.c_long(MiB))
    res.eq('punch hole works', r, 0)
    os.ftruncate(fd, 2 * MiB)
    os.close(fd)
    # links
    os.link(os.path.join(m, 'home/alice/a'), os.path.join(m, 'home/alice/a.link'))
    os.symlink('a', os.path.join(m, 'home/alice/sym'))
    # unlink while open: still charged until the last close
    p = os.path.join(m, 'tmp/open-unlinked')
    dt.write_file(p, os.urandom(MiB))
    fd = os.open(p, os.O_RDWR)
    used_before = disk.fresh_figures()['used_bytes']
    os.unlink(p)
    os.write(fd, b'x' * 4096)
    during = disk.fresh_figures()['used_bytes']
    res.check('unlinked-but-open file still charged', during >= used_before,
              (used_before, during))
    os.close(fd)
    after = disk.fresh_figures()['used_bytes']
    res.check('freed at last close', after <= during - MiB, (during, after))
    # The links of one file stay in one area, as across ext4 project quotas
    # (and across the volume's lanes, mounts of their own): a link, or a
    # rename of a file or tree holding a file of several links, into
    # another area is EXDEV (mv and cp then copy), so that the file's
    # charge is in the area of every name the kernel may look it up by.
    def errno_of(fn):
        try:
            fn()
            return 0
        except OSError as e:
            return e.errno
    import errno as E
    res.eq('link into another area: EXDEV', errno_of(lambda: os.link(
        os.path.join(m, 'var/lib/docker/overlay2/x/layer'),
        os.path.join(m, 'home/alice/layer.link'))), E.EXDEV)
    res.eq('rename of a file of two links into another area: EXDEV', errno_of(
        lambda: os.rename(os.path.join(m, 'home/alice/a'), os.path.join(m, 'tmp/a-moved'))),
        E.EXDEV)
    os.makedirs(os.path.join(m, 'home/carol/sub'))
    dt.write_file(os.path.join(m, 'home/carol/sub/f'), os.urandom(4096))
    os.link(os.path.join(m, 'home/carol/sub/f'), os.path.join(m, 'home/carol/f2'))
    res.eq('rename of a tree holding such a file into another area: EXDEV', errno_of(
        lambda: os.rename(os.path.join(m, 'home/carol'), os.path.join(m, 'tmp/carol'))),
        E.EXDEV)
    res.eq('... within its area: done', errno_of(
        lambda: os.rename(os.path.join(m, 'home/carol'), os.path.join(m, 'home/carol2'))), 0)
    # the kernel forgets the nodes; the same links looked up again
    subprocess.run(['sh', '-c', 'sync; echo 2 > /proc/sys/vm/drop_caches'], check=False)
    res.eq('a file of two links, looked up again: same inode',
           os.stat(os.path.join(m, 'home/alice/a.link')).st_ino,
           os.stat(os.path.join(m, 'home/alice/a')).st_ino)
    dt.compare(res, 'after links', disk)
    # rename across areas, files and trees
    os.unlink(os.path.join(m, 'home/alice/a.link'))
    os.rename(os.path.join(m, 'home/alice/a'), os.path.join(m, 'tmp/a-moved'))
    os.makedirs(os.path.join(m, 'home/bob/deep/er'))
    dt.write_file(os.path.join(m, 'home/bob/deep/er/f'), os.urandom(MiB))
    os.rename(os.path.join(m, 'home/bob'), os.path.join(m, 'var/lib/docker/bob'))
    os.rename(os.path.join(m, 'var/lib/docker'), os.path.join(m, 'var/lib/docker.old'))
    os.rename(os.path.join(m, 'var/lib/docker.old'), os.path.join(m, 'var/lib/docker'))
    # mkdir / rmdir, setxattr, copy-up of an image file and tree
    os.makedirs(os.path.join(m, 'tmp/d1/d2'))
    os.rmdir(os.path.join(m, 'tmp/d1/d2'))
    os.setxattr(os.path.join(m, 'tmp/d1'), 'user.big', b'v' * 3000)
    with open(os.path.join(m, 'usr/share/big'), 'r+b') as f:
        f.write(b'changed')
    os.rename(os.path.join(m, 'home/old'), os.path.join(m, 'tmp/old'))
    os.unlink(os.path.join(m, 'usr/share/big.link'))
    got, want = dt.compare(res, 'after mixed workload', disk)

    # deleting frees at once (statfs is live, no publish delay)
    sv0 = os.statvfs(m)
    os.unlink(os.path.join(m, 'tmp/a-moved'))
    os.unlink(os.path.join(m, 'home/carol2/f2'))
    sv1 = os.statvfs(m)
    res.check('rm frees at once (statfs)',
              (sv1.f_bavail - sv0.f_bavail) * sv1.f_frsize >= 3 * MiB,
              (sv0.f_bavail, sv1.f_bavail))
    dt.compare(res, 'after rm', disk)
res.done()
