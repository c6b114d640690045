"""The one harness of the Python tests (standard library only): results
speaking TAP, skips, polls, and the cleanup of what a test made. The
component modules (tests/integration/cvmfstest.py for the views,
tests/disk/disktest.py, tests/launch/launchtest.py, tests/docker/dockertest.py)
import it and add only what is their component's own.

Output (TAP, like the C tests' tests/unit/check.h): every check is a test
point, `ok N - name` or `not ok N - name` followed by `#` lines with what
was expected and what came; at the end the plan `1..N` and
`# N checks, P passed, F failed`.

Exit status (meson's exitcode protocol): 0 all checks passed, 1 a check
failed, 77 skipped: the machine lacks something (skip()), or what the test
exists to check could not be collected here (Results.not_checked).

Everything a test creates through this module is undone at exit, also on
failure, an exception, SIGTERM (meson's timeout) or SIGINT, in this order:
  - processes (popen, or Popen objects added to `procs`) are killed by
    their pid and the process group they lead; never by name;
  - mounts in `mounts` are unmounted, newest first, kernel overlays before
    FUSE mounts (`fusermount3 -u`, then `umount`, then `umount -l`);
  - cgroup directories in `cgroups` are removed, deepest first (only if
    this test created them);
  - add_late_cleanup() functions run, newest first;
  - temporary directories are removed (anything still mounted below first).
"""

import atexit
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LIB = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('CVMFS_SRC') or os.path.dirname(os.path.dirname(LIB))
BUILD = os.environ.get('CVMFS_BUILD') or os.path.join(SRC, 'build')
CVMFSD = os.environ.get('CVMFSD') or os.path.join(BUILD, 'src', 'cvmfsd')
TAG = 'cvmfs-test-'


def unique(name):
    return '%s%s-%d' % (TAG, name, os.getpid())


# ---------------------------------------------------------------- results

_points = [0]   # TAP test points so far in this process (all Results)


def _short(v, limit=1500):
    s = repr(v) if not isinstance(v, str) else v
    if len(s) > limit:
        s = s[:limit] + '...(%d more chars)' % (len(s) - limit)
    return s


def _diag(text):
    print('#   ' + str(text).replace('\n', '\n#   '), flush=True)


class Results:
    """The checks of a test. not_checked(reason) where the machine cannot
    give what a check asserts on: the test then skips (77) unless a check
    failed, or, for a side check (point=False), notes it and passes on the
    rest."""

    def __init__(self):
        self.passed = 0
        self.failed = []
        self.unchecked = []   # the test's point: skip unless something failed
        self.noted = []       # side checks left out: noted, the test passes

    def check(self, name, ok, actual=None, expected=None, detail=None):
        _points[0] += 1
        name = str(name).replace('\n', ' ')
        if ok:
            self.passed += 1
            print('ok %d - %s' % (_points[0], name), flush=True)
            return ok
        self.failed.append(name)
        print('not ok %d - %s' % (_points[0], name), flush=True)
        if expected is not None or actual is not None:
            _diag('expected: %s\nactual:   %s' % (_short(expected), _short(actual)))
        if detail is not None:
            _diag(detail)
        return ok

    def eq(self, name, actual, expected, detail=None):
        return self.check(name, actual == expected, actual, expected, detail)

    def not_checked(self, reason, point=True):
        (self.unchecked if point else self.noted).append(reason)
        print('# not checked%s: %s' % ('' if point else ' (a side check)', reason), flush=True)

    def status(self):
        """Prints the plan and the summary; 1 if a check failed, else 77
        (with the reasons) if the test's point went unchecked, else 0."""
        n = self.passed + len(self.failed)
        print('1..%d' % _points[0], flush=True)
        print('# %d checks, %d passed, %d failed' % (n, self.passed, len(self.failed)),
              flush=True)
        for f in self.failed:
            print('#   failed: %s' % f, flush=True)
        for r in self.noted:
            print('#   not checked (a side check): %s' % r, flush=True)
        if self.failed:
            return 1
        if self.unchecked:
            print('# SKIP %s' % '; '.join(self.unchecked), flush=True)
            return 77
        return 0

    def summary_and_exit(self):
        code = self.status()
        cleanup_all()
        sys.exit(code)

    done = summary_and_exit


def skip(reason):
    """The machine lacks what the test needs: 77 with a one-line reason."""
    print('1..%d # SKIP %s' % (_points[0], reason), flush=True)
    cleanup_all()
    sys.exit(77)


