#!/usr/bin/env python3
"""What callers see for objects a dead server knew (issue 17/16,
doc/cvmfsd-disk.md "Surviving its server").

1. Removed directories the kernel still holds. A directory is removed
   (rm -rf) while this process holds an fd on it and on its child and has
   its cwd there; then the server is killed (the supervisor restarts it)
   and the directory is used through what is held: fstat, listing, stat
   of "." and "..", names below it, mkdir/creat in it. Every answer
   (errno or success) must equal the same steps on the host's ext4 where
   the disk can give them, and must be the same with or without the kill:
   never ESTALE for a removed object reached through a path, an fd or a
   cwd. A file handle (open_by_handle_at) of a removed file still gives
   ESTALE after the kill, as on ext4.
2. Node counts. A tree the kernel holds, a kill, then its ids met again
   (listed with attributes, opened, chmod'ed): after drop_caches the
   published node count (known_inodes) is back to its baseline (a node
   made again under a dead server's id used to start at one reference
   while the kernel's FORGET counted the dead server's lookups too).
3. d_ino. For image files, copied-up image files and upper files, every
   readdir d_ino (os.scandir) equals lstat's st_ino, before and after a
   take-over and drop_caches, also with the directories held open across
   the drop (their listings stay in the kernel while a copy-up is
   forgotten and looked up again under another id).
4. FORGETs racing requests. After a take-over the kernel holds the dead
   server's ids with a count this server does not know; a cache drop then
   forgets them while requests name them afresh (a FORGET of an evicted
   inode may come after the kernel looked the id up again). Threads stat,
   create, list and remove below the dead server's directories during
   repeated drop_caches, three take-overs in a row: every call succeeds
   and no server dies (a server used to free a directory's node under a
   request making a child in it: SIGSEGV, or use-after-free under ASan).
"""

import ctypes
import errno
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402


def kill_server(disk):
    """SIGKILL the server; True once another one serves."""
    sup = disk.proc.pid
    old = dt.server_pid(sup)
    if not old:
        return False
    n = disk.logtext().count(') took over in')
    os.kill(old, signal.SIGKILL)
    return dt.wait_for(lambda: disk.logtext().count(') took over in') > n, 20)


def outcome(fn):
    """'ok', fn()'s value, or the errno's name."""
    try:
        r = fn()
        return 'ok' if r is None else r
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def removed_dir(root, between):
    """The steps of case 1 below root: {step: outcome}."""
    g = os.path.join(root, 'rm', 'gone')
    os.makedirs(os.path.join(g, 'sub'))
    open(os.path.join(g, 'f'), 'w').close()
    fd = os.open(g, os.O_RDONLY | os.O_DIRECTORY)
    sfd = os.open(os.path.join(g, 'sub'), os.O_RDONLY | os.O_DIRECTORY)
    out = {}
    try:
        os.fchdir(fd)  # a cwd in it, held across the removal and the kill
        subprocess.run(['rm', '-rf', g], check=True)
        between()
        out['cwd: stat .'] = outcome(lambda: 'nlink %d' % os.stat('.').st_nlink)
        out['cwd: open .'] = outcome(lambda: os.close(os.open('.', os.O_RDONLY)))
        out['cwd: listdir .'] = outcome(lambda: os.listdir('.'))
        out['cwd: stat sub'] = outcome(lambda: os.stat('sub') and None)
        out['cwd: mkdir'] = outcome(lambda: os.mkdir('new'))
        out['cwd: creat'] = outcome(
            lambda: os.close(os.open('newf', os.O_CREAT | os.O_WRONLY, 0o644)))
        out['cwd: symlink'] = outcome(lambda: os.symlink('x', 'newl'))
        out['cwd: stat ..'] = outcome(lambda: os.stat('..') and None)
        os.chdir('/')
        out['fchdir'] = outcome(lambda: os.fchdir(fd))
        os.chdir('/')
        out['fstat'] = outcome(lambda: 'nlink %d' % os.fstat(fd).st_nlink)
        out['fstat of its child'] = outcome(lambda: 'nlink %d' % os.fstat(sfd).st_nlink)
        out['listdir fd'] = outcome(lambda: os.listdir(fd))
        out['mkdir at fd'] = outcome(lambda: os.mkdir('new2', dir_fd=fd))
        out['unlink at fd'] = outcome(lambda: os.unlink('f', dir_fd=fd))
        out['rename at fd'] = outcome(lambda: os.rename('f', 'f2', src_dir_fd=fd,
                                                        dst_dir_fd=fd))
        out['fchmod'] = outcome(lambda: os.chmod(fd, 0o750))
        out['fsetxattr'] = outcome(lambda: os.setxattr(fd, 'user.t', b'1'))
        out['fgetxattr'] = outcome(lambda: os.getxattr(fd, 'user.none'))
        out['flistxattr'] = outcome(lambda: os.listxattr(fd))
        out['stat path'] = outcome(lambda: os.stat(g) and None)
        out['stat path below'] = outcome(lambda: os.stat(os.path.join(g, 'sub')) and None)
    finally:
        os.chdir('/')
        os.close(fd)
        os.close(sfd)
    return out


