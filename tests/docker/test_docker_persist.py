"""Inner images and volumes live in /var/lib/docker on the workspace disk:
they survive `cvm-launch --rebuild` (which discards the rest of the upper
layer) and a changed workspace image (a new top layer), as Coder's CVMs
promise. A change in /etc does not survive the rebuild."""
import os

import dockertest as DT

T = DT.T
R = DT.R
DT.require()

test_dir = DT.test_layer()
layers = DT.image_layers(test_dir)
w = DT.LT.Workspace('dk-persist')
opts = dict(memory='2G', cpus='2', disk='4G')

cvm = DT.CVM(w, layers, tag='first', **opts)
if cvm.wait_docker()[0]:
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s >/dev/null && '
                     'docker volume create cvmfs-test-vol >/dev/null && '
                     'docker run --rm -v cvmfs-test-vol:/v %s sh -c "echo kept > /v/f" && '
                     'echo changed > /etc/cvmfs-test-etc && echo ok' % (DT.IMG, DT.IMG))
    R.eq('first boot: image imported, volume written, /etc changed', (rc, out), (0, 'ok'))
cvm.stop()


def check_kept(cvm, tag):
    if not cvm.wait_docker()[0]:
        return
    rc, out = cvm.sh("docker images --format '{{.Repository}}' | grep -cx %s" % DT.IMG)
    R.eq('%s: the imported image is still there' % tag, out, '1')
    rc, out = cvm.sh('docker run --rm -v cvmfs-test-vol:/v %s cat /v/f' % DT.IMG)
    R.eq('%s: the volume keeps its data' % tag, (rc, out), (0, 'kept'))


cvm = DT.CVM(w, layers, '--rebuild', tag='rebuild', **opts)
check_kept(cvm, '--rebuild')
rc, out = cvm.sh('cat /etc/cvmfs-test-etc 2>&1')
R.check('--rebuild: the change in /etc is gone', rc != 0, out)
cvm.stop()

# A changed workspace image: one more layer on top.
top = T.tempdir('dtop-')
os.makedirs(os.path.join(top, 'etc'))
with open(os.path.join(top, 'etc', 'cvmfs-test-release'), 'w') as f:
    f.write('v2\n')
cvm = DT.CVM(w, [top] + layers, tag='new-image', **opts)
check_kept(cvm, 'changed image')
rc, out = cvm.sh('cat /etc/cvmfs-test-release')
R.eq('changed image: its new layer is visible', out, 'v2')
cvm.stop()
R.summary_and_exit()
