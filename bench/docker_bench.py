#!/usr/bin/env python3
"""Docker inside a CVM against Docker on the host, side by side in one run.

Usage (root): bench/docker_bench.py [BUILD_DIR] [--runs N] [--builds N]
                 [--files N] [--kib N] [--no-diag] [--no-doc] [--fuse-trace]
                 [--userns]
(bench/docker-bench.sh is the entry; BUILD_DIR defaults to build.)

Two dockerds of the same version (Debian bookworm's docker.io), both with
overlay2 (unless --userns, below) and a managed containerd, run the same commands through the same
timer (bench files below, run with `nsenter -a` in the CVM and directly on
the host):

  inside  dockerd under docker-init as PID 1 of a CVM (cvm-launch
          --no-userns --unsafe-host-root-caps --caps all --memory 4G
          --cpus 2 --disk 8G, its own network namespace), /var/lib/docker
          on the workspace disk (cvmfsd disk, FUSE), as
          tests/docker/dockertest.CVM starts it. Without a user namespace,
          the documented insecure mode: in the default mode the kernel
          refuses overlay2 and Docker inside runs on fuse-overlayfs, a
          second FUSE file system over the disk, which would measure
          fuse-overlayfs as much as the disk (doc/docker.md). --userns
          measures that default mode all the same (cvm-launch's defaults:
          user namespace, fuse-overlayfs); the storage line of the results
          says which driver each side ran;
  host    the host's dockerd (installed with apt if missing, no service
          started) run privately: `unshare --net --mount --fork`, lo up, its
          --data-root, --exec-root (a tmpfs in its mount namespace),
          --pidfile, -H unix://SOCK and --cgroup-parent all named after one
          fresh cvmfs-test-dbhost-* directory, a private /etc/docker bound
          over the host's in its mount namespace.

Both sides keep their data on one fresh ext4 (DOCKER_BENCH_FS=loop, the
default): a sparse 32 GiB file in /var/tmp/cvmfs-test-dbfs-*, made with
mkfs.ext4 and loop-mounted, holding the host dockerd's directory and the
CVM's DATA; DOCKER_BENCH_FS=host puts them on /var/tmp and the test
helpers' temp dir instead, as before 2026-11-28.

Measured: `docker run --rm IMG true` (median and p90 of --runs, default 20,
after one warm-up) and `docker build --no-cache` of a Dockerfile whose four
RUN steps write 20,000 files of 10 KiB (200 MiB; median of --builds,
default 3, host and inside alternating), IMG being the `docker import` of
tests/launch's image tarball that dockertest.test_layer() makes. Then a
breakdown (unless --no-diag): dockerd start, docker import, a container's
create/start/rm, `docker run --network none`, a bare overlayfs mount+umount
on the root file system, one RUN step's files (5,000) written without
Docker and in a container, its commit, rm, rmi; the CPU the CVM's disk
daemon used meanwhile. --fuse-trace adds the FUSE requests per operation
inside (strace of the disk daemon).

Prints a markdown table and, unless --no-doc, puts it with the machine
facts and the exact commands into doc/bench-docker.md between its
`docker-bench results` markers (newest first, the last DOCKER_BENCH_KEEP=3
runs kept).

Cleanup, whatever happens (also on SIGINT/SIGTERM): the CVM through SIGTERM
to its launcher (which removes its cgroups, disk and views; checked like
dockertest.CVM.stop), the host dockerd by its pid (SIGTERM, wait, SIGKILL;
then whatever it started that is still alive, by pid and start time), what
is still mounted under its directory (umount -l), the cgroups named after
it, the directory. Nothing else is touched (no pkill, no broad names).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'doc', 'bench-docker.md')
BEGIN = '<!-- docker-bench results: begin -->'
END = '<!-- docker-bench results: end -->'
RUN_MARK = '<!-- docker-bench run -->'
TARGET = 1.5
HOST_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'   # Debian's docker, not /usr/local/bin
PY = '/usr/bin/python3' if os.access('/usr/bin/python3', os.X_OK) else sys.executable
BENCH_IN = '/root/cvmfs-test/bench'            # the bench files, seen inside
BUILT = 'cvmfs-bench-built'
GENIMG = 'cvmfs-bench-gen'

# ---------------------------------------------------------------- bench files

# Writes N files of KIB KiB under DIR, 500 per subdirectory (one random block,
# the same in every file: what is measured is the file system, not urandom).
GEN_PY = r'''import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blk = os.urandom(kib * 1024)
sub = None
for i in range(n):
    if i % 500 == 0:
        sub = os.path.join(d, '%03d' % (i // 500))
        os.makedirs(sub)
    with open(os.path.join(sub, 'f%05d' % i), 'wb') as f:
        f.write(blk)
'''

# The timer, run by the same python3 version on both sides: a JSON spec of
# shell steps, each timed with time.monotonic around `sh -c`; '@NAME@' in a
# step is replaced by the last line of step NAME's output of the same round.
# setup/before/after/teardown run untimed. Prints one `RESULT {json}` line.
TIMER_PY = r'''import json, subprocess, sys, time
spec = json.loads(sys.argv[1])
def sh(cmd):
    p = subprocess.run(['/bin/sh', '-c', cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print('FAILED (rc %d): %s\n%s' % (p.returncode, cmd, p.stdout[-3000:]), flush=True)
        sys.exit(1)
    return p.stdout.strip()
res = {s['name']: [] for s in spec['steps']}
if spec.get('setup'):
    sh(spec['setup'])
warm = spec.get('warmup', 0)
for i in range(warm + spec['runs']):
    if spec.get('before'):
        sh(spec['before'])
    vals = {}
    for s in spec['steps']:
        cmd = s['cmd']
        for k, v in vals.items():
            cmd = cmd.replace('@%s@' % k, v)
        t0 = time.monotonic()
        out = sh(cmd)
        dt = time.monotonic() - t0
        vals[s['name']] = out.splitlines()[-1] if out else ''
        if i >= warm:
            res[s['name']].append(dt)
    if spec.get('after'):
        sh(spec['after'])
if spec.get('teardown'):
    sh(spec['teardown'])
print('RESULT ' + json.dumps(res), flush=True)
'''


def dockerfile(img, files, steps, kib):
    per = files // steps
    lines = ['FROM %s' % img, 'COPY gen.py /gen.py']
    lines += ['RUN python3 /gen.py /data/%d %d %d' % (i + 1, per, kib) for i in range(steps)]
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- small helpers

def log(msg):
    print('docker-bench: %s' % msg, file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def sh_out(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def median(xs):
    return statistics.median(xs) if xs else None


def p90(xs):
    """Nearest rank: the smallest sample >= 90 % of the samples."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, -(-9 * len(s) // 10) - 1)
    return s[k]