# Steps that need the removed directory's own attributes (the kernel asks
# for them for a permission check too: "..", open): the disk answers them
# from an fd of the directory it kept, which a new server does not have;
# it answers ENOENT there (the object is gone from its layers), as for any
# removed object, never ESTALE.
OWN_ATTRS = ('cwd: stat .', 'cwd: open .', 'cwd: listdir .', 'cwd: stat ..', 'fchdir',
             'fstat', 'fstat of its child', 'listdir fd', 'fchmod', 'fsetxattr', 'fgetxattr',
             'flistxattr')


LIBC = ctypes.CDLL(None, use_errno=True)


class FileHandle(ctypes.Structure):
    _fields_ = [('handle_bytes', ctypes.c_uint), ('handle_type', ctypes.c_int),
                ('f_handle', ctypes.c_ubyte * 128)]


def drop_caches():
    os.sync()
    for _ in range(2):
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('2')


def removed_handle(root, between):
    """open_by_handle_at of a removed file's handle, after between()."""
    path = os.path.join(root, 'handle-file')
    dt.write_file(path, b'x')
    fh, mount_id = FileHandle(), ctypes.c_int()
    fh.handle_bytes = 128
    if LIBC.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(fh),
                              ctypes.byref(mount_id), 0) != 0:
        return 'name_to_handle_at: ' + errno.errorcode[ctypes.get_errno()]
    os.unlink(path)
    drop_caches()
    between()
    mfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = LIBC.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
        if fd >= 0:
            os.close(fd)
            return 'ok'
        return errno.errorcode[ctypes.get_errno()]
    finally:
        os.close(mfd)


def case_removed(res, disk, ext4):
    want = removed_dir(ext4, lambda: None)
    plain = removed_dir(os.path.join(disk.mnt, 'plain'), lambda: None)
    killed = removed_dir(os.path.join(disk.mnt, 'killed'),
                         lambda: res.check('removed dir: a new server', kill_server(disk)))
    print('# ext4:   %s\n# disk:   %s\n# killed: %s' % (want, plain, killed), flush=True)
    for k in want:
        res.eq('removed dir: %s: as on ext4' % k, plain[k], want[k])
        ok = killed[k] == want[k] or (k in OWN_ATTRS and killed[k] == 'ENOENT')
        res.check('removed dir: %s after a kill: as on ext4%s' % (
            k, ' (or ENOENT)' if k in OWN_ATTRS else ''), ok, (killed[k], want[k]))
    # The handle's object: on ext4's own root (a handle's mount).
    res.eq('removed file: open_by_handle_at on ext4', removed_handle(ext4, lambda: None),
           'ESTALE')
    res.eq('removed file: open_by_handle_at after a kill', removed_handle(
        disk.mnt, lambda: res.check('handle: a new server', kill_server(disk))), 'ESTALE')


