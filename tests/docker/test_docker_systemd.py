"""The realistic case, in the default mode (no flags: user namespace, own
network): systemd is the CVM's init and starts containerd and
docker.service (enabled by Debian's packages); `docker run` works, the
system is `running` (failed units printed otherwise), and `systemctl
poweroff` ends the CVM with exit 0."""
import time

import dockertest as DT

T = DT.T
R = DT.R
DT.require()

layers = DT.image_layers(DT.test_layer())
w = DT.LT.Workspace('dk-sd')
cvm = DT.CVM(w, layers, systemd=True, memory='2G', cpus='2', disk='4G', tag='systemd')
R.check('systemd is PID 1 of the CVM', cvm.pid is not None, cvm.console())

state, t0 = 'unknown', time.time()
while cvm.pid and time.time() - t0 < 120:
    # "offline" or a bus error until PID 1 has opened its private socket.
    rc, state = cvm.sh('systemctl is-system-running --wait 2>/dev/null', timeout=120)
    if state in ('running', 'degraded', 'maintenance', 'stopping'):
        break
    time.sleep(0.5)
print('is-system-running: %s after %.1f s' % (state, time.time() - t0), flush=True)
rc, failed = cvm.sh('systemctl --failed --no-legend --plain')
print('failed units:\n%s' % (failed or '(none)'), flush=True)
R.check('is-system-running: running', state == 'running', state)
rc, out = cvm.sh('systemctl is-active containerd docker')
R.eq('containerd and docker.service are active', out.split(), ['active', 'active'])
if cvm.wait_docker()[0]:
    rc, out = cvm.sh("docker info --format '{{.Driver}} {{.CgroupDriver}}'")
    R.check('%s under systemd (default mode)' % DT.driver(), out.startswith(DT.driver() + ' '),
            out)
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s >/dev/null && '
                     'docker run --rm %s echo hi from systemd' % (DT.IMG, DT.IMG))
    R.eq('docker run under systemd', (rc, out), (0, 'hi from systemd'))
    DT.check_compose(cvm, 'under systemd')
cvm.sh('systemctl poweroff')
try:
    cvm.p.wait(timeout=60)
except Exception:
    pass
cvm.stop(want=0)
R.summary_and_exit()