def _proc_stat(pid):
    """(ppid, starttime) of pid, or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(')') + 2:].split()
    return int(rest[1]), int(rest[19])


def descendants(root):
    """{pid: starttime} of every live descendant of root."""
    kids = {}
    for e in os.listdir('/proc'):
        if e.isdigit():
            st = _proc_stat(int(e))
            if st:
                kids.setdefault(st[0], []).append((int(e), st[1]))
    out, todo = {}, [root]
    while todo:
        for pid, start in kids.get(todo.pop(), []):
            out[pid] = start
            todo.append(pid)
    return out


def mounts_under(d):
    res = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            mp = re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if mp == d or mp.startswith(d + '/'):
                res.append(mp)
    return res


# ---------------------------------------------------------------- host docker

HOST_BINARIES = ('/usr/bin/docker', '/usr/sbin/dockerd', '/usr/bin/containerd', '/usr/sbin/runc')


def apt_lists_present():
    try:
        return any(n.endswith('_Packages') or '_Packages.' in n
                   for n in os.listdir('/var/lib/apt/lists'))
    except OSError:
        return False


def ensure_host_docker():
    """Debian's docker.io on the host, no service started (policy-rc.d)."""
    if all(os.access(b, os.X_OK) for b in HOST_BINARIES):
        return
    log('installing docker.io on the host (apt-get; no service is started)')
    policy = '/usr/sbin/policy-rc.d'
    created = False
    if not os.path.exists(policy):
        with open(policy, 'w') as f:
            f.write('#!/bin/sh\nexit 101\n')
        os.chmod(policy, 0o755)
        created = True
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    lock = ['-o', 'DPkg::Lock::Timeout=300']   # wait for a concurrent apt, as deps.sh
    try:
        cmd = ['apt-get'] + lock + ['install', '-y', '-q', '--no-install-recommends', 'docker.io']
        # A fresh machine may have no package lists yet; stale ones fail
        # the install once, then an update and a second try.
        if not apt_lists_present():
            sh_out(['apt-get'] + lock + ['update', '-q'], env=env)
        p = sh_out(cmd, env=env)
        if p.returncode != 0:
            sh_out(['apt-get'] + lock + ['update', '-q'], env=env)
            p = sh_out(cmd, env=env)
        if p.returncode != 0:
            die('apt-get install docker.io failed:\n' + p.stdout[-2000:])
    finally:
        if created:
            os.unlink(policy)
    missing = [b for b in HOST_BINARIES if not os.access(b, os.X_OK)]
    if missing:
        die('after installing docker.io, missing: %s' % ' '.join(missing))