def known_settled(disk, want, timeout=10):
    """known_inodes (the published node table size) once it is want, or
    its value when timeout ran out; caches dropped on the way (a FORGET
    comes when the kernel evicts an inode)."""
    t0, got = time.time(), None
    while time.time() - t0 < timeout:
        drop_caches()
        got = disk.fresh_figures()['known_inodes']
        if got == want:
            break
    return got


def tree_hold(top):
    """Every name below top looked up (READDIRPLUS + LOOKUP) and held open
    (other tests on the machine may drop the caches at any time): the fds."""
    fds = []
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lstat(os.path.join(d, name))
            fds.append(os.open(os.path.join(d, name), os.O_RDONLY))
    return fds


SLACK = 8


def case_counts(res, disk):
    """2. After a take-over, nodes of ids the kernel held from the dead
    server (looked up again, listed with attributes, opened, chmod'ed) are
    freed when the kernel forgets them: the node count returns to its
    baseline after drop_caches."""
    top = os.path.join(disk.mnt, 'counts')
    for d in range(8):
        os.makedirs(os.path.join(top, 'd%d' % d))
        for f in range(16):
            dt.write_file(os.path.join(top, 'd%d' % d, 'f%02d' % f), b'c' * 100)
    base = known_settled(disk, -1, timeout=1.5)
    fds = tree_hold(top)
    try:
        held = [0]

        def holds():
            held[0] = disk.figures()['known_inodes']
            return held[0] >= base + len(fds)
        res.check('counts: the kernel holds the tree (%d names)' % len(fds),
                  dt.wait_for(holds, 5), (held[0], base, len(fds)))
        res.check('counts: a new server', kill_server(disk))
        # The dead server's ids, met again: listed with attributes (the
        # directories changed, so listed anew), opened (OPEN), chmod'ed.
        for d in range(8):
            dt.write_file(os.path.join(top, 'd%d' % d, 'new'), b'n')
        for fd in tree_hold(top):
            os.close(fd)
        for d in range(8):
            os.chmod(os.path.join(top, 'd%d' % d, 'f01'), 0o600)
    finally:
        for fd in fds:
            os.close(fd)
    got = known_settled(disk, base)
    # A few may stay: a FORGET handled while something else held the node
    # (a directory whose children's FORGETs another thread was handling)
    # keeps it, marked, until the connection ends (nodes/inode.c: never
    # freed under a holder). Before, all of them stayed.
    res.check('counts: after a take-over and drop_caches, known_inodes back to %d (at most '
              '%d stay)' % (base, SLACK), got <= base + SLACK, (got, base))


def ino_mismatches(top):
    """(path, d_ino, st_ino) of every entry below top whose readdir d_ino
    is not its lstat st_ino; and the number of entries. Every entry is held
    open meanwhile: another test's drop_caches between a listing and an
    lstat could make a copy-up's id change in between."""
    fds = tree_hold(top)
    try:
        return ino_compare(top)
    finally:
        for fd in fds:
            os.close(fd)


def ino_compare(top):
    bad, n = [], 0
    stack = [top]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            ents = list(it)
        for e in ents:
            n += 1
            st = os.lstat(e.path)
            if e.inode() != st.st_ino:
                bad.append((os.path.relpath(e.path, top), e.inode(), st.st_ino))
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
    return bad, n


def case_d_ino(res, disk, img):
    """3. readdir's d_ino is lstat's st_ino (as on ext4 and overlayfs with
    xino) for image files, copied-up image files and upper files, before
    and after a take-over and a drop_caches."""
    top = os.path.join(disk.mnt, 'etc')
    for i in range(0, 12, 2):  # copy-ups: image files written
        with open(os.path.join(top, 'sub', 'i%02d' % i), 'ab') as f:
            f.write(b'more')
    os.makedirs(os.path.join(top, 'sub', 'updir'))
    for i in range(6):
        dt.write_file(os.path.join(top, 'sub', 'updir', 'u%d' % i), b'u')
        dt.write_file(os.path.join(top, 'u%d' % i), b'u')
    for label, step in (('', lambda: None), (' after a take-over', lambda: kill_server(disk)),
                        (' after drop_caches', drop_caches),
                        (' after a take-over and drop_caches',
                         lambda: kill_server(disk) and drop_caches())):
        step()
        bad, n = ino_mismatches(top)
        res.eq('d_ino: readdir d_ino == lstat st_ino%s (%d entries)' % (label, n), bad[:5], [])
        # The directories held open (their listings stay in the kernel)
        # while their entries are evicted and looked up again.
        held = [os.open(os.path.join(top, d), os.O_RDONLY | os.O_DIRECTORY)
                for d in ('.', 'sub', 'sub/updir')]
        try:
            drop_caches()
            bad, n = ino_mismatches(top)
        finally:
            for fd in held:
                os.close(fd)
        res.eq('d_ino: ... and with the directories held across drop_caches (%d entries)' % n,
               bad[:5], [])


