"""cvmctl (doc/cvmctl.md) on real CVMs: exec in a --no-userns CVM, in the
default user-namespaced one and in a systemd one; the exec'd process has
exactly the privileges of the CVM's own init (capability sets, bounding
set, no_new_privs, seccomp, id map), all of its namespaces and cgroups, and
sees no host process (attacker style: it fails if exec joined fewer
namespaces or kept the host's capabilities); -u, -w, -e, the environment;
-t gives a pty of the CVM and forwards the window size; exit status and
death by signal come back; list as text and JSON, a stale record; stop of
a plain, a SIGTERM-deaf and a systemd CVM within the timeout, nothing left
behind; errors are one line and exit 1."""
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_userns()
CTL = os.environ.get('CVMCTL') or os.path.join(T.BUILD, 'src', 'ctl', 'cvmctl')
if not os.access(CTL, os.X_OK):
    T.skip('cvmctl not found at %s (set CVMCTL)' % CTL)
# The probe below needs readlink, which the shared image does not carry.
if not shutil.which('readlink', path='/usr/bin:/bin'):
    T.skip('readlink is not installed here')
LT._add_program(LT.image(), shutil.which('readlink', path='/usr/bin:/bin'))
# cvmctl's libraries, so that the image can run it as /proc/self/exe below.
LT._add_program(LT.image(), CTL)

# PID 1 that stops on SIGTERM (sh has a handler), with a child of its own.
INIT = ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 1000 & wait']
# What a process learns of itself and of the CVM's init (PID 1), in sh and
# coreutils (the systemd image has no python3). A command's /proc/self is
# that command's: a child of the exec'd shell, with its credentials.
PROBE = r"""
for p in self 1; do
  for k in Uid Gid CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp Seccomp_filters; do
    echo "$p $k $(grep "^$k:" /proc/$p/status | cut -f2)"
  done
  for n in user mnt pid uts ipc net cgroup; do echo "$p ns/$n $(readlink /proc/$p/ns/$n)"; done
  for f in uid_map gid_map cgroup; do echo "$p $f $(cat /proc/$p/$f | tr -s ' \n' '  ')"; done
done
for v in HOME USER PATH FOO BAR LIST NAME; do eval "echo env $v \$$v"; done
echo "cwd x $(pwd)"
echo "pids x $(ls /proc | grep '^[0-9]' | tr '\n' ' ')"
"""
ROOT_KEYS = ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp',
             'Seccomp_filters', 'uid_map', 'gid_map', 'cgroup', 'Uid', 'Gid') + tuple(
    'ns/' + n for n in ('user', 'mnt', 'pid', 'uts', 'ipc', 'net', 'cgroup'))
HOST_CAPS = open('/proc/self/status').read().split('CapBnd:')[1].split()[0]


def ctl(w, verb, *args, timeout=60, input=None):
    return T.run([CTL, verb, '--run-dir', w.run_dir] + list(args), timeout=timeout, input=input)


def record(w):
    return os.path.join(w.run_dir, 'launch', w.name + '.json')


