#!/usr/bin/env python3
"""Bytes that could land in DATA/upper without the daemon's leave, tried
the way an attacker would: each case gets its own 64 MiB disk and tries to
land 300 MiB through shared writable mappings (after a passthrough reader
or not, mapping past the end, keeping the mapping after close, after
truncate up, write or fallocate past the end, punched holes), fallocate in
every mode, copy_file_range, sendfile, splice and O_DIRECT. Every case
checks that the writer gets ENOSPC, SIGBUS or EIO, that the bytes in
DATA/upper (polled while it runs) and the published and statfs figures
never pass the limit, that a recount agrees afterwards, and that what was
written before the limit is intact (src/disk/quota/mmap_guard.c)."""
import errno
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

MiB = 1 << 20
LIMIT = 64 * MiB
TRY = 300 * MiB
PAGE = 4096
KEEP = 256 << 10

dt.require_root_fuse()
res = dt.Results()

# The attacker maps with libc (Python's mmap refuses lengths past the end
# of the file), writes page i with the byte (i % 251) + 1 and counts pages
# done in a counter file of its own, so that the count survives SIGBUS.
WRITER = r'''
import ctypes, os, sys
path, length, counter, ro_first, close_first, trunc = sys.argv[1:7]
length = int(length)
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
cfd = os.open(counter, os.O_RDWR)
cnt = libc.mmap(None, 4096, 3, 1, cfd, 0)
done = ctypes.c_uint64.from_address(cnt)
ro = os.open(path, os.O_RDONLY) if ro_first == '1' else -1
fd = os.open(path, os.O_RDWR)
addr = libc.mmap(None, length, 3, 1, fd, 0)
if addr in (None, ctypes.c_void_p(-1).value):
    print('mmap', os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(3)
if close_first == '1':
    os.close(fd)
    if ro >= 0:
        os.close(ro)
if trunc != '0':
    try:
        os.truncate(path, int(trunc))
        print('truncate ok', flush=True)
    except OSError as e:
        print('truncate', e.errno, flush=True)
for i in range(length // 4096):
    ctypes.memset(addr + i * 4096, i % 251 + 1, 4096)
    done.value = i + 1
if libc.msync(ctypes.c_void_p(addr), length, 4) != 0:
    print('msync', ctypes.get_errno(), flush=True)
    sys.exit(4)
print('all written', flush=True)
'''


def page_byte(i):
    return i % 251 + 1


class Watch:
    """Polls, while an attack runs, the bytes really allocated in DATA/upper
    (st_blocks of every object: what landed, whoever wrote it), the
    published used_bytes and statfs on the mount; keeps the maxima."""

    def __init__(self, disk):
        self.disk = disk
        self.peak_upper = self.peak_pub = self.peak_df = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run)

    def sample(self):
        total = 0
        for root, dirs, files in os.walk(self.disk.upper()):
            for n in dirs + files + ['.']:
                try:
                    total += os.lstat(os.path.join(root, n)).st_blocks * 512
                except OSError:
                    pass
        self.peak_upper = max(self.peak_upper, total)
        try:
            self.peak_pub = max(self.peak_pub, self.disk.figures()['used_bytes'])
        except (OSError, ValueError):
            pass
        sv = os.statvfs(self.disk.mnt)
        self.peak_df = max(self.peak_df, (sv.f_blocks - sv.f_bfree) * sv.f_frsize)

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.01)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()
        self.sample()


def fresh_disk(tag):
    d = dt.Disk(dt.tmpdir(), name='mm-' + tag, limit=str(LIMIT))
    d.start()
    return d


def settle(label, disk, w):
    """The checks every case ends with."""
    res.check('%s: DATA/upper never held more than the limit (peak %d)' % (label, w.peak_upper),
              w.peak_upper <= LIMIT)
    res.check('%s: published used never over the limit (peak %d)' % (label, w.peak_pub),
              w.peak_pub <= LIMIT)
    res.check('%s: statfs used never over the limit (peak %d)' % (label, w.peak_df),
              w.peak_df <= LIMIT)
    dt.compare(res, label, disk)


