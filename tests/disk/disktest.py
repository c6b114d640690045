"""The disk's helpers for the cvmfsd disk integration tests (Python 3
standard library), on top of the one harness, tests/lib/cvmfs_harness.py
(results in TAP, skip, wait_for, cleanup), whose names this module also
offers (dt.Results, dt.skip, dt.wait_for, dt.tmpdir, ...).

Every test mounts real FUSE filesystems in tempfile.mkdtemp(prefix='cvmfs-test-')
directories and undoes everything at exit, also on failure or a signal:
daemons it started are killed by pid (never by name), kernel overlay mounts
are unmounted before the FUSE mounts (`fusermount3 -u`, then `umount -l`),
temporary directories are removed.

Exit status: 0 all checks passed, 1 a check failed, 77 skipped (reason printed):
the machine lacks something, or what the test exists to check could not be
collected here (Results.not_checked).
"""

import atexit
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import stat  # noqa: F401
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'lib'))
import cvmfs_harness as H  # noqa: E402
from cvmfs_harness import cleanup_all, skip, wait_for  # noqa: E402,F401

SRC = H.SRC
BUILD = H.BUILD
CVMFSD = H.CVMFSD
CVMFS_STAT = os.path.join(BUILD, 'src', 'stat', 'cvmfs-stat')

# The harness's registries: daemons are killed by pid at cleanup, mounts
# ((path, 'fuse'|'overlay')) unmounted overlays first, temp dirs removed.
_daemons = H.procs
_mounts = H.mounts
_tmpdirs = H.dirs


def require_root_fuse():
    if os.geteuid() != 0:
        skip('needs root (FUSE mounts with allow_other, trusted.* xattrs)')
    if not os.path.exists('/dev/fuse'):
        skip('no /dev/fuse')
    if not os.path.exists(CVMFSD):
        skip('cvmfsd not built at %s' % CVMFSD)


def server_pid(sup):
    """The pid of the disk's server: its supervisor's child (0: none yet)."""
    try:
        with open('/proc/%d/task/%d/children' % (sup, sup)) as f:
            kids = f.read().split()
    except OSError:
        return 0
    return int(kids[0]) if kids else 0


def require_resend():
    """The disk restarts its server only where the kernel resends what a
    dead one read (FUSE_NOTIFY_RESEND, Linux 6.9)."""
    rel = os.uname().release.split('.')
    if (int(rel[0]), int(''.join(c for c in rel[1] if c.isdigit()) or 0)) < (6, 9):
        skip('Linux %s has no FUSE_NOTIFY_RESEND (6.9+): the disk does not restart there'
             % os.uname().release)


class Results(H.Results):
    """The harness's Results; check(name, ok, detail) as the disk tests
    call it."""

    def check(self, name, ok, detail=None):
        return super().check(name, ok, detail=detail)

    def eq(self, name, actual, expected):
        return H.Results.check(self, name, actual == expected, actual, expected)


def tmpdir():
    return H.tempdir(mode=None)


def is_mounted(path):
    return H.is_mounted(os.path.realpath(path))


unmount = H.unmount


def overlay_mount(lower, upper, work, target):
    _mounts.append((target, 'overlay'))
    return subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o',
                           'lowerdir=%s,upperdir=%s,workdir=%s' % (lower, upper, work), target],
                          capture_output=True, text=True)


class Disk:
    """One `cvmfsd disk -f` daemon, started and stopped by pid."""

    def __init__(self, base, name='ws', limit='64M', images=(), inodes=None, config=None,
                 extra=()):
        self.base = base
        self.name = name
        self.data = os.path.join(base, 'data')
        self.mnt = os.path.join(base, 'mnt')
        self.run = os.path.join(base, 'run')
        self.log = os.path.join(base, 'daemon.log')
        self.limit = limit
        self.images = list(images)
        self.inodes = inodes
        self.config = config
        self.extra = list(extra)
        self.proc = None
        os.makedirs(self.mnt, exist_ok=True)
        os.chmod(base, 0o755)  # non-root users must reach the mount

    def argv(self):
        a = [CVMFSD, 'disk', '-f', '--name', self.name, '--data', self.data,
             '--run-dir', self.run]
        if self.limit is not None:
            a += ['--limit', str(self.limit)]
        if self.images:
            a += ['--image', ':'.join(self.images)]
        if self.inodes is not None:
            a += ['--inodes', str(self.inodes)]
        a += ['-c', self.config or os.path.join(self.base, 'none.conf')]
        if not self.config:
            open(os.path.join(self.base, 'none.conf'), 'a').close()
        return a + self.extra + [self.mnt]

    def start(self, timeout=60):
        logf = open(self.log, 'a')
        self.proc = subprocess.Popen(self.argv(), stdout=logf, stderr=logf,
                                     start_new_session=True)
        _daemons.append(self.proc)
        _mounts.append((self.mnt, 'fuse'))
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError('cvmfsd disk exited with %d:\n%s' % (
                    self.proc.returncode, open(self.log).read()))
            if is_mounted(self.mnt) and os.path.exists(self.json_path()):
                return time.time() - t0
            time.sleep(0.02)
        raise RuntimeError('cvmfsd disk did not mount in %d s' % timeout)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if sig == signal.SIGKILL:
            unmount(self.mnt)

    def kill9(self):
        self.stop(signal.SIGKILL)

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def json_path(self):
        return os.path.join(self.run, 'disk', self.name + '.json')

    def figures(self):
        with open(self.json_path()) as f:
            return json.load(f)

    def fresh_figures(self):
        """Figures published after this call (the publisher runs every second)."""
        t0 = time.time()
        m0 = os.stat(self.json_path()).st_mtime_ns
        while time.time() - t0 < 5:
            time.sleep(0.1)
            if os.stat(self.json_path()).st_mtime_ns != m0:
                time.sleep(0.05)
                return self.figures()
        return self.figures()

    def upper(self):
        return os.path.join(self.data, 'upper')

    def recount(self):
        return recount(self.upper(), self.images)

    def logtext(self):
        return open(self.log).read()


