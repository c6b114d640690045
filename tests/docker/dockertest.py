"""Helpers for the Docker-in-a-CVM tests (Python 3 stdlib only).

The workspace image is three read-only layers, top first:
  1. a per-test layer with /root/cvmfs-test: img.tar (a rootfs tarball for
     `docker import`: launchtest's image of the host's own programs and
     python3, so no registry is needed), a Dockerfile and a compose file;
  2. Debian's docker.io, docker-compose, iptables, fuse-overlayfs and procps,
     installed with apt in a chroot over layer 3 and kept as that
     overlayfs's upper directory (cached: CACHE/bookworm-docker);
  3. the debootstrap'ed bookworm systemd rootfs of the launcher tests
     (cached: CACHE/bookworm-systemd).
Debootstrap plus apt rather than the host's own packages: dockerd needs
containerd, runc, iptables and their configuration in the places Debian
puts them, and a real Debian image is what users run; layer 2 on top of
layer 3 also exercises several image layers with overlayfs whiteouts.

A CVM runs dockerd (under docker-init, or under systemd) and the tests
drive it from the host with `nsenter -t PID -a`, which enters every
namespace of the CVM's PID 1, its root and its user namespace included.
"""

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'launch'))
import launchtest as LT  # noqa: E402

T = LT.T
R = T.R
MiB = 1 << 20
STAT = os.environ.get('CVMFS_STAT') or os.path.join(T.BUILD, 'src', 'stat', 'cvmfs-stat')
PACKAGES = ['docker.io', 'docker-compose', 'iptables', 'fuse-overlayfs', 'procps']
# The cache's name carries the package list: a changed list builds anew.
DOCKER_LAYER = os.path.join(LT.CACHE, 'bookworm-docker-%s' % hashlib.sha1(
    ' '.join(PACKAGES).encode()).hexdigest()[:8])
IMG = 'cvmfs-test-img'  # the imported image's name inside


def require():
    LT.require()
    for prog in ('nsenter', 'chroot'):
        if not shutil.which(prog):
            T.skip('%s is not installed' % prog)


def _sh(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kw)


def _install(merged):
    """apt-get install PACKAGES in a chroot of merged; no service starts."""
    policy = merged + '/usr/sbin/policy-rc.d'
    with open(policy, 'w') as f:
        f.write('#!/bin/sh\nexit 101\n')
    os.chmod(policy, 0o755)
    _sh(['mount', '-t', 'proc', 'proc', merged + '/proc'], check=True)
    try:
        shutil.copy('/etc/resolv.conf', merged + '/etc/resolv.conf')
        return _sh(['chroot', merged, 'sh', '-c',
                    'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q '
                    '--no-install-recommends %s && apt-get clean && '
                    'rm -rf /var/lib/apt/lists/*' % ' '.join(PACKAGES)], timeout=1200)
    finally:
        _sh(['umount', '-l', merged + '/proc'])
        os.unlink(policy)


def docker_layer():
    """The cached docker layer; built under a lock if missing (about 30 s
    with the Debian mirror; exit 77 without it). Complete once renamed."""
    if os.path.isfile(os.path.join(DOCKER_LAYER, 'usr/sbin/dockerd')):
        return DOCKER_LAYER
    base = LT.systemd_rootfs()
    with open(DOCKER_LAYER + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(DOCKER_LAYER, 'usr/sbin/dockerd')):
            return DOCKER_LAYER
        tmp, work, merged = (DOCKER_LAYER + s for s in ('.tmp', '.work', '.merged'))
        for d in (tmp, work, merged):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        t0 = time.time()
        _sh(['mount', '-t', 'overlay', 'overlay', '-o',
             'lowerdir=%s,upperdir=%s,workdir=%s' % (base, tmp, work), merged], check=True)
        try:
            p = _install(merged)
        finally:
            _sh(['umount', merged])
            shutil.rmtree(work, ignore_errors=True)
            os.rmdir(merged)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            T.skip('apt-get install %s failed (no mirror?): %s'
                   % (' '.join(PACKAGES), p.stdout.strip().splitlines()[-3:]))
        os.rename(tmp, DOCKER_LAYER)
        print('built %s in %.0f s' % (DOCKER_LAYER, time.time() - t0), file=sys.stderr,
              flush=True)
    return DOCKER_LAYER