def attack_map(label, tag, ro_first, size0, close_first=False, trunc=0, length=TRY):
    """A child maps `length` of a file of size0 bytes shared and writable
    (after opening it read-only first when ro_first, so that the kernel
    passes it through) and writes every page; returns (disk, exit status,
    output, pages done)."""
    disk = fresh_disk(tag)
    path = os.path.join(disk.mnt, 'victim')
    with open(path, 'wb') as f:
        for i in range(size0 // PAGE):
            f.write(bytes([page_byte(i)]) * PAGE)
    counter = os.path.join(disk.base, 'counter')
    with open(counter, 'wb') as f:
        f.write(b'\0' * 4096)
    with Watch(disk) as w:
        p = subprocess.run([sys.executable, '-c', WRITER, path, str(length), counter,
                            '1' if ro_first else '0', '1' if close_first else '0', str(trunc)],
                           capture_output=True, text=True, timeout=600)
    done = int.from_bytes(open(counter, 'rb').read(8), 'little')
    return disk, p, w, done


def check_prefix(label, path, pages):
    """Pages 0..pages-1 hold what the writer wrote."""
    bad = []
    with open(path, 'rb') as f:
        for i in range(pages):
            if f.read(PAGE) != bytes([page_byte(i)]) * PAGE:
                bad.append(i)
                if len(bad) > 3:
                    break
    res.eq('%s: the %d pages written before the stop are intact' % (label, pages), bad, [])


def case_passthrough_truncate():
    """The reported hole: read-only fd, read-write open, truncate up to
    300 MiB, map and write every page."""
    label = 'passthrough + truncate up'
    disk, p, w, done = attack_map(label, 'truncate', True, 256 << 10, trunc=TRY)
    with dt.checked(res, disk):
        res.check('%s: truncate up refused with ENOSPC (%s)' % (label, p.stdout.strip()),
                  'truncate %d' % errno.ENOSPC in p.stdout)
        res.eq('%s: the writer dies of SIGBUS past the end' % label, p.returncode, -signal.SIGBUS)
        res.eq('%s: it wrote exactly the file' % label, done, (256 << 10) // PAGE)
        check_prefix(label, os.path.join(disk.mnt, 'victim'), done)
        settle(label, disk, w)


def case_passthrough_sparse():
    """A sparse 300 MiB file (holes are free) opened read-write beside a
    passthrough reader: the holes cannot be handed to a mapping."""
    label = 'passthrough + sparse file'
    disk = fresh_disk('sparse')
    with dt.checked(res, disk):
        path = os.path.join(disk.mnt, 'victim')
        dt.write_file(path, b'h' * (256 << 10))
        os.truncate(path, TRY)
        ro = os.open(path, os.O_RDONLY)
        with Watch(disk) as w:
            try:
                os.close(os.open(path, os.O_RDWR))
                err = None
            except OSError as e:
                err = e.errno
        os.close(ro)
        res.eq('%s: the read-write open fails with ENOSPC' % label, err, errno.ENOSPC)
        res.eq('%s: the data before is intact' % label,
               open(path, 'rb').read(256 << 10), b'h' * (256 << 10))
        settle(label, disk, w)
        # Without the reader the same open is a page-cache one: it works,
        # and its mapping's writes come to the daemon (case_cached_mapping).
        os.close(os.open(path, os.O_RDWR))
        res.check('%s: without a reader the open works' % label, True)


def case_mapping_outlives_close():
    """Map past the end, close every fd (the kernel releases the FUSE
    file, the mapping stays), truncate up by path, write."""
    label = 'mapping kept after close'
    disk, p, w, done = attack_map(label, 'closed', True, 256 << 10, close_first=True,
                                 trunc=TRY)
    with dt.checked(res, disk):
        res.check('%s: truncate up refused with ENOSPC (%s)' % (label, p.stdout.strip()),
                  'truncate %d' % errno.ENOSPC in p.stdout)
        res.eq('%s: the writer dies of SIGBUS past the end' % label, p.returncode, -signal.SIGBUS)
        check_prefix(label, os.path.join(disk.mnt, 'victim'), done)
        settle(label, disk, w)


def case_cached_mapping():
    """No reader: a page-cache mapping of a sparse 300 MiB file; its
    writeback comes to the daemon, which refuses past the limit."""
    label = 'page-cache mapping'
    disk, p, w, done = attack_map(label, 'cached', False, 0, trunc=TRY)
    with dt.checked(res, disk):
        res.check('%s: the holes cost nothing (%s)' % (label, p.stdout.strip()),
                  'truncate ok' in p.stdout)
        res.check('%s: the writer gets ENOSPC or EIO from msync (%s, exit %d)' % (
            label, p.stdout.strip(), p.returncode),
            p.returncode == 4 and ('msync %d' % errno.ENOSPC in p.stdout or
                                   'msync %d' % errno.EIO in p.stdout))
        path = os.path.join(disk.mnt, 'victim')
        bad, landed = [], 0
        with open(path, 'rb') as f:
            for i in range(TRY // PAGE):
                b = f.read(PAGE)
                if b == bytes([page_byte(i)]) * PAGE:
                    landed += 1
                elif b != bytes(PAGE) and len(bad) < 4:
                    # What it holds instead, for the record: a torn page
                    # (written and zero parts) or another page's bytes.
                    runs = [(0, b[0])]
                    for k in range(1, PAGE):
                        if b[k] != b[k - 1]:
                            runs.append((k, b[k]))
                    bad.append((i, page_byte(i), runs[:8]))
        res.eq('%s: every page holds what was written or zeros' % label, bad, [])
        res.check('%s: written pages landed up to the limit (%d MiB)' % (label, landed * PAGE >> 20),
                  LIMIT // 2 <= landed * PAGE <= LIMIT)
        settle(label, disk, w)


def passthrough_writer(disk, size0):
    """A file of size0 bytes, a passthrough reader and a read-write open
    beside it (mapped shared). Returns (path, ro, rw, mapping)."""
    import mmap
    path = os.path.join(disk.mnt, 'victim')
    dt.write_file(path, b'p' * size0)
    ro = os.open(path, os.O_RDONLY)
    rw = os.open(path, os.O_RDWR)
    return path, ro, rw, mmap.mmap(rw, size0)


def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def case_growth_beside_mapping():
    """A writable passthrough mapping exists: every way of growing the file
    through the daemon allocates (and charges) what it exposes, so 300 MiB
    of holes are never made; punched holes stay allocated."""
    label = 'growth beside a mapping'
    disk = fresh_disk('growth')
    with dt.checked(res, disk):
        path, ro, rw, mp = passthrough_writer(disk, 1 * MiB)
        with Watch(disk) as w:
            got = {
                'write past the end': errno_of(lambda: os.pwrite(rw, b'x', TRY - 1)),
                'fallocate past the end': errno_of(lambda: os.posix_fallocate(rw, TRY - PAGE, PAGE)),
                'ftruncate up': errno_of(lambda: os.ftruncate(rw, TRY)),
                'truncate up by path': errno_of(lambda: os.truncate(path, TRY)),
            }
            res.eq('%s: each refused with ENOSPC' % label, got,
                   {k: errno.ENOSPC for k in got})
            res.eq('%s: the size did not change' % label, os.fstat(rw).st_size, 1 * MiB)
            # A small growth fits: allocated at once, then written by the mapping.
            os.ftruncate(rw, 2 * MiB)
            used = disk.fresh_figures()['used_bytes']
            import mmap
            mp2 = mmap.mmap(rw, 2 * MiB)
            mp2[1 * MiB:] = b'q' * MiB
            mp2.flush()
            res.check('%s: writing the grown range via the mapping adds nothing' % label,
                      dt.recount(disk.upper(), [])['used_bytes'] <= used)
            # A punched hole reads zeros and stays allocated.
            fl = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
            rc = libc.fallocate(rw, fl, 0, 512 << 10)
            res.eq('%s: punching a hole works' % label, rc, 0)
            res.eq('%s: the punched range reads zeros' % label, os.pread(ro, 16, 0), bytes(16))
            mp2[0:512 << 10] = b'r' * (512 << 10)
            mp2.flush()
            res.check('%s: refilling it via the mapping adds nothing' % label,
                      dt.recount(disk.upper(), [])['used_bytes'] <= disk.fresh_figures()['used_bytes'])
            mp2.close()
        mp.close()
        os.close(rw)
        os.close(ro)
        res.eq('%s: data intact' % label, open(path, 'rb').read(8), b'rrrrrrrr')
        settle(label, disk, w)


def case_unlinked_mapping():
    """A passthrough mapping keeps an unlinked file's blocks after every
    close: they stay charged until the mapping is gone."""
    import mmap
    label = 'unlinked but mapped'
    disk = fresh_disk('unlinked')
    with dt.checked(res, disk):
        path = os.path.join(disk.mnt, 'big')
        dt.write_file(path, b'u' * (40 * MiB))
        fd = os.open(path, os.O_RDONLY)
        mp = mmap.mmap(fd, 40 * MiB, prot=mmap.PROT_READ)
        os.close(fd)
        os.unlink(path)
        with Watch(disk) as w:
            err = errno_of(lambda: dt.write_file(os.path.join(disk.mnt, 'second'),
                                                 b's' * (40 * MiB)))
        res.eq('%s: a second 40 MiB file does not fit' % label, err, errno.ENOSPC)
        res.eq('%s: the mapping still reads the data' % label, mp[:4], b'uuuu')
        res.check('%s: DATA/upper never held more than the limit (peak %d)' % (label, w.peak_upper),
                  w.peak_upper <= LIMIT)
        mp.close()
        os.unlink(os.path.join(disk.mnt, 'second'))
        # The kernel sends the unlinked file's RELEASE after munmap
        # returns (asynchronously): its bytes go back then.
        dt.compare(res, label + ', unmapped', disk, settle_s=10)


def case_other_paths(tag, ro_first):
    """fallocate in every mode, copy_file_range, sendfile, splice and
    O_DIRECT, each trying to land 300 MiB, beside a passthrough reader or
    not."""
    label = 'other paths' + (' beside a reader' if ro_first else '')
    disk = fresh_disk(tag)
    src = os.path.join(disk.base, 'source')
    with open(src, 'wb') as f:
        f.truncate(TRY)  # sparse: reads as 300 MiB of zeros, costs nothing
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

    def fallocate(fd, mode, off, length):
        if libc.fallocate(fd, mode, off, length) != 0:
            raise OSError(ctypes.get_errno(), 'fallocate')

    # Every attack appends after the KEEP bytes already in the file.
    def copy_range(fd, _path):
        with open(src, 'rb') as s:
            n = 0
            while n < TRY:
                k = os.copy_file_range(s.fileno(), fd, TRY - n, n, KEEP + n)
                if k == 0:
                    break
                n += k

    def sendfile(fd, _path):
        os.lseek(fd, KEEP, os.SEEK_SET)
        with open(src, 'rb') as s:
            n = 0
            while n < TRY:
                n += os.sendfile(fd, s.fileno(), n, min(TRY - n, 8 * MiB))

    def splice(fd, _path):
        os.lseek(fd, KEEP, os.SEEK_SET)
        r, wp = os.pipe()
        try:
            with open(src, 'rb') as s:
                n = 0
                while n < TRY:
                    k = os.splice(s.fileno(), wp, 1 << 16)
                    while k:
                        k -= os.splice(r, fd, k)
                    n += 1 << 16
        finally:
            os.close(r)
            os.close(wp)

    def direct(fd, path):
        import mmap
        buf = mmap.mmap(-1, MiB)
        buf.write(b'd' * MiB)
        dfd = os.open(path, os.O_RDWR | os.O_DIRECT)
        try:
            for i in range(TRY // MiB):
                os.pwritev(dfd, [buf], KEEP + i * MiB)
        finally:
            os.close(dfd)

    attacks = {
        'fallocate': lambda fd, p: fallocate(fd, 0, KEEP, TRY),
        'fallocate KEEP_SIZE': lambda fd, p: fallocate(fd, 0x01, KEEP, TRY),
        'fallocate ZERO_RANGE': lambda fd, p: fallocate(fd, 0x10, KEEP, TRY),
        'fallocate ZERO_RANGE|KEEP_SIZE': lambda fd, p: fallocate(fd, 0x10 | 0x01, KEEP, TRY),
        'copy_file_range': copy_range,
        'sendfile': sendfile,
        'splice': splice,
        'O_DIRECT': direct,
    }
    with dt.checked(res, disk):
        for name, fn in attacks.items():
            path = os.path.join(disk.mnt, 'victim')
            dt.write_file(path, b'k' * KEEP)
            ro = os.open(path, os.O_RDONLY) if ro_first else -1
            fd = os.open(path, os.O_RDWR)
            with Watch(disk) as w:
                err = errno_of(lambda: fn(fd, path))
            # copy_file_range across file systems may be refused outright
            # (EXDEV: cp then falls back to read and write).
            ok = (errno.ENOSPC, errno.EXDEV) if name == 'copy_file_range' else (errno.ENOSPC,)
            res.check('%s: %s stops with ENOSPC (%s)' % (label, name, os.strerror(err)),
                      err in ok)
            res.check('%s: %s: DATA/upper never over the limit (peaks %d %d %d)' % (
                label, name, w.peak_upper, w.peak_pub, w.peak_df),
                w.peak_upper <= LIMIT and w.peak_pub <= LIMIT and w.peak_df <= LIMIT)
            res.check('%s: %s: the data before is intact' % (label, name),
                      os.pread(fd, KEEP, 0) == b'k' * KEEP)
            os.close(fd)
            if ro >= 0:
                os.close(ro)
            os.unlink(path)
            res.check('%s: %s: rm frees' % (label, name),
                      disk.fresh_figures()['used_bytes'] < KEEP * 2)
        # Modes that move data around are not passed on.
        path = os.path.join(disk.mnt, 'victim')
        dt.write_file(path, b'k' * MiB)
        with open(path, 'r+b') as f:
            for name, mode in (('INSERT_RANGE', 0x20), ('COLLAPSE_RANGE', 0x08)):
                res.eq('%s: fallocate %s refused' % (label, name),
                       errno_of(lambda: fallocate(f.fileno(), mode, 0, 4096)), errno.EOPNOTSUPP)
        dt.compare(res, label, disk)


def case_read_only_maps():
    """A read-only passthrough open cannot be mapped writable, or made so."""
    import mmap
    label = 'read-only mapping'
    disk = fresh_disk('ro')
    with dt.checked(res, disk):
        path = os.path.join(disk.mnt, 'victim')
        dt.write_file(path, b'o' * (256 << 10))
        fd = os.open(path, os.O_RDONLY)
        try:
            err = errno_of(lambda: mmap.mmap(fd, 256 << 10, flags=mmap.MAP_SHARED,
                                             prot=mmap.PROT_READ | mmap.PROT_WRITE))
            res.eq('%s: a shared writable map of it is refused' % label, err, errno.EACCES)
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_long]
            libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            addr = libc.mmap(None, 256 << 10, 1, 1, fd, 0)
            rc = libc.mprotect(ctypes.c_void_p(addr), 256 << 10, 3)
            res.eq('%s: mprotect to writable is refused' % label,
                   (rc, ctypes.get_errno()), (-1, errno.EACCES))
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            libc.munmap(ctypes.c_void_p(addr), 256 << 10)
        finally:
            os.close(fd)


probe = fresh_disk('probe')
if 'FUSE passthrough' not in probe.logtext():
    print('# the kernel offers no FUSE passthrough: the passthrough cases test the page-cache path')
probe.stop()
case_passthrough_truncate()
case_passthrough_sparse()
case_mapping_outlives_close()
case_cached_mapping()
case_growth_beside_mapping()
case_unlinked_mapping()
case_other_paths('other', False)
case_other_paths('other-pt', True)
case_read_only_maps()
res.done()