class BenchFs:
    """A fresh ext4 for both sides' data (DOCKER_BENCH_FS=loop, the
    default): made in a sparse file and loop-mounted, so that both dockerds
    start from the same empty file system whatever the host's root ext4
    went through before (without a journal it searches recently deleted
    inodes on every create, and its create rate swung the build figure of
    both sides by 1.5x between consecutive runs here)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='cvmfs-test-dbfs-', dir='/var/tmp')
        self.img = os.path.join(self.dir, 'fs.img')
        self.mnt = os.path.join(self.dir, 'mnt')
        os.makedirs(self.mnt)
        # A user-namespaced CVM's root (--userns) must reach DATA/dev below.
        os.chmod(self.dir, 0o711)
        with open(self.img, 'wb') as f:
            f.truncate(32 << 30)
        for argv in (['mkfs.ext4', '-q', '-F', self.img], ['mount', '-o', 'loop', self.img,
                                                            self.mnt]):
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                self.remove()
                raise RuntimeError('%s: %s' % (' '.join(argv), r.stderr.strip()))
        os.chmod(self.mnt, 0o755)

    def remove(self):
        """Unmount (lazily if something still holds it) and delete."""
        notes = []
        if os.path.ismount(self.mnt):
            if subprocess.run(['umount', self.mnt], stderr=subprocess.DEVNULL).returncode:
                notes.append('%s busy at the end: umount -l' % self.mnt)
                subprocess.run(['umount', '-l', self.mnt], stderr=subprocess.DEVNULL)
        if not os.path.ismount(self.mnt):
            shutil.rmtree(self.dir, ignore_errors=True)
        return notes


class HostDocker:
    """The host's dockerd, private: own netns and mount ns, own directories."""

    def __init__(self, base='/var/tmp'):
        self.dir = tempfile.mkdtemp(prefix='cvmfs-test-dbhost-', dir=base)
        os.chmod(self.dir, 0o711)
        self.name = os.path.basename(self.dir)
        self.cgparent = '/' + self.name
        self.sock = os.path.join(self.dir, 'docker.sock')
        self.pidfile = os.path.join(self.dir, 'dockerd.pid')
        self.log = os.path.join(self.dir, 'dockerd.log')
        self.etc = os.path.join(self.dir, 'etc-docker')
        self.exec_root = os.path.join(self.dir, 'exec')
        self.data_root = os.path.join(self.dir, 'data')
        self.cli_config = os.path.join(self.dir, 'cli')
        self.scratch = os.path.join(self.dir, 'scratch')
        for d in (self.etc, self.exec_root, self.data_root, self.cli_config, self.scratch):
            os.makedirs(d)
        self.config = os.path.join(self.dir, 'daemon.json')
        with open(self.config, 'w') as f:
            f.write('{}\n')
        self.env = {'PATH': HOST_PATH, 'HOME': '/root', 'DOCKER_HOST': 'unix://' + self.sock,
                    'DOCKER_CONFIG': self.cli_config}
        self.dockerd_argv = ['dockerd', '--config-file', self.config, '--data-root',
                             self.data_root, '--exec-root', self.exec_root, '--pidfile',
                             self.pidfile, '-H', 'unix://' + self.sock, '--cgroup-parent',
                             self.cgparent, '--log-level', 'warn']
        # In its mount namespace: a tmpfs /run (as in the CVM; containerd's
        # shim sockets and dockerd's plugin directory are hard-wired there)
        # and the exec root on a tmpfs; /etc/docker (key.json) private.
        inner = ('set -e; ip link set lo up; '
                 'mount -t tmpfs -o mode=0755 cvmfs-test-run /run; '
                 'mount -t tmpfs -o mode=0711 cvmfs-test-exec %s; '
                 'if [ -d /etc/docker ]; then mount --bind %s /etc/docker; fi; exec %s'
                 % (shlex.quote(self.exec_root), shlex.quote(self.etc),
                    ' '.join(shlex.quote(a) for a in self.dockerd_argv)))
        self.argv = ['unshare', '--net', '--mount', '--propagation', 'private', '--fork', '--',
                     '/bin/sh', '-c', inner]
        self.p = None
        self.stopped = False

    def start(self):
        with open(self.log, 'wb') as out:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, env={'PATH': HOST_PATH},
                                      start_new_session=True)

    def log_tail(self, n=20):
        try:
            with open(self.log, errors='replace') as f:
                return '\n'.join(f.read().splitlines()[-n:])
        except OSError:
            return ''

    def docker(self, *args, timeout=120):
        return sh_out(['docker'] + list(args), env=self.env, timeout=timeout)

    def wait(self, within=120):
        t0 = time.time()
        while time.time() - t0 < within:
            if self.p.poll() is not None:
                break
            if self.docker('info', timeout=30).returncode == 0:
                return time.time() - t0
            time.sleep(0.1)
        raise RuntimeError('host dockerd does not answer:\n' + self.log_tail())

    def dockerd_pid(self):
        """dockerd's pid from its pidfile, if it is our unshare's child."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        st = _proc_stat(pid)
        return pid if st and self.p and st[0] == self.p.pid else None

    def stop(self):
        if self.stopped:
            return []
        self.stopped = True
        notes = []
        if self.p is not None:
            kids = descendants(self.p.pid)
            dpid = self.dockerd_pid()
            if self.p.poll() is None:
                if dpid:
                    os.kill(dpid, signal.SIGTERM)
                else:  # dockerd never wrote its pidfile: end what we started
                    for pid in kids:
                        try:
                            os.kill(pid, signal.SIGTERM)
                        except OSError:
                            pass
                try:
                    self.p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    notes.append('host dockerd ignored SIGTERM for 30 s: SIGKILL')
                    if dpid:
                        try:
                            os.kill(dpid, signal.SIGKILL)
                        except OSError:
                            pass
                    try:
                        self.p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        self.p.kill()
                        self.p.wait()
            # What dockerd started and left (by pid and start time: ours).
            for _ in range(50):
                left = [pid for pid, start in kids.items()
                        if (_proc_stat(pid) or (0, None))[1] == start]
                if not left:
                    break
                time.sleep(0.1)
            for pid in left:
                notes.append('host dockerd left pid %d: SIGKILL' % pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for m in sorted(mounts_under(self.dir), key=len, reverse=True):
            notes.append('left mounted: %s (umount -l)' % m)
            subprocess.run(['umount', '-l', m], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        notes += self._remove_cgroups()
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.dir):
            notes.append('could not remove %s' % self.dir)
        return notes

    def _remove_cgroups(self):
        """The cgroups named after our directory (--cgroup-parent), deepest
        first; a process still in one can only be a container of ours."""
        notes = []
        root = '/sys/fs/cgroup'
        for h in sorted(os.listdir(root)):
            top = os.path.join(root, h, self.name)
            if os.path.islink(os.path.join(root, h)) or not os.path.isdir(top):
                continue
            dirs = [dp for dp, _, _ in os.walk(top)]
            for d in sorted(dirs, key=len, reverse=True):
                for _ in range(50):
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        try:
                            with open(os.path.join(d, 'cgroup.procs')) as f:
                                for line in f:
                                    os.kill(int(line), signal.SIGKILL)
                        except (OSError, ValueError):
                            pass
                        time.sleep(0.1)
                if os.path.exists(d):
                    notes.append('could not remove cgroup %s' % d)
        return notes


# ---------------------------------------------------------------- the two sides

class Side:
    """Where the timer and docker commands run: 'host' or 'inside'."""

    def __init__(self, label, runner, paths, cpu_probe=None):
        self.label, self.runner, self.paths, self.cpu_probe = label, runner, paths, cpu_probe

    def time(self, spec, timeout=900, private_mounts=False):
        """{step: [seconds...]}, plus '_disk_cpu': [CPU seconds the disk
        daemon used meanwhile] inside."""
        c0 = self.cpu_probe() if self.cpu_probe else None
        rc, out = self.runner(self.paths['timer'], json.dumps(spec), timeout, private_mounts)
        c1 = self.cpu_probe() if self.cpu_probe else None
        lines = [l for l in out.splitlines() if l.startswith('RESULT ')]
        if rc != 0 or not lines:
            raise RuntimeError('%s: timer failed (rc %s): %s\n%s'
                               % (self.label, rc, json.dumps(spec), out[-3000:]))
        r = json.loads(lines[-1][7:])
        if c0 is not None and c1 is not None:
            r['_disk_cpu'] = [c1 - c0]
        return r

    def sh(self, script, timeout=300):
        return self.runner(None, script, timeout, False)


def host_runner(hd):
    def run(timer, arg, timeout, private_mounts):
        if timer:
            argv = [PY, timer, arg]
            if private_mounts:
                argv = ['unshare', '--mount', '--propagation', 'private', '--'] + argv
        else:
            argv = ['/bin/sh', '-c', arg]
        try:
            p = sh_out(argv, env=hd.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, 'timeout after %d s' % timeout
        return p.returncode, p.stdout.strip()
    return run


def cpu_seconds(pid):
    """utime + stime of pid (and its reaped children) in seconds."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except OSError:
        return None
    v = data[data.rindex(')') + 2:].split()
    return sum(int(x) for x in v[11:15]) / os.sysconf('SC_CLK_TCK')