def wait_for(pred, timeout=10.0, what=None, interval=0.02):
    """Poll pred() until it is true, for up to timeout seconds (a bound,
    not a speed); its last value. what: the state waited for, printed as
    a diagnostic when the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            if not v and what:
                print('# still not %s after %g s' % (what, timeout), flush=True)
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- cleanup

procs = []       # Popen objects, killed by pid (and group) at cleanup
mounts = []      # mountpoints (FUSE) or (path, 'fuse'|'overlay'), in mount order
cgroups = []     # (directory, is_leaf) created by us, removed in reverse order
dirs = []        # temp dirs
_late = []       # callables: what a killed program of ours would have undone
_cleaned = [False]


def add_late_cleanup(fn):
    """fn() runs at cleanup once our processes are killed and our mounts
    gone, before the temp dirs are removed (e.g. the cgroups a launcher
    made and could not remove because it was killed)."""
    _late.append(fn)


def mount_entries(kind=None):
    """(path, kind) of every registered mount, oldest first."""
    res = [m if isinstance(m, tuple) else (m, 'fuse') for m in mounts]
    return [m for m in res if kind is None or m[1] == kind]


def unmount_registered(kind=None):
    for path, k in reversed(mount_entries(kind)):
        unmount(path, k)


def cleanup_all():
    if _cleaned[0]:
        return
    _cleaned[0] = True
    for p in reversed(procs):
        kill_proc(p)
    unmount_registered('overlay')
    unmount_registered()
    for d, leaf in reversed(cgroups):
        rmdir_cgroup(d, leaf)
    for fn in reversed(_late):
        try:
            fn()
        except Exception as e:  # noqa: BLE001  (cleanup goes on)
            print('# cleanup: %s: %s' % (getattr(fn, '__name__', fn), e), flush=True)
    for d in reversed(dirs):
        for m in mounts_under(d):
            unmount(m)
        shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, frame):
    print('# interrupted by signal %d, cleaning up' % signum, flush=True)
    cleanup_all()
    atexit._run_exitfuncs()  # what components registered (a tracefs mount)
    os._exit(1)


atexit.register(cleanup_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def kill_proc(p, sig=signal.SIGKILL):
    if p.poll() is None:
        # The leader is not reaped, so its pid (= its group id) is ours.
        try:
            os.killpg(p.pid, sig)
        except OSError:
            pass
        try:
            p.send_signal(sig)
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for f in (p.stdin, p.stdout, p.stderr):
        try:
            if f:
                f.close()
        except OSError:
            pass


def _subdirs(d):
    try:
        return [e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))]
    except OSError:
        return []


def _kill_members(d):
    """Only processes we started can be in a cgroup we created."""
    try:
        with open(os.path.join(d, 'cgroup.procs')) as f:
            for line in f:
                if line.strip():
                    try:
                        os.kill(int(line), signal.SIGKILL)
                    except OSError:
                        pass
    except OSError:
        pass


def rmdir_cgroup(d, leaf=True):
    """Remove a cgroup directory we created. A leaf is ours alone: processes
    left in it are ours and get killed. An intermediate directory (such as a
    `cvmfs` parent we had to create) may meanwhile hold someone else's
    cgroups: then it is left alone."""
    deadline = time.time() + (10 if leaf else 2)
    while True:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if not leaf and _subdirs(d):
                print('# cleanup: leaving %s: it holds cgroups we did not create' % d,
                      flush=True)
                return False
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.time() > deadline:
                print('# cleanup: cannot remove cgroup %s: %s' % (d, e), flush=True)
                return False
            if leaf:
                _kill_members(d)
            time.sleep(0.05)  # the kernel frees a cgroup once its tasks are reaped


def tempdir(tag='', mode=0o755):
    """A fresh cvmfs-test-TAG* directory, removed at cleanup; mode None
    keeps mkdtemp's 0700."""
    d = tempfile.mkdtemp(prefix=TAG + tag)
    if mode is not None:
        os.chmod(d, mode)
    dirs.append(d)
    return d


# ---------------------------------------------------------------- processes

def popen(argv, **kw):
    kw.setdefault('start_new_session', True)
    p = subprocess.Popen(argv, **kw)
    procs.append(p)
    return p


def forget(p):
    """Drop a finished process from the cleanup list (long loops)."""
    try:
        procs.remove(p)
    except ValueError:
        pass


def run(argv, timeout=60, input=None, env=None, check_rc=None):
    """Run argv; returns (rc, stdout, stderr) as text. rc None on timeout."""
    p = popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(input=input.encode() if isinstance(input, str) else input,
                                 timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        kill_proc(p)
        out, err = b'', b'(timed out after %ss)' % str(timeout).encode()
        rc = None
    forget(p)
    return rc, out.decode('latin-1'), err.decode('latin-1')


def pid_exists(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def read_text(path):
    with open(path, 'rb') as f:
        return f.read().decode('latin-1')


# ---------------------------------------------------------------- mounts

def _unescape(s):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), s)


def mount_table():
    """[(mount id, mountpoint, fs type)] from /proc/self/mountinfo."""
    res = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            parts = line.split()
            fstype = parts[parts.index('-') + 1] if '-' in parts else ''
            res.append((int(parts[0]), _unescape(parts[4]), fstype))
    return res


def mountpoints():
    return [m for _, m, _ in mount_table()]


def is_mounted(path):
    """Without a stat of path: a stopped daemon there would hang it."""
    return os.path.abspath(path) in mountpoints()


def mounts_under(d):
    d = os.path.abspath(d)
    return [m for m in mountpoints() if m == d or m.startswith(d + '/')]


def unmount(path, kind='fuse'):
    """Unmount path if mounted: fusermount3 -u (FUSE), umount, umount -l."""
    for _ in range(3):
        if not is_mounted(path):
            return
        if kind == 'fuse':
            subprocess.run(['fusermount3', '-u', '-q', path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if not is_mounted(path):
                return
        subprocess.run(['umount', path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not is_mounted(path):
            return
        subprocess.run(['umount', '-l', path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
