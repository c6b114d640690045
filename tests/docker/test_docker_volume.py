"""Docker on the workspace volume (--volume loop), in the default
(user-namespaced) CVM: /var/lib/docker is a lane, bound from the volume's
ext4 with no FUSE on its path, so dockerd takes overlay2.

- `docker info`: overlay2 on extfs; /var/lib/docker is an ext4 mount;
  import, a two-step build and run work;
- the DOCKER area grows by an imported image's allocated bytes within 1 %
  and `docker system prune -a -f` gives them back (figures read once the
  writes have been quiet for 2 s);
- a write past the limit fails with "No space left on device" through the
  root union, /home, /var/lib/docker and an inner container's overlay2;
  markers written before stay intact; used never passes the limit;
- `--rebuild` and a changed image keep /home and /var/lib/docker (the
  imported image is still there);
- kill -9 of the disk daemon loses nothing on the lanes: a writer inside
  whose working directory is in /home keeps writing there after the union
  is gone, and every byte it wrote is there at the next launch.
Loop devices and mkfs.ext4 are needed, else exit 77."""
import hashlib
import os
import signal
import time

import dockertest as DT

T = DT.T
R = DT.R
LT = DT.LT
MiB = DT.MiB
DT.require()
LT.require_loop()

test_dir = DT.test_layer()
layers = DT.image_layers(test_dir)
ref = DT.allocated(LT.image())
w = LT.Workspace('dk-volume')
DISK = 1 << 30
OPTS = dict(memory='2G', cpus='2', disk=str(DISK), volume='loop', stop_timeout='20')


def quiet_figures(within=60):
    """Figures once they have not moved for 2 s (the lanes' areas are kept
    off the data path; see doc/cvmfsd-disk.md for their bound)."""
    last, since, t0 = None, time.time(), time.time()
    while time.time() - t0 < within:
        f = DT.figures(w) or {}
        key = tuple(f.get(k) for k in ('used_bytes', 'docker_bytes', 'home_bytes'))
        if key != last:
            last, since = key, time.time()
        elif time.time() - since >= 2.0:
            return f
        time.sleep(0.5)
    return DT.figures(w) or {}


def sha_of(cvm, path):
    rc, out = cvm.sh('sha256sum %s' % path)
    return out.split()[0] if rc == 0 and out else None


cvm = DT.CVM(w, layers, tag='volume', **OPTS)
ok, _ = cvm.wait_docker()
if ok:
    rc, out = cvm.sh("docker info --format '{{.Driver}} {{.DockerRootDir}}' && "
                     "docker info 2>/dev/null | grep 'Backing Filesystem' && "
                     "grep ' /var/lib/docker ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1")
    R.eq('overlay2 on the /var/lib/docker lane (extfs, an ext4 mount)',
         out.split(), ['overlay2', '/var/lib/docker', 'Backing', 'Filesystem:', 'extfs', 'ext4'])
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s >/dev/null && '
                     'cd /root/cvmfs-test/app && docker build -q -t cvmfs-test-built . >/dev/null '
                     '&& docker run --rm cvmfs-test-built' % DT.IMG)
    R.eq('import, a two-step build and run on overlay2', (rc, out), (0, 'built in two steps'))
    cvm.sh('docker rmi cvmfs-test-built; docker system prune -a -f')

    # The DOCKER area follows an import and a prune.
    f0 = quiet_figures()
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s' % DT.IMG)
    f1 = quiet_figures()
    grown = f1.get('docker_bytes', 0) - f0.get('docker_bytes', 0)
    print('image tree allocates %d bytes; DOCKER grew by %d (%.2f %%)'
          % (ref, grown, 100.0 * (grown - ref) / ref), flush=True)
    R.check('DOCKER grows by the imported image\'s allocated bytes within 1 %',
            abs(grown - ref) <= ref / 100, (grown, ref))
    R.eq('areas add up to used', sum(f1.get(k, 0) for k in (
        'image_bytes', 'docker_bytes', 'home_bytes', 'other_bytes')), f1.get('used_bytes'))
    rc, out = cvm.sh('docker system prune -a -f')
    f2 = quiet_figures()
    back = f1.get('docker_bytes', 0) - f2.get('docker_bytes', 0)
    R.check('docker system prune -a -f gives the bytes back (within 1 %)',
            rc == 0 and abs(back - grown) <= ref / 100, (rc, back, grown))

    # ENOSPC through every path. A ballast (fallocate on the /home lane)
    # leaves ~48 MiB, so that each 200 MiB write stops quickly.
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s >/dev/null && '
                     'for d in /root /home /var/lib/docker; do head -c 4M /dev/urandom > '
                     '$d/cvmfs-test-mark; done; sync' % DT.IMG)
    marks = {d: sha_of(cvm, d + '/cvmfs-test-mark') for d in ('/root', '/home', '/var/lib/docker')}
    rc, out = cvm.sh("avail=$(df -B1 --output=avail /home | tail -n 1); "
                     "fallocate -l $((avail - 48 * 1048576)) /home/cvmfs-test-ballast && echo ok")
    R.eq('ballast allocated on /home', (rc, out), (0, 'ok'))
    for d in ('/root', '/home', '/var/lib/docker'):
        rc, out = cvm.sh('dd if=/dev/zero of=%s/cvmfs-test-fill bs=1M count=200 2>&1; '
                         'rm -f %s/cvmfs-test-fill' % (d, d))
        R.check('a write past the limit through %s: No space left on device' % d,
                'No space left on device' in out, out[-300:])
    rc, out = cvm.sh('docker run --rm %s dd if=/dev/zero of=/big bs=1M count=200 2>&1'
                     % DT.IMG)
    R.check('a write past the limit in an inner container (overlay2 upper): '
            'No space left on device', rc != 0 and 'No space left on device' in out, out[-300:])
    f3 = quiet_figures()
    R.check('used never passes the limit', 0 < f3.get('used_bytes', DISK + 1) <= DISK, f3)
    R.eq('the markers written before are intact',
         {d: sha_of(cvm, d + '/cvmfs-test-mark') for d in marks}, marks)
    cvm.sh('rm -f /home/cvmfs-test-ballast; docker container prune -f')
    rc, out = cvm.sh('echo keep > /home/cvmfs-test-keep && echo gone > /etc/cvmfs-test-gone '
                     '&& docker volume create cvmfs-test-vol >/dev/null && sync && echo ok')
    R.eq('files written for the persistence checks', (rc, out), (0, 'ok'))
