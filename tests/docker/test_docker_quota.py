"""What Docker writes is charged to the workspace and bounded by its limit.

- `docker import` grows the DOCKER area (cvmfs-stat) by the image's
  allocated bytes (the same tree's st_blocks x 512 on the host) within 1 %;
  `docker system prune -a -f` gives them back; IMAGE does not move.
- A `docker build` and a `docker run` that would overflow the workspace
  disk fail with "No space left on device"; usage never passes the limit;
  dockerd and the CVM keep working (info, images, exec into a running
  container); once space is freed (container prune) the same dockerd runs
  and builds again, without a restart."""
import time

import dockertest as DT

T = DT.T
R = DT.R
MiB = DT.MiB
DT.require()

layers = DT.image_layers(DT.test_layer())
ref = DT.allocated(DT.LT.image())  # what the imported tree allocates
w = DT.LT.Workspace('dk-quota')
DISK = 1 << 30


def settled():
    """Figures once the daemon has published them and, with a volume, its
    lanes' walk has caught up."""
    return DT.settled_figures(w) or {}


def within(a, b, tol):
    return abs(a - b) <= tol


cvm = DT.CVM(w, layers, memory='2G', cpus='2', disk=str(DISK), tag='quota')
ok, _ = cvm.wait_docker()
if ok:
    f0 = settled()
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s' % DT.IMG)
    R.eq('docker import', rc, 0, out)
    f1 = settled()
    grown = f1.get('docker_bytes', 0) - f0.get('docker_bytes', 0)
    print('image tree allocates %d bytes; DOCKER grew by %d (%.2f %%)'
          % (ref, grown, 100.0 * (grown - ref) / ref), flush=True)
    R.check('DOCKER grows by the image\'s allocated bytes within 1 %', within(grown, ref, ref / 100),
            (grown, ref))
    R.eq('IMAGE unchanged by the import', f1.get('image_bytes'), f0.get('image_bytes'))
    R.eq('areas add up to the total', sum(f1.get(k, 0) for k in
                                          ('image_bytes', 'docker_bytes', 'home_bytes',
                                           'other_bytes')), f1.get('used_bytes'))

    rc, out = cvm.sh('docker system prune -a -f')
    f2 = settled()
    back = f1.get('docker_bytes', 0) - f2.get('docker_bytes', 0)
    R.check('docker system prune -a -f gives the image bytes back (within 1 %)',
            rc == 0 and within(back, grown, ref / 100), (rc, back, grown), out)
    R.eq('IMAGE unchanged by the prune', f2.get('image_bytes'), f0.get('image_bytes'))

    # Overflow: a build step and a run that each want more than is free.
    cvm.sh('docker import /root/cvmfs-test/img.tar %s' % DT.IMG)
    rc, out = cvm.sh('docker run -d --name cvmfs-test-alive %s sleep 1000' % DT.IMG)
    R.eq('a container runs before the overflow', rc, 0, out)
    f3 = settled()
    want = (f3.get('avail_bytes', 0) >> 20) + 64
    rc, out = cvm.sh('mkdir -p /root/big && cd /root/big && printf "FROM %s\\nRUN dd if=/dev/zero '
                     'of=/big bs=1M count=%d status=none\\n" > Dockerfile && '
                     'docker build -t cvmfs-test-big . 2>&1' % (DT.IMG, want))
    R.check('docker build past the limit fails with "No space left on device"',
            rc != 0 and 'No space left on device' in out, (rc, out[-600:]))
    f4 = settled()
    R.check('usage never passes the limit', f4.get('used_bytes', DISK + 1) <= DISK, f4)
    # The disk is full now (the failed step's container holds its bytes):
    # dockerd still answers and the running container still runs.
    rc, out = cvm.sh('docker info >/dev/null && echo info-ok; docker images -q %s | wc -l; '
                     'docker exec cvmfs-test-alive echo alive' % DT.IMG)
    R.eq('dockerd keeps working at the limit (info, images, exec)', out.split(),
         ['info-ok', '1', 'alive'])
    # Space freed (the failed step's container): work continues, no restart.
    rc, out = cvm.sh('docker container prune -f >/dev/null; docker builder prune -f >/dev/null; '
                     'docker run --rm %s echo still here' % DT.IMG)
    R.eq('after a prune docker run works again', (rc, out), (0, 'still here'))
    f5 = settled()
    want = (f5.get('avail_bytes', 0) >> 20) + 64
    rc, out = cvm.sh('docker run --rm %s sh -c "dd if=/dev/zero of=/big bs=1M count=%d '
                     'status=none"' % (DT.IMG, want))
    R.check('docker run writing past the limit fails with "No space left on device"',
            rc != 0 and 'No space left on device' in out, (rc, out[-600:]))
    rc, out = cvm.sh('cd /root/big && printf "FROM %s\\nRUN dd if=/dev/zero of=/small bs=1M '
                     'count=20 status=none\\n" > Dockerfile && docker build -q -t cvmfs-test-small '
                     '. >/dev/null && docker run --rm cvmfs-test-small stat -c %%s /small'
                     % DT.IMG)
    R.eq('the same dockerd builds and runs again', (rc, out), (0, str(20 * MiB)))
    cvm.sh('docker rm -f cvmfs-test-alive')
    rc, out = cvm.sh('echo ok > /root/after-enospc && cat /root/after-enospc')
    R.eq('the CVM writes again once space is freed', (rc, out), (0, 'ok'))
    R.check('space given back by the prune', f5.get('used_bytes', DISK) < f4.get('used_bytes', 0),
            (f4.get('used_bytes'), f5.get('used_bytes')))
cvm.stop()
R.summary_and_exit()
