#!/usr/bin/env python3
"""The cgroup v2 lane: Debian 12's own kernel (6.1) booted under qemu with
the unified hierarchy only, running the project's v2-relevant tests inside.

No root filesystem is built: the guest mounts the host's / read-only over
9p (the host is Debian 12 too, so the build and the tests run unchanged),
under an overlay whose upper is the guest's tmpfs; a tiny initramfs of our
own (busybox-static and the 9p/virtio/overlay modules of the guest kernel,
resolved through its modules.dep) mounts it and switch_roots into
tests/vm/guest.sh. The guest kernel's modules come from the host's
/lib/modules/<guest version> (the package installs them there; the host's
own kernel is another version). The guest runs the tests with one meson
run and writes its output and JSON log to a second, writable 9p share;
this side prints meson's lines (prefixed "vm| ") and one line per test,
and fails if any failed. TCG always (no KVM assumed: where /dev/kvm is
nested it may hang the boot): the test list is kept small, and a timeout
kills qemu by pid.

Exit: 0 all passed, 1 a failure (or no result: a lane that did not run
never passes), 77 no qemu / no Debian 6.1 kernel with 9p (the reason
printed).

Environment: CVMFS_VM_TESTS (space-separated meson test names, default
below), CVMFS_VM_TIMEOUT (seconds, default 900), CVMFS_VM_KEEP=1 (keep the
temp dir).
"""

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('CVMFS_SRC') or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get('CVMFS_BUILD') or os.path.join(SRC, 'build')
GUEST = os.path.join(HERE, 'guest.sh')

# What matters for v2, in the order it runs (each one's time inside:
# doc/kernel-features.md, The VM lane).
DEFAULT_TESTS = ('v2_host same_figures launch_limits launch_userns launch_systemd '
                 'disk_passthrough disk_enforce disk_overlay')
# Tests whose skip inside is the expected outcome on 6.1, with why; any
# other skip inside fails the lane (it exists to run them).
EXPECTED_SKIP = {
    'disk_passthrough': 'Linux 6.1 has no FUSE passthrough: the daemon path and its one '
                        'log line are checked, the passthrough part is not',
}
# Guest kernel modules the initramfs loads (with their modules.dep deps).
MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay']


def skip(reason):
    print('SKIP: %s' % reason, flush=True)
    sys.exit(77)


def fail(reason):
    print('FAIL: %s' % reason, flush=True)
    sys.exit(1)


def find_kernel():
    """Debian's 6.1 kernel whose modules include 9p (the -cloud flavour has
    no 9p): (vmlinuz, modules dir)."""
    want = os.environ.get('CVMFS_VM_KERNEL')
    for vmlinuz in sorted(glob.glob('/boot/vmlinuz-6.1.*')):
        ver = os.path.basename(vmlinuz)[len('vmlinuz-'):]
        mods = '/lib/modules/' + ver
        if want and want != ver:
            continue
        if os.path.exists(os.path.join(mods, 'kernel/fs/9p/9p.ko')):
            return vmlinuz, mods
    skip('no Debian 6.1 kernel with 9p (/boot/vmlinuz-6.1.* and its /lib/modules): '
         'apt-get install linux-image-amd64')


def module_order(mods):
    """MODULES and their dependencies, dependencies first, as paths."""
    deps = {}
    with open(os.path.join(mods, 'modules.dep')) as f:
        for line in f:
            path, _, rest = line.partition(':')
            deps[path] = rest.split()
    byname = {os.path.basename(p).split('.ko')[0].replace('-', '_'): p for p in deps}
    order = []

    def add(p):
        for d in deps.get(p, []):
            add(d)
        if p not in order:
            order.append(p)
    for m in MODULES:
        if m not in byname:
            fail('module %s not in %s/modules.dep' % (m, mods))
        add(byname[m])
    return [os.path.join(mods, p) for p in order]