def cvm_runner(cvm):
    def run(timer, arg, timeout, private_mounts):
        # Mounts inside are in the CVM's own mount namespace anyway.
        script = 'python3 %s %s' % (timer, shlex.quote(arg)) if timer else arg
        return cvm.sh(script, timeout=timeout)
    return run


# ---------------------------------------------------------------- measurements

def measure(sides, args, log_):
    """Every measurement alternates host and inside round by round (the
    order flipping each round), so that load from elsewhere on the machine
    falls on both alike."""
    res = {'host': {}, 'inside': {}}
    img = 'cvmfs-test-img'
    files, kib = args.files // 4, args.kib   # the breakdown: one RUN step's worth

    def alternate(key, make_spec, rounds=1, warmup=0, **kw):
        for lab in ('host', 'inside'):
            res[lab][key] = {}
        for i in range(rounds):
            order = ('host', 'inside') if i % 2 == 0 else ('inside', 'host')
            for lab in order:
                s = sides[lab]
                if rounds > 1 and i % 5 == 0 or rounds == 1:
                    log_('%s: %s %d/%d' % (lab, key, i + 1, rounds))
                spec = make_spec(s)
                spec['runs'] = 1
                spec['warmup'] = warmup if i == 0 else 0
                for k, v in s.time(spec, **kw).items():
                    res[lab][key].setdefault(k, []).extend(v)

    # docker import of the same rootfs tarball (the base of everything).
    alternate('import', lambda s: {'steps': [
        {'name': 'import', 'cmd': 'docker import %s %s' % (s.paths['tar'], img)}]})
    # The generator image for the breakdown (one COPY over the import).
    alternate('genimg', lambda s: {'steps': [
        {'name': 'build', 'cmd': 'docker build -q -t %s -f %s/Dockerfile.gen %s'
         % (GENIMG, s.paths['ctx'], s.paths['ctx'])}]})

    # 1. docker run --rm IMG true, one warm-up run first on each side.
    alternate('run', lambda s: {'steps': [
        {'name': 'run', 'cmd': 'docker run --rm %s true' % img}]}, args.runs, warmup=1)

    # 2. docker build --no-cache; each build's image is removed (timed apart)
    # and everything synced before the next.
    alternate('build', lambda s: {'before': 'sync', 'steps': [
        {'name': 'build', 'cmd': 'docker build --no-cache -q -t %s %s' % (BUILT, s.paths['ctx'])},
        {'name': 'rmi', 'cmd': 'docker rmi %s >/dev/null' % BUILT},
        {'name': 'sync', 'cmd': 'sync'}]}, args.builds)
    if not args.diag:
        return res

    # 3. Breakdown.
    alternate('life', lambda s: {'steps': [
        {'name': 'create', 'cmd': 'docker create %s true' % img},
        {'name': 'start', 'cmd': 'docker start -a @create@'},
        {'name': 'rm', 'cmd': 'docker rm @create@'}]}, args.life_runs, warmup=1)
    alternate('nonet', lambda s: {'steps': [
        {'name': 'run', 'cmd': 'docker run --rm --network none %s true' % img}]},
        args.life_runs, warmup=1)
    # A bare overlayfs over directories of the root fs (the host's ext4, the
    # CVM's FUSE disk), 2 lower layers like a container's; the host side in
    # a private mount namespace. Not in a user-namespaced CVM (--userns),
    # where the kernel refuses overlayfs on the disk (why Docker is on
    # fuse-overlayfs there).
    d = '%s/ovl'
    for lab in () if args.userns or args.volume else ('host', 'inside'):  # one timer per side
        s = sides[lab]
        o = d % s.paths['scratch']
        log_('%s: overlay mount/umount x %d' % (lab, args.mount_runs))
        res[lab]['ovl'] = s.time({
            'runs': args.mount_runs, 'warmup': 1,
            'setup': 'd=%s; rm -rf $d; mkdir -p $d/l1 $d/l2 $d/u $d/w $d/m && '
                     'echo a > $d/l1/a && echo b > $d/l2/b' % o,
            'steps': [
                {'name': 'mount', 'cmd': 'd=%s; mount -t overlay overlay -o '
                 'lowerdir=$d/l1:$d/l2,upperdir=$d/u,workdir=$d/w $d/m' % o},
                {'name': 'umount', 'cmd': 'umount %s/m' % o}],
            'teardown': 'rm -rf %s' % o}, private_mounts=True)
    alternate('raw', lambda s: {'before': 'sync', 'steps': [
        {'name': 'write', 'cmd': 'python3 %s %s/raw %d %d'
         % (s.paths['gen'], s.paths['scratch'], files, kib)},
        {'name': 'rm', 'cmd': 'rm -rf %s/raw' % s.paths['scratch']},
        {'name': 'sync', 'cmd': 'sync'}]})
    alternate('ctr', lambda s: {'before': 'sync', 'steps': [
        {'name': 'run', 'cmd': 'docker run --name cvmfs-bench-w %s python3 /gen.py /data %d %d'
         % (GENIMG, files, kib)},
        {'name': 'commit', 'cmd': 'docker commit cvmfs-bench-w cvmfs-bench-committed'},
        {'name': 'rm', 'cmd': 'docker rm cvmfs-bench-w'},
        {'name': 'rmi', 'cmd': 'docker rmi cvmfs-bench-committed >/dev/null'},
        {'name': 'sync', 'cmd': 'sync'}]})
    return res


# ---------------------------------------------------------------- report