def df_size(path):
    sv = os.statvfs(path)
    return sv.f_blocks * sv.f_frsize


def area_of(rel):
    rel = rel.strip('/')
    if rel == 'var/lib/docker' or rel.startswith('var/lib/docker/'):
        return 'docker'
    if rel == 'home' or rel.startswith('home/'):
        return 'home'
    return 'other'


def recount(upper, images):
    """DESIGN.md §3 from scratch: distinct inodes of upper + image layers
    (roots included), st_blocks * 512, per area."""
    seen = set()
    fig = {'used_bytes': 0, 'inodes_used': 0, 'image_bytes': 0, 'docker_bytes': 0,
           'home_bytes': 0, 'other_bytes': 0}

    def add(st, area):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        fig['used_bytes'] += st.st_blocks * 512
        fig['inodes_used'] += 1
        fig[area + '_bytes'] += st.st_blocks * 512

    # fwalk: through directory fds, so that trees deeper than a path the
    # kernel takes (test_deep) are counted too. A missing tree counts
    # nothing (as os.walk).
    def fwalk(top):
        return os.fwalk(top) if os.path.isdir(top) else ()

    for layer in images:
        for root, dirs, files, dfd in fwalk(layer):
            if root == layer:
                add(os.fstat(dfd), 'image')
            for n in dirs + files:
                add(os.lstat(n, dir_fd=dfd), 'image')
    for root, dirs, files, dfd in fwalk(upper):
        rel = os.path.relpath(root, upper)
        if rel == '.':
            add(os.fstat(dfd), 'other')
            rel = ''
        for n in sorted(dirs + files):
            add(os.lstat(n, dir_fd=dfd), area_of(os.path.join(rel, n)))
    return fig


FIELDS = ('used_bytes', 'inodes_used', 'image_bytes', 'docker_bytes', 'home_bytes',
          'other_bytes')


def compare(res, label, disk, settle_s=0):
    """Live figure == fresh recount, field by field. settle_s: for up to
    that long, wait for them to agree first (a bound on a release the kernel
    sends after the caller returned, such as the last munmap's)."""
    deadline = time.time() + settle_s
    while True:
        want = disk.recount()
        got = disk.fresh_figures()
        if all(got[k] == want[k] for k in FIELDS) or time.time() >= deadline:
            break
        time.sleep(0.1)
    for k in FIELDS:
        res.eq('%s: %s live == recount' % (label, k), got[k], want[k])
    res.eq('%s: areas sum to used' % label,
           got['image_bytes'] + got['docker_bytes'] + got['home_bytes'] + got['other_bytes'],
           got['used_bytes'])
    return got, want


def cleanup_overlays():
    H.unmount_registered('overlay')


def run_as_nobody(cmd, **kw):
    """cmd as uid/gid 65534, with the system's PATH: the test's own may
    lead through root's 0700 home (pyenv shims), where nobody gets 126."""
    env = dict(kw.pop('env', os.environ), PATH='/usr/sbin:/usr/bin:/sbin:/bin')
    return subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] + cmd,
                          capture_output=True, text=True, env=env, **kw)


def attempt(log, label, fn):
    """Runs fn() and appends (label, its result or 'errno NAME') to log:
    the same steps on the union and on the host compare step by step."""
    try:
        out = fn()
    except OSError as e:
        out = 'errno %s' % errno.errorcode.get(e.errno, e.errno)
    log.append((label, out))
    return out


def write_file(path, data, mode=None):
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)