def static_busybox():
    bb = shutil.which('busybox')
    if not bb:
        skip('busybox is missing (apt-get install busybox-static)')
    out = subprocess.run(['ldd', bb], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout
    if 'not a dynamic executable' not in out:
        skip('%s is not static (apt-get install busybox-static)' % bb)
    return bb


def cpio_newc(entries, out):
    """entries: (name, mode, data bytes or None for a directory/link target)."""
    with open(out, 'wb') as f:
        ino = 1
        for name, mode, data in entries + [('TRAILER!!!', 0, b'')]:
            nb = name.encode() + b'\0'
            hdr = '070701' + ''.join('%08X' % v for v in (
                ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
            f.write(hdr.encode() + nb)
            f.write(b'\0' * ((4 - (110 + len(nb)) % 4) % 4))
            f.write(data)
            f.write(b'\0' * ((4 - len(data) % 4) % 4))
            ino += 1


INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /mods/*.ko; do insmod "$m" || echo "initramfs: insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /lower ||
	{ echo "initramfs: cannot mount the host root"; poweroff -f; }
mount -t tmpfs -o size=75%% tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	{ echo "initramfs: overlay over 9p failed"; poweroff -f; }
mkdir -p /newroot%(out)s
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out /newroot%(out)s ||
	{ echo "initramfs: cannot mount the results share"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh %(guest)s %(out)s
'''


def make_initramfs(tmp, mods, out):
    entries = [(d, stat.S_IFDIR | 0o755, b'') for d in
               ('bin', 'dev', 'proc', 'sys', 'mods')]
    with open(static_busybox(), 'rb') as f:
        entries.append(('bin/busybox', stat.S_IFREG | 0o755, f.read()))
    for i, p in enumerate(module_order(mods)):
        with open(p, 'rb') as f:
            entries.append(('mods/%02d-%s' % (i, os.path.basename(p)), stat.S_IFREG | 0o644,
                            f.read()))
    init = INIT % {'out': out, 'guest': GUEST}
    entries.append(('init', stat.S_IFREG | 0o755, init.encode()))
    path = os.path.join(tmp, 'initramfs.cpio')
    cpio_newc(entries, path)
    return path


def qemu_argv(qemu, vmlinuz, initrd, out, serial):
    return [qemu, '-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '3072',
            '-nographic', '-no-reboot', '-nic', 'user,model=virtio-net-pci', '-monitor', 'none', '-serial', 'file:' + serial,
            '-kernel', vmlinuz, '-initrd', initrd,
            '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 systemd.unified_cgroup_hierarchy=1',
            '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,'
                       'multidevs=remap',
            '-virtfs', 'local,path=%s,mount_tag=out,security_model=none' % out]


def report(out):
    """Print meson's output from inside and one line per test; True if
    every test ran and passed (or skipped as EXPECTED_SKIP says)."""
    want = (os.environ.get('CVMFS_VM_TESTS') or DEFAULT_TESTS).split()
    p = os.path.join(out, 'meson-output.txt')
    if os.path.exists(p):  # prefixed: scripts/test.sh counts the lane's own summary only
        with open(p, errors='replace') as f:
            for line in f:
                sys.stdout.write('vm| ' + line)
    results = {}
    try:
        with open(os.path.join(out, 'vm.json')) as f:
            for line in f:
                d = json.loads(line)
                results[d['name'].split(' / ')[-1]] = (d['result'], d['duration'])
    except (OSError, ValueError):
        pass
    ok = True
    for name in want:
        verdict, secs = results.get(name, ('FAIL', None))
        why = ''
        if name not in results:
            why = ' (no result: did not run or did not finish)'
            ok = False
        elif verdict == 'SKIP' and name in EXPECTED_SKIP:
            why = ' (expected: %s)' % EXPECTED_SKIP[name]
        elif verdict != 'OK':
            ok = False
        print('vm: %-18s %-7s %s%s' % (name, verdict,
                                        '%5.0f s in the VM' % secs if secs is not None else '',
                                        why))
    return ok


def tail(path, n=60):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError as e:
        return str(e)


def main():
    if os.geteuid() != 0:
        skip('needs root')
    qemu = shutil.which('qemu-system-x86_64')
    if not qemu:
        skip('qemu-system-x86_64 is missing (apt-get install qemu-system-x86)')
    vmlinuz, mods = find_kernel()
    if not os.access(os.path.join(BUILD, 'src', 'cvmfsd'), os.X_OK):
        skip('no build at %s' % BUILD)
    tmp = tempfile.mkdtemp(prefix='cvmfs-test-vm-', dir='/var/tmp')
    qp = None
    try:
        out = os.path.join(tmp, 'out')
        os.mkdir(out)
        with open(os.path.join(out, 'job'), 'w') as f:
            f.write('BUILD=%s\nSRC=%s\nTESTS="%s"\n' % (
                BUILD, SRC, os.environ.get('CVMFS_VM_TESTS') or DEFAULT_TESTS))
        initrd = make_initramfs(tmp, mods, out)
        serial = os.path.join(tmp, 'serial.log')
        timeout = int(os.environ.get('CVMFS_VM_TIMEOUT') or 900)
        print('vm: %s, %s, timeout %d s' % (vmlinuz, ' '.join(MODULES), timeout), flush=True)
        t0 = time.monotonic()
        qp = subprocess.Popen(qemu_argv(qemu, vmlinuz, initrd, out, serial),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        try:
            qout = qp.communicate(timeout=timeout)[0].decode(errors='replace')
        except subprocess.TimeoutExpired:
            os.kill(qp.pid, signal.SIGKILL)
            qp.wait()
            report(out)
            fail('the VM did not finish in %d s; the guest\'s log:\n%s\nserial console tail:\n%s'
                 % (timeout, tail(os.path.join(out, 'guest.log')), tail(serial)))
        qp = None
        wall = time.monotonic() - t0
        if qout.strip():
            print(qout.strip())
        print('vm: the VM ran %.0f s (boot to poweroff)' % wall)
        if not report(out):
            fail('a test in the VM failed or did not run; the guest\'s log:\n%s\nserial console '
                 'tail:\n%s' % (tail(os.path.join(out, 'guest.log')), tail(serial)))
        print('vm: all passed')
    finally:
        if qp is not None:
            os.kill(qp.pid, signal.SIGKILL)
            qp.wait()
        if os.environ.get('CVMFS_VM_KEEP') == '1':
            print('vm: kept %s' % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
