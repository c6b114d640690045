"""Helpers for the cvm-launch integration tests (Python 3 stdlib only).

Builds, once per test process, an image rootfs from the host's own programs
and their shared libraries (parsed from ldd) in a `cvmfs-test-*` temp dir,
and runs cvm-launch with every path (data, run dir, mount dir, views) under
a test's own temp dir. Cleanup (processes by pid, own mounts, own cgroups,
temp dirs) is the shared one of tests/integration/cvmfstest.py, plus a
leftover check after every launch.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))
import cvmfstest as T  # noqa: E402

LAUNCH = os.environ.get('CVM_LAUNCH') or os.path.join(T.BUILD, 'src', 'launch', 'cvm-launch')
MiB = 1 << 20
# How much slower than this machine the test runs (the VM lane under TCG
# sets it): the waits for a boot scale with it.
SLOW = float(os.environ.get('CVMFS_TEST_SLOW') or 1)

# The host's programs the image carries (the tests run them inside), and
# python3 below: a missing one makes the test skip, never fail later inside.
PROGRAMS = ['sh', 'bash', 'cat', 'ls', 'echo', 'sleep', 'id', 'df', 'head', 'tail', 'dd', 'cut', 'tr',
            'hostname', 'nproc', 'mkdir', 'rm', 'true', 'false', 'seq', 'wc', 'grep',
            'free', 'ps', 'top', 'uptime', 'getconf', 'stat', 'touch']
# What the image's /usr/bin/python3 needs, asked of the interpreter itself.
PY_PARTS = ('import json, os, sys, sysconfig, _ctypes; print(json.dumps(['
            'os.path.realpath(sys.executable), sysconfig.get_path("stdlib"), _ctypes.__file__]))')

_image = None


# A pure cgroup v2 host (the VM lane, tests/vm): the unified hierarchy is
# mounted at CG_ROOT itself, and the launcher uses its v2 backend.
V2 = os.path.exists(os.path.join(T.CG_ROOT, 'cgroup.controllers'))
# The CVM's memory limit file as the CVM sees it at its cgroup root.
MEM_LIMIT = '/sys/fs/cgroup/memory.max' if V2 else '/sys/fs/cgroup/memory/memory.limit_in_bytes'


def cg_tops(name):
    """The host's directories of cgroup cvmfs/NAME: one per v1 hierarchy,
    or the one of the unified hierarchy."""
    if V2:
        return [os.path.join(T.CG_ROOT, 'cvmfs', name)]
    return [os.path.join(T.CG_ROOT, ctl, 'cvmfs', name) for ctl in os.listdir(T.CG_ROOT)
            if not os.path.islink(os.path.join(T.CG_ROOT, ctl))]


def cg_memory(name):
    """cvmfs/NAME in the hierarchy holding the memory controller."""
    return os.path.join(T.CG_ROOT, *(() if V2 else ('memory',)), 'cvmfs', name)


def require():
    if V2:
        try:
            with open(os.path.join(T.CG_ROOT, 'cgroup.controllers')) as f:
                have = f.read().split()
        except OSError:
            have = []
        if 'memory' not in have:
            T.skip('the unified hierarchy at %s has no memory controller' % T.CG_ROOT)
    T.require(v1=not V2, fuse=True)
    if not os.access(LAUNCH, os.X_OK):
        T.skip('cvm-launch not found at %s (set CVM_LAUNCH)' % LAUNCH)


def require_userns():
    """The launcher's default mode makes a user namespace: skip where the
    host does not allow one."""
    if subprocess.run(['unshare', '--user', 'true'], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        T.skip('unshare --user is not permitted here')


def _copy(src, root):
    """Copy src (following links) to the same path under root."""
    dst = root + src
    if os.path.exists(dst):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(os.path.realpath(src), dst)


def _libs(path):
    out = subprocess.run(['ldd', path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith('/'):
                yield p


def _add_program(root, path):
    """path (following links) with its libraries, and /usr/bin/NAME."""
    _copy(os.path.realpath(path), root)
    link = root + '/usr/bin/' + os.path.basename(path)
    if not os.path.lexists(link):
        os.symlink(os.path.realpath(path), link)
    for lib in _libs(path):
        _copy(lib, root)


def _add_python(root):
    """The image's /usr/bin/python3: the host's /usr/bin/python3 (what the
    tests run inside), else the interpreter running this test, whatever
    its version, with its standard library and ctypes."""
    errors = []
    for exe in ('/usr/bin/python3', sys.executable):
        if not exe or not os.access(exe, os.X_OK):
            continue
        p = subprocess.run([exe, '-c', PY_PARTS], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            errors.append('%s: %s' % (exe, (p.stderr.strip().splitlines() or ['?'])[-1]))
            continue
        real, stdlib, ctypes_so = json.loads(p.stdout)
        _add_program(root, real)
        os.symlink(real, root + '/usr/bin/python3')
        shutil.copytree(stdlib, root + stdlib, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns('test', '__pycache__', 'idlelib',
                                                      'tkinter', 'ensurepip'))
        for lib in _libs(ctypes_so):
            _copy(lib, root)
        return
    T.skip('the test image needs python3 with ctypes from the host: %s'
           % ('; '.join(errors) or 'none found'))


def image():
    """The image rootfs (merged /usr like the host), built once; the test
    skips (77) where the host lacks one of its programs."""
    global _image
    if _image:
        return _image
    missing = [p for p in PROGRAMS if not shutil.which(p, path='/usr/bin:/bin')]
    if missing:
        T.skip('the test image is made of the host\'s programs; missing here: %s '
               '(scripts/deps.sh installs them)' % ' '.join(missing))
    root = T.tempdir('image-')
    for d in ('usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'etc', 'root', 'home',
              'proc', 'sys', 'dev', 'run', 'tmp', 'var/lib'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for link, target in (('bin', 'usr/bin'), ('sbin', 'usr/sbin'), ('lib', 'usr/lib'),
                         ('lib64', 'usr/lib64')):
        os.symlink(target, os.path.join(root, link))
    for prog in PROGRAMS:
        _add_program(root, shutil.which(prog, path='/usr/bin:/bin'))
    _add_python(root)
    with open(root + '/etc/passwd', 'w') as f:
        f.write('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n')
    with open(root + '/etc/group', 'w') as f:
        f.write('root:x:0:\ntty:x:5:\nnogroup:x:65534:\n')
    _image = root
    return root


def empty_config(directory):
    """An empty config file in directory (cvm-launch -c, cvmfsd -c): the
    defaults, whatever /etc/cvmfs/cvmfs.conf this host has."""
    path = os.path.join(directory, 'none.conf')
    open(path, 'a').close()
    return path


class Workspace:
    """Paths of one test's CVM, all under its own temp dir."""

    def __init__(self, name, tag='ws-'):
        self.name = T.unique(name) if hasattr(T, 'unique') else name
        self.dir = T.tempdir(tag)
        self.data = os.path.join(self.dir, 'data')
        self.run_dir = os.path.join(self.dir, 'run')
        self.mnt_dir = os.path.join(self.dir, 'mnt')
        self.views = os.path.join(self.dir, 'views')
        # The record of id ranges (cvm-launch --idmap-dir): the test's own,
        # never the host's /var/lib/cvmfs/idmap. Workspaces that must get
        # disjoint ranges share one: pass idmap_dir=other.idmap.
        self.idmap = os.path.join(self.dir, 'idmap')
        T.add_late_cleanup(self.sweep)

    def sweep(self):
        """What this workspace's launcher undoes itself, in case it was
        killed (meson's timeout SIGTERMs the test, whose cleanup SIGKILLs
        the launcher): its disk daemon, by the pid in its pid file if that
        process names this workspace, its cgroups cvmfs/NAME in every
        hierarchy, deepest first (only our CVM's processes can be there),
        and what --net private made for NAME (net_sweep)."""
        try:
            with open(os.path.join(self.run_dir, 'disk', self.name + '.pid')) as f:
                pid = int(f.read())
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                if self.name.encode() in f.read().split(b'\0'):
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        net_sweep(self.name)
        for top in cg_tops(self.name):
            if not os.path.isdir(top):
                continue
            dirs = [d for d, _, _ in os.walk(top)]
            for d in sorted(dirs, key=lambda d: -d.count('/')):
                T._rmdir_cgroup(d, True)

    def argv(self, *extra, cmd=None, image_dirs=None, **opts):
        a = [LAUNCH, '--name', self.name,
             '--image', image_dirs or image(),
             '--data', self.data, '--run-dir', self.run_dir, '--mnt-dir', self.mnt_dir,
             '--views', self.views]
        # An empty config of the test's own unless the caller gives one:
        # never the host's /etc/cvmfs/cvmfs.conf (cvm-launch passes it on
        # to the daemons it starts).
        if not {'-c', '--config'} & set(extra) and 'config' not in opts:
            a += ['-c', empty_config(self.dir)]
        opts.setdefault('idmap_dir', self.idmap)
        for k, v in opts.items():
            a += ['--' + k.replace('_', '-'), str(v)]
        a += list(extra)
        if cmd is not None:
            a += ['--'] + list(cmd)
        return a

    def launch(self, *extra, cmd=None, timeout=120, **opts):
        return T.run(self.argv(*extra, cmd=cmd, **opts), timeout=timeout)

    def sh(self, script, *extra, timeout=120, **opts):
        return self.launch(*extra, cmd=['/bin/sh', '-c', script], timeout=timeout, **opts)