def fmt(v, unit):
    if v is None:
        return 'n/a'
    if unit == 'ms':
        return '%.1f ms' % (v * 1e3)
    return '%.2f s' % v


def row(label, h, i, unit='s', target=False):
    ratio = (i / h) if (h and i is not None) else None
    cells = [label, fmt(h, unit), fmt(i, unit), ('%.2fx' % ratio) if ratio else 'n/a']
    if target:
        cells.append('n/a' if ratio is None else ('met' if ratio <= TARGET else 'MISSED'))
    return '| ' + ' | '.join(cells) + ' |'


def tables(res, args, ready):
    H, I = res['host'], res['inside']
    main = ['| test | host | inside | ratio inside/host | target <= %.1fx |' % TARGET,
            '|---|---:|---:|---:|---|']
    main.append(row('`docker run --rm IMG true`, median of %d' % args.runs,
                    median(H['run']['run']), median(I['run']['run']), 'ms', True))
    main.append(row('`docker run --rm IMG true`, p90 of %d' % args.runs,
                    p90(H['run']['run']), p90(I['run']['run']), 'ms', True))
    main.append(row('`docker build --no-cache`, %d x %d KiB in 4 RUN steps, median of %d'
                    % (args.files, args.kib, args.builds),
                    median(H['build']['build']), median(I['build']['build']), 's', True))
    diag = ['| breakdown | host | inside | ratio inside/host |', '|---|---:|---:|---:|']
    diag.append(row('dockerd start until `docker info` answers (once)', ready['host'],
                    ready['inside']))
    diag.append(row('`docker import` of the image tarball (once)', H['import']['import'][0],
                    I['import']['import'][0]))
    diag.append(row('`docker rmi` of the built image, median', median(H['build']['rmi']),
                    median(I['build']['rmi'])))
    diag.append(row('`sync` after that rmi, median', median(H['build']['sync']),
                    median(I['build']['sync'])))
    if 'life' in H:
        n = len(H['life']['create'])
        for k, what in (('create', '`docker create IMG true`'),
                        ('start', '`docker start -a` (runc, `true`, exit)'),
                        ('rm', '`docker rm`')):
            diag.append(row('%s, median of %d' % (what, n), median(H['life'][k]),
                            median(I['life'][k]), 'ms'))
        n = len(H['nonet']['run'])
        diag.append(row('`docker run --rm --network none IMG true`, median of %d' % n,
                        median(H['nonet']['run']), median(I['nonet']['run']), 'ms'))
        if 'ovl' in H:
            n = len(H['ovl']['mount'])
            diag.append(row('overlayfs mount, 2 lowers, on the root fs, median of %d' % n,
                            median(H['ovl']['mount']), median(I['ovl']['mount']), 'ms'))
            diag.append(row('overlayfs umount, median of %d' % n, median(H['ovl']['umount']),
                            median(I['ovl']['umount']), 'ms'))
        w = '%d x %d KiB' % (args.files // 4, args.kib)
        diag.append(row('write %s on the root fs, no Docker (python3; once)' % w,
                        H['raw']['write'][0], I['raw']['write'][0]))
        diag.append(row('`rm -rf` of those files', H['raw']['rm'][0], I['raw']['rm'][0]))
        diag.append(row('write %s in a container (`docker run`, the driver\'s upper; once)' % w,
                        H['ctr']['run'][0], I['ctr']['run'][0]))
        diag.append(row('`docker commit` of that container (layer tar + untar; once)',
                        H['ctr']['commit'][0], I['ctr']['commit'][0]))
        diag.append(row('`docker rm` of that container', H['ctr']['rm'][0], I['ctr']['rm'][0]))
        diag.append(row('`docker rmi` of the committed image', H['ctr']['rmi'][0],
                        I['ctr']['rmi'][0]))

    def cpu(key):
        v = I.get(key, {}).get('_disk_cpu')
        return ('%.2f s' % median(v)) if v else 'n/a'
    diag.append('| CPU (user+sys) of the CVM\'s cvmfsd disk daemon: per `docker run` round '
                '%s; per build round (build+rmi+sync) %s%s | | | |'
                % (cpu('run'), cpu('build'),
                   ('; container write+commit+rm+rmi %s; raw write+rm %s'
                    % (cpu('ctr'), cpu('raw'))) if 'ctr' in I else ''))
    return main, diag


FUSE_OPS = {1: 'LOOKUP', 2: 'FORGET', 3: 'GETATTR', 4: 'SETATTR', 5: 'READLINK', 6: 'SYMLINK',
            8: 'MKNOD', 9: 'MKDIR', 10: 'UNLINK', 11: 'RMDIR', 12: 'RENAME', 13: 'LINK',
            14: 'OPEN', 15: 'READ', 16: 'WRITE', 17: 'STATFS', 18: 'RELEASE', 20: 'FSYNC',
            21: 'SETXATTR', 22: 'GETXATTR', 23: 'LISTXATTR', 24: 'REMOVEXATTR', 25: 'FLUSH',
            27: 'OPENDIR', 28: 'READDIR', 29: 'RELEASEDIR', 30: 'FSYNCDIR', 35: 'CREATE',
            36: 'INTERRUPT', 39: 'IOCTL', 42: 'BATCH_FORGET', 43: 'FALLOCATE',
            44: 'READDIRPLUS', 45: 'RENAME2', 46: 'LSEEK', 51: 'TMPFILE'}


def fuse_trace(cvm, disk_pid, scratch, n, log_):
    """FUSE requests the CVM's disk daemon receives per operation: strace
    of its reads of /dev/fuse (the opcode is the second word of each
    request header). Slows the daemon down: counts only, no timing."""
    if not shutil.which('strace'):
        return ['(--fuse-trace: strace is not installed)']
    img = 'cvmfs-test-img'
    cases = [
        ('`docker run --rm IMG true`', 1, 'docker run --rm %s true' % img),
        ('`docker run --rm --network none IMG true`', 1,
         'docker run --rm --network none %s true' % img),
        ('write %d files of 10 KiB on the root fs, python3, per file' % n, n,
         'python3 %s/gen.py %s/trace %d 10' % (BENCH_IN, scratch, n)),
        ('the same in a container (`docker run`), per file', n,
         'docker run --name cvmfs-bench-t %s python3 /gen.py /data %d 10' % (GENIMG, n)),
        ('`docker commit` of it, per file', n, 'docker commit cvmfs-bench-t cvmfs-bench-tc'),
        ('`docker rm` of the container, per file', n, 'docker rm cvmfs-bench-t'),
        ('`docker rmi` of the committed image, per file', n, 'docker rmi cvmfs-bench-tc'),
    ]
    out = ['| operation (inside) | FUSE requests | the most frequent |', '|---|---:|---|']
    tmp = tempfile.mkdtemp(prefix='cvmfs-test-ftrace-', dir='/var/tmp')
    try:
        for label, per, script in cases:
            log_('fuse trace: %s' % label)
            path = os.path.join(tmp, 'st')
            st = subprocess.Popen(['strace', '-f', '-qq', '-xx', '-s', '16', '-e', 'trace=read',
                                   '-p', str(disk_pid), '-o', path],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            rc, o = cvm.sh(script, timeout=900)
            time.sleep(0.5)
            st.terminate()
            st.wait()
            counts = {}
            with open(path, errors='replace') as f:
                for line in f:
                    m = re.search(r'= (\d+)$', line.strip())
                    h = re.search(r'"((?:\\x[0-9a-f]{2}){8,})', line)
                    if not h or not m or int(m.group(1)) < 40:
                        continue
                    b = bytes(int(x, 16) for x in h.group(1).split('\\x')[1:9])
                    op = int.from_bytes(b[4:8], 'little')
                    counts[FUSE_OPS.get(op, str(op))] = counts.get(FUSE_OPS.get(op, str(op)), 0) + 1
            os.unlink(path)
            if rc != 0:
                out.append('| %s | failed: %s | |' % (label, o[-200:].replace('\n', ' ')))
                continue
            top = sorted(counts.items(), key=lambda kv: -kv[1])
            fmt_ = (lambda v: '%d' % v) if per == 1 else (lambda v: '%.1f' % (v / per))
            out.append('| %s | %s | %s |' % (label, fmt_(sum(counts.values())),
                                              ', '.join('%s %s' % (k, fmt_(v))
                                                        for k, v in top[:8])))
        cvm.sh('rm -rf %s/trace' % scratch)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def facts(hd, cvm_side):
    f = {}
    f['date'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    f['nproc'] = sh_out(['nproc']).stdout.strip()
    f['kernel'] = platform.release()
    try:  # a tree from a tarball, or no git on the machine: no commit to name
        g = sh_out(['git', '-C', ROOT, 'log', '-1', '--format=%h %cs'])
        f['commit'] = g.stdout.strip() if g.returncode == 0 else '?'
    except OSError:
        f['commit'] = '?'
    cpu = ''
    try:
        with open('/proc/cpuinfo') as fh:
            cpu = next((l.split(':', 1)[1].strip() for l in fh if l.startswith('model name')), '')
    except OSError:
        pass
    f['cpu'] = cpu
    try:
        with open('/proc/meminfo') as fh:
            f['mem'] = '%.1f GiB' % (int(fh.readline().split()[1]) / (1 << 20))
    except OSError:
        f['mem'] = '?'
    fmt_ = '{{.Server.Version}} (client {{.Client.Version}})'
    p = hd.docker('version', '--format', fmt_)
    f['docker_host'] = p.stdout.strip() if p.returncode == 0 else '?'
    rc, out = cvm_side.sh("docker version --format '%s'" % fmt_)
    f['docker_inside'] = out.strip() if rc == 0 else '?'
    p = hd.docker('info', '--format', '{{.Driver}} on {{.DriverStatus}}')
    f['driver_host'] = p.stdout.strip()
    rc, out = cvm_side.sh("docker info --format '{{.Driver}} on {{.DriverStatus}}'")
    f['driver_inside'] = out.strip()
    f['fs_host'] = sh_out(['stat', '-f', '-c', '%T', hd.data_root]).stdout.strip()
    rc, out = cvm_side.sh('stat -f -c %T /var/lib/docker')
    f['fs_inside'] = out.strip()
    return f


def cfs_throttling(name):
    """The CVM's CFS bandwidth statistics (its cgroup cvmfs/NAME), as text."""
    for d in ('cpu', 'cpu,cpuacct', ''):
        path = os.path.join('/sys/fs/cgroup', d, 'cvmfs', name, 'cpu.stat')
        try:
            with open(path) as f:
                kv = dict(l.split() for l in f if len(l.split()) == 2)
        except OSError:
            continue
        if 'throttled_time' in kv:   # v1, ns
            return '%s of %s periods throttled, %.2f s in all' % (
                kv.get('nr_throttled'), kv.get('nr_periods'), int(kv['throttled_time']) / 1e9)
        if 'throttled_usec' in kv:   # v2
            return '%s of %s periods throttled, %.2f s in all' % (
                kv.get('nr_throttled'), kv.get('nr_periods'), int(kv['throttled_usec']) / 1e6)
    return 'n/a'


def loadavg():
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return '?'


def run_block(f, main, diag, res, args, cmds, notes, trace=None):
    H, I = res['host'], res['inside']
    b = [RUN_MARK, '### Run of %s' % f['date'], '',
         '- machine: nproc %s, %s, %s RAM, kernel %s; load average %s before, %s after'
         % (f['nproc'], f['cpu'], f['mem'], f['kernel'], f['load_before'], f['load_after']),
         '- cvmfs: commit %s, binaries of %s' % (f['commit'], f['build']),
         '- docker: host %s, inside %s' % (f['docker_host'], f['docker_inside']),
         '- storage: host %s (data-root on %s); inside %s (/var/lib/docker on %s)'
         % (f['driver_host'], f['fs_host'], f['driver_inside'], f['fs_inside']),
         '- CFS bandwidth control of the CVM (--cpus 2) over the whole run: %s' % f['throttle'],
         '- whole run: %.0f s' % f['seconds'], '']
    b += main + [''] + diag + ['']
    if trace:
        b += trace + ['']
    b.append('Samples (s): run host %s; run inside %s; build host %s; build inside %s.'
             % (' '.join('%.3f' % x for x in H['run']['run']),
                ' '.join('%.3f' % x for x in I['run']['run']),
                ' '.join('%.2f' % x for x in H['build']['build']),
                ' '.join('%.2f' % x for x in I['build']['build'])))
    b += ['', 'Commands of this run:', '', '```'] + cmds + ['```']
    if notes:
        b += ['', 'Cleanup notes: ' + '; '.join(notes)]
    b.append('')
    return '\n'.join(b)


def update_doc(block, keep):
    try:
        with open(DOC) as f:
            text = f.read()
    except FileNotFoundError:
        text = '# Docker in a CVM against Docker on the host\n\n%s\n%s\n' % (BEGIN, END)
    if BEGIN not in text or END not in text:
        text = text.rstrip('\n') + '\n\n%s\n%s\n' % (BEGIN, END)
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    runs = [r.strip('\n') for r in body.split(RUN_MARK) if r.strip()]
    runs = [block.strip('\n').replace(RUN_MARK, '').strip('\n')] + runs
    runs = runs[:keep]
    body = '\n' + ''.join('%s\n%s\n\n' % (RUN_MARK, r) for r in runs)
    with open(DOC, 'w') as f:
        f.write(head + BEGIN + body + END + tail)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build', nargs='?', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--runs', type=int, default=int(os.environ.get('DOCKER_BENCH_RUNS', 20)))
    ap.add_argument('--builds', type=int,
                    default=int(os.environ.get('DOCKER_BENCH_BUILDS', 3)))
    ap.add_argument('--files', type=int, default=int(os.environ.get('DOCKER_BENCH_FILES', 20000)))
    ap.add_argument('--kib', type=int, default=int(os.environ.get('DOCKER_BENCH_KIB', 10)))
    ap.add_argument('--life-runs', type=int, default=10)
    ap.add_argument('--mount-runs', type=int, default=50)
    ap.add_argument('--no-diag', dest='diag', action='store_false')
    ap.add_argument('--no-doc', dest='doc', action='store_false')
    ap.add_argument('--fuse-trace', action='store_true',
                    help='also count the FUSE requests per operation (strace; slow)')
    ap.add_argument('--trace-files', type=int, default=1000)
    ap.add_argument('--userns', action='store_true',
                    help="the CVM in cvm-launch's default mode (user namespace: Docker on "
                    'fuse-overlayfs) instead of --no-userns --unsafe-host-root-caps (overlay2)')
    # The workspace volume (issue 14): the CVM in cvm-launch's default mode
    # with --volume loop, /var/lib/docker a lane of the volume's ext4 (no
    # FUSE on its path), Docker on overlay2. Without it the CVM runs with
    # --volume none, the FUSE-only disk measured before the volume.
    ap.add_argument('--volume', action='store_true',
                    help="the CVM in cvm-launch's default mode on a volume (--volume loop: "
                    'overlay2 on the ext4 lane /var/lib/docker)')
    args = ap.parse_args()
    if args.runs < 1 or args.builds < 1 or args.files < 4:
        die('--runs and --builds must be >= 1, --files >= 4')
    if os.geteuid() != 0:
        die('must run as root')
    build = os.path.abspath(args.build)
    for var, path in (('CVMFSD', os.path.join(build, 'src', 'cvmfsd')),
                      ('CVM_LAUNCH', os.path.join(build, 'src', 'launch', 'cvm-launch')),
                      ('CVMFS_STAT', os.path.join(build, 'src', 'stat', 'cvmfs-stat'))):
        if not os.access(path, os.X_OK):
            die('%s missing (meson setup %s %s -Dbuildtype=release && ninja -C %s)'
                % (path, build, ROOT, build))
        os.environ[var] = path
    os.environ['CVMFS_BUILD'] = build
    for tool in ('unshare', 'nsenter', 'ip', 'mount', 'umount', 'apt-get'):
        if not shutil.which(tool, path=HOST_PATH):
            die('missing tool: %s' % tool)

    sys.path.insert(0, os.path.join(ROOT, 'tests', 'docker'))
    import dockertest as DT  # noqa: E402  (imports launchtest and cvmfstest)
    T = DT.T

    t_start = time.time()
    ensure_host_docker()
    DT.require()
    state = {'cvm': None, 'hd': None, 'fs': None}
    notes = []

    def stop_all():
        cvm, hd, fs = state['cvm'], state['hd'], state['fs']
        if cvm is not None:
            state['cvm'] = None
            log('stopping the CVM (SIGTERM to cvm-launch)')
            cvm.stop()
        if hd is not None:
            state['hd'] = None
            log('stopping the host dockerd (pid file, SIGTERM)')
            notes.extend(hd.stop())
        if fs is not None:
            state['fs'] = None
            notes.extend(fs.remove())

    def on_signal(signum, frame):
        log('signal %d: cleaning up' % signum)
        try:
            stop_all()
        finally:
            T.cleanup_all()
            os._exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def progress(msg):
        log('[%4.0f s] %s' % (time.time() - t_start, msg))

    host_before = {p: os.path.exists(p) for p in
                   ('/var/lib/docker', '/run/docker', '/run/docker.sock', '/etc/docker/key.json',
                    '/run/containerd', '/var/lib/containerd')}
    fwd_before = open('/proc/sys/net/ipv4/ip_forward').read().strip()
    load_before = loadavg()

    # The bench files go into the test layer (a temp dir of the test helpers).
    layer = DT.test_layer()
    bench = os.path.join(layer, 'root', 'cvmfs-test', 'bench')
    ctx = os.path.join(bench, 'ctx')
    os.makedirs(ctx)
    for path, text in ((os.path.join(bench, 'timer.py'), TIMER_PY),
                       (os.path.join(bench, 'gen.py'), GEN_PY),
                       (os.path.join(ctx, 'gen.py'), GEN_PY),
                       (os.path.join(ctx, 'Dockerfile'),
                        dockerfile(DT.IMG, args.files, 4, args.kib)),
                       (os.path.join(ctx, 'Dockerfile.gen'),
                        'FROM %s\nCOPY gen.py /gen.py\n' % DT.IMG)):
        with open(path, 'w') as f:
            f.write(text)
    progress('image layers (cached under %s)' % DT.LT.CACHE)
    layers = DT.image_layers(layer)

    ok = False
    try:
        base = '/var/tmp'
        if os.environ.get('DOCKER_BENCH_FS', 'loop') == 'loop':
            fs = state['fs'] = BenchFs()
            base = fs.mnt
            progress('both sides on a fresh ext4: %s' % fs.mnt)
        hd = state['hd'] = HostDocker(base)
        progress('starting the host dockerd in %s' % hd.dir)
        t_host = time.time()
        hd.start()
        hd.wait()
        ready = {'host': time.time() - t_host}
        w = DT.LT.Workspace('dbench')
        if state['fs'] is not None:
            w.data = os.path.join(state['fs'].mnt, 'cvm-data')
        progress('starting the CVM %s' % w.name)
        t_cvm = time.time()
        # overlay2 inside takes host root's capabilities (see the docstring).
        mode = {} if args.userns else {'caps': 'all'}
        flags = () if args.userns else ('--no-userns', '--unsafe-host-root-caps')
        if args.volume:  # the default mode on a volume (see --volume)
            mode, flags = {'volume': 'loop'}, ()
        else:
            mode['volume'] = 'none'
        cvm = state['cvm'] = DT.CVM(w, layers, *flags, memory='4G', cpus='2', disk='8G',
                                    tag='bench', **mode)
        if not cvm.pid:
            raise RuntimeError('the CVM did not start:\n' + cvm.console())
        okc, _ = cvm.wait_docker()
        if not okc:
            raise RuntimeError('dockerd in the CVM does not answer:\n' + cvm.console())
        ready['inside'] = time.time() - t_cvm
        progress('both dockerds answer (host %.1f s, inside %.1f s after start)'
                 % (ready['host'], ready['inside']))

        host_side = Side('host', host_runner(hd), {
            'timer': os.path.join(bench, 'timer.py'), 'gen': os.path.join(bench, 'gen.py'),
            'ctx': ctx, 'tar': os.path.join(layer, 'root', 'cvmfs-test', 'img.tar'),
            'scratch': hd.scratch})
        rc, _ = cvm.sh('mkdir -p /root/cvmfs-bench-scratch')
        in_side = Side('inside', cvm_runner(cvm), {
            'timer': BENCH_IN + '/timer.py', 'gen': BENCH_IN + '/gen.py',
            'ctx': BENCH_IN + '/ctx', 'tar': '/root/cvmfs-test/img.tar',
            'scratch': '/root/cvmfs-bench-scratch'})
        disk_pidfile = os.path.join(w.run_dir, 'disk', w.name + '.pid')

        def disk_cpu():
            try:
                with open(disk_pidfile) as fh:
                    return cpu_seconds(int(fh.read().split()[0]))
            except (OSError, ValueError, IndexError):
                return None
        in_side.cpu_probe = disk_cpu
        sides = {'host': host_side, 'inside': in_side}
        res = measure(sides, args, progress)
        f = facts(hd, in_side)
        f['throttle'] = cfs_throttling(w.name)
        f['build'] = build
        trace = None
        if args.fuse_trace:
            with open(disk_pidfile) as fh:
                trace = fuse_trace(cvm, int(fh.read().split()[0]), in_side.paths['scratch'],
                                   args.trace_files, progress)
        cmds = ['# host dockerd (from %s):' % hd.dir, ' '.join(shlex.quote(a) for a in hd.argv),
                '# the CVM:', ' '.join(shlex.quote(a) for a in cvm.p.args),
                '# measured, the same on both sides (inside via nsenter -t PID1 -a):',
                'docker run --rm %s true' % DT.IMG,
                'docker build --no-cache -q -t %s CTX   # CTX/Dockerfile:' % BUILT] + \
            ['#   ' + l for l in dockerfile(DT.IMG, args.files, 4, args.kib).splitlines()]
        ok = True
    finally:
        stop_all()
        if not ok and notes:
            log('cleanup notes: ' + '; '.join(notes))

    f['load_before'], f['load_after'] = load_before, loadavg()
    f['seconds'] = time.time() - t_start
    for p, existed in host_before.items():
        if os.path.exists(p) and not existed:
            notes.append('%s appeared on the host during the run' % p)
    if open('/proc/sys/net/ipv4/ip_forward').read().strip() != fwd_before:
        notes.append('the host\'s ip_forward changed')
    main_t, diag_t = tables(res, args, ready)
    print('\n## docker-bench, %s\n' % f['date'])
    print('\n'.join(main_t))
    print()
    print('\n'.join(diag_t))
    if trace:
        print()
        print('\n'.join(trace))
    print('\nnproc %s, kernel %s; docker host %s, inside %s; storage driver host %s, '
          'inside %s; load %s before, %s after; CVM CFS throttling: %s; %.0f s in all'
          % (f['nproc'], f['kernel'], f['docker_host'], f['docker_inside'],
             f['driver_host'].split()[0] if f['driver_host'] else '?',
             f['driver_inside'].split()[0] if f['driver_inside'] else '?', f['load_before'],
             f['load_after'], f['throttle'], f['seconds']))
    if notes:
        print('\nnotes: ' + '; '.join(notes))
    if args.doc and ok:
        keep = int(os.environ.get('DOCKER_BENCH_KEEP', 3))
        update_doc(run_block(f, main_t, diag_t, res, args, cmds, notes, trace), keep)
        print('\nwritten to %s' % DOC)
    T.R.check('no leftovers of the host dockerd', not notes, notes)
    T.R.summary_and_exit()


if __name__ == '__main__':
    main()
