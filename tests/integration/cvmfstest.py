"""The views' helpers for the integration tests (Python 3 standard library
only), on top of the one harness, tests/lib/cvmfs_harness.py (results in
TAP, skip, wait_for, processes, mounts, cgroups and temp dirs undone at
exit), whose names this module also offers (T.R, T.skip, T.run, ...):
cvmfsd views daemons, v1 cgroups, namespaces, the parsing of /proc files
and a fake v2 cgroup tree.

Exit status: 0 all checks passed, 1 some check failed, 77 skipped (the
machine lacks something, or what the test exists to check could not be
collected here: Results.not_checked).
"""

import atexit  # noqa: F401  (tests use T.atexit)
import errno  # noqa: F401
import json
import os
import re  # noqa: F401
import shutil
import signal
import subprocess
import sys
import tempfile  # noqa: F401
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'lib'))
import cvmfs_harness as H  # noqa: E402
from cvmfs_harness import (  # noqa: E402,F401  (the shared names, as T.NAME)
    BUILD, CVMFSD, SRC, TAG, Results, add_late_cleanup, cleanup_all, forget,
    mount_table, mountpoints, mounts_under, pid_exists, popen, read_text, run,
    skip, tempdir, unique, unmount, wait_for, is_mounted)

PROBE = os.path.join(HERE, 'probe.py')
PYTHON = sys.executable or 'python3'

CG_ROOT = '/sys/fs/cgroup'
V1_CONTROLLERS = ('memory', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'pids')
PROC_FILES = ('meminfo', 'cpuinfo', 'stat', 'uptime', 'loadavg', 'swaps', 'diskstats', 'vmstat')
PSI_FILES = ('cpu', 'memory', 'io')

# The harness's registries and helpers under the names tests use.
_procs, _mounts, _cgroups, _dirs = H.procs, H.mounts, H.cgroups, H.dirs
_kill_proc, _rmdir_cgroup, _subdirs, _short = H.kill_proc, H.rmdir_cgroup, H._subdirs, H._short

R = Results()


def fatal(reason):
    """A precondition the test itself needs failed (not a product check)."""
    R.check('setup: ' + reason, False)
    R.summary_and_exit()


def require(v1=True, fuse=True):
    if os.geteuid() != 0:
        skip('needs root')
    if fuse:
        if not os.path.exists('/dev/fuse'):
            skip('/dev/fuse is missing')
        try:
            os.close(os.open('/dev/fuse', os.O_RDWR))
        except OSError as e:
            skip('/dev/fuse cannot be opened: %s' % e)
        if not shutil.which('fusermount3'):
            skip('fusermount3 is missing')
    if v1 and not os.path.exists(os.path.join(CG_ROOT, 'memory', 'memory.limit_in_bytes')):
        skip('no cgroup v1 memory controller at %s/memory' % CG_ROOT)
    if not os.access(CVMFSD, os.X_OK):
        skip('cvmfsd binary not found at %s (set CVMFSD)' % CVMFSD)


def read_in_batches(kids, argv_of, batch):
    """Run argv_of(i) inside cgroup kids[i] (a wrap()-able helper), `batch`
    at a time, all of a batch at once; yields (i, rc, stdout, stderr) as
    text. A batch is always finished before the caller sees its last item."""
    for start in range(0, len(kids), batch):
        procs = [(i, popen(kids[i].wrap(argv_of(i)), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE))
                 for i in range(start, min(start + batch, len(kids)))]
        for i, p in procs:
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_proc(p)
                out, err = b'', b'timeout'
            forget(p)
            yield i, p.returncode, out.decode('latin-1'), err.decode('latin-1')


# ---------------------------------------------------------------- daemon

def _serving(path):
    try:
        os.listdir(path)
        return True
    except OSError:
        return False


