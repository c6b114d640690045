"""Secure by default, tried the way an attacker would: CVMs launched with no
security flag at all (a user namespace with the workspace's own id range,
the namespace's capabilities, its own network namespace), whose root tries
to escape. One check per class (doc/security.md):

  sysctl   remount /proc/sys read-write, write kernel.core_pattern: fails,
           the host's value unchanged
  network  no host interface (lo, and eth0 of --net private); an AF_PACKET
           socket sees the CVM's own loopback traffic but none of the
           host's (UDP to the host's 127.0.0.1 while it captures)
  cgroup   writing its memory limit at its cgroup root fails; the binding
           limit (cvmfs/NAME) is unchanged; allocating past it is killed
  others   two CVMs get disjoint ranges; the ids of one CVM's root cannot
           read, write or create another CVM's files in DATA/upper
  caps     --no-userns with --caps all (or net_raw with --net host) is
           refused in one line with 125; --unsafe-host-root-caps allows it

CVMFS_TEST_DEFAULTS_MODE adds launcher options to every CVM the first four
classes start: with "--no-userns --net host --caps all
--unsafe-host-root-caps" (the protections removed) their checks fail."""
import ctypes
import os
import socket
import subprocess
import threading
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_userns()
MODE = os.environ.get('CVMFS_TEST_DEFAULTS_MODE', '').split()
img = LT.image()


def script(name, text):
    """A Python script in the image, run inside as /NAME."""
    with open(os.path.join(img, name), 'w') as f:
        f.write(text)
    return ['/usr/bin/python3', '/' + name]


def results(out):
    return dict(line.split(' ', 1) for line in out.splitlines() if ' ' in line)


def host_value(path):
    with open(path) as f:
        return f.read().strip()


# --- sysctl: the host's kernel.core_pattern -------------------------------
SYSCTL = r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
r = libc.mount(None, b'/proc/sys', None, MS_REMOUNT | MS_BIND, None)
print('remount', 'ok' if r == 0 else os.strerror(ctypes.get_errno()))
path = '/proc/sys/kernel/core_pattern'
value = open(path).read()
try:
    with open(path, 'w') as f:  # the same value: a success is the escape
        f.write(value)
    print('write ok')
except OSError as e:
    print('write', e.strerror)
'''
core = host_value('/proc/sys/kernel/core_pattern')
w = LT.Workspace('def-sysctl')
rc, out, err = w.launch(*MODE, disk='200M', cmd=script('sysctl.py', SYSCTL))
res = results(out)
print('# sysctl: remount /proc/sys rw: %s; write core_pattern: %s'
      % (res.get('remount'), res.get('write')), flush=True)
R.check('sysctl: the CVM ran the attempt', rc == 0 and 'write' in res, (rc, out, err))
R.check('sysctl: writing kernel.core_pattern fails', res.get('write', 'ok') != 'ok', out)
R.eq('sysctl: the host\'s kernel.core_pattern is unchanged',
     host_value('/proc/sys/kernel/core_pattern'), core)
LT.check_clean('sysctl', w.name)

# --- network: interfaces and AF_PACKET ------------------------------------
SNIFF = r'''
import os, socket, sys, time
print('ifaces', ','.join(sorted(os.listdir('/sys/class/net'))), flush=True)
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
except OSError as e:
    print('packet', e.strerror, flush=True)
    sys.exit(0)
s.settimeout(0.1)
print('ready now', flush=True)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
seen = set()
end = time.time() + float(sys.argv[1])
while time.time() < end and len(seen) < 2:
    try:
        u.sendto(b'cvmfs-test-inner', ('127.0.0.1', 9))
    except OSError:
        pass
    try:
        d = s.recv(65535)
    except socket.timeout:
        continue
    for tag in (b'cvmfs-test-inner', b'cvmfs-test-host'):
        if tag in d:
            seen.add(tag.decode())