RACE_DIRS, RACE_SECONDS, RACE_THREADS = 24, 3.0, 6


def race_worker(top, seed, stop, errors):
    """Names below top's directories met again and again until stop."""
    rnd, i = random.Random(seed), 0
    while not stop.is_set():
        d = os.path.join(top, 'd%02d' % rnd.randrange(RACE_DIRS))
        try:
            os.stat(os.path.join(d, 'f%d' % rnd.randrange(4)))
            new = os.path.join(d, 'n%d-%d' % (seed, i))
            dt.write_file(new, b'r')
            os.listdir(d)
            os.unlink(new)
        except OSError as e:
            errors.append('%s: %s' % (d, e))
        i += 1


def case_forget_race(res, disk):
    """4. FORGETs of the dead server's ids racing requests that name them."""
    top = os.path.join(disk.mnt, 'race')
    for d in range(RACE_DIRS):
        os.makedirs(os.path.join(top, 'd%02d' % d))
        for f in range(4):
            dt.write_file(os.path.join(top, 'd%02d' % d, 'f%d' % f), b'f')
    errors, rounds = [], 0
    for take in range(3):
        for dirpath, _, files in os.walk(top):  # the kernel holds every id
            for name in files:
                os.lstat(os.path.join(dirpath, name))
        res.check('forget race: a new server (%d)' % (take + 1), kill_server(disk))
        stop = threading.Event()
        threads = [threading.Thread(target=race_worker, args=(top, take * 100 + t, stop, errors))
                   for t in range(RACE_THREADS)]
        for t in threads:
            t.start()
        t0 = time.time()
        while time.time() - t0 < RACE_SECONDS:
            drop_caches()
            rounds += 1
        stop.set()
        for t in threads:
            t.join()
    res.eq('forget race: every call below the dead server\'s ids succeeded (%d drops)' % rounds,
           errors[:5], [])


def main():
    dt.require_root_fuse()
    dt.require_resend()
    res = dt.Results()
    base = dt.tmpdir()
    ext4 = tempfile.mkdtemp(prefix='cvmfs-test-', dir='/var/tmp')
    dt._tmpdirs.append(ext4)
    img = os.path.join(base, 'img')
    os.makedirs(os.path.join(img, 'etc', 'sub', 'idir'))
    for i in range(12):
        dt.write_file(os.path.join(img, 'etc', 'sub', 'i%02d' % i), b'image %d' % i)
        dt.write_file(os.path.join(img, 'etc', 'sub', 'idir', 'j%02d' % i), b'image')
    disk = dt.Disk(os.path.join(base, 'a'), limit='256M', images=[img],
                   extra=['--max-crashes', '20'])
    with dt.checked(res, disk):
        disk.start()
        res.check('serving', dt.wait_for(lambda: 'supervisor pid' in disk.logtext(), 20))
        case_removed(res, disk, ext4)
        case_counts(res, disk)
        case_d_ino(res, disk, img)
        case_forget_race(res, disk)
        log = disk.logtext()
        died = [line for line in log.splitlines() if 'server died' in line]
        res.eq('every server died of our SIGKILL', [d for d in died if 'signal 9)' not in d], [])
        res.check('no sanitizer report in the log',
                  'Sanitizer' not in log and 'runtime error' not in log, log[-3000:])
        disk.stop()
    res.done()


if __name__ == '__main__':
    main()