class Daemon:
    """cvmfsd views -f in the background, with its own mountpoint and log."""

    def __init__(self, base=None, args=(), mnt=None, config=None, wait=True):
        self.base = base or tempdir('views-')
        self.mnt = mnt or os.path.join(self.base, 'mnt')
        os.makedirs(self.mnt, exist_ok=True)
        self.ct = os.path.join(self.mnt, 'ct')
        self.log = os.path.join(self.base, 'daemon-%d.log' % len(os.listdir(self.base)))
        if config is None:
            config = os.path.join(self.base, 'views.conf')
            with open(config, 'w') as f:
                f.write('[views]\n')
        self.argv = [CVMFSD, 'views', '-f', '-c', config] + list(args) + [self.mnt]
        _mounts.append(self.mnt)
        _mounts.append(self.ct)  # unmounted first (reverse order)
        # Mounts already there (a stale mount, say) do not count as ours.
        self.old_ids = set(i for i, _, _ in mount_table())
        self.logf = open(self.log, 'w')
        self.proc = popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                          stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.ok = True
        if wait:
            self.ok = self.wait_mounted()

    def wait_mounted(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            table = mount_table()
            new = [m for i, m, _ in table if i not in self.old_ids]
            if self.mnt in new and self.ct in new:
                return True
            # The kernel reuses the ids of detached (stale) mounts: what
            # answers a listing is served by this daemon.
            mps = [m for _, m, _ in table]
            if self.mnt in mps and self.ct in mps and _serving(self.mnt) and _serving(self.ct):
                return True
            time.sleep(0.02)
        return False

    def alive(self):
        return self.proc.poll() is None and os.path.exists('/proc/%d' % self.pid)

    def log_text(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Returns the exit status (None if it had to be killed). What was
        still mounted under MNT right after the exit, before this helper
        cleans up, is left in self.mounts_after_exit."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_proc(self.proc)
                rc = None
        self.mounts_after_exit = mounts_under(self.mnt)
        unmount(self.ct)
        unmount(self.mnt)
        return rc


def start_daemon(args=(), **kw):
    d = Daemon(args=args, **kw)
    if not d.ok:
        fatal('cvmfsd views did not mount %s: %s' % (d.mnt, d.log_text()[-2000:]))
    return d


# ---------------------------------------------------------------- cgroups v1

def cg_path(ctrl, rel):
    return os.path.join(CG_ROOT, ctrl, rel.strip('/'))


def _write(path, value):
    with open(path, 'w') as f:
        f.write(str(value))


def _read(path):
    with open(path) as f:
        return f.read()


class CGroup:
    """A v1 cgroup at the same relative path in several controllers."""

    def __init__(self, rel, controllers=V1_CONTROLLERS):
        self.rel = rel.strip('/')
        self.controllers = [c for c in controllers
                            if os.path.isdir(os.path.join(CG_ROOT, c))]
        for c in self.controllers:
            self._mkdirs(c)

    def _mkdirs(self, ctrl):
        cur = os.path.join(CG_ROOT, ctrl)
        comps = self.rel.split('/')
        for i, comp in enumerate(comps):
            cur = os.path.join(cur, comp)
            try:
                os.mkdir(cur)
            except FileExistsError:
                if i == len(comps) - 1:
                    fatal('cgroup %s exists already' % cur)
                continue
            _cgroups.append((cur, i == len(comps) - 1))
            if ctrl == 'cpuset':
                parent = os.path.dirname(cur)
                _write(os.path.join(cur, 'cpuset.cpus'),
                       _read(os.path.join(parent, 'cpuset.cpus')).strip() or '0')
                _write(os.path.join(cur, 'cpuset.mems'),
                       _read(os.path.join(parent, 'cpuset.mems')).strip() or '0')

    def dir(self, ctrl):
        return cg_path(ctrl, self.rel)

    def set(self, ctrl, name, value):
        _write(os.path.join(self.dir(ctrl), name), value)

    def get(self, ctrl, name):
        return _read(os.path.join(self.dir(ctrl), name))

    def set_memory(self, nbytes):
        self.set('memory', 'memory.limit_in_bytes', nbytes)

    def set_cpuset(self, cpus):
        self.set('cpuset', 'cpuset.cpus', cpus)

    def set_quota(self, quota, period=100000):
        self.set('cpu', 'cpu.cfs_period_us', period)
        self.set('cpu', 'cpu.cfs_quota_us', quota)

    def procs_files(self):
        return [os.path.join(self.dir(c), 'cgroup.procs') for c in self.controllers]

    def wrap(self, argv):
        """argv run as a fresh process that first joins this cgroup."""
        return ['env', 'CVT_CGPROCS=' + ' '.join(self.procs_files()), 'sh', '-c',
                'for p in $CVT_CGPROCS; do echo $$ > "$p" || exit 97; done; exec "$@"',
                'cvt-incg'] + list(argv)

    def remove(self):
        """Remove the leaf now (its processes must have exited)."""
        ok = True
        for c in self.controllers:
            d = self.dir(c)
            if (d, True) in _cgroups:
                ok = _rmdir_cgroup(d, True) and ok
                _cgroups.remove((d, True))
        return ok

    def remove_parents(self):
        """Remove the intermediate directories we created, if now empty."""
        for entry in reversed(list(_cgroups)):
            d, leaf = entry
            for c in self.controllers:
                if not leaf and (self.dir(c) + '/').startswith(d + '/'):
                    if _rmdir_cgroup(d, False):
                        _cgroups.remove(entry)
                    break


# ---------------------------------------------------------------- namespaces

_NS_SCRIPT = r'''
set -e
m="$1"; shift
for f in meminfo cpuinfo stat uptime loadavg swaps diskstats vmstat; do
  mount --bind "$m/proc/$f" "/proc/$f"
done
if [ -d /proc/pressure ]; then
  for f in cpu memory io; do mount --bind "$m/proc/pressure/$f" "/proc/pressure/$f"; done
fi
mount --bind "$m/sys/devices/system/cpu" /sys/devices/system/cpu
exec "$@"
'''


def ns_argv(mnt, argv, bind=True):
    """Private mount + PID namespace running argv as its init's child, with
    the views bound over /proc/* and /sys/devices/system/cpu."""
    base = ['unshare', '--mount', '--pid', '--fork', '--kill-child', '--mount-proc',
            '--propagation', 'private']
    if not bind:
        return base + list(argv)
    return base + ['sh', '-c', _NS_SCRIPT, 'cvt-ns', mnt] + list(argv)


def probe_argv(*args):
    return [PYTHON, PROBE] + list(args)


def run_json(argv, timeout=60, input=None):
    rc, out, err = run(argv, timeout=timeout, input=input)
    try:
        data = json.loads(out) if rc == 0 else None
    except ValueError:
        data = None
    return rc, data, out, err


# ---------------------------------------------------------------- parsing

def meminfo(text):
    d = {}
    for line in text.splitlines():
        if ':' in line:
            k, v = line.split(':', 1)
            v = v.split()
            d[k] = int(v[0]) if v and v[0].isdigit() else v
    return d


def meminfo_keys(text):
    return [l.split(':', 1)[0] for l in text.splitlines() if ':' in l]


def kernel_meminfo_line(key, kb):
    return '%-16s%8d kB' % (key + ':', kb)


def cpuinfo_processors(text):
    return [int(l.split(':', 1)[1]) for l in text.splitlines()
            if l.startswith('processor') and ':' in l]


def stat_cpu_lines(text):
    """{'cpu': [..], 'cpu0': [..]} of integer fields."""
    res = {}
    for l in text.splitlines():
        f = l.split()
        if f and f[0].startswith('cpu'):
            res[f[0]] = [int(x) for x in f[1:]]
    return res


def cpulist(text):
    s = set()
    text = text.strip()
    if not text:
        return s
    for part in text.split(','):
        if '-' in part:
            a, b = part.split('-')
            s.update(range(int(a), int(b) + 1))
        else:
            s.add(int(part))
    return s


def host_uptime():
    with open('/proc/uptime') as f:
        return float(f.read().split()[0])


# ---------------------------------------------------------------- v2 fixture

MEMSTAT_V2_KEYS = (
    'anon', 'file', 'kernel', 'kernel_stack', 'pagetables', 'sec_pagetables', 'percpu',
    'sock', 'vmalloc', 'shmem', 'zswap', 'zswapped', 'file_mapped', 'file_dirty',
    'file_writeback', 'swapcached', 'anon_thp', 'file_thp', 'shmem_thp', 'inactive_anon',
    'active_anon', 'inactive_file', 'active_file', 'unevictable', 'slab_reclaimable',
    'slab_unreclaimable', 'slab', 'workingset_refault_anon', 'workingset_refault_file',
    'workingset_activate_anon', 'workingset_activate_file', 'workingset_restore_anon',
    'workingset_restore_file', 'workingset_nodereclaim', 'pgscan', 'pgsteal',
    'pgscan_kswapd', 'pgscan_direct', 'pgscan_khugepaged', 'pgsteal_kswapd',
    'pgsteal_direct', 'pgsteal_khugepaged', 'pgfault', 'pgmajfault', 'pgrefill',
    'pgactivate', 'pgdeactivate', 'pglazyfree', 'pglazyfreed', 'zswpin', 'zswpout',
    'zswpwb', 'thp_fault_alloc', 'thp_collapse_alloc', 'thp_swpout',
    'thp_swpout_fallback')

PSI_ZERO = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n' \
           'full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n'


def memstat_v2(values=None):
    """Full v2 memory.stat text; unspecified keys get distinct large values
    that must not leak into any meminfo line."""
    values = values or {}
    lines = []
    for i, k in enumerate(MEMSTAT_V2_KEYS):
        lines.append('%s %d' % (k, values.get(k, 999000000 + i * 4096)))
    return '\n'.join(lines) + '\n'


class V2Fixture:
    """A fake pure-v2 cgroup tree (--cgroup-root) and proc tree (--proc-root)."""

    def __init__(self, base, meminfo_overrides=None, copy_host=('meminfo', 'cpuinfo', 'diskstats'),
                 extra_diskstats=''):
        self.root = os.path.join(base, 'cgroot')
        self.proc = os.path.join(base, 'fixproc')
        os.makedirs(self.root)
        os.makedirs(os.path.join(self.proc, 'pressure'))
        _write(os.path.join(self.root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n')
        _write(os.path.join(self.root, 'cgroup.subtree_control'), 'cpuset cpu io memory pids\n')
        for name in ('cgroup.procs', 'cgroup.threads'):
            _write(os.path.join(self.root, name), '')
        _write(os.path.join(self.root, 'cpuset.cpus.effective'), '0-1\n')
        for f in PROC_FILES:
            dst = os.path.join(self.proc, f)
            if f in copy_host:
                text = read_text('/proc/' + f)
                if f == 'meminfo' and meminfo_overrides:
                    text = self._meminfo_override(text, meminfo_overrides)
                if f == 'diskstats':
                    text += extra_diskstats
                with open(dst, 'w', encoding='latin-1') as out:
                    out.write(text)
            else:
                os.symlink('/proc/' + f, dst)
        for f in PSI_FILES:
            src = '/proc/pressure/' + f
            dst = os.path.join(self.proc, 'pressure', f)
            if os.path.exists(src):
                os.symlink(src, dst)
            else:
                _write(dst, PSI_ZERO)

    @staticmethod
    def _meminfo_override(text, ov):
        out = []
        for line in text.splitlines():
            k = line.split(':', 1)[0]
            if k in ov:
                line = kernel_meminfo_line(k, ov[k])
            out.append(line)
        return '\n'.join(out) + '\n'

    def host_file(self, name):
        return read_text(os.path.join(self.proc, name))

    def cgroup(self, rel, **files):
        """Create rel with kernel-format defaults; files override by name
        (use '.' instead of '_' is not needed: pass a dict via files={...})."""
        d = os.path.join(self.root, rel.strip('/'))
        os.makedirs(d, exist_ok=True)
        defaults = {
            'cgroup.procs': '', 'cgroup.threads': '', 'cgroup.type': 'domain\n',
            'cgroup.controllers': 'cpuset cpu io memory pids\n',
            'cgroup.subtree_control': '', 'cgroup.events': 'populated 1\nfrozen 0\n',
            'memory.max': 'max\n', 'memory.high': 'max\n', 'memory.min': '0\n',
            'memory.low': '0\n', 'memory.current': '104857600\n',
            'memory.stat': memstat_v2(),
            'memory.swap.max': 'max\n', 'memory.swap.current': '0\n',
            'memory.swap.high': 'max\n',
            'cpu.max': 'max 100000\n', 'cpu.weight': '100\n',
            'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\n'
                        'nr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n',
            'cpuset.cpus': '\n', 'cpuset.cpus.effective': '0-1\n',
            'cpuset.mems': '\n', 'cpuset.mems.effective': '0\n',
            'io.stat': '', 'io.max': '',
            'cpu.pressure': PSI_ZERO, 'memory.pressure': PSI_ZERO, 'io.pressure': PSI_ZERO,
            'pids.max': 'max\n', 'pids.current': '1\n',
        }
        defaults.update(files.pop('files', {}))
        for name, text in defaults.items():
            if text is None:
                continue
            _write(os.path.join(d, name), text)
        return d

    def set_file(self, rel, name, text):
        _write(os.path.join(self.root, rel.strip('/'), name), text)

    def register(self, pid, rel, cgroup_text=None):
        """Make pid a member of cgroup rel as the daemon sees it."""
        d = os.path.join(self.proc, str(pid))
        os.makedirs(d, exist_ok=True)
        _write(os.path.join(d, 'cgroup'),
               cgroup_text if cgroup_text is not None else '0::/%s\n' % rel.strip('/'))
        for name in ('stat', 'status', 'ns'):
            p = os.path.join(d, name)
            if not os.path.lexists(p):
                os.symlink('/proc/%d/%s' % (pid, name), p)

    def daemon_args(self):
        return ['--cgroup-root', self.root, '--proc-root', self.proc]


class GatedReader:
    """A child that blocks on stdin until registered in the fixture, then runs
    argv (exec'd from sh, so the pid stays the same)."""

    def __init__(self, argv, shell=None):
        if shell is None:
            cmd = 'read x; exec "$@"'
            full = ['sh', '-c', cmd, 'cvt-gate'] + list(argv)
        else:
            full = ['sh', '-c', 'read x; ' + shell]
        self.proc = popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
        self.pid = self.proc.pid

    def release(self, timeout=60):
        try:
            out, err = self.proc.communicate(b'go\n', timeout=timeout)
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            _kill_proc(self.proc)
            out, err, rc = b'', b'timeout', None
        forget(self.proc)
        return rc, out.decode('latin-1'), err.decode('latin-1')


def fixture_read(fx, rel, argv, shell=None, cgroup_text=None, timeout=60):
    r = GatedReader(argv, shell=shell)
    fx.register(r.pid, rel, cgroup_text)
    return r.release(timeout=timeout)


def fixture_cat(fx, rel, path, cgroup_text=None):
    rc, out, err = fixture_read(fx, rel, ['cat', path], cgroup_text=cgroup_text)
    return out if rc == 0 else None, err
