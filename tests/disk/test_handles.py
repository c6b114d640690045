#!/usr/bin/env python3
"""File handles to the disk outlive the kernel's caches, as on ext4:
name_to_handle_at of files, directories 10 levels down, hard links,
symlinks, image objects, then renames, an unlink and drop_caches (the daemon
forgets its nodes), then open_by_handle_at gives the same objects (or ESTALE
for the deleted one) -- compared step by step with the host's ext4; the
same after a clean daemon restart (a new mount). Kernel overlayfs
with index=on and nfs_export=on over the disk, across three rotations of
upper layers with caches dropped and the overlay remounted between them:
every copy-up, hard link and rename keeps its inode identity, as over ext4.
Charging equals a recount at the end."""
import ctypes
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
if not os.access('/proc/sys/vm/drop_caches', os.W_OK):
    dt.skip('cannot write /proc/sys/vm/drop_caches')
res = dt.Results()
base = dt.tmpdir()
LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
O_PATH = 0o10000000


class FileHandle(ctypes.Structure):
    _fields_ = [('handle_bytes', ctypes.c_uint), ('handle_type', ctypes.c_int),
                ('f_handle', ctypes.c_ubyte * 128)]


def name_to_handle(path):
    fh, mount_id = FileHandle(), ctypes.c_int()
    fh.handle_bytes = 128
    if LIBC.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(fh),
                              ctypes.byref(mount_id), 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return bytes(fh)


def open_by_handle(mount_fd, handle, flags):
    fh = FileHandle.from_buffer_copy(handle)
    fd = LIBC.open_by_handle_at(mount_fd, ctypes.byref(fh), flags)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def drop_caches():
    os.sync()
    for _ in range(2):
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('2')


def identity(mount_fd, handle, now_at):
    """What the handle opens, against the object now at path now_at."""
    fd = open_by_handle(mount_fd, handle, O_PATH | os.O_NOFOLLOW)
    try:
        st, want = os.fstat(fd), os.lstat(now_at)
        same = (st.st_ino, st.st_mode) == (want.st_ino, want.st_mode)
        kind = 'dir' if os.path.isdir(now_at) else 'link' if os.path.islink(now_at) else 'file'
        if kind == 'file':
            with open('/proc/self/fd/%d' % fd, 'rb') as f:
                kind = f.read()
        return ('same object' if same else 'another object', kind)
    finally:
        os.close(fd)


DEEP = '/'.join('d%d' % i for i in range(10))
# name -> (where it is created, where it is after the moves)
OBJECTS = {
    'file': ('top/file', 'top/file'),
    'hard link': ('top/link', 'top/link'),
    'symlink': ('top/sym', 'top/sym'),
    'deep dir': (DEEP, DEEP),
    'deep file': (DEEP + '/deep', DEEP + '/deep'),
    'renamed dir': ('moved', 'moved2'),
    'file in renamed dir': ('moved/inner', 'moved2/inner'),
    'renamed file': ('top/old', 'top/new'),
    'image dir': ('imgdir', 'imgdir'),
    'image file': ('imgdir/imgfile', 'imgdir/imgfile'),
    'deleted file': ('top/gone', None),
}


def make_tree(root, with_image):
    os.makedirs(os.path.join(root, DEEP))
    os.makedirs(os.path.join(root, 'top'))
    os.makedirs(os.path.join(root, 'moved'))
    for rel in ('top/file', DEEP + '/deep', 'moved/inner', 'top/old', 'top/gone'):
        dt.write_file(os.path.join(root, rel), rel)
    os.link(os.path.join(root, 'top/file'), os.path.join(root, 'top/link'))
    os.symlink('file', os.path.join(root, 'top/sym'))
    if not with_image:  # the image layer's objects, made plainly on the host
        os.makedirs(os.path.join(root, 'imgdir'))
        dt.write_file(os.path.join(root, 'imgdir/imgfile'), 'imgdir/imgfile')


