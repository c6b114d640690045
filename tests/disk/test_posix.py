#!/usr/bin/env python3
"""The union against the host's own filesystem, operation by operation
(same results, same errno): objects used after their last name is gone
(unlink, rename over, rmdir of a directory held open, O_TMPFILE before its
linkat) through fstat, fchmod, fchown, ftruncate, futimens, fallocate and
xattrs on the fd; Python's tempfile.TemporaryFile(); O_TMPFILE and linkat;
files of the image opened before a copy-up changed through their fd;
charge == recount after each, and the space of an unlinked file given back
at its last close; 1,500 files open at once through a daemon started with
a soft open-file limit of 256."""
import ctypes
import errno
import os
import resource
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
img = os.path.join(base, 'img')
os.makedirs(img)
dt.write_file(os.path.join(img, 'imgfile'), b'I' * 8192, mode=0o644)


LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400


def link_fd(fd, path):
    """linkat(2) of an open file through its /proc link, the way O_TMPFILE
    users do (os.link calls link(2), which does not follow the link)."""
    if LIBC.linkat(AT_FDCWD, b'/proc/self/fd/%d' % fd, AT_FDCWD, os.fsencode(path),
                   AT_SYMLINK_FOLLOW) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def st_of(fd):
    st = os.fstat(fd)
    return (oct(st.st_mode), st.st_nlink, st.st_size, st.st_uid, st.st_gid, st.st_mtime_ns)


def unlinked_open(d, log):
    """A file written, unlinked, then used through its fd only."""
    path = os.path.join(d, 'gone')
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b'd' * 100)
        os.unlink(path)
        dt.attempt(log, 'fstat', lambda: st_of(fd)[:3])
        dt.attempt(log, 'fchmod', lambda: (os.fchmod(fd, 0o640), st_of(fd)[0]))
        dt.attempt(log, 'fchown', lambda: (os.fchown(fd, 1234, 4321), st_of(fd)[3:5]))
        dt.attempt(log, 'ftruncate down', lambda: (os.ftruncate(fd, 10), st_of(fd)[2]))
        dt.attempt(log, 'ftruncate up', lambda: (os.ftruncate(fd, 1 << 20), st_of(fd)[2]))
        dt.attempt(log, 'futimens', lambda: (os.utime(fd, ns=(10**9, 2 * 10**9)), st_of(fd)[5]))
        dt.attempt(log, 'fallocate', lambda: (os.posix_fallocate(fd, 0, 2 << 20), st_of(fd)[2]))
        dt.attempt(log, 'setxattr', lambda: os.setxattr(fd, 'user.k', b'v'))
        dt.attempt(log, 'getxattr', lambda: os.getxattr(fd, 'user.k'))
        dt.attempt(log, 'listxattr', lambda: 'user.k' in os.listxattr(fd))
        dt.attempt(log, 'removexattr', lambda: os.removexattr(fd, 'user.k'))
        dt.attempt(log, 'getxattr removed', lambda: os.getxattr(fd, 'user.k'))
        dt.attempt(log, 'read back', lambda: os.pread(fd, 12, 0))
        dt.attempt(log, 'reopen via /proc', lambda: os.close(os.open('/proc/self/fd/%d' % fd,
                                                                  os.O_RDONLY)))
    finally:
        os.close(fd)


def renamed_over(d, log):
    """An open file replaced by a rename keeps working through its fd."""
    a, b = os.path.join(d, 'a'), os.path.join(d, 'b')
    dt.write_file(a, b'old')
    dt.write_file(b, b'new')
    fd = os.open(a, os.O_RDWR)
    try:
        os.rename(b, a)
        dt.attempt(log, 'renamed over: fstat', lambda: st_of(fd)[1:3])
        dt.attempt(log, 'renamed over: fchmod', lambda: (os.fchmod(fd, 0o600), st_of(fd)[0]))
        dt.attempt(log, 'renamed over: ftruncate', lambda: (os.ftruncate(fd, 1), st_of(fd)[2]))
        dt.attempt(log, 'renamed over: the name', lambda: open(a, 'rb').read())
    finally:
        os.close(fd)
    os.unlink(a)


def removed_dir(d, log):
    """A directory held open (a shell sitting in it), then removed."""
    path = os.path.join(d, 'dir')
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rmdir(path)
        dt.attempt(log, 'rmdir: fstat', lambda: st_of(fd)[1])
        dt.attempt(log, 'rmdir: create inside', lambda: os.open('x', os.O_CREAT | os.O_RDWR,
                                                                dir_fd=fd))
        dt.attempt(log, 'rmdir: listdir', lambda: os.listdir(fd))
        dt.attempt(log, 'rmdir: stat of "."', lambda: os.stat('.', dir_fd=fd).st_nlink)
    finally:
        os.close(fd)


def temporary_file(d, log):
    with tempfile.TemporaryFile(dir=d) as f:
        dt.attempt(log, 'TemporaryFile write', lambda: f.write(b't' * 5000))
        f.flush()
        dt.attempt(log, 'TemporaryFile fstat', lambda: os.fstat(f.fileno()).st_size)
        f.seek(0)
        dt.attempt(log, 'TemporaryFile read', lambda: len(f.read()))
        dt.attempt(log, 'TemporaryFile truncate', lambda: f.truncate(7))
    with tempfile.NamedTemporaryFile(dir=d) as f:
        dt.attempt(log, 'NamedTemporaryFile fstat', lambda: os.fstat(f.fileno()).st_nlink)


