"""Docker in a user-namespaced CVM, the default mode (no --userns flag
needed): root inside (and dockerd) is the first id of the workspace's
assigned range on the host (100000000 in the test's fresh --idmap-dir);
import, run, a two-step build and compose work; what Docker
stores is on the quota disk and charged; dockerd's sysctls are the CVM's
own (its network namespace, or emulated per CVM by the views) or refused,
never applied to the host.

Storage driver: overlay2 on the /var/lib/docker lane of a volume (an ext4
the kernel lets the CVM's user namespace mount overlayfs on). With
--volume none the kernel refuses overlay2 on the FUSE disk: overlayfs keeps its
metadata in trusted.* xattrs, which only CAP_SYS_ADMIN of the initial user
namespace may set, and it demands them on an upper layer that is a remote
(FUSE) file system; the userxattr mode would do, but Docker's probe mounts
without it. Docker then takes fuse-overlayfs (the CVM has /dev/fuse, a
FUSE mount is allowed in a user namespace), whose layers are also on the
workspace disk and charged.

Without a user namespace (--no-userns) Docker needs capabilities that are
host root's (sys_admin, net_admin...): refused in one line unless the admin
adds --unsafe-host-root-caps; with it dockerd runs on overlay2."""
import os
import time

import dockertest as DT

T = DT.T
R = DT.R
DT.require()
BASE = 100000000  # the first assigned range in the test's own --idmap-dir

layers = DT.image_layers(DT.test_layer())
w = DT.LT.Workspace('dk-userns')


def host_sysctl(path):
    with open('/proc/sys/' + path) as f:
        return f.read().strip()


def host_uid(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('Uid:'):
                return int(line.split()[1])
    return None


before = (host_sysctl('net/ipv4/ip_forward'), host_sysctl('vm/overcommit_memory'))
cvm = DT.CVM(w, layers, memory='2G', cpus='2', disk='4G', tag='userns')
if cvm.wait_docker()[0]:
    rc, out = cvm.sh('cat /proc/self/uid_map; id -u')
    R.eq('root inside is host uid %d' % BASE, out.split(), ['0', str(BASE), '65536', '0'])
    R.eq('the CVM\'s init runs as uid %d on the host' % BASE, host_uid(cvm.pid), BASE)
    rc, out = cvm.sh("docker info --format '{{.Driver}} {{.DockerRootDir}}'")
    R.eq('storage driver %s on /var/lib/docker (with --volume none overlay2 is refused, see '
         'above)' % DT.driver(), out, '%s /var/lib/docker' % DT.driver())
    f0 = DT.settled_figures(w) or {}
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s >/dev/null && '
                     'docker run --rm %s echo hi' % (DT.IMG, DT.IMG))
    R.eq('import and docker run in a user namespace', (rc, out), (0, 'hi'))
    f1 = DT.settled_figures(w) or {}
    grown = f1.get('docker_bytes', 0) - f0.get('docker_bytes', 0)
    R.check('the imported image is charged to DOCKER', grown >= DT.allocated(DT.LT.image()) * 0.99,
            grown)
    rc, out = cvm.sh('cd /root/cvmfs-test/app && docker build -q -t cvmfs-test-built . '
                     '>/dev/null && docker run --rm cvmfs-test-built')
    R.eq('two-step docker build in a user namespace', (rc, out), (0, 'built in two steps'))
    DT.check_compose(cvm, 'userns')
    rc, out = cvm.sh('docker volume create cvmfs-test-vol >/dev/null && docker run --rm '
                     '-v cvmfs-test-vol:/v %s touch /v/f && echo ok' % DT.IMG)
    f = DT.LT.host_path(w, '/var/lib/docker/volumes/cvmfs-test-vol/_data/f')
    try:
        owner = os.stat(f).st_uid
    except OSError as e:
        owner = str(e)
    R.eq('a file an inner container writes belongs to uid %d on the host' % BASE, owner, BASE)
    rc, out = cvm.sh('cat /proc/sys/net/ipv4/ip_forward; '
                     'echo 1 > /proc/sys/vm/overcommit_memory; cat /proc/sys/vm/overcommit_memory; '
                     'echo 46 > /proc/sys/fs/lease-break-time && echo wrote')
    R.check('ip_forward on in the CVM\'s netns; overcommit_memory the CVM\'s own (emulated); '
            'a host-wide sysctl nobody emulates refused',
            out.splitlines()[:2] == ['1', '1'] and 'wrote' not in out, out)
cvm.stop()

# --net host: the host's network namespace is not the CVM's to configure.
# dockerd's iptables calls are refused by the kernel (the namespace is not
# owned by the CVM's user namespace); without them (--iptables=false) its
# ip_forward write is refused (read-only /proc/sys); dockerd says so.
# A host whose ip_forward is already on (cvm-launch --no-userns --net
# private turns it on, as Docker does) gives dockerd nothing to write: then
# the same write is tried by hand in a --net host CVM.
if host_sysctl('net/ipv4/ip_forward') == '0':
    cvm = DT.CVM(w, layers, net='host', memory='1G', disk='4G', tag='net-host',
                 cmd=DT.DOCKERD + ['--iptables=false'])
    for _ in range(100):
        if 'ip_forward' in cvm.console(200) or cvm.p.poll() is not None:
            break
        time.sleep(0.2)
    log = cvm.console(200)
    refused = [line for line in log.splitlines() if 'ip_forward' in line]
    print('\n'.join(refused), flush=True)
    R.check('--net host: dockerd logs the refused ip_forward write',
            any('read-only file system' in x or 'permission denied' in x for x in refused),
            log[-1500:])
    try:
        cvm.p.wait(timeout=60)
    except Exception:
        pass
    cvm.stop(want=1)  # dockerd gives up: its status, through docker-init
else:
    rc, out, err = DT.LT.Workspace('dk-fwd').sh(
        'echo 1 > /proc/sys/net/ipv4/ip_forward && echo wrote', net='host')
    R.check('--net host: the ip_forward write is refused (the host\'s is on already)',
            'wrote' not in out and 'Read-only file system' in err, (rc, out, err))
R.eq('host sysctls unchanged', (host_sysctl('net/ipv4/ip_forward'),
                                host_sysctl('vm/overcommit_memory')), before)

# --no-userns: Docker's capabilities are host root's. Refused in one line
# (125) without the unsafe flag; with it, dockerd runs, on overlay2.
w2 = DT.LT.Workspace('dk-nouserns')
rc, out, err = w2.launch('--no-userns', caps='all', cmd=['/bin/true'],
                         image_dirs=':'.join(layers))
R.check('--no-userns --caps all: refused in one line, 125',
        rc == 125 and sum(1 for x in err.splitlines() if 'cvm-launch:' in x and
                          'warning' not in x) == 1 and '--unsafe-host-root-caps' in err,
        (rc, err))
cvm = DT.CVM(w2, layers, '--no-userns', '--unsafe-host-root-caps', caps='all', memory='2G',
             cpus='2', disk='4G', tag='no-userns')
if cvm.wait_docker()[0]:
    rc, out = cvm.sh("docker info --format '{{.Driver}}'; id -u; "
                     "docker import /root/cvmfs-test/img.tar %s >/dev/null && "
                     "docker run --rm %s echo hi" % (DT.IMG, DT.IMG))
    R.eq('--no-userns --unsafe-host-root-caps: overlay2, root is host root, docker run',
         out.split(), ['overlay2', '0', 'hi'])
    R.eq('the CVM\'s init runs as host root', host_uid(cvm.pid), 0)
cvm.stop()
R.summary_and_exit()
