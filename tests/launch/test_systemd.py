"""systemd as PID 1: a Debian bookworm rootfs (debootstrap, cached) boots
under cvm-launch to `running` or `degraded`, its failed units are listed,
`systemctl poweroff` ends the launcher with 0, SIGTERM to the launcher
halts it (SIGRTMIN+3), and nothing is left behind.

The rootfs is built once into CVMFS_TEST_CACHE (default
/var/tmp/cvmfs-test-cache)/bookworm-systemd under a lock: `debootstrap
--variant=minbase --include=systemd,systemd-sysv,dbus bookworm` took 55 s
on the development machine (241 MB). Without debootstrap or without the
Debian mirror the test exits 77."""
import os
import re
import signal
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()

# The default mode, no flags: a user namespace with its own range, every
# capability of that namespace (systemd mounts its API file systems and
# service namespaces there), its own network namespace.
rootfs = LT.systemd_rootfs


def init_pid(launcher):
    """PID (on the host) of the CVM's systemd: the launcher's child."""
    out = subprocess.run(['pgrep', '-P', str(launcher.pid), '-x', 'systemd|init'],
                         stdout=subprocess.PIPE, text=True).stdout.split()
    return int(out[0]) if out else None


def inside(pid, *cmd, timeout=30):
    p = subprocess.run(['nsenter', '-t', str(pid), '-a'] + list(cmd), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout.strip()


def boot(w, tag, cmd=('/lib/systemd/systemd',)):
    """Start the CVM; returns (launcher, init pid, console path). cmd None:
    the launcher's default, /sbin/init (a link to systemd in the image)."""
    console = os.path.join(w.dir, 'console-%s.log' % tag)
    with open(console, 'wb') as out, open(console + '.err', 'wb') as err:
        p = T.popen(w.argv(cmd=list(cmd) if cmd else None, image_dirs=rootfs(), memory='1G',
                           cpus='2', disk='2G'),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    pid = None
    for _ in range(200):
        pid = init_pid(p)
        if pid or p.poll() is not None:
            break
        time.sleep(0.05)
    R.check('%s: systemd is PID 1 of the CVM' % tag, pid is not None, open(console + '.err').read())
    return p, pid, console


def wait_running(tag, pid):
    """Polls (up to 90 s): systemctl cannot connect until systemd has made
    its private socket, then --wait blocks until the boot is done."""
    t0 = time.time()
    state = 'timeout'
    while time.time() - t0 < 90 * LT.SLOW:
        try:
            rc, state = inside(pid, 'systemctl', 'is-system-running', '--wait',
                               timeout=max(1, 90 * LT.SLOW - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            state = 'timeout'
            break
        # Before PID 1 opens its private socket systemctl cannot connect:
        # it prints "offline" (and the bus error on stderr). Ask again.
        if 'Failed to connect to bus' not in state and state.strip() not in ('offline', ''):
            break
        time.sleep(0.5)
    R.check('%s: is-system-running is running (%.1f s)' % (tag, time.time() - t0),
            state == 'running', state)
    return state


def ended(tag, p, console, want=0, within=30):
    within *= LT.SLOW
    t0 = time.time()
    try:
        p.wait(timeout=within)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)  # halt it, so the next boot can start
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    R.eq('%s: the launcher exits %d (%.1f s)' % (tag, want, time.time() - t0), p.returncode, want,
         open(console + '.err').read())
    if p.returncode is not None:
        T.forget(p)


w = LT.Workspace('sd')
rootfs()

# Boot, look around, poweroff from inside.
p, pid, console = boot(w, 'poweroff')
if pid:
    state = wait_running('poweroff', pid)
    _, failed = inside(pid, 'systemctl', '--failed', '--no-legend', '--plain')
    print('failed units (%s):\n%s' % (state, failed or '(none)'), flush=True)
    if failed:
        for unit in failed.split():
            if unit.endswith(('.service', '.mount', '.socket', '.timer')):
                print(inside(pid, 'systemctl', 'status', '--no-pager', '-n', '5', unit)[1],
                      flush=True)
    # The CVM's cgroups are rooted at cvmfs/NAME/ns: systemd's units below it.
    _, cg = inside(pid, 'cat', '/proc/1/cgroup')
    # On v2 PID 1 starts in ns/init (no process may sit in ns, which
    # enables controllers), and systemd roots its tree where it starts.
    scope = '/init/init.scope' if LT.V2 else '/init.scope'
    if LT.V2:
        R.check('PID 1 sees itself in %s of the unified hierarchy' % scope,
                '0::' + scope in cg.split(), cg)
    else:
        R.check('PID 1 sees itself in /init.scope of name=systemd',
                ':name=systemd:/init.scope' in cg, cg)
    R.check('init.scope made under cvmfs/NAME/ns on the host',
            os.path.isdir('/sys/fs/cgroup/%scvmfs/%s/ns%s'
                          % ('' if LT.V2 else 'systemd/', w.name, scope)))
    rc, mem = inside(pid, 'cat', LT.MEM_LIMIT)
    R.eq('memory limit seen at the root of the memory hierarchy inside', mem, str(1 << 30))
    inside(pid, 'systemctl', 'poweroff')
    ended('poweroff', p, console)
    text = re.sub(r'\x1b\[[0-9;]*m', '', open(console, 'rb').read().decode('latin-1'))
    R.check('console output reaches the launcher stdout', 'Welcome to Debian' in text, text[-2000:])
    # With CAP_SYS_BOOT of its user namespace systemd ends by reboot(2),
    # which ends PID 1 of the namespace; without it, "Exiting container".
    R.check('systemd shuts down cleanly', 'Exiting container' in text or
            'Unmount All Filesystems' in text, text[-2000:])
LT.check_clean('poweroff', w.name)

# SIGTERM to the launcher: forwarded as SIGRTMIN+3 (halt), systemd exits.
p, pid, console = boot(w, 'sigterm')
if pid:
    wait_running('sigterm', pid)
    p.send_signal(signal.SIGTERM)
    ended('SIGTERM (SIGRTMIN+3: halt)', p, console)
LT.check_clean('sigterm', w.name)

# No CMD: /sbin/init, which the image links to systemd, is recognised as
# systemd (pty console, SIGRTMIN+3) by resolving it inside the CVM's root.
p, pid, console = boot(w, 'sbin-init', cmd=None)
if pid:
    wait_running('/sbin/init', pid)
    p.send_signal(signal.SIGTERM)
    ended('/sbin/init: SIGTERM forwarded as SIGRTMIN+3', p, console)
LT.check_clean('sbin-init', w.name)

R.summary_and_exit()
