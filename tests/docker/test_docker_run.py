"""dockerd started directly (under docker-init) in a CVM of the default mode
(no flags: user namespace, own network): /var/lib/docker on the workspace
disk -- overlay2 on the volume's ext4 lane, or with --volume none
fuse-overlayfs on the FUSE disk (see test_docker_userns.py for why not
overlay2 there) -- and the workloads a VM user runs: `docker
import`, `docker run`, a two-step `docker build`, `docker-compose up -d`
with two services reaching each other by name and `down`, memory and pids
limits of inner containers; an inner container reaches a server outside
the CVM (the default --net private). dockerd's sysctls land in the CVM's
network namespace, not the host's."""
import dockertest as DT

T = DT.T
R = DT.R
DT.require()

layers = DT.image_layers(DT.test_layer())
w = DT.LT.Workspace('dk-run')


def host_sysctl(path):
    with open('/proc/sys/' + path) as f:
        return f.read().strip()


fwd_before = host_sysctl('net/ipv4/ip_forward')
cvm = DT.CVM(w, layers, memory='2G', cpus='2', disk='4G', tag='run')
ok, secs = cvm.wait_docker()
print('dockerd ready in %.1f s' % secs, flush=True)
if ok:
    rc, out = cvm.sh("docker info --format '{{.Driver}} {{.DockerRootDir}}'")
    R.eq('storage driver %s on /var/lib/docker' % DT.driver(), out,
         '%s /var/lib/docker' % DT.driver())
    rc, out = cvm.sh('stat -f -c %T /var/lib/docker; stat -f -c %T /')
    fs = out.split()
    if DT.LT.volume_mode() == 'none':
        R.check('/var/lib/docker is on the workspace disk (the root, a FUSE mount)',
                len(fs) == 2 and fs[0] == fs[1] and fs[0].startswith('fuse'), out)
    else:
        R.check('/var/lib/docker is the volume\'s ext4 lane, / the FUSE union',
                len(fs) == 2 and fs[0] == 'ext2/ext3' and fs[1].startswith('fuse'), out)
    rc, out = cvm.sh("awk '$5 == \"/\" { for (i = 6; i < NF; i++) if ($i == \"-\") "
                     "print $(i + 1) }' /proc/self/mountinfo")
    R.eq('the root is cvmfsd disk', out, 'fuse.cvmfs-disk')

    rc, out = cvm.sh('cat /proc/self/cgroup | grep -c ":/$"; python3 -c '
                     '"b = bytearray(3 << 30); b[::4096] = bytes(len(b[::4096]))"; echo rc=$?')
    R.check('a command run into the CVM is in its cgroups: 3 GiB is OOM-killed at 2G',
            out.endswith('rc=137') and out.split()[0] != '0', out)
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s' % DT.IMG)
    R.eq('docker import of a rootfs tarball', rc, 0, out)
    rc, out = cvm.sh('docker run --rm %s echo hi' % DT.IMG)
    R.eq('docker run --rm IMG echo hi', (rc, out), (0, 'hi'))
    # The default --net private (pasta in the user namespace, where it is
    # installed): an inner container reaches a server outside the CVM
    # through dockerd's docker0, the CVM's eth0 and pasta; the "outside" is
    # a network namespace of the test's own behind a host route.
    if DT.shutil.which('pasta'):
        _, out_addr = DT.LT.outside()
        probe = ('import socket; c = socket.create_connection((\\"%s\\", 8000), timeout=5); '
                 'print(c.recv(100).decode().strip())' % out_addr)
        rc, out = cvm.sh('docker run --rm %s python3 -c "%s"' % (DT.IMG, probe))
        R.check('an inner container reaches the outside through the CVM\'s network',
                rc == 0 and out.startswith('outside from'), (rc, out))
    else:
        print('# pasta missing: the default is --net none, no outside to reach')

    rc, out = cvm.sh('cd /root/cvmfs-test/app && docker build -q -t cvmfs-test-built . '
                     '&& docker run --rm cvmfs-test-built')
    R.eq('two-step docker build, then run', (rc, out.splitlines()[-1:]),
         (0, ['built in two steps']), out)
    rc, out = cvm.sh('docker history -q cvmfs-test-built | wc -l')
    R.check('the built image has the two RUN layers over the import', out.isdigit() and
            int(out) >= 4, out)

    DT.check_compose(cvm, 'docker_run')

    rc, out = cvm.sh('docker run --rm -m 64m --memory-swap 64m %s python3 -c '
                     '"b = bytearray(200 << 20); b[::4096] = bytes(len(b[::4096]))"; echo rc=$?'
                     % DT.IMG)
    R.check('docker run -m 64m: 200 MiB is OOM-killed (137)', out.endswith('rc=137'), out)
    rc, out = cvm.sh('docker run --rm -m 64m %s python3 -c '
                     '"b = bytearray(20 << 20); print(len(b))"' % DT.IMG)
    R.eq('docker run -m 64m: 20 MiB fits', out, str(20 << 20))
    rc, out = cvm.sh('docker run --rm --pids-limit 20 %s sh -c '
                     '"for i in \\$(seq 40); do sleep 3 & done; wait"; echo rc=$?;'
                     'docker run --rm --pids-limit 20 %s cat /sys/fs/cgroup/pids/pids.max'
                     % (DT.IMG, DT.IMG))
    R.check('docker run --pids-limit 20: fork fails past 20', 'rc=0' not in out and
            ('Cannot fork' in out or 'Resource temporarily unavailable' in out), out)
    R.check('pids.max of the inner container is 20', out.splitlines()[-1:] == ['20'], out)

    rc, out = cvm.sh('cat /proc/sys/net/ipv4/ip_forward')
    R.eq('dockerd turned on ip_forward in the CVM\'s network namespace', out, '1')
R.eq('the host\'s ip_forward is unchanged', host_sysctl('net/ipv4/ip_forward'), fwd_before)
cvm.stop()
R.summary_and_exit()