def image_file_fd(d, log):
    """An image file opened read-only, then copied up by another writer:
    fchmod through the old fd changes what the union shows (the upper
    file), never the image file."""
    path = os.path.join(d, 'imgfile')
    fd = os.open(path, os.O_RDONLY)
    try:
        with open(path, 'r+b') as f:
            f.write(b'U')
        dt.attempt(log, 'image fd: fchmod', lambda: os.fchmod(fd, 0o600))
        dt.attempt(log, 'image fd: mode by name', lambda: oct(os.stat(path).st_mode))
    finally:
        os.close(fd)


def o_tmpfile(d, log):
    """O_TMPFILE: a file without a name, used, then linked in (or, with
    O_EXCL, never linkable)."""
    fd = dt.attempt(log, 'O_TMPFILE open', lambda: os.open(d, os.O_TMPFILE | os.O_RDWR, 0o640))
    if not isinstance(fd, int):
        return
    try:
        dt.attempt(log, 'O_TMPFILE write', lambda: os.write(fd, b'tmp' * 1000))
        dt.attempt(log, 'O_TMPFILE fstat', lambda: st_of(fd)[:3])
        dt.attempt(log, 'O_TMPFILE fchmod', lambda: (os.fchmod(fd, 0o600), st_of(fd)[0]))
        dt.attempt(log, 'O_TMPFILE xattr', lambda: (os.setxattr(fd, 'user.t', b'1'),
                                                 os.getxattr(fd, 'user.t')))
        name = os.path.join(d, 'linked')
        dt.attempt(log, 'O_TMPFILE linkat', lambda: link_fd(fd, name))
        dt.attempt(log, 'O_TMPFILE linked: stat', lambda: (os.stat(name).st_nlink,
                                                         os.stat(name).st_size))
        dt.attempt(log, 'O_TMPFILE linked: read', lambda: open(name, 'rb').read(6))
        dt.attempt(log, 'O_TMPFILE linked: fstat', lambda: st_of(fd)[1])
        dt.attempt(log, 'O_TMPFILE linked: write more', lambda: os.pwrite(fd, b'X', 0))
    finally:
        os.close(fd)
    dt.attempt(log, 'O_TMPFILE linked: after close', lambda: (open(name, 'rb').read(2),
                                                            oct(os.stat(name).st_mode)))
    excl = dt.attempt(log, 'O_TMPFILE|O_EXCL open',
                   lambda: os.open(d, os.O_TMPFILE | os.O_EXCL | os.O_WRONLY, 0o600))
    if isinstance(excl, int):
        dt.attempt(log, 'O_TMPFILE|O_EXCL linkat',
                lambda: link_fd(excl, os.path.join(d, 'never')))
        os.close(excl)
    os.unlink(name)


SCENARIOS = (unlinked_open, renamed_over, removed_dir, temporary_file, o_tmpfile)


def run_all(d):
    log = []
    for fn in SCENARIOS:
        fn(d, log)
    return log


def many_open(base):
    """1,500 files held open at once through a daemon started with a soft
    open-file limit of 256 (as a service gets 1,024): it raises its own to
    the hard limit, or opens fail with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4000:
        res.not_checked('hard open-file limit %d: 1,500 open files not tried' % hard,
                        point=False)
        return
    os.makedirs(os.path.join(base, 'nofile'))
    d = dt.Disk(os.path.join(base, 'nofile'), name='nofile', limit='64M')
    fds, err = [], None
    with dt.checked(res, d):
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            d.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            for i in range(1500):
                fds.append(os.open(os.path.join(d.mnt, 'f%d' % i), os.O_RDWR | os.O_CREAT,
                                   0o600))
        except OSError as e:
            err = errno.errorcode.get(e.errno, e.errno)
        finally:
            for fd in fds:
                os.close(fd)
        res.eq('1,500 files open at once (daemon started with a soft limit of 256)',
               (len(fds), err), (1500, None))


host = os.path.join(base, 'host')
os.makedirs(host)
want = run_all(host)
disk = dt.Disk(base, limit='64M', images=[img])
with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    got = run_all(m)
    for (label, w), (_, g) in zip(want, got):
        res.eq('%s: as on the host' % label, g, w)
    dt.compare(res, 'after the unlinked-open work', disk, settle_s=10)

    log = []
    image_file_fd(m, log)
    res.eq('image fd: fchmod of the copied-up file', log, [
        ('image fd: fchmod', None), ('image fd: mode by name', oct(0o100600))])
    res.eq('image fd: the image file itself is unchanged',
           oct(os.stat(os.path.join(img, 'imgfile')).st_mode), oct(0o100644))

    # An unlinked file's blocks stay charged while open, and come back
    # at its last close.
    before = disk.fresh_figures()['used_bytes']
    path = os.path.join(m, 'big')
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b'b' * (8 << 20))
    os.fsync(fd)
    os.unlink(path)
    os.ftruncate(fd, 16 << 20)
    os.posix_fallocate(fd, 0, 16 << 20)
    held = disk.fresh_figures()['used_bytes']
    # (A recount sees names only: it cannot count this file.)
    res.check('unlinked and open: 16 MiB stay charged (%d -> %d)' % (before, held),
              held - before >= 16 << 20)
    os.close(fd)
    dt.compare(res, 'after its last close', disk, settle_s=10)
    # The same for an O_TMPFILE file that is never linked.
    fd = os.open(m, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.posix_fallocate(fd, 0, 8 << 20)
    held = disk.fresh_figures()['used_bytes']
    res.check('O_TMPFILE: 8 MiB charged while open (%d -> %d)' % (before, held),
              held - before >= 8 << 20)
    os.close(fd)
    dt.compare(res, 'after the O_TMPFILE file is closed', disk, settle_s=10)
    res.check('after its last close: back to %d' % before,
              disk.fresh_figures()['used_bytes'] <= before + 4096)
many_open(base)
res.done()