def handles_after_drop(root, with_image, figures=None):
    make_tree(root, with_image)
    handles = {k: name_to_handle(os.path.join(root, a)) for k, (a, _) in OBJECTS.items()}
    os.rename(os.path.join(root, 'moved'), os.path.join(root, 'moved2'))
    os.rename(os.path.join(root, 'top/old'), os.path.join(root, 'top/new'))
    os.unlink(os.path.join(root, 'top/gone'))
    drop_caches()
    known = figures()['known_inodes'] if figures else None
    log = []
    mount_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for k, (_, b) in OBJECTS.items():
            dt.attempt(log, k, lambda: identity(mount_fd, handles[k],
                                                os.path.join(root, b or 'top')))
    finally:
        os.close(mount_fd)
    return log, handles, known


# ---- overlayfs with index=on, three rotations of upper layers ----

def overlay_round(top, k, facts):
    """Round k: the uppers of earlier rounds are lowers now."""
    lowers = ':'.join([os.path.join(top, 'u%d' % j) for j in range(k - 1, 0, -1)] +
                      [os.path.join(top, 'low')])
    up, work, mnt = (os.path.join(top, '%s%d' % (n, k)) for n in ('u', 'w', 'o'))
    for d in (up, work, mnt):
        os.makedirs(d)
    opts = 'lowerdir=%s,upperdir=%s,workdir=%s,index=on,nfs_export=on' % (lowers, up, work)

    def mount():
        dt._mounts.append((mnt, 'overlay'))
        r = subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o', opts, mnt],
                           capture_output=True, text=True)
        return r.returncode == 0 or r.stderr.strip()

    def inos():
        out = {}
        for dirpath, dirs, files in os.walk(mnt):
            for n in dirs + files:
                p = os.path.join(dirpath, n)
                out[os.path.relpath(p, mnt)] = os.lstat(p).st_ino
        return out

    facts.append(('round %d: mount' % k, mount()))
    o = lambda rel: os.path.join(mnt, rel)  # noqa: E731
    with open(o('f%d' % (k - 1) if k > 1 else 'base'), 'ab') as f:  # copy-up
        f.write(b'+%d' % k)
    os.link(o('shared'), o('shared.%d' % k))  # hard link of a lower file
    os.rename(o('ren%d' % (k - 1) if k > 1 else 'ren0'), o('ren%d' % k))  # rename (copy-up)
    dt.write_file(o('f%d' % k), 'made in %d' % k)
    before = inos()
    subprocess.run(['umount', mnt], check=False)
    drop_caches()
    facts.append(('round %d: remount' % k, mount()))
    # Each path looked up straight away, no directory listed first: a
    # listing would bring the lower inodes back into the kernel's cache,
    # and the origin handles would then never be decoded.
    drop_caches()
    after = {p: os.lstat(o(p)).st_ino for p in before}
    facts.append(('round %d: every inode number kept over the remount' % k,
                  sorted(p for p in before if before[p] != after.get(p))))
    links = sorted(p for p in after if p.startswith('shared'))
    facts.append(('round %d: hard links share one inode' % k,
                  (len(links), len({after[p] for p in links}))))
    # Read twice: the second access revalidates what the first looked up
    # (a decoded origin whose dentry the kernel calls stale fails there).
    for time in ('first', 'second'):
        facts.append(('round %d: copied-up content, %s read' % (k, time),
                      dt.attempt([], 'read', lambda: open(
                          o('f%d' % (k - 1) if k > 1 else 'base'), 'rb').read())))
        facts.append(('round %d: hard link, %s stat' % (k, time),
                      dt.attempt([], 'stat', lambda: os.stat(o('shared.%d' % k)).st_nlink)))
    subprocess.run(['umount', mnt], check=False)
    drop_caches()