NET_DIR = '/run/cvmfs/net'  # cvm-launch's leases and locks (src/launch/net.h)


def net_sweep(name):
    """What a killed launcher of --net private leaves for NAME (the next
    launch of NAME would remove it): its nft tables, its name lock, its
    unlocked lease files."""
    for fam in ('inet', 'bridge') if shutil.which('nft') else ():
        subprocess.run(['nft', 'delete', 'table', fam, 'cvmfs-' + name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paths = [os.path.join(NET_DIR, name + '.lock')]
    if os.path.isdir(NET_DIR):
        paths += [os.path.join(NET_DIR, d, f) for d in os.listdir(NET_DIR)
                  if os.path.isdir(os.path.join(NET_DIR, d))
                  for f in os.listdir(os.path.join(NET_DIR, d))]
    for path in paths:
        try:
            with open(path, 'r+') as f:
                if not path.endswith('.lock') and f.read().strip() != name:
                    continue
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
        except OSError:
            pass


def leftovers(name):
    """What a finished launch left behind: mounts, cgroups, processes."""
    left = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            if name in line:
                left.append('mount: ' + line.split()[4])
    for p in cg_tops(name):
        parent = os.path.dirname(p)
        if os.path.exists(p):
            left.append('cgroup: ' + p)
        elif os.path.isdir(parent) and not any(e.is_dir() for e in os.scandir(parent)):
            left.append('cgroup parent left empty: ' + parent)
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode('latin-1')
        except OSError:
            continue
        if name in cmd and int(pid) != os.getpid():
            left.append('process %s: %s' % (pid, cmd.strip()))
    return left


def check_clean(label, name):
    # A stopping daemon may need a moment to go: 5 s, a bound.
    T.wait_for(lambda: not leftovers(name), 5, None, 0.1)
    T.R.eq(label + ': nothing left behind', leftovers(name), [])


def descendants(pid):
    """[(pid, comm)] of every process below pid (through PID namespaces:
    the host's view of /proc/PID/task/*/children)."""
    res, todo = [], [pid]
    while todo:
        cur = todo.pop()
        try:
            tasks = os.listdir('/proc/%d/task' % cur)
        except OSError:
            continue
        for t in tasks:
            try:
                with open('/proc/%d/task/%s/children' % (cur, t)) as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            for k in kids:
                try:
                    with open('/proc/%d/comm' % k) as f:
                        res.append((k, f.read().strip()))
                except OSError:
                    continue
                todo.append(k)
    return res


def wait_descendant(pid, comm, timeout=30):
    """The pid of a process named comm below pid (the CVM's init or its
    program is up), polled for up to timeout * SLOW seconds; 0 if none."""
    found = T.wait_for(lambda: [k for k, c in descendants(pid) if c == comm],
                       timeout * SLOW, '%s running below %d' % (comm, pid), 0.05)
    return found[0] if found else 0


def listening(pid, port):
    """Whether a TCP socket listens on port in pid's network namespace."""
    want = ':%04X' % port
    for name in ('tcp', 'tcp6'):
        try:
            with open('/proc/%d/net/%s' % (pid, name)) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == '0A':
                        return True
        except OSError:
            pass
    return False


def kill_group(p, sig=signal.SIGTERM):
    try:
        os.kill(p.pid, sig)
    except OSError:
        pass


# A Debian bookworm rootfs with systemd (debootstrap, cached between runs):
# `debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus
# bookworm` took 55 s here (241 MB). Without debootstrap or the mirror the
# caller's test exits 77.
CACHE = os.environ.get('CVMFS_TEST_CACHE') or '/var/tmp/cvmfs-test-cache'
ROOTFS = os.path.join(CACHE, 'bookworm-systemd')
MIRROR = os.environ.get('CVMFS_TEST_MIRROR') or 'http://deb.debian.org/debian'


def systemd_rootfs():
    """The cached rootfs; built (under a lock) if missing. Complete once the
    rename from ROOTFS.tmp is done."""
    if os.path.isfile(os.path.join(ROOTFS, 'lib/systemd/systemd')):
        return ROOTFS
    if not shutil.which('debootstrap'):
        T.skip('debootstrap is not installed (apt-get install debootstrap)')
    os.makedirs(CACHE, exist_ok=True)
    with open(ROOTFS + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(ROOTFS, 'lib/systemd/systemd')):
            return ROOTFS
        tmp = ROOTFS + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.time()
        p = subprocess.run(['debootstrap', '--variant=minbase',
                            '--include=systemd,systemd-sysv,dbus', 'bookworm', tmp, MIRROR],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=1200)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            T.skip('debootstrap bookworm failed (no network to %s?): %s'
                   % (MIRROR, p.stdout.strip().splitlines()[-1:] or ''))
        os.rename(tmp, ROOTFS)
        print('built %s in %.0f s' % (ROOTFS, time.time() - t0), file=sys.stderr, flush=True)
    return ROOTFS


# ---------------------------------------------------------------- volume
# The workspace volume (issue 14, cvm-launch --volume): every Workspace
# keeps its volume file (NAME.img, NAME = cvmfs-test-...) in its own temp
# dir, never in /var/lib/cvmfs/volumes. CVMFS_TEST_VOLUME=loop|none runs a
# test in that mode (meson registers some tests in both); unset, the
# launcher's default applies.
VOLUME = os.environ.get('CVMFS_TEST_VOLUME') or None
_argv_plain = Workspace.argv


def _argv_volume(self, *extra, **opts):
    opts.setdefault('volume_dir', os.path.join(self.dir, 'volumes'))
    if VOLUME:
        opts.setdefault('volume', VOLUME)
    return _argv_plain(self, *extra, **opts)


Workspace.argv = _argv_volume


def loop_usable():
    """'' if loop volumes work here, else the reason (for a 77)."""
    try:
        fd = os.open('/dev/loop-control', os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return '/dev/loop-control: %s' % e.strerror
    try:
        fcntl.ioctl(fd, 0x4C82)  # LOOP_CTL_GET_FREE
    except OSError as e:
        return 'LOOP_CTL_GET_FREE: %s' % e.strerror
    finally:
        os.close(fd)
    if not shutil.which('mkfs.ext4', path='/usr/sbin:/sbin:/usr/bin:/bin'):
        return 'mkfs.ext4 is not installed (e2fsprogs)'
    return ''


def require_loop():
    reason = loop_usable()
    if reason:
        T.skip('no loop volume here: ' + reason)


# cvm-launch's default where loop devices work (src/launch/volume.c).
LAUNCHER_DEFAULT_VOLUME = 'loop'


def volume_mode():
    """The mode a Workspace's launches run in: CVMFS_TEST_VOLUME, else the
    launcher's default (none where loop devices do not work)."""
    if VOLUME:
        return VOLUME
    return 'none' if loop_usable() else LAUNCHER_DEFAULT_VOLUME


def host_path(w, path):
    """Where the CVM's PATH (absolute) lies on the host while its disk
    runs: in a lane's directory on the volume (DATA/lanes/home for /home
    with a volume), else in DATA/upper."""
    if volume_mode() != 'none':
        for lane in ('/home', '/var/lib/docker'):
            if path == lane or path.startswith(lane + '/'):
                return os.path.join(w.data, 'lanes', lane[1:].replace('/', '-'),
                                    path[len(lane) + 1:])
    return os.path.join(w.data, 'upper', path.lstrip('/'))


# The "outside" for --net private tests, with no traffic leaving this
# machine: a network namespace of the test's own behind a veth and a host
# route, like any network beyond the host (a CVM's packets to it are
# forwarded and NATed, never delivered to the host), serving TCP on
# OUT_ADDR:8000 with "outside from PEER".
OUTSIDE_SERVE = r'''
import signal, socket, sys
# A service stops on SIGTERM (as a CVM's PID 1 it would ignore it, and
# the launcher's stop would wait its --stop-timeout, 30 s, for nothing).
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print('listening', flush=True)
while True:
    c, a = s.accept(); c.sendall(('%s from %s\n' % (sys.argv[3], a[0])).encode()); c.close()
'''


def outside():
    """(OUT_HOST, OUT_ADDR): the host's end and the server's address,
    198.18.N.0/24 (a benchmark range no host uses). Removed at cleanup."""
    n = 100 + os.getpid() % 100
    ns, veth = 'cvmfs-test-%d-out' % os.getpid(), 'cvo%d' % (os.getpid() % 100000)
    host, addr = '198.18.%d.1' % n, '198.18.%d.2' % n

    def sh(cmd):
        p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if p.returncode != 0:
            T.fatal('%s: %s' % (cmd, p.stdout.strip()))
    T.add_late_cleanup(lambda: subprocess.run('ip netns del %s; ip link del %s' % (ns, veth),
                                              shell=True, stderr=subprocess.DEVNULL))
    sh('ip netns add %s' % ns)
    sh('ip link add %s type veth peer name eth0 netns %s' % (veth, ns))
    sh('ip addr add %s/24 dev %s && ip link set %s up' % (host, veth, veth))
    sh('ip -n %s addr add %s/24 dev eth0 && ip -n %s link set eth0 up && ip -n %s link set lo up'
       ' && ip -n %s route add default via %s' % (ns, addr, ns, ns, ns, host))
    srv = T.popen(['ip', 'netns', 'exec', ns, 'python3', '-c', OUTSIDE_SERVE, '0.0.0.0', '8000',
                   'outside'], stdout=subprocess.PIPE)
    srv.stdout.readline()
    return host, addr
