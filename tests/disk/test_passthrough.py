#!/usr/bin/env python3
"""FUSE passthrough on a real mount (src/disk/fuse/open_io.c, passthrough.c):
read-only opens of upper files of 128 KiB or more read DATA/upper directly
(no READ request; smaller ones stay in the page cache),
mmap and execve work through them, writers opened beside them still go
through the daemon (the limit holds, readers and mappings see every write),
no mix of page-cache, direct and passthrough opens of one file ever fails
(the kernel answers a wrong mix with EIO), image files stay on the daemon's
path, and the charge equals a recount afterwards."""
import errno
import mmap
import os
import random
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
img = os.path.join(base, 'img')
os.makedirs(img)
dt.write_file(os.path.join(img, 'lower'), b'L' * 65536)


def check_reads_pass_through(m, counted):
    """A read-only open of an upper file: data right, no READ request
    while reading or mapping it (counted: the kernel took passthrough and
    tracefs counts requests)."""
    data = os.urandom(4 << 20)
    path = os.path.join(m, 'up')
    dt.write_file(path, data)
    # The kernel sends the writer's RELEASE after close() returns; until the
    # daemon has it, a new open goes through the page cache (open_io.c:
    # no passthrough starts beside a direct open). So open again, a while.
    for tries in range(1, 41):
        fd = os.open(path, os.O_RDONLY)
        got = []
        ops = dt.fuse_requests(m, lambda: got.append(os.pread(fd, len(data), 0)))
        if not counted or 'FUSE_READ' not in ops or tries == 40:
            break
        os.close(fd)
        time.sleep(0.05)
    try:
        res.check('read of an upper file is right', got[0] == data)
        mp = mmap.mmap(fd, len(data), prot=mmap.PROT_READ)
        res.check('mapping of a read-only open is right', mp[:] == data)
        mp.close()
        if counted:
            res.check('no READ request for a passthrough read (%d requests, open %d)'
                      % (len(ops), tries), 'FUSE_READ' not in ops)
    finally:
        os.close(fd)
    exe = os.path.join(m, 'bash')
    shutil.copy2('/bin/bash', exe)
    res.eq('execve of an upper binary (passed through)',
           subprocess.run([exe, '-c', 'exit 3']).returncode, 3)


def check_small_files_cached(m, counted):
    """Under 128 KiB a read-only open stays in the page cache: one READ
    the first time, none after (a passthrough open would cost more)."""
    path = os.path.join(m, 'small')
    dt.write_file(path, b's' * 4096)

    def read_once():
        with open(path, 'rb') as f:
            f.read()
    first = dt.fuse_requests(m, read_once)
    again = dt.fuse_requests(m, read_once)
    if counted:
        res.check('a small file: one READ the first time (%s)' % ' '.join(first),
                  first.count('FUSE_READ') == 1)
        res.check('a small file read again: no READ (%s)' % ' '.join(again),
                  'FUSE_READ' not in again)


def check_writer_beside_readers(m, disk):
    """Readers first (passthrough), then a read-write open: its writes
    reach the readers' reads and mappings, its own mapping is coherent,
    and it still stops at the limit with ENOSPC."""
    path = os.path.join(m, 'shared')
    size = 256 << 10
    dt.write_file(path, b'a' * size)
    r1 = os.open(path, os.O_RDONLY)
    mp = mmap.mmap(r1, size, prot=mmap.PROT_READ)
    w = os.open(path, os.O_RDWR)
    try:
        os.pwrite(w, b'bbbb', 0)
        res.eq('a writer beside readers: reader and mapping see its write',
               (os.pread(r1, 4, 0), mp[:4]), (b'bbbb', b'bbbb'))
        wm = mmap.mmap(w, size)
        wm[4:8] = b'cccc'
        wm.flush()
        res.eq("the writer's shared mapping reaches readers", os.pread(r1, 8, 0), b'bbbbcccc')
        wm.close()
        r2 = os.open(path, os.O_RDONLY)
        res.eq('a new reader sees it', os.pread(r2, 8, 0), b'bbbbcccc')
        os.close(r2)
        err = None
        chunk = b'z' * (1 << 20)
        try:
            for i in range(200):
                os.pwrite(w, chunk, size + i * len(chunk))
        except OSError as e:
            err = e.errno
        res.eq('the limit holds for a writer beside passthrough readers', err, errno.ENOSPC)
        fig = disk.fresh_figures()
        res.check('usage never over the limit (%d <= %d)' % (fig['used_bytes'], fig['limit_bytes']),
                  fig['used_bytes'] <= fig['limit_bytes'])
        os.ftruncate(w, size)
    finally:
        mp.close()
        os.close(w)
        os.close(r1)


MODES = (os.O_RDONLY, os.O_RDONLY, os.O_RDWR, os.O_WRONLY, os.O_RDONLY | os.O_DIRECT)