def overlay_rotations(top):
    os.makedirs(os.path.join(top, 'low'))
    for n in ('base', 'shared', 'ren0'):
        dt.write_file(os.path.join(top, 'low', n), n)
    facts = []
    for k in (1, 2, 3):
        overlay_round(top, k, facts)
    return facts


def inode_used_again(root, tries=20):
    """A file's inode number given to the next file of the same name: the
    daemon knows a forgotten object's generation from the ghost it left
    (no system call), and must not give the new object the old one's.
    Each round: a handle, drop_caches (its node forgotten), a lookup (found
    again through its ghost), unlink, the same name made anew. Returns
    whether the number came back, and what the last two handles open."""
    d = os.path.join(root, 'again')
    os.makedirs(d)
    p = os.path.join(d, 'x')
    dt.write_file(p, 'x')
    for _ in range(tries):
        old, old_ino = name_to_handle(p), os.lstat(p).st_ino
        drop_caches()
        os.lstat(p)
        os.unlink(p)
        dt.write_file(p, 'x')
        if os.lstat(p).st_ino == old_ino:
            break
    new = name_to_handle(p)
    drop_caches()  # the new object's node forgotten too, then looked up
    os.lstat(p)
    log = []
    mount_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        dt.attempt(log, 'old handle', lambda: identity(mount_fd, old, p))
        dt.attempt(log, 'new handle', lambda: identity(mount_fd, new, p))
    finally:
        os.close(mount_fd)
    return os.lstat(p).st_ino == old_ino, log


def restart_keeps_handles(disk, handles):
    disk.stop()
    disk.start()
    log = []
    mount_fd = os.open(disk.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for k, (_, b) in OBJECTS.items():
            dt.attempt(log, k, lambda: identity(mount_fd, handles[k],
                                                os.path.join(disk.mnt, b or 'top')))
    finally:
        os.close(mount_fd)
    return log


host = os.path.join(base, 'host')
os.makedirs(host)
want, _, _ = handles_after_drop(host, False)
res.eq('host: every handle but the deleted file opens its object',
       [k for k, v in want if v[0] != 'same object'], ['deleted file'])
want_facts = overlay_rotations(os.path.join(base, 'host-ovl'))
_, want_again = inode_used_again(host)

img = os.path.join(base, 'img')
os.makedirs(os.path.join(img, 'imgdir'))
dt.write_file(os.path.join(img, 'imgdir/imgfile'), 'imgdir/imgfile')
disk = dt.Disk(base, limit='256M', images=[img])
with dt.checked(res, disk):
    disk.start()
    got, handles, known = handles_after_drop(disk.mnt, True, disk.fresh_figures)
    res.check('drop_caches made the daemon forget its nodes (%s known)' % known, known <= 4)
    for (label, w), (_, g) in zip(want, got):
        res.eq('handle of %s after renames and drop_caches: as on the host' % label, g, w)
    reused, got_again = inode_used_again(disk.mnt)
    print('inode number used again on the disk: %s' % ('yes' if reused else 'no (20 rounds)'))
    res.check('the disk gave a freed inode number to the next file of its name', reused)
    for (label, w), (_, g) in zip(want_again, got_again):
        res.eq('inode number used again: %s: as on the host' % label, g, w)
    got_facts = overlay_rotations(os.path.join(disk.mnt, 'ovl'))
    for (label, w), (_, g) in zip(want_facts, got_facts):
        res.eq('overlay index=on: %s: as over the host' % label, g, w)
    res.eq('overlay: kernel log has no origin/index errors', [
        ln for ln in subprocess.run(['dmesg'], capture_output=True, text=True).stdout
        .splitlines()[-50:] if 'overlayfs' in ln and base in ln], [])
    dt.compare(res, 'after handles and overlays', disk, settle_s=10)
    for (label, w), (_, g) in zip(want, restart_keeps_handles(disk, handles)):
        res.eq('handle of %s after a clean daemon restart: as on the host' % label, g, w)
    dt.compare(res, 'after the restart', disk)
res.done()
