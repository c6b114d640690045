"""Helpers for the volume tests (cvmfsd disk --volume loop): on top of
disktest.py, a Disk with a volume in a fresh temporary --volume-dir, and a
cleanup that releases everything in the right order even when a test
fails: daemons killed by pid, FUSE mounts unmounted, then each DATA this
test mounted a volume at (`umount -l`), then any loop device still backed
by one of OUR volume files (found through /sys/block/loop*/loop/backing_file;
nobody else's is touched) detached, and only then the directories removed.
"""

import atexit
import glob
import os
import signal
import subprocess
import sys

import disktest as dt

_voldirs = []
_datas = []
logs = []   # every daemon log of this test, checked for sanitizer reports


def require_loop():
    dt.require_root_fuse()
    if not os.path.exists('/dev/loop-control'):
        dt.skip('no /dev/loop-control: the volume needs loop devices')
    for tool in ('mkfs.ext4', 'e2fsck', 'resize2fs', 'losetup'):
        if subprocess.run(['which', tool], capture_output=True).returncode != 0:
            dt.skip('%s is not installed (e2fsprogs, util-linux)' % tool)
    d = voldir()
    probe = os.path.join(d, 'cvmfs-test-probe.img')
    with open(probe, 'wb') as f:
        f.truncate(8 << 20)
    r = subprocess.run(['losetup', '-f', '--show', probe], capture_output=True, text=True)
    if r.returncode != 0:
        dt.skip('losetup cannot attach a loop device here: %s' % r.stderr.strip())
    subprocess.run(['losetup', '-d', r.stdout.strip()], check=False)
    os.unlink(probe)


def voldir():
    d = dt.tmpdir()
    _voldirs.append(os.path.realpath(d))
    return d


class VolDisk(dt.Disk):
    """A Disk whose DATA is a volume made in its own --volume-dir."""

    def __init__(self, base, name='cvmfs-test-ws', limit='64M', vdir=None, vextra=(), **kw):
        self.voldir = vdir or voldir()
        if self.voldir not in _voldirs:
            _voldirs.append(os.path.realpath(self.voldir))
        extra = ['--volume', 'loop', '--volume-dir', self.voldir] + list(vextra)
        super().__init__(base, name=name, limit=limit, extra=extra + list(kw.pop('extra', ())),
                         **kw)
        _datas.append(self.data)
        logs.append(self.log)

    def image_file(self):
        return os.path.join(self.voldir, self.name + '.img')

    def lane(self, path):
        return os.path.join(self.data, 'lanes', path.strip('/').replace('/', '-'))

    def start(self, timeout=60):
        return super().start(timeout)

    def run_once(self, *more, timeout=60):
        """Start in the foreground and expect an exit: (status, log text)."""
        r = subprocess.run(self.argv()[:-1] + list(more) + [self.mnt], capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr


def our_loops():
    """Loop devices backed by a file under one of our volume dirs."""
    found = []
    for bf in glob.glob('/sys/block/loop*/loop/backing_file'):
        try:
            path = open(bf).read().strip()
        except OSError:
            continue
        path = path.replace(' (deleted)', '')
        if any(path.startswith(d + '/') for d in _voldirs):
            found.append('/dev/' + bf.split('/')[3])
    return found


def cleanup():
    """The harness's cleanup, with each DATA unmounted and our loop
    devices detached between the mounts and the removal of the dirs."""
    for p in dt._daemons:
        dt.H.kill_proc(p)
    dt.H.unmount_registered('overlay')
    dt.H.unmount_registered()
    for d in _datas:
        while dt.is_mounted(d):
            if subprocess.run(['umount', '-l', d], capture_output=True).returncode != 0:
                break
    for dev in our_loops():
        subprocess.run(['losetup', '-d', dev], capture_output=True)
    dt.cleanup_all()


def sanitizer_reports():
    """Lines of ASan/UBSan reports in the daemons' logs (an ASan build)."""
    bad = []
    for path in logs:
        try:
            text = open(path, errors='replace').read()
        except OSError:
            continue
        bad += [line for line in text.splitlines()
                if 'Sanitizer' in line or 'runtime error' in line]
    return bad


def cleanup_volume(d):
    """Stop d, unmount its DATA, wait for autoclear to detach its loop."""
    d.stop()
    dt.unmount(d.mnt)
    while dt.is_mounted(d.data):
        if subprocess.run(['umount', '-l', d.data], capture_output=True).returncode != 0:
            break
    wait_no_loops()


def wait_no_loops(timeout=30):
    """Our loop devices, once autoclear has detached them (after the last
    lazy unmount lets go: seconds on a loaded machine); a bound, not a
    speed."""
    dt.wait_for(lambda: not our_loops(), timeout, 'our loop devices detached', 0.05)
    return our_loops()


def cleanup_between():
    """After a test case: every daemon stopped, every DATA unmounted."""
    for p in dt._daemons:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
    for d in _datas:
        while dt.is_mounted(d):
            if subprocess.run(['umount', '-l', d], capture_output=True).returncode != 0:
                break
    wait_no_loops()


def _on_signal(sig, frame):
    cleanup()
    sys.exit(1)


atexit.register(cleanup)   # runs before the harness's own (atexit is LIFO)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def statfs(path):
    s = os.statvfs(path)
    return s.f_blocks * s.f_frsize, (s.f_blocks - s.f_bfree) * s.f_frsize


def fill(path, chunk=1 << 20, limit=1 << 34):
    """Write until the file system refuses: (bytes written, errno)."""
    n = 0
    buf = os.urandom(chunk)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while n < limit:
            try:
                w = os.write(fd, buf)
            except OSError as e:
                return n, e.errno
            n += w
            if w < len(buf):
                try:
                    os.write(fd, buf[:1])
                except OSError as e:
                    return n, e.errno
        try:
            os.fsync(fd)
        except OSError as e:
            return n, e.errno
        return n, 0
    finally:
        os.close(fd)


def allocated(root):
    """Distinct inodes' allocated bytes under root (the areas' rule)."""
    seen = set()
    total = 0
    for r, ds, fs in os.walk(root):
        for n in ['.'] + ds + fs:
            st = os.lstat(os.path.join(r, n))
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total
