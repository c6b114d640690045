#!/usr/bin/env python3
"""An OPEN or CREATE whose server dies after opening the file but before
its reply reaches the kernel (issue 17, doc/cvmfsd-disk.md).

The kernel resends such a request to the next server. The dead server's
fd for it is nobody's file: the new server must close it and uncount it,
or an unlinked file stays open in the daemon (its blocks held and charged)
until the daemon stops. CVMFS_DISK_TEST_DIE_AT_OPEN=NAME makes the first
server that answers an open of NAME die between journaling the open and
replying (once per daemon), as a crash there would.

Checks, for a CREATE (a new file) and an OPEN (an image file, copied up
by the open for writing): the caller sees no error, the data written
through the resent request's file is intact, the log shows one take-over
after a SIGKILL, and after close + unlink no fd of the daemon names the
file and the live figures equal a recount (they would not if the dead
server's fd were kept: its node would stay open and charged).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

MIB = 1 << 20


def server_up(disk):
    return dt.wait_for(lambda: 'supervisor pid' in disk.logtext(), 20)


def fds_naming(pid, name):
    """The daemon's fds (supervisor and servers share one table) on name."""
    hits = []
    d = '/proc/%d/fd' % pid
    for fd in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if os.path.basename(target.replace(' (deleted)', '')) == name:
            hits.append(target)
    return hits


def one_case(res, base, label, name, open_flags, image_file):
    img = os.path.join(base, label + '-img')
    os.makedirs(img)
    if image_file:
        dt.write_file(os.path.join(img, name), b'i' * MIB)
    disk = dt.Disk(os.path.join(base, label), limit='256M', images=[img])
    os.environ['CVMFS_DISK_TEST_DIE_AT_OPEN'] = name
    try:
        with dt.checked(res, disk):
            disk.start()
            del os.environ['CVMFS_DISK_TEST_DIE_AT_OPEN']
            res.check('%s: serving' % label, server_up(disk))
            path = os.path.join(disk.mnt, name)
            data = os.urandom(4 * MIB)
            try:
                fd = os.open(path, open_flags, 0o644)
                os.write(fd, data)
                os.fsync(fd)
                os.close(fd)
                err = None
            except OSError as e:
                err = e
            res.eq('%s: the open whose reply was lost succeeds (resent)' % label, err, None)
            with open(path, 'rb') as f:
                res.check('%s: the data written through it is intact' % label,
                          f.read() == data)
            log = disk.logtext()
            res.eq('%s: one server died of SIGKILL, one took over' % label,
                   (log.count('signal 9)'), log.count(') took over in')), (1, 1))
            os.unlink(path)
            res.eq('%s: after close + unlink, no fd of the daemon names the file' % label,
                   fds_naming(disk.proc.pid, name), [])
            dt.compare(res, '%s: after unlink' % label, disk, settle_s=5)
            disk.stop()
            res.eq('%s: a stop ends the daemon with 0' % label, disk.proc.returncode, 0)
            if res.failed:
                print(disk.logtext()[-3000:], flush=True)
    finally:
        os.environ.pop('CVMFS_DISK_TEST_DIE_AT_OPEN', None)


def main():
    dt.require_root_fuse()
    dt.require_resend()
    res = dt.Results()
    base = dt.tmpdir()
    one_case(res, base, 'create', 'cvmfs-test-created', os.O_CREAT | os.O_WRONLY | os.O_TRUNC,
             image_file=False)
    one_case(res, base, 'open', 'cvmfs-test-opened', os.O_WRONLY | os.O_TRUNC, image_file=True)
    res.done()


if __name__ == '__main__':
    main()