def mixed_opens(path, seed, failures, rounds=300):
    """Open the file in random modes while others do the same, each open
    kept for a random number of further opens; every open and I/O works."""
    rnd = random.Random(seed)
    held = []
    try:
        for _ in range(rounds):
            mode = rnd.choice(MODES)
            stage = 'open'
            try:
                fd = os.open(path, mode)
                stage = 'io'
                if mode & os.O_DIRECT:
                    buf = mmap.mmap(-1, 4096)
                    os.preadv(fd, [buf], 0)
                elif (mode & os.O_ACCMODE) == os.O_RDONLY:
                    os.pread(fd, 4096, 0)
                else:
                    os.pwrite(fd, b'm' * 4096, 4096 * rnd.randrange(4))
                held.append(fd)
            except OSError as e:
                failures.append((mode, stage, e.errno))
            while held and (len(held) > 4 or rnd.random() < 0.4):
                os.close(held.pop(rnd.randrange(len(held))))
    finally:
        for fd in held:
            os.close(fd)


def check_mixed_modes(m):
    path = os.path.join(m, 'mixed')
    dt.write_file(path, b'x' * (256 << 10))
    failures = []
    threads = [threading.Thread(target=mixed_opens, args=(path, s, failures)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.eq('1,200 opens in random modes from 4 threads: none fails', failures[:5], [])
    cached = os.open(path, os.O_RDWR)
    reader = os.open(path, os.O_RDONLY)
    res.eq('a reader beside a page-cache writer', os.pread(reader, 1, 0), b'm')
    os.close(cached)
    os.close(reader)


def check_image_file(m):
    """An image file is read through the daemon; a copy-up while it is
    open for reading works, and new opens see the copy."""
    path = os.path.join(m, 'lower')
    r = os.open(path, os.O_RDONLY)
    try:
        res.eq('image file read', os.pread(r, 4, 0), b'LLLL')
        with open(path, 'r+b') as f:
            f.write(b'U')
        with open(path, 'rb') as f:
            res.eq('copy-up while the image file is open for reading', f.read(2), b'UL')
    finally:
        os.close(r)
    res.eq('the image file itself is unchanged', open(os.path.join(img, 'lower'), 'rb').read(2),
           b'LL')


disk = dt.Disk(base, limit='48M', images=[img])
with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    # What this test exists to check is that passthrough reads send no
    # READ: without the kernel's passthrough or its FUSE trace events that
    # is not checked, and the test skips after checking the rest.
    on = 'FUSE passthrough' in disk.logtext()
    traced = dt.fuse_requests(m, lambda: None) is not None
    if not on:
        res.not_checked('the kernel offers no FUSE passthrough (only the daemon path was run)')
        res.check('no passthrough: said once at start', disk.logtext().count(
            'does not offer passthrough') == 1, disk.logtext()[-1500:])
    elif not traced:
        res.not_checked('no FUSE trace events here: READ requests of passthrough opens '
                        'not counted')
    counted = on and traced
    check_reads_pass_through(m, counted)
    check_small_files_cached(m, counted)
    check_writer_beside_readers(m, disk)
    check_mixed_modes(m)
    check_image_file(m)
    res.check('no passthrough refusal logged', 'refused a passthrough' not in disk.logtext())
    dt.compare(res, 'after passthrough work', disk)

# --no-passthrough: every read comes to the daemon.
base2 = dt.tmpdir()
off = dt.Disk(base2, limit='16M', extra=['--no-passthrough'])
with dt.checked(res, off):
    off.start()
    path = os.path.join(off.mnt, 'f')
    dt.write_file(path, os.urandom(1 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        ops = dt.fuse_requests(off.mnt, lambda: os.pread(fd, 1 << 20, 0))
    finally:
        os.close(fd)
    res.check('--no-passthrough: no passthrough logged', 'FUSE passthrough' not in off.logtext())
    if ops is None:
        res.not_checked('no FUSE trace events here: --no-passthrough READ requests not counted')
    else:
        res.check('--no-passthrough: reads come to the daemon', 'FUSE_READ' in ops)

# DATA on overlayfs: the kernel refuses the backing file (too deep a
# stack); one line says so, and reads go on through the daemon.
base3 = dt.tmpdir()
ovl = {k: os.path.join(base3, k) for k in ('lower', 'upper', 'work', 'merged')}
for d in ovl.values():
    os.makedirs(d)
r = dt.overlay_mount(ovl['lower'], ovl['upper'], ovl['work'], ovl['merged'])
if r.returncode != 0:
    res.not_checked('no overlayfs here (%s): the refusal of a stacked DATA not tried'
                    % r.stderr.strip())
else:
    stacked = dt.Disk(base3, limit='16M')
    stacked.data = os.path.join(ovl['merged'], 'data')
    with dt.checked(res, stacked):
        stacked.start()
        data = os.urandom(1 << 20)
        path = os.path.join(stacked.mnt, 'f')
        dt.write_file(path, data)
        res.check('DATA on overlayfs: reads are right', open(path, 'rb').read() == data)
        res.check('DATA on overlayfs: again', open(path, 'rb').read() == data)
        # A kernel without passthrough (before 6.9) says that instead.
        why = 'does not offer passthrough' if 'does not offer passthrough' in \
            stacked.logtext() else 'stacked file system'
        res.eq('DATA on overlayfs: one line says why passthrough is off (%s)' % why,
               stacked.logtext().count(why), 1)
res.done()
