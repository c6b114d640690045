#!/usr/bin/env python3
"""Image-layer objects are reached through the fds their directories keep,
not by their paths from the layer root (src/disk/nodes/path.c,
node_lower_dirfd). Three image layers with directories in several of them,
a tree deeper than PATH_MAX, overlayfs whiteouts and opaque directories,
and more directories than the daemon keeps fds for: every name, type, mode
and content seen through the disk equals what kernel overlayfs shows over
the same layers (lowerdir=L1:L2:L3), before and after drop_caches; a walk
over the image makes the server open nothing by a path with a '/' in it
(strace); the kept fds are closed when the kernel forgets the directories;
a copied-up, a renamed (also a deep one) and a partly removed directory
still show the right union."""
import os
import re
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
L = [os.path.join(base, 'l%d' % i) for i in (1, 2, 3)]  # L[0] on top
WIDE = 750      # directories in all three layers: 2,250 fds wanted, more than kept (2,048)
DEPTH = 40      # levels of 116 bytes: 4,640 bytes, beyond PATH_MAX
LEVEL = 'd%02d_' + 'x' * 111


def put(layer, rel, data):
    """A file at a path of any length (made one directory at a time)."""
    parts = rel.split('/')
    fd = os.open(L[layer], os.O_RDONLY | os.O_DIRECTORY)
    try:
        for p in parts[:-1]:
            try:
                os.mkdir(p, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        if data is None:
            os.mkdir(parts[-1], 0o755, dir_fd=fd)
        elif data == 'WHITEOUT':
            os.mknod(parts[-1], stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=fd)
        else:
            wfd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(wfd, data.encode())
            os.close(wfd)
    finally:
        os.close(fd)


def build_layers():
    for d in L:
        os.makedirs(d)
    for i in range(3):
        put(i, 'common/a', 'a from l%d\n' % (i + 1))
        put(i, 'common/sub/s%d' % (i + 1), 's\n')
        put(i, 'common/only%d' % (i + 1), 'only\n')
    put(2, 'common/gone', 'hidden by l2\n')
    put(1, 'common/gone', 'WHITEOUT')
    put(2, 'common/sub/low/x', 'x\n')
    put(2, 'opq/old', 'hidden\n')
    put(2, 'opq/olddir/y', 'hidden\n')
    put(1, 'opq/new2', 'n2\n')
    os.setxattr(os.path.join(L[1], 'opq'), 'trusted.overlay.opaque', b'y')
    put(0, 'opq/new1', 'n1\n')
    put(2, 'replaced/f', 'hidden below a file\n')
    put(1, 'replaced', 'a file now\n')
    deep = '/'.join(LEVEL % i for i in range(DEPTH))
    for i in (1, 2):
        put(i, 'deep/' + deep + '/bottom', 'bottom from l%d\n' % (i + 1))
        put(i, 'deep/' + deep + '/only%d' % (i + 1), 'only\n')
        for k in range(0, DEPTH, 10):
            put(i, 'deep/' + '/'.join(LEVEL % j for j in range(k + 1)) + '/at%d_l%d' % (k, i + 1),
                'level %d\n' % k)
    put(2, 'deep/' + deep + '/whited', 'hidden\n')
    put(1, 'deep/' + deep + '/whited', 'WHITEOUT')
    put(0, 'deep/top', 'top\n')
    for n in range(WIDE):
        for i in range(3):
            put(i, 'wide/w%04d/f' % n, 'f from l%d\n' % (i + 1))
            put(i, 'wide/w%04d/l%d' % (n, i + 1), 'l\n')


def snapshot(top, only=None):
    """{relative path: (type, mode, content)} of the tree below top (of
    only its top-level names in only), walked and read through dir fds
    (paths longer than PATH_MAX)."""
    out = {}

    def walk(dfd, rel):
        for name in sorted(os.listdir(dfd)):
            if only is not None and not rel and name not in only:
                continue
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            p = rel + '/' + name
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out[p] = ('d', mode, None)
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
                try:
                    walk(fd, p)
                finally:
                    os.close(fd)
            elif stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
                try:
                    out[p] = ('f', mode, os.read(fd, 1 << 16))
                finally:
                    os.close(fd)
            else:
                out[p] = ('o', st.st_mode, None)

    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(fd, '')
    finally:
        os.close(fd)
    return out


def same(label, got, want):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    res.check('%s (%d entries)' % (label, len(want)), not (missing or extra or differ),
              detail='missing %s extra %s differ %s' % (
                  [m[-60:] for m in missing[:3]], [e[-60:] for e in extra[:3]],
                  [(d[-60:], got[d], want[d]) for d in differ[:3]]))


def drop_caches():
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


def fds_below(pid, rel):
    """The server's fds on image-layer directories at or below union path
    rel ('' for all)."""
    n = 0
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            t = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if any(t == d + rel or t.startswith(d + rel + '/') for d in L):
            n += 1
    return n


def layer_fds(pid):
    """The server's fds on directories of the image layers."""
    return fds_below(pid, '')


def traced(pid):
    """Is a tracer attached to one of pid's threads yet?"""
    for t in os.listdir('/proc/%d/task' % pid):
        try:
            if 'TracerPid:\t0\n' not in open('/proc/%d/task/%s/status' % (pid, t)).read():
                return True
        except OSError:
            pass
    return False


def traced_openat2(pid, action):
    """(calls, calls with a '/' in their path) of openat2 by the server
    while action runs; None where strace cannot attach."""
    if not shutil.which('strace'):
        return None
    log = os.path.join(base, 'strace.%d' % len(os.listdir(base)))
    p = subprocess.Popen(['strace', '-f', '-qq', '-e', 'trace=openat2', '-o', log, '-p', str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt._daemons.append(p)
    if not dt.wait_for(lambda: p.poll() is not None or traced(pid), 10) or p.poll() is not None:
        return None
    time.sleep(0.3)  # every thread attached
    try:
        action()
    finally:
        p.terminate()
        p.wait(10)
    calls = slash = 0
    for line in open(log):
        m = re.search(r'openat2\(-?\d+(?:<[^>]*>)?, "([^"]*)"', line)
        if m:
            calls += 1
            slash += '/' in m.group(1)
    return calls, slash


build_layers()
ref = os.path.join(base, 'ref')
os.makedirs(ref)
dt._mounts.append((ref, 'overlay'))
r = subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o', 'lowerdir=' + ':'.join(L), ref],
                   capture_output=True, text=True)
if r.returncode != 0:
    dt.skip('kernel overlayfs over the layers (the reference): %s' % r.stderr.strip())
want = snapshot(ref)
dt.cleanup_overlays()
res.check('the reference has the deep bottom', any(k.endswith('/bottom') for k in want))

disk = dt.Disk(base, images=L, inodes=0)
with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    pid = dt.server_pid(disk.proc.pid) or disk.proc.pid
    small = ('common', 'opq', 'replaced', 'deep')
    want_small = {k: v for k, v in want.items() if not k.startswith('/wide')}
    got = {}
    counts = traced_openat2(pid, lambda: got.update(snapshot(m, small)))
    same('cold walk of the merged, opaque and deep dirs == overlayfs', got, want_small)
    if counts is None:
        res.not_checked('strace cannot attach here: opens by path not counted', point=False)
    else:
        res.check('a cold walk opens nothing in the image by a path (openat2 %d, with / %d)'
                  % counts, counts[0] > 0 and counts[1] == 0)
    kept = layer_fds(pid)
    res.check('image directories are kept open (%d fds)' % kept, kept >= DEPTH * 2)
    drop_caches()
    dt.wait_for(lambda: layer_fds(pid) < kept // 4, 10)
    after = layer_fds(pid)
    res.check('kept fds closed when the kernel forgets the dirs (%d -> %d)' % (kept, after),
              after < kept // 4)
    got = {}
    counts = traced_openat2(pid, lambda: got.update(snapshot(m, small)))
    same('walk after drop_caches == overlayfs', got, want_small)
    if counts is not None:
        res.check('again no opens by path after drop_caches (openat2 %d, with / %d)' % counts,
                  counts[1] == 0)
    same('whole image (past the fd bound) == overlayfs', snapshot(m), want)
    kept = layer_fds(pid)
    res.check('kept fds stay within the bound (%d <= 2048 + a few)' % kept, kept <= 2048 + 64)
    same('whole image again, warm, == overlayfs', snapshot(m), want)
    drop_caches()
    same('whole image after drop_caches == overlayfs', snapshot(m), want)

    # Changes: copy-up of a merged dir, renames (a deep one too), removals.
    exp = dict(want)
    os.chmod(os.path.join(m, 'common'), 0o711)
    exp['/common'] = ('d', 0o711, None)
    os.rename(os.path.join(m, 'common/sub'), os.path.join(m, 'moved'))
    os.unlink(os.path.join(m, 'common/a'))
    del exp['/common/a']
    subprocess.run(['rm', '-rf', os.path.join(m, 'opq')], check=True)
    os.mkdir(os.path.join(m, 'opq'), 0o755)
    # At the full depth, beyond PATH_MAX from the layer roots: a copy-up
    # (append), a removal (a whiteout over the image file) and a rename of
    # image files, through a dir fd.
    deepest = '/deep/' + '/'.join(LEVEL % j for j in range(DEPTH))
    drop_caches()  # below the fd bound again, which the whole image filled
    dt.wait_for(lambda: layer_fds(pid) < 64, 10)
    dfd = os.open(os.path.join(m, 'deep'), os.O_RDONLY | os.O_DIRECTORY)
    for j in range(DEPTH):
        nfd = os.open(LEVEL % j, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd)
        os.close(dfd)
        dfd = nfd
    def rewrite(name):
        fd = os.open(name, os.O_WRONLY | os.O_TRUNC, dir_fd=dfd)
        try:
            os.write(fd, b'more\n')
        finally:
            os.close(fd)
    try:
        out = {}
        for step, fn in (
                ('write', lambda: rewrite('bottom')),
                ('unlink', lambda: os.unlink('only2', dir_fd=dfd)),
                ('rename', lambda: os.rename('only3', 'only3r', src_dir_fd=dfd,
                                             dst_dir_fd=dfd))):
            try:
                fn()
                out[step] = 'ok'
            except OSError as e:
                out[step] = e.strerror
        res.eq('deep copy-up, unlink and rename of image files', out,
               {'write': 'ok', 'unlink': 'ok', 'rename': 'ok'})
    finally:
        os.close(dfd)
    exp[deepest + '/bottom'] = ('f', exp[deepest + '/bottom'][1], b'more\n')
    del exp[deepest + '/only2']
    exp[deepest + '/only3r'] = exp.pop(deepest + '/only3')
    half = '/deep/' + '/'.join(LEVEL % j for j in range(DEPTH // 2))
    held_below = fds_below(pid, half)
    dfd = os.open(os.path.join(m, 'deep'), os.O_RDONLY | os.O_DIRECTORY)
    for j in range(DEPTH // 2 - 1):
        nfd = os.open(LEVEL % j, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd)
        os.close(dfd)
        dfd = nfd
    mfd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
    os.rename(LEVEL % (DEPTH // 2 - 1), 'deepmoved', src_dir_fd=dfd, dst_dir_fd=mfd)
    os.close(dfd)
    os.close(mfd)
    # The renamed directory and everything below it were copied up and
    # made opaque: the image directories they kept open are let go.
    res.check('a renamed image dir lets go of its image fds (%d kept before)' % held_below,
              held_below >= DEPTH // 2 and dt.wait_for(lambda: fds_below(pid, half) == 0, 5),
              fds_below(pid, half))
    moves = (('/common/sub', '/moved'), (half, '/deepmoved'))
    exp2 = {}
    for k, v in exp.items():
        if k == '/opq' or k.startswith('/opq/'):
            continue
        for a, b in moves:
            if k == a or k.startswith(a + '/'):
                k = b + k[len(a):]
        exp2[k] = v
    exp2['/opq'] = ('d', 0o755 & ~os.umask(0o022), None)
    same('after copy-up, renames and removals', snapshot(m), exp2)
    drop_caches()
    same('after copy-up, renames and removals, drop_caches', snapshot(m), exp2)
    disk.stop()
    disk.start()
    same('after a restart', snapshot(disk.mnt), exp2)
    dt.compare(res, 'charges', disk)
res.done()