def start(w, *extra, cmd=INIT, image_dirs=None, **opts):
    """The launcher in the background; returns it once its record is there
    (the CVM is up), or None (checked)."""
    log = os.path.join(w.dir, 'launch-%d.log' % time.time_ns())
    with open(log, 'wb') as out:
        p = T.popen(w.argv(*extra, cmd=cmd, image_dirs=image_dirs, **opts),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.exists(record(w)) or p.poll() is not None:
            break
        time.sleep(0.05)
    ok = R.check('%s: the launcher records the CVM once it is up' % w.name,
                 os.path.exists(record(w)), open(log, 'rb').read().decode('latin-1')[-2000:])
    return p if ok else None


def stopped(label, w, p, within=30):
    """The launcher exited (killed after `within` if not); its record is gone."""
    try:
        p.wait(timeout=within)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    T.forget(p)
    R.check('%s: the record is removed at the launcher\'s exit' % label,
            not os.path.exists(record(w)))
    LT.check_clean(label, w.name)
    return p.returncode


def privileges(label, w, *args):
    rc, out, err = ctl(w, 'exec', w.name, *args, '--', 'sh', '-c', PROBE)
    if not R.eq('%s: exec of the probe runs (exit 0)' % label, rc, 0, err):
        return None
    d = {'self': {}, 'init': {}, 'env': {}}
    for line in out.splitlines():
        who, key, value = (line.split(' ', 2) + ['', ''])[:3]
        value = value.strip()
        if who in ('self', '1'):
            d['self' if who == 'self' else 'init'][key] = value
        elif who == 'env':
            d['env'][key] = value
        elif who == 'cwd':
            d['cwd'] = value
        elif who == 'pids':
            d['pids'] = [int(x) for x in value.split()]
    return d


def same_as_init(label, d, keys=ROOT_KEYS):
    """Attacker style: every capability set, the filter, every namespace,
    the id map and the cgroups are init's, none of the host's."""
    diff = {k: (d['self'].get(k), d['init'].get(k)) for k in keys
            if d['self'].get(k) != d['init'].get(k)}
    R.eq('%s: the exec\'d process has the privileges, namespaces and cgroups of the '
         'CVM\'s init' % label, diff, {})
    R.check('%s: its bounding set is not the host\'s' % label,
            d['self']['CapBnd'] != HOST_CAPS, d['self']['CapBnd'])
    R.check('%s: seccomp filter and no_new_privs as the CVM\'s' % label,
            d['self']['Seccomp'] == '2' and d['self']['NoNewPrivs'] == '1', d['self'])
    R.check('%s: it sees the CVM\'s processes only' % label,
            len(d['pids']) < 40 and 1 in d['pids'] and os.getpid() not in d['pids'],
            d['pids'])


def host_cgroups(label, w, pid):
    """On the host: CMD (pid) is in cvmfs/NAME/ns... of every hierarchy."""
    with open('/proc/%d/cgroup' % pid) as f:
        lines = [line.strip().split(':', 2) for line in f]
    outside = [':'.join(x) for x in lines
               if not x[2].startswith('/cvmfs/%s/ns' % w.name)]
    R.eq('%s: CMD is in the CVM\'s cgroup in every hierarchy (host view)' % label,
         outside, [])


def cmd_pid_of(ctl_proc, comm):
    """CMD's host pid: a child of cvmctl (its subreaper) once the joiner has
    forked it and left, known by its name."""
    for _ in range(200):
        for kid in subprocess.run(['pgrep', '-P', str(ctl_proc.pid)], stdout=subprocess.PIPE,
                                  text=True).stdout.split():
            try:
                with open('/proc/%s/comm' % kid) as f:
                    if f.read().strip() == comm:
                        return int(kid)
            except OSError:
                pass
        time.sleep(0.05)
    return None


def exec_checks(tag, w):
    d = privileges(tag, w)
    if d:
        same_as_init(tag, d)
        R.eq('%s: root inside, login environment' % tag,
             (d['self']['Uid'], d['env'].get('HOME'), d['env'].get('USER'), d['cwd'],
              d['env'].get('PATH', '').split(':')[-1]), ('0', '/root', 'root', '/root',
                                                       '/bin'))
    d = privileges(tag + ' -u nobody', w, '-u', 'nobody', '-w', '/tmp', '-e', 'FOO=a:b',
                   '-e', 'BAR=1', '-e', 'LIST=x:NAME=y')
    if d:
        R.eq('%s: -u nobody -w /tmp -e: uid, no capabilities, cwd, environment' % tag,
             (d['self']['Uid'].split()[0], d['self']['Gid'].split()[0], d['self']['CapEff'],
              d['self']['CapPrm'], d['cwd'], d['env'].get('FOO'), d['env'].get('BAR'),
              d['env'].get('HOME')),
             ('65534', '65534', '0000000000000000', '0000000000000000', '/tmp', 'a:b', '1',
              '/'))
        R.eq('%s: -e LIST=x:NAME=y is one variable, as given' % tag,
             (d['env'].get('LIST'), d['env'].get('NAME')), ('x:NAME=y', ''))
        R.eq('%s: -u nobody keeps the CVM\'s bounding set' % tag, d['self']['CapBnd'],
             d['init']['CapBnd'])
    # The host side of the cgroups, from a CMD that stays a moment.
    p = T.popen([CTL, 'exec', '--run-dir', w.run_dir, w.name, '--', 'sleep', '5'],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pid = cmd_pid_of(p, 'sleep')
    if R.check('%s: CMD runs as cvmctl\'s child' % tag, pid is not None):
        host_cgroups(tag, w, pid)
    p.send_signal(signal.SIGTERM)
    R.eq('%s: SIGTERM to cvmctl reaches CMD: 143' % tag, p.wait(timeout=30), 128 + 15)
    T.forget(p)
    for script, want in (('exit 3', 3), ('kill -9 $$', 137), ('kill -TERM $$', 143)):
        rc, out, err = ctl(w, 'exec', w.name, '--', 'sh', '-c', script)
        R.eq('%s: exit status of `%s`' % (tag, script), rc, want, err)
    rc, out, err = ctl(w, 'exec', w.name, '--', '/no/such/cmd')
    R.eq('%s: CMD not found: 127, one line' % tag, (rc, len(err.splitlines())), (127, 1), err)
    rc, out, err = ctl(w, 'exec', w.name, '-u', 'nosuchuser', '--', 'true')
    R.check('%s: an unknown user: one line naming it' % tag,
            rc != 0 and 'nosuchuser' in err and len(err.splitlines()) == 1, (rc, err))


def pty_checks(tag, w):
    tty_py = 'import os, sys; print(os.ttyname(0), os.isatty(1), os.get_terminal_size())'
    rc, out, err = ctl(w, 'exec', w.name, '-t', '--', 'python3', '-c', tty_py)
    R.check('%s: -t with stdin not a tty: CMD has a pty of the CVM' % tag,
            rc == 0 and out.startswith('/dev/pts/') and 'True' in out, (rc, out, err))
    rc, out, err = ctl(w, 'exec', w.name, '--', 'python3', '-c',
                       'import os; print(os.isatty(0) or os.isatty(1))')
    R.eq('%s: without -t: no tty' % tag, (rc, out.strip()), (0, 'False'), err)
    rc, out, err = ctl(w, 'exec', w.name, '-t', '--', 'sh', '-c', 'read x; echo "got $x"',
                       input='hello\n')
    R.check('%s: -t relays stdin' % tag, rc == 0 and 'got hello' in out, (rc, out, err))
    # On a terminal of ours: the window size is CMD's, raw mode restored.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 101, 0, 0))
    before = termios.tcgetattr(slave)
    p = T.popen([CTL, 'exec', '--run-dir', w.run_dir, '-t', w.name, '--', 'python3', '-c',
                 'import os; s = os.get_terminal_size(); print("size", s.lines, s.columns)'],
                stdin=slave, stdout=slave, stderr=slave)
    out = b''
    t0 = time.time()
    while time.time() - t0 < 20 and b'size' not in out or out.count(b'\n') < 1:
        if select.select([master], [], [], 0.5)[0]:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        if p.poll() is not None and not select.select([master], [], [], 0.2)[0]:
            break
    rc = p.wait(timeout=20)
    T.forget(p)
    R.check('%s: -t on a terminal: the window size is forwarded (33x101)' % tag,
            rc == 0 and b'size 33 101' in out, (rc, out))
    R.eq('%s: the terminal\'s mode is restored' % tag, termios.tcgetattr(slave), before)
    os.close(master)
    os.close(slave)


def list_checks(w, p):
    with open(record(w)) as f:
        rec = json.load(f)
    rc, out, err = ctl(w, 'list')
    line = [x for x in out.splitlines() if x.split()[:1] == [w.name]]
    R.check('list: a line with name, init pid, running, limits', rc == 0 and line and
            line[0].split()[1:6] == [str(rec['init_pid']), 'running', '256M', '1', '0'] and
            line[0].split()[6] == '200M', (rc, out, err))
    rc, out, err = ctl(w, 'list', '--json')
    try:
        cvms = {c['name']: c for c in json.loads(out)}
    except ValueError:
        cvms = {}
    c = cvms.get(w.name, {})
    R.eq('list --json: pid, state, limits', (rc, c.get('pid'), c.get('state'), c.get('memory'),
                                             c.get('cpus'), c.get('disk')),
         (0, rec['init_pid'], 'running', 256 << 20, '1', 200 << 20), out + err)
    R.check('list --json: uptime in seconds', 0 <= c.get('uptime', -1) < 600, c)


def error_checks(w):
    for argv, word in ((['exec', 'cvmfs-test-nosuch', '--', 'true'], 'cvmfs-test-nosuch'),
                       (['stop', 'cvmfs-test-nosuch'], 'cvmfs-test-nosuch'),
                       (['exec', '../etc', '--', 'true'], '../etc'),
                       (['exec', w.name, '--bogus', '--', 'true'], '--bogus'),
                       (['exec', w.name], 'CMD'),
                       (['list', 'extra'], 'extra'),
                       (['stop', w.name, '--timeout', 'x'], 'timeout'),
                       (['frob'], 'frob')):
        rc, out, err = ctl(w, argv[0], *argv[1:]) if argv[0] != 'frob' else T.run([CTL, 'frob'])
        R.check('error: cvmctl %s: one line naming %s, exit 1' % (' '.join(argv), word),
                rc == 1 and len(err.splitlines()) == 1 and word in err, (rc, err))
    for verb, opts in (('exec', ('--user', '--workdir', '--env', '--tty', '--run-dir',
                                 '--config')),
                       ('list', ('--json', '--run-dir')), ('stop', ('--timeout', '--run-dir'))):
        rc, out, err = T.run([CTL, verb, '--help'])
        R.check('cvmctl %s --help lists every option' % verb,
                rc == 0 and all(o in out for o in opts), out)


# ---- the default mode (user namespace), limits for list
w = LT.Workspace('ctl')
p = start(w, memory='256M', cpus=1, cpuset=0, disk='200M')
if p:
    exec_checks('userns', w)
    pty_checks('userns', w)
    list_checks(w, p)
    error_checks(w)
    t0 = time.time()
    rc, out, err = ctl(w, 'stop', w.name, '--timeout', '20')
    R.eq('stop: exit 0 (%.1f s)' % (time.time() - t0), (rc, err), (0, ''))
    R.eq('stop: the launcher exits 0 (init trapped SIGTERM)', stopped('stop userns', w, p), 0)
    rc, out, err = ctl(w, 'stop', w.name)
    R.check('stop of a stopped CVM: one line, exit 1', rc == 1 and len(err.splitlines()) == 1,
            (rc, err))

# ---- --no-userns: host root's CVM; exec must not hand out the host's caps
w2 = LT.Workspace('ctl-nu')
p = start(w2, '--no-userns')
if p:
    exec_checks('no-userns', w2)
    rc, out, err = ctl(w2, 'stop', w2.name, '--timeout', '20')
    R.eq('stop of a trapping init (no-userns): exit 0', (rc, err), (0, ''))
    stopped('stop no-userns', w2, p)
# PID 1 without a handler ignores SIGTERM: SIGKILL after the timeout.
p = start(w2, '--no-userns', cmd=['/bin/sleep', '1000'])
if p:
    t0 = time.time()
    rc, out, err = ctl(w2, 'stop', w2.name, '--timeout', '2')
    took = time.time() - t0
    R.check('stop: init deaf to SIGTERM is killed after --timeout 2 (%.1f s)' % took,
            rc == 0 and 2 <= took < 30, (rc, err))
    stopped('stop deaf init', w2, p)

# ---- CVE-2019-5736 (runc): a CVM command run as /proc/self/exe starts
# cvmctl's own binary inside; a process of the CVM reaches its file through
# /proc/PID/exe and, as host root (--no-userns), could overwrite it once no
# one runs it. exec runs from a sealed memfd copy: the file is never the
# host's. Here the binary started inside is `cvmctl stop` of a record made
# in the CVM for its own PID 1 (sleep: deaf to SIGTERM), which would wait
# --timeout 30 s for it: long enough to be looked at.
def inside_cvmctl(init):
    """The host pid of `cvmctl stop ... fake` running inside, or None."""
    for _ in range(200):
        for d in os.listdir('/proc'):
            try:
                if d.isdigit() and open('/proc/%s/cmdline' % d, 'rb').read().startswith(
                        b'/proc/self/exe\0stop\0--run-dir\0/tmp/fr'):
                    return int(d)
            except OSError:
                pass
        time.sleep(0.05)
    return None


p = start(w2, '--no-userns', cmd=['/bin/sleep', '1000'])
if p:
    init = int(json.load(open(record(w2)))['init_pid'])
    ticks = int(open('/proc/%d/stat' % init).read().rsplit(')', 1)[1].split()[19])
    fr = '/proc/%d/root/tmp/fr/launch' % init
    os.makedirs(fr)
    with open(fr + '/fake.json', 'w') as f:
        json.dump(dict(name='fake', launcher_pid=1, launcher_start=ticks, init_pid=1,
                       init_start=ticks, started=int(time.time()), systemd=False,
                       userns=False, memory=0, disk=0, pids=0, cpus='', cpuset='',
                       net='none'), f)
    q = T.popen([CTL, 'exec', '--run-dir', w2.run_dir, w2.name, '--', '/proc/self/exe', 'stop',
                 '--run-dir', '/tmp/fr', '--timeout', '30', 'fake'],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    inner = inside_cvmctl(init)
    try:
        exe, host = os.stat('/proc/%d/exe' % inner), os.stat(CTL)
        got = ((exe.st_dev, exe.st_ino) == (host.st_dev, host.st_ino),
               os.readlink('/proc/%d/exe' % inner))
    except (OSError, TypeError) as e:
        got = (None, str(e))
    R.check('/proc/self/exe run by exec: a CVM process reaches a sealed copy, never the '
            'host\'s cvmctl (%s)' % got[1], got[0] is False and 'memfd:' in got[1], got)
    try:
        launcher_exe = os.readlink('/proc/%d/exe' % p.pid)
    except OSError as e:
        launcher_exe = str(e)
    R.check('--no-userns: cvm-launch (whose child becomes init) runs from a sealed copy too',
            launcher_exe.startswith('/memfd:'), launcher_exe)
    if inner is not None:
        os.kill(inner, signal.SIGKILL)  # it waits on; its work here is done
    qout, qerr = q.communicate(timeout=60)
    T.forget(q)
    if inner is None:
        print('# exec of /proc/self/exe: exit %s: %s' % (q.returncode, qerr.decode()[-400:]))
    ctl(w2, 'stop', w2.name, '--timeout', '2')
    stopped('after the /proc/self/exe check', w2, p)

# ---- a stale record: the launcher killed outright
p = start(w2, '--no-userns')
if p:
    p.kill()
    p.wait()
    T.forget(p)
    rc, out, err = ctl(w2, 'list', '--json')
    states = {c['name']: c['state'] for c in json.loads(out or '[]')}
    R.eq('list: a record whose launcher is dead is reported stopped', states.get(w2.name),
         'stopped', out + err)
    R.check('list: ... and removed', not os.path.exists(record(w2)))
    rc, out, err = ctl(w2, 'exec', w2.name, '--', 'true')
    R.check('exec in it: one line, exit 1', rc == 1 and len(err.splitlines()) == 1, (rc, err))
    w2.sweep()

# ---- systemd as init (the cached bookworm rootfs of test_systemd.py)
if not os.path.isfile(os.path.join(LT.ROOTFS, 'lib/systemd/systemd')):
    R.not_checked('no cached systemd rootfs (%s): run tests/launch/test_systemd.py once'
                  % LT.ROOTFS, point=False)
else:
    w3 = LT.Workspace('ctl-sd')
    p = start(w3, cmd=['/lib/systemd/systemd'], image_dirs=LT.ROOTFS, memory='1G', disk='2G')
    if p:
        rc, out, err = ctl(w3, 'exec', w3.name, '--', 'systemctl', 'is-system-running', '--wait',
                           timeout=120)
        t1 = time.time()
        while out.strip() in ('', 'offline') and time.time() - t1 < 60:
            time.sleep(0.5)
            rc, out, err = ctl(w3, 'exec', w3.name, '--', 'systemctl', 'is-system-running',
                               '--wait', timeout=120)
        R.check('systemd: exec systemctl is-system-running: running or degraded',
                out.strip() in ('running', 'degraded'), (rc, out, err))
        d = privileges('systemd', w3)
        if d:
            same_as_init('systemd', d)
        rc, out, err = ctl(w3, 'exec', w3.name, '-t', '--', 'sh', '-c', 'tty')
        R.check('systemd: -t gives a pty', rc == 0 and '/dev/pts/' in out, (rc, out, err))
        t0 = time.time()
        rc, out, err = ctl(w3, 'stop', w3.name, '--timeout', '60', timeout=150)
        took = time.time() - t0
        R.eq('systemd: stop (poweroff, SIGRTMIN+4) exits 0 (%.1f s)' % took, (rc, err), (0, ''))
        R.check('systemd: powered off within the timeout, not killed', took < 60, took)
        R.eq('systemd: the launcher exits 0 (clean poweroff)', stopped('stop systemd', w3, p), 0)

R.summary_and_exit()
