#!/usr/bin/env python3
"""Deep paths: the union has no length limit of its own (src/disk/nodes/path.c
builds union paths on the heap and walks ones longer than PATH_MAX in
pieces). From a directory 10 levels below the mount, paths of 4,095 bytes
(the most one system call takes) are created, used, renamed and removed,
with the same results as on the host's filesystem; below them a tree goes
on deeper through directory fds; the charge equals a recount, and a
restart after kill -9 recounts the deep tree and still serves it."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
img = os.path.join(base, 'img')
os.makedirs(os.path.join(img, 'home'))
TEN = os.path.join(*['level%d' % i for i in range(10)])
NAME = 'n' * 255
# 16 names of 255 bytes and 15 slashes: 4,095 bytes.
DIRS = '/'.join([NAME] * 15)
FILE = DIRS + '/' + 'f' * 255
assert len(FILE) == 4095


def write(rel, data):
    fd = os.open(rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def read(rel):
    with open(rel, 'rb') as f:
        return f.read()


def deeper(dfd, levels, log):
    """Below a 4,095-byte path, on through directory fds (each call's path
    is one name): levels more directories and a file at the bottom."""
    fds = []
    try:
        for _ in range(levels):
            os.mkdir(NAME, dir_fd=dfd)
            dfd = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd)
            fds.append(dfd)
        fd = os.open('bottom', os.O_RDWR | os.O_CREAT, 0o600, dir_fd=dfd)
        os.write(fd, b'b' * 10000)
        os.close(fd)
        dt.attempt(log, 'deeper: stat', lambda: os.stat('bottom', dir_fd=dfd).st_size)
        dt.attempt(log, 'deeper: listdir', lambda: sorted(os.listdir(dfd)))
    finally:
        for f in fds:
            os.close(f)


def scenario(top, log):
    """Everything relative to top/TEN (cwd), 4,095-byte paths."""
    here = os.getcwd()
    os.makedirs(os.path.join(top, TEN))
    os.chdir(os.path.join(top, TEN))
    try:
        dt.attempt(log, 'makedirs', lambda: os.makedirs(DIRS))
        dt.attempt(log, 'create 4,095-byte path', lambda: write(FILE, b'x' * 5000))
        dt.attempt(log, 'stat', lambda: (os.stat(FILE).st_size, oct(os.stat(FILE).st_mode)))
        dt.attempt(log, 'read', lambda: len(read(FILE)))
        dt.attempt(log, 'chmod', lambda: (os.chmod(FILE, 0o600), oct(os.stat(FILE).st_mode)))
        dt.attempt(log, 'xattr', lambda: (os.setxattr(FILE, 'user.d', b'1'),
                                       os.getxattr(FILE, 'user.d')))
        dt.attempt(log, 'truncate', lambda: (os.truncate(FILE, 7), os.stat(FILE).st_size))
        other = DIRS + '/' + 'g' * 255
        dt.attempt(log, 'rename', lambda: os.rename(FILE, other))
        dt.attempt(log, 'old name gone', lambda: os.path.exists(FILE))
        dt.attempt(log, 'link', lambda: os.link(other, FILE))
        dt.attempt(log, 'nlink', lambda: os.stat(FILE).st_nlink)
        dt.attempt(log, 'unlink one', lambda: os.unlink(other))
        dt.attempt(log, 'symlink', lambda: os.symlink('target', other))
        dt.attempt(log, 'readlink', lambda: os.readlink(other))
        dt.attempt(log, 'listdir', lambda: sorted(os.listdir(DIRS)))
        dt.attempt(log, 'rename dir', lambda: os.rename(NAME, 'm' * 255))
        moved = 'm' * 255 + FILE[255:]
        dt.attempt(log, 'after dir rename', lambda: len(read(moved)))
        dfd = os.open(DIRS.replace(NAME, 'm' * 255, 1), os.O_RDONLY | os.O_DIRECTORY)
        try:
            deeper(dfd, 12, log)
        finally:
            os.close(dfd)
        dt.attempt(log, 'too long by one', lambda: write(FILE + 'x', b''))
    finally:
        os.chdir(here)


def remove(top, log):
    here = os.getcwd()
    os.chdir(os.path.join(top, TEN))
    try:
        dt.attempt(log, 'rm -rf', lambda: shutil.rmtree('m' * 255))
        dt.attempt(log, 'empty after', lambda: os.listdir('.'))
    finally:
        os.chdir(here)


host = os.path.join(base, 'host')
want = []
scenario(host, want)
remove(host, want)
disk = dt.Disk(base, limit='256M', images=[img])
with dt.checked(res, disk):
    disk.start()
    m = os.path.join(disk.mnt, 'home')
    got = []
    scenario(m, got)
    dt.compare(res, 'deep tree', disk)
    disk.kill9()
    disk.start()
    res.check('restart after kill -9: recounted', 'recounted usage' in disk.logtext())
    dt.compare(res, 'deep tree after the recount', disk)
    res.check('deep tree home bytes > 0', disk.fresh_figures()['home_bytes'] > 0)
    remove(m, got)
    res.eq('same number of steps as on the host', len(got), len(want))
    for (label, w), (_, g) in zip(want, got):
        res.eq('%s: as on the host' % label, g, w)
    dt.compare(res, 'after rm -rf', disk)
res.done()