DOCKERFILE = '''FROM %s
RUN mkdir /data && dd if=/dev/zero of=/data/a bs=1M count=5 status=none
RUN echo built in two steps > /data/b
CMD ["cat", "/data/b"]
''' % IMG

# Two services: web serves HTTP, client fetches http://web:8000/ by name
# (Docker's embedded DNS on the compose network) and reports the status.
COMPOSE = '''version: "3"
services:
  web:
    image: %s
    command: ["python3", "-m", "http.server", "8000"]
  client:
    image: %s
    command: ["sh", "-c", "for i in $$(seq 100); do python3 -c 'import urllib.request; print(\\"status\\", urllib.request.urlopen(\\"http://web:8000/\\").status)' && exec sleep 1000; sleep 0.2; done; exit 1"]
''' % (IMG, IMG)


def test_layer():
    """Layer 1 (per test process, in a temp dir)."""
    d = T.tempdir('dlayer-')
    app = os.path.join(d, 'root', 'cvmfs-test', 'app')
    os.makedirs(app)
    _sh(['tar', '-C', LT.image(), '-cf', os.path.join(d, 'root', 'cvmfs-test', 'img.tar'), '.'],
        check=True)
    with open(os.path.join(app, 'Dockerfile'), 'w') as f:
        f.write(DOCKERFILE)
    with open(os.path.join(app, 'docker-compose.yml'), 'w') as f:
        f.write(COMPOSE)
    return d


def allocated(root):
    """Bytes a tree allocates: st_blocks x 512 over distinct inodes, the
    disk's own measure (the reference for what an import must charge)."""
    seen, total = set(), 0
    for dirpath, dirs, files in os.walk(root):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in files + dirs]:
            try:
                st = os.lstat(name)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def settled_figures(w, within=60):
    """figures() once they say what is on the disk now: after a publish
    (every second), and with a volume once the daemon's status says its
    lanes' last walk saw every byte there (lanes_settled; the walks' bound
    is in doc/cvmfsd-disk.md, seconds under load)."""
    status = os.path.join(w.run_dir, 'disk', w.name + '.json')

    def mtime():
        try:
            return os.stat(status).st_mtime_ns
        except OSError:
            return None

    def settled():
        try:
            with open(status) as f:
                return '"lanes_settled":false' not in f.read()
        except OSError:
            return True

    m0 = mtime()
    T.wait_for(lambda: mtime() != m0, 5, 'the disk status published anew', 0.05)
    T.wait_for(settled, within, 'the lanes settled', 0.3)
    return figures(w)


def figures(w):
    """cvmfs-stat --json for the workspace: {used, image, docker, home, ...}."""
    p = _sh([STAT, '--run-dir', w.run_dir, '--json', w.name])
    if p.returncode != 0:
        return None
    data = json.loads(p.stdout)
    return data[0] if isinstance(data, list) else data


def _nspid(pid):
    try:
        with open('/proc/%s/status' % pid) as f:
            for line in f:
                if line.startswith('NSpid:'):
                    return line.split()[1:]
    except OSError:
        pass
    return []


DOCKERD = ['/usr/bin/docker-init', '--', '/usr/sbin/dockerd', '--log-level', 'warn']
# The CVMs run in cvm-launch's default mode unless a test says otherwise:
# a user namespace with the workspace's own id range, the capabilities of
# that namespace, their own network namespace. No --caps, no --userns.