cvm.stop()


def persisted(tag, layers_now, *extra):
    c = DT.CVM(w, layers_now, *extra, tag=tag, **OPTS)
    ok, _ = c.wait_docker()
    if ok:
        rc, out = c.sh('cat /home/cvmfs-test-keep; docker images -q %s | wc -l; '
                       'docker volume ls -q | grep -c cvmfs-test-vol; '
                       'cat /etc/cvmfs-test-gone 2>/dev/null || echo no-etc' % DT.IMG)
        R.eq('%s: /home, the image and the volume in /var/lib/docker are kept' % tag,
             out.split()[:3], ['keep', '1', '1'])
        R.eq('%s: /etc/cvmfs-test-gone (dropped by --rebuild only)' % tag, out.split()[3:],
             ['no-etc' if tag == 'rebuild' else 'gone'])
        c.sh('echo gone > /etc/cvmfs-test-gone')  # again, for the next launch
    c.stop()


persisted('rebuild', layers, '--rebuild')
extra = T.tempdir('dlayer2-')
os.makedirs(extra + '/etc')
with open(extra + '/etc/cvmfs-test-release', 'w') as f:
    f.write('2\n')
persisted('new-image', [extra] + layers)

# kill -9 of the disk daemon: the lanes stay with the CVM; nothing on them
# is lost. The writer's working directory is in /home, so it never walks
# through the (dead) union again.
WRITER = ('import os, time\n'
          'os.chdir("/home")\n'
          'blk = bytes(range(256)) * 4096\n'
          'i = 0\n'
          'while not os.path.exists("stop"):\n'
          '    with open("w%d" % i, "wb") as f: f.write(blk)\n'
          '    i += 1\n'
          '    with open("count.tmp", "w") as f: f.write(str(i))\n'
          '    os.rename("count.tmp", "count")\n'
          '    time.sleep(0.05)\n')


def count(mark):
    """The writer's count so far; -1 before its first."""
    try:
        with open(mark) as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


c = DT.CVM(w, layers, tag='kill9', **OPTS)
ok, _ = c.wait_docker()
if ok:
    wp = T.popen(['nsenter', '-t', str(c.pid), '-a', '/usr/bin/python3', '-c', WRITER])
    # nsenter forks into the CVM's PID namespace: the writer is its child,
    # up once it has written its count.
    writer = T.wait_for(lambda: [k for k, _ in LT.descendants(wp.pid)], 30, 'the writer up')
    writer = writer[0] if writer else wp.pid
    mark = '/proc/%d/cwd/count' % writer
    T.wait_for(lambda: os.path.exists(mark), 30, 'the writer counting')
    with open(os.path.join(w.run_dir, 'disk', w.name + '.pid')) as f:
        dpid = int(f.read())
    os.kill(dpid, signal.SIGKILL)
    before = count(mark)
    # It goes on: a count past before (it writes every 50 ms), a bound of 30 s.
    T.wait_for(lambda: count(mark) > before, 30, 'the writer counting on', 0.1)
    after = count(mark)
    R.check('after kill -9 of the disk daemon the writer in /home goes on writing',
            0 < before < after, (before, after))
    open('/proc/%d/cwd/stop' % writer, 'w').close()
    wp.wait(timeout=30)
    T.forget(wp)
    # The writer is gone (and its /proc/PID/cwd with it): its last count,
    # through the CVM's init, whose root has the lane at /home.
    last = '/proc/%d/root/home/count' % c.pid
    total = int(open(last).read()) if os.path.exists(last) else -1
c.p.send_signal(signal.SIGTERM)
c.p.wait(timeout=120)
T.forget(c.p)
if ok:
    c = DT.CVM(w, layers, tag='after-kill9', **OPTS)
    ok, _ = c.wait_docker()
    if ok:
        want = hashlib.sha256(bytes(range(256)) * 4096).hexdigest()
        rc, out = c.sh('cd /home && echo $(cat count) && sha256sum w* | cut -d" " -f1 | sort | uniq -c; '
                       'docker images -q %s | wc -l' % DT.IMG)
        R.eq('after kill -9: every file the writer wrote is whole at the next launch, '
             'dockerd\'s images too', out.split(), [str(total), str(total), want, '1'])
    c.stop()
R.summary_and_exit()
