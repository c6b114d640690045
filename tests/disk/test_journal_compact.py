#!/usr/bin/env python3
"""The take-over journal stays small and keeps what the kernel holds
(issue 17, src/disk/nodes/journal.c, doc/cvmfsd-disk.md).

Every node a server makes or renames appends a record to the journal's log
(shared memory). Without compaction the log grows with the workspace's
history: each cold lookup of a tree appends its records again, up to 512
MiB per workspace. CVMFS_DISK_TEST_JOURNAL_SLACK=65536 makes the server
compact after 64 KiB of growth instead of 16 MiB, so that this test sees
many compactions.

Checks:
  - while a tree of 6,000 entries is looked up cold 8 times (a cache drop
    before each), the log is compacted (log lines) and the journal's
    resident memory stays under 1.5 MiB (the records of those lookups alone
    are about 2.5 MiB);
  - an image directory and an image file, both copied up (they keep the
    image object's id, which only the journal ties to their upper copy),
    held by the kernel (open fds) from before the compactions, the file
    renamed in between, are still reachable through those fds after a kill
    -9 of the server: the compacted log named them;
  - again after two more kills, with compactions in between by a server
    that never used the directory (nor anything below it: an open file's
    ancestors are found again at every take-over): the ids it inherited
    and never took up were carried over;
  - the figures equal a recount, and a stop ends the daemon with 0.
Without compaction the memory check fails; with compaction that dropped
live or inherited records the reads through the held fds fail (ESTALE).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

SLACK = 64 << 10
FILES_PER_DIR = 200
DIRS = 30


def journal_rss_kib(pid):
    """Resident KiB of the journal's mapping in the server."""
    total, inside = 0, False
    try:
        with open('/proc/%d/smaps' % pid) as f:
            for line in f:
                if '-' in line.split(' ', 1)[0]:
                    inside = 'cvmfs-disk-journal' in line
                elif inside and line.startswith('Rss:'):
                    total += int(line.split()[1])
    except OSError:
        return None
    return total


def drop_caches():
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2')


def cold_walks(mnt, rounds):
    n = 0
    for _ in range(rounds):
        drop_caches()
        for dp, dns, fns in os.walk(os.path.join(mnt, 'tree')):
            for name in fns + dns:
                os.lstat(os.path.join(dp, name))
                n += 1
    return n


def kill_server(res, label, disk, nth):
    old = dt.server_pid(disk.proc.pid)
    os.kill(old, signal.SIGKILL)
    ok = dt.wait_for(lambda: dt.server_pid(disk.proc.pid) not in (0, old) and
                     disk.logtext().count(') took over in') >= nth, 20)
    res.check('%s: a new server took over' % label, ok)


def held_still_reachable(res, label, dfd, ffd, data):
    """dfd: image dir a/x/y, copied up; ffd: image file a/b/c/g, copied up
    and renamed g2."""
    try:
        with open(os.open('f', os.O_RDONLY, dir_fd=dfd), 'rb') as f:
            got = f.read()
        err = None
    except OSError as e:
        got, err = None, e
    res.eq('%s: a file opened beneath the held directory: no error' % label, err, None)
    res.check('%s: ... and its data' % label, got == data)
    try:
        names = sorted(os.listdir('/proc/self/fd/%d' % dfd))
        size = os.fstat(ffd).st_size
        got = os.pread(ffd, len(data) + 10, 0)
        err = None
    except OSError as e:
        names, size, err = None, None, e
    res.eq('%s: the held directory lists, the held file reads' % label, err, None)
    res.eq('%s: ... with its entries' % label, names, ['f', 'new'])
    res.check('%s: ... and the held file its data' % label,
              size == len(data) + 3 and got == data + b'abc')


def main():
    dt.require_root_fuse()
    dt.require_resend()
    res = dt.Results()
    base = dt.tmpdir()
    img = os.path.join(base, 'img')
    data = os.urandom(5000)
    os.makedirs(os.path.join(img, 'a', 'b', 'c'))
    os.makedirs(os.path.join(img, 'a', 'x', 'y'))
    dt.write_file(os.path.join(img, 'a', 'b', 'c', 'g'), data)
    dt.write_file(os.path.join(img, 'a', 'x', 'y', 'f'), data)
    disk = dt.Disk(os.path.join(base, 'ws'), limit='512M', images=[img])
    os.environ['CVMFS_DISK_TEST_JOURNAL_SLACK'] = str(SLACK)
    try:
        with dt.checked(res, disk):
            disk.start()
            del os.environ['CVMFS_DISK_TEST_JOURNAL_SLACK']
            mnt = disk.mnt
            for d in range(DIRS):
                p = os.path.join(mnt, 'tree', 'd%02d' % d)
                os.makedirs(p)
                for i in range(FILES_PER_DIR):
                    open(os.path.join(p, 'f%d' % i), 'w').close()
            held = os.path.join(mnt, 'a', 'b', 'c')
            dirpath = os.path.join(mnt, 'a', 'x', 'y')
            dt.write_file(os.path.join(dirpath, 'new'), b'n')  # copies a, x, y up
            with open(os.path.join(held, 'g'), 'ab') as f:  # copies b, c, g up
                f.write(b'abc')
            dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
            ffd = os.open(os.path.join(held, 'g'), os.O_RDONLY)

            srv = dt.server_pid(disk.proc.pid)
            peak = 0
            for r in range(8):
                cold_walks(mnt, 1)
                if r == 3:  # a move the compacted log must follow
                    os.rename(os.path.join(held, 'g'), os.path.join(held, 'g2'))
                time.sleep(1.2)  # the publisher compacts once a second
                peak = max(peak, journal_rss_kib(srv) or 0)
            compactions = disk.logtext().count('take-over journal compacted')
            res.check('compactions while the tree is looked up cold (%d)' % compactions,
                      compactions >= 3)
            res.check('the journal stays small: peak %d KiB resident' % peak, 0 < peak < 1536)

            kill_server(res, 'first kill', disk, 1)
            held_still_reachable(res, 'after the first kill', dfd, ffd, data)

            # The third server does not use the fds until it is killed:
            # their ids are inherited records only, which its compactions
            # must carry for the fourth.
            kill_server(res, 'second kill', disk, 2)
            before = disk.logtext().count('take-over journal compacted')
            cold_walks(mnt, 3)
            res.check('the next server compacts too',
                      dt.wait_for(lambda: disk.logtext().count('take-over journal compacted') >
                                  before, 10))
            kill_server(res, 'third kill', disk, 3)
            held_still_reachable(res, 'after compactions of inherited ids', dfd, ffd, data)
            os.close(dfd)
            os.close(ffd)
            dt.compare(res, 'after the kills', disk, settle_s=3)
            disk.stop()
            res.eq('a stop ends the daemon with 0', disk.proc.returncode, 0)
            if res.failed:
                print(disk.logtext()[-4000:], flush=True)
    finally:
        os.environ.pop('CVMFS_DISK_TEST_JOURNAL_SLACK', None)
    res.done()


if __name__ == '__main__':
    main()