class CVM:
    """One running CVM with dockerd, driven from the host."""

    def __init__(self, w, layers, *extra, systemd=False, tag='cvm', cmd=None, **opts):
        self.w, self.tag, self.systemd = w, tag, systemd
        self.log = os.path.join(w.dir, 'console-%s.log' % tag)
        cmd = cmd or (['/lib/systemd/systemd'] if systemd else DOCKERD)
        opts.setdefault('console', 'pty' if systemd else 'inherit')
        with open(self.log, 'wb') as out:
            self.p = T.popen(w.argv(*extra, cmd=cmd, image_dirs=':'.join(layers), **opts),
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self._init_pid()

    def _init_pid(self):
        """The launcher's child that is PID 1 of its own PID namespace (the
        others are the views and disk daemons it started)."""
        for _ in range(400):
            try:
                with open('/proc/%d/task/%d/children' % (self.p.pid, self.p.pid)) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            for kid in kids:
                if _nspid(kid)[-1:] == ['1']:
                    return int(kid)
            if self.p.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def console(self, n=30):
        try:
            with open(self.log, 'rb') as f:
                return '\n'.join(f.read().decode('latin-1').splitlines()[-n:])
        except OSError:
            return ''

    def sh(self, script, timeout=300):
        """Run script with /bin/sh inside the CVM: (rc, stdout+stderr). It
        joins the CVM's cgroups first (nsenter enters namespaces only), so
        its limits hold for what it runs, as for the CVM's own processes."""
        if not self.pid:
            return -1, 'no CVM'
        join = ('for f in /sys/fs/cgroup/*/cvmfs/"$0"/ns/cgroup.procs; do echo $$ >"$f"; '
                'done; exec "$@"')
        try:
            p = _sh(['sh', '-c', join, self.w.name, 'nsenter', '-t', str(self.pid), '-a',
                     '/bin/sh', '-c', script],
                    timeout=timeout, env={'PATH': '/usr/sbin:/usr/bin:/sbin:/bin',
                                          'HOME': '/root'})
        except subprocess.TimeoutExpired:
            return -1, 'timeout after %d s' % timeout
        return p.returncode, p.stdout.strip()

    def spawn(self, argv, **kw):
        """Start argv inside the CVM in the background (in its cgroups, as
        sh() does); a T.popen, killed at cleanup if still running."""
        join = ('for f in /sys/fs/cgroup/*/cvmfs/"$0"/ns/cgroup.procs; do echo $$ >"$f"; '
                'done; exec "$@"')
        return T.popen(['sh', '-c', join, self.w.name, 'nsenter', '-t', str(self.pid), '-a']
                       + list(argv), stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                       env={'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': '/root'}, **kw)

    def wait_docker(self, within=120):
        """Until `docker info` answers; returns (ok, seconds)."""
        t0 = time.time()
        while time.time() - t0 < within:
            if self.p.poll() is not None:
                break
            rc, _ = self.sh('docker info >/dev/null 2>&1', timeout=30)
            if rc == 0:
                return True, time.time() - t0
            time.sleep(0.3)
        R.check('%s: dockerd answers' % self.tag, False, self.console())
        return False, time.time() - t0

    def stop(self, want=0):
        """SIGTERM to the launcher; the CVM must end with want and leave
        nothing behind."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        T.forget(self.p)
        R.eq('%s: launcher exits %d after SIGTERM' % (self.tag, want), self.p.returncode, want,
             self.console())
        LT.check_clean(self.tag, self.w.name)


def check_compose(cvm, tag):
    """`docker-compose up -d` of the test's two services: the client must
    reach web by service name; `down` must leave no container or network."""
    rc, out = cvm.sh('cd /root/cvmfs-test/app && docker-compose up -d 2>&1 && '
                     'for i in $(seq 100); do docker-compose logs client 2>/dev/null | '
                     'grep -q "status 200" && break; sleep 0.2; done; '
                     'docker-compose logs client; docker-compose ps -q | wc -l')
    R.check('%s: compose client reaches web by service name (HTTP 200)' % tag,
            'status 200' in out, out)
    R.check('%s: compose brings two services up' % tag, out.splitlines()[-1:] == ['2'], out)
    rc, out = cvm.sh('cd /root/cvmfs-test/app && docker-compose down 2>&1; '
                     'docker ps -aq | wc -l; docker network ls -q -f name=app_default | wc -l')
    R.eq('%s: compose down removes containers and network' % tag,
         (rc, out.splitlines()[-2:]), (0, ['0', '0']), out)


def image_layers(test_dir):
    return [test_dir, docker_layer(), LT.systemd_rootfs()]


# ---------------------------------------------------------------- volume
# What Docker runs on in the mode the tests run in (launchtest.volume_mode:
# the launcher's default, or CVMFS_TEST_VOLUME): overlay2 on the
# /var/lib/docker lane of a volume (ext4, no FUSE on its path), else
# fuse-overlayfs on the FUSE disk, where the kernel refuses overlayfs in a
# user namespace (test_docker_userns.py says why).
def driver():
    return 'fuse-overlayfs' if LT.volume_mode() == 'none' else 'overlay2'