@contextlib.contextmanager
def checked(res, *daemons):
    """A test's body: an exception in it is a failed check (with its
    traceback), and the daemons are stopped whatever happens (a list is
    read at the end, so the body may add to it)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        res.check('no exception', False, e)
    finally:
        for d in daemons:
            for one in (d if isinstance(d, list) else [d]):
                one.stop()


_tracefs = None


def _unmount_tracefs(d):
    subprocess.run(['umount', '-l', d], check=False)
    os.rmdir(d)


def tracefs():
    """A tracefs with the kernel's FUSE events: the system's where it is
    mounted, else one this test mounts itself (and unmounts at exit) --
    a fresh machine has none mounted. None (with the reason printed once)
    where the kernel has no tracefs or no FUSE tracepoints."""
    global _tracefs
    if _tracefs is not None:
        return _tracefs or None
    event = 'events/fuse/fuse_request_send'
    for top in ('/sys/kernel/tracing', '/sys/kernel/debug/tracing'):
        if os.path.isdir(os.path.join(top, event)):
            _tracefs = top
            return top
    d = tempfile.mkdtemp(prefix='cvmfs-test-tracefs-')
    r = subprocess.run(['mount', '-t', 'tracefs', 'nodev', d], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        print('# cannot mount tracefs (%s): FUSE request counts are not checked' % r.stderr.strip())
        _tracefs = ''
        return None
    atexit.register(_unmount_tracefs, d)
    if not os.path.isdir(os.path.join(d, event)):
        print('# the kernel has no FUSE tracepoints: FUSE request counts are not checked')
        _tracefs = ''
        return None
    _tracefs = d
    return d


def fuse_requests(mnt, action):
    """Runs action() once and returns the FUSE requests it made on mnt's
    connection, from a trace instance of our own; None (action run all the
    same) where tracefs() has no FUSE events, so that callers check what
    action() did either way and skip only the request counts."""
    top = tracefs()
    if top is None:
        action()
        return None
    inst = os.path.join(top, 'instances', 'cvmfs-test-%d' % os.getpid())
    os.mkdir(inst)
    try:
        ev = os.path.join(inst, 'events/fuse/fuse_request_send')
        with open(os.path.join(ev, 'filter'), 'w') as f:
            f.write('connection == %d' % os.minor(os.stat(mnt).st_dev))
        with open(os.path.join(ev, 'enable'), 'w') as f:
            f.write('1')
        action()
        with open(os.path.join(ev, 'enable'), 'w') as f:
            f.write('0')
        with open(os.path.join(inst, 'trace')) as f:
            return [w.strip('()') for w in f.read().split() if w.startswith('(FUSE_')]
    finally:
        os.rmdir(inst)


# ---------------------------------------------------------------- upgrade
# A DIFFERENT build to upgrade to in place (issue 17): the daemon runs from
# a copy of cvmfsd, over which a variant is renamed, as a package upgrade
# does; SIGUSR2 makes the supervisor exec it. Used by
# tests/disk/test_disk_survive.py (a plain mount) and
# tests/docker/test_docker_disk_survive.py (a CVM's disk).
def build_id(path):
    """The GNU build id (hex) of the ELF file at path (readelf -n), or
    None; /proc/PID/exe gives the running binary's, even once replaced."""
    out = subprocess.run(['readelf', '-n', path], capture_output=True, text=True).stdout
    ids = [line.split()[-1] for line in out.splitlines() if 'Build ID:' in line]
    return ids[0] if ids else None


def project_version():
    """The version meson builds in (meson.build's project()), as the
    supervisor's line names it."""
    with open(os.path.join(SRC, 'meson.build')) as f:
        m = re.search(r"\bversion\s*:\s*'([^']+)'", f.read())
    return m.group(1) if m else None


class Build:
    """cvmfsd copied to a path of its own, where the daemon is started from;
    variant() renames another build over it, as a package upgrade does."""

    def __init__(self, base):
        d = os.path.join(base, 'cvmfs-test-bin')
        os.makedirs(d, exist_ok=True)
        self.path = os.path.join(d, 'cvmfsd')
        shutil.copy2(CVMFSD, self.path)
        self.n = 0

    def use(self, disk):
        """A Disk of this module started from the copy."""
        argv = disk.argv
        disk.argv = lambda: [self.path] + argv()[1:]

    def variant(self, version):
        """The installed copy with its 20 build-id bytes changed and its
        version string (if found once, NUL-delimited) changed in its last
        character: (build id, version) of the new file, or None."""
        self.n += 1
        data = bytearray(open(self.path, 'rb').read())
        old = build_id(self.path)
        raw = bytes.fromhex(old) if old else b''
        if not raw or data.count(raw) != 1:
            return None
        new = bytes(b ^ (0x5a + self.n) for b in raw)
        i = data.find(raw)
        data[i:i + len(raw)] = new
        v = version.encode()
        if data.count(b'\0' + v + b'\0') == 1:
            nv = v[:-1] + (b'7' if v[-1:] != b'7' else b'8')
            i = data.find(b'\0' + v + b'\0') + 1
            data[i:i + len(v)] = nv
            version = nv.decode()
        tmp = self.path + '.new'
        with open(tmp, 'wb') as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.rename(tmp, self.path)
        got = build_id(self.path)
        return (got, version) if got == new.hex() else None