print('seen', ','.join(sorted(seen)) or 'nothing', flush=True)
'''
w = LT.Workspace('def-net')
cmd = script('sniff.py', SNIFF) + ['4']
p = T.popen(w.argv(*MODE, disk='200M', cmd=cmd), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
lines = []
for line in p.stdout:
    lines.append(line.strip())
    if line.startswith(('ready', 'packet')):
        break
sent = 0
if lines and lines[-1].startswith('ready'):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while p.poll() is None and sent < 400:  # until the CVM stops capturing
        u.sendto(b'cvmfs-test-host', ('127.0.0.1', 9))
        sent += 1
        time.sleep(0.01)
    u.close()
out, err = p.communicate(timeout=60)
T.forget(p)
res = results('\n'.join(lines) + '\n' + out)
print('# network: interfaces %s; AF_PACKET: %s; host packets sent during the capture: %d'
      % (res.get('ifaces'), res.get('seen') or res.get('packet'), sent), flush=True)
# The default is --net private where the host has its tools (pasta in a
# user namespace): lo and the CVM's own eth0 (pasta's tap), else lo only;
# never the host's list (with --net host it is, and this check fails).
R.check('network: the default CVM has lo and at most its own eth0',
        p.returncode == 0 and res.get('ifaces') in ('lo', 'eth0,lo'),
        (p.returncode, res.get('ifaces')), detail=err)
if 'seen' in res:
    R.check('network: its AF_PACKET socket captures its own loopback',
            'cvmfs-test-inner' in res['seen'], res)
    R.check('network: host packets were sent while it captured', sent > 0)
    R.check('network: it sees none of the host\'s loopback traffic',
            'cvmfs-test-host' not in res['seen'], res)
else:
    R.check('network: no AF_PACKET socket at all', 'packet' in res, (out, err))
LT.check_clean('network', w.name)

# --- cgroup: its own limits -----------------------------------------------
LIMITS = ('cd /sys/fs/cgroup/memory; cat memory.limit_in_bytes; '
          'if echo 1G > memory.memsw.limit_in_bytes && echo 1G > memory.limit_in_bytes; '
          'then echo raise ok; else echo raise fail; fi; '
          'python3 -c "b = bytearray(400 << 20); b[::4096] = bytes(len(b[::4096]))"; '
          'echo alloc $?')
w = LT.Workspace('def-cg')
p = T.popen(w.argv(*MODE, memory='128M', disk='200M', cmd=['/bin/sh', '-c', LIMITS + '; sleep 1']),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
out, err = p.communicate(timeout=120)
T.forget(p)
res = results(out)
R.eq('cgroup: it sees its 128M limit at its cgroup root', out.split('\n')[:1],
     [str(128 * LT.MiB)], err)
R.eq('cgroup: writing its memory limit fails', res.get('raise'), 'fail', out)
R.eq('cgroup: 400 MiB past 128M is OOM-killed (137)', res.get('alloc'), '137', out)
LT.check_clean('cgroup', w.name)
# The binding copy while a CVM runs: try the raise, then read it from the host.
p = T.popen(w.argv(*MODE, memory='128M', disk='200M', stop_timeout=1, cmd=['/bin/sh', '-c',
                   'echo 1G > /sys/fs/cgroup/memory/memory.limit_in_bytes; echo done; sleep 30']),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
p.stdout.readline()
binding = os.path.join(T.CG_ROOT, 'memory', 'cvmfs', w.name, 'memory.limit_in_bytes')
try:
    limit = int(host_value(binding))
except OSError as e:
    limit = str(e)
R.eq('cgroup: the binding limit cvmfs/NAME on the host is unchanged', limit, 128 * LT.MiB)
p.terminate()
p.communicate(timeout=60)
T.forget(p)
LT.check_clean('cgroup 2', w.name)

# --- other CVMs: disjoint ranges, no access to another's files ------------
a = LT.Workspace('def-a')
b = LT.Workspace('def-b')
A_SH = ('python3 -c "import os; os.umask(0o22); open(\'/home/secret\', \'w\').write(\'s\'); '
        'os.chmod(\'/home/secret\', 0o600); open(\'/home/pub\', \'w\').write(\'p\'); '
        'os.chmod(\'/home\', 0o755)"; cat /proc/self/uid_map; echo; sleep 60')
pa = T.popen(a.argv(*MODE, disk='200M', stop_timeout=1, cmd=['/bin/sh', '-c', A_SH]),
             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
pb = T.popen(b.argv(*MODE, disk='200M', stop_timeout=1, idmap_dir=a.idmap,
                    cmd=['/bin/sh', '-c', 'cat /proc/self/uid_map; echo; sleep 60']),
             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
map_a = pa.stdout.readline().split()
map_b = pb.stdout.readline().split()
print('# ranges: A %s, B %s' % (map_a, map_b), flush=True)


def disjoint(x, y):
    if len(x) != 3 or len(y) != 3:
        return False
    xa, xn, ya, yn = int(x[1]), int(x[2]), int(y[1]), int(y[2])
    return xa + xn <= ya or ya + yn <= xa


R.check('others: two running CVMs have disjoint id ranges', disjoint(map_a, map_b),
        (map_a, map_b))


def as_ids(uid, gid, dirfd):
    """In a child with B's root ids (no capabilities): what A's files allow."""
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        got = []
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            for name, flags in (('secret', os.O_RDONLY), ('pub', os.O_WRONLY),
                                ('new', os.O_WRONLY | os.O_CREAT)):
                try:
                    os.close(os.open(name, flags, 0o644, dir_fd=dirfd))
                    got.append('%s:ok' % name)
                except OSError as e:
                    got.append('%s:%s' % (name, e.strerror.replace(' ', '_')))
        finally:
            os.write(wfd, ' '.join(got).encode())
            os._exit(0)
    os.close(wfd)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return text.split()


home_a = LT.host_path(a, '/home')  # DATA/upper/home, or the lane of a volume
access = 'not checked'
if len(map_b) == 3 and os.path.exists(os.path.join(home_a, 'pub')):
    fd = os.open(home_a, os.O_RDONLY | os.O_DIRECTORY)
    access = as_ids(int(map_b[1]), int(map_b[1]), fd)
    os.close(fd)
print('# B\'s root ids on A\'s DATA/upper/home: %s' % access, flush=True)
R.check('others: B\'s root ids cannot read, write or create A\'s files',
        isinstance(access, list) and len(access) == 3 and
        not any(x.endswith(':ok') for x in access), access)
if len(map_a) == 3 and not MODE:
    rc, out, err = LT.Workspace('def-c').launch(disk='200M', idmap_dir=a.idmap,
                                                userns_uid=int(map_a[1]) + 10,
                                                cmd=['/bin/true'])
    R.check('others: a given range overlapping A\'s is refused in one line, 125',
            rc == 125 and err.count('cvm-launch:') == 1 and 'overlaps' in err, (rc, err))
for p in (pa, pb):
    p.terminate()
    p.communicate(timeout=60)
    T.forget(p)
LT.check_clean('A', a.name)
LT.check_clean('B', b.name)

# --- caps: host root's capabilities need the unsafe flag ------------------
w = LT.Workspace('def-caps')


def one_line(err):
    return [x for x in err.splitlines() if x.startswith('cvm-launch:') and 'warning' not in x]


for label, extra in (('--no-userns --caps all', ['--no-userns', '--caps', 'all']),
                     ('--no-userns --caps sys_admin', ['--no-userns', '--caps',
                                                       'chown,sys_admin']),
                     ('--no-userns --net host --caps net_raw',
                      ['--no-userns', '--net', 'host', '--caps', 'net_raw'])):
    rc, out, err = w.launch(*extra, disk='200M', cmd=['/bin/true'])
    R.check('caps: %s is refused in one line, 125' % label,
            rc == 125 and len(one_line(err)) == 1 and '--unsafe-host-root-caps' in one_line(err)[0],
            (rc, err))
    LT.check_clean('caps ' + label, w.name)
rc, out, err = w.launch('--no-userns', '--unsafe-host-root-caps', '--caps', 'all', disk='200M',
                        cmd=['/bin/sh', '-c', 'id -u'])
R.eq('caps: with --unsafe-host-root-caps it is accepted (root is host root)',
     (rc, out.strip()), (0, '0'), err)
R.check('caps: --no-userns says in one warning line that root is host root',
        sum(1 for x in err.splitlines() if 'warning' in x and 'host root' in x) == 1, err)
LT.check_clean('caps unsafe', w.name)
rc, out, err = w.launch('--no-userns', '--net', 'host', disk='200M',
                        cmd=['/bin/sh', '-c', 'grep CapBnd /proc/self/status'])
bnd = int(out.split()[1], 16) if rc == 0 and len(out.split()) == 2 else None
R.check('caps: --no-userns --net host, default set: no net_raw (13), no net_admin (12)',
        bnd is not None and not bnd & (1 << 13) and not bnd & (1 << 12), (rc, out, err))
LT.check_clean('caps net host', w.name)

R.summary_and_exit()
