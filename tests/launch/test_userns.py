"""The user namespace (the default; --userns says so explicitly): root inside
is the first id of the range the launcher assigned to the workspace
(--userns-base, 100000000 in a fresh --idmap-dir) and recorded in
IDMAP_DIR/NAME; files it creates on the disk belong to it on the host; its cgroup is delegated to it; even with every
capability kept, they act on its own namespaces only: a sysctl of the host,
loading a module and mounting a filesystem that is not namespaced all fail,
and a tmpfs it mounts is not seen by the host."""
import os
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_userns()

BASE = 100000000  # the first assigned range in the test's own --idmap-dir


def modules_supported():
    """finit_module(-1) as host root: EBADF with module support, ENOSYS without."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(313, -1, b'', 0)
    return ctypes.get_errno() != 38


MODULES = modules_supported()
# Every capability: what stops the CVM must be the user namespace.
ALL_CAPS = ('chown,dac_override,dac_read_search,fowner,fsetid,kill,setgid,setuid,setpcap,'
            'linux_immutable,net_bind_service,net_broadcast,net_admin,net_raw,ipc_lock,'
            'ipc_owner,sys_module,sys_rawio,sys_chroot,sys_ptrace,sys_pacct,sys_admin,'
            'sys_boot,sys_nice,sys_resource,sys_time,sys_tty_config,mknod,lease,'
            'audit_write,audit_control,setfcap')

# Root inside has no capability over the image's files (host uid 0 is not
# mapped): the test image's /home is world-writable, as documented.
img = LT.image()
os.chmod(img + '/home', 0o1777)

PY_CHECKS = r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def res(r):
    return 'ok' if r == 0 else os.strerror(ctypes.get_errno())
fd = os.open('/bin/true', os.O_RDONLY)
print('finit_module', res(libc.syscall(313, fd, b'', 0)))
os.makedirs('/home/dbg', exist_ok=True)
print('debugfs', res(libc.mount(b'none', b'/home/dbg', b'debugfs', 0, None)))
os.makedirs('/home/m', exist_ok=True)
print('tmpfs', res(libc.mount(b'none', b'/home/m', b'tmpfs', 0, None)))
open('/home/m/in-tmpfs', 'w').close()
open('/home/ready', 'w').close()
'''
with open(img + '/checks.py', 'w') as f:
    f.write(PY_CHECKS)

SCRIPT = (
    'echo "uid $(id -u) $(id -g)"; echo "map $(cat /proc/self/uid_map)"; '
    'echo "gmap $(cat /proc/self/gid_map)"; '
    'echo hello > /home/file; echo tmp > /tmp/file; echo "tmpuid $(stat -c %u /tmp/file)"; '
    'if echo 1 > /proc/sys/vm/drop_caches; then echo "sysctl ok"; else echo "sysctl fail"; fi; '
    'python3 /checks.py; sleep 2; echo "homeuid $(stat -c %u /home/file)"; '
    'echo "rootdir $(stat -c %U:%G /)"; '
    'if mkdir /newdir && touch /newfile; then echo "mkroot ok"; else echo "mkroot fail"; fi')

w = LT.Workspace('userns')
cvm = T.popen(w.argv('--userns', caps=ALL_CAPS, disk='200M',
                     cmd=['/bin/sh', '-c', SCRIPT]),
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
upper_home = LT.host_path(w, '/home')  # DATA/upper/home, or the lane of a volume
for _ in range(400):
    if os.path.exists(os.path.join(upper_home, 'ready')) or cvm.poll() is not None:
        break
    time.sleep(0.05)
# While it runs: the host sees neither its tmpfs nor what it wrote there,
# and the cgroup is the CVM root's.
with open('/proc/self/mountinfo') as f:
    host_mounts = [line.split()[4] for line in f]
R.check('its tmpfs is not mounted on the host',
        not any(m.endswith('/home/m') for m in host_mounts), host_mounts)
R.check('what it wrote to its tmpfs is not on the disk',
        not os.path.exists(os.path.join(upper_home, 'm', 'in-tmpfs')))
cg = os.path.join(LT.cg_memory(w.name), 'ns')
# Delegation as systemd documents it (systemd.io/CGROUP_DELEGATION): the
# directory and the files that move processes and enable controllers.
DELEGATED = ('cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control') if LT.V2 else \
    ('cgroup.procs', 'tasks')
try:
    st = [(os.stat(p).st_uid, os.stat(p).st_gid) for p in
          [cg] + [cg + '/' + f for f in DELEGATED]]
except OSError as e:
    st = str(e)
R.eq('cgroup dir, %s owned by the mapped root' % ', '.join(DELEGATED), st,
     [(BASE, BASE)] * (1 + len(DELEGATED)))
try:
    lim = os.stat(cg + ('/memory.max' if LT.V2 else '/memory.limit_in_bytes')).st_uid
except OSError as e:
    lim = str(e)
R.eq('the limits stay host root\'s', lim, 0)
try:  # while it runs: a volume (and its lanes) is mounted only then
    st = os.stat(os.path.join(upper_home, 'file'))
    owner = (st.st_uid, st.st_gid)
except OSError as e:
    owner = str(e)
out, err = cvm.communicate(timeout=120)
T.forget(cvm)
lines = dict(line.split(' ', 1) for line in out.splitlines() if ' ' in line)
R.eq('exit 0', cvm.returncode, 0, err)
R.eq('id -u, id -g inside: 0 0', lines.get('uid'), '0 0', out + err)
R.eq('uid_map: 0 -> %d, 65536' % BASE, (lines.get('map') or '').split(), ['0', str(BASE), '65536'])
R.eq('gid_map: 0 -> %d, 65536' % BASE, (lines.get('gmap') or '').split(),
     ['0', str(BASE), '65536'])
R.eq('a file in /tmp is root\'s inside', lines.get('tmpuid'), '0', out)
R.eq('a file in /home is root\'s inside', lines.get('homeuid'), '0', out)
R.eq('/ is root\'s inside (the image root\'s owner, shifted)', lines.get('rootdir'),
     'root:root', out + err)
R.eq('root inside can mkdir and create in /', lines.get('mkroot'), 'ok', out + err)
R.eq('a host sysctl cannot be written', lines.get('sysctl'), 'fail', out + err)
if MODULES:
    R.eq('finit_module fails: EPERM', lines.get('finit_module'), os.strerror(1), out + err)
else:
    # Without module support there is nothing to load: a note, not a skip.
    R.not_checked('finit_module: the kernel has no module support (ENOSYS on the host), '
                  'so there is no module to load either', point=False)
R.eq('debugfs (not namespaced) cannot be mounted: EPERM', lines.get('debugfs'), os.strerror(1),
     out + err)
R.eq('tmpfs on the disk can be mounted in its own namespace', lines.get('tmpfs'), 'ok', out + err)
R.eq('/home/file is owned by %d:%d on the host (DATA/upper or the lane)' % (BASE, BASE),
     owner, (BASE, BASE))
try:
    rec = open(os.path.join(w.idmap, w.name)).read().split()
except OSError as e:
    rec = str(e)
R.eq('the range is recorded in IDMAP_DIR/NAME', rec, [str(BASE), str(BASE), '65536'])
LT.check_clean('userns', w.name)

# The same workspace gets the same range on its next launch (its files
# on the disk are owned by it), with --userns left out: it is the default.
rc, out, err = w.launch(disk='200M', cmd=['/bin/sh', '-c',
                                          'cat /proc/self/uid_map; stat -c %u /home/file'])
R.eq('default mode, next launch: same range, /home/file still root\'s',
     (rc, out.split()), (0, ['0', str(BASE), '65536', '0']), err)
LT.check_clean('userns again', w.name)

# --net none: the CVM's own sysfs (its network namespace is the userns's).
rc, out, err = w.launch('--userns', '--net', 'none', disk='200M', cmd=[
    '/bin/sh', '-c', 'id -u; ls /sys/class/net; cat /sys/devices/system/cpu/online'])
R.eq('--net none: uid 0, only lo in its sysfs', (rc, out.split()[:2]), (0, ['0', 'lo']), err)
LT.check_clean('userns net none', w.name)

# Another range from the options (recorded for the workspace from now on).
rc, out, err = w.launch('--userns', userns_uid=200000, userns_gid=300000, userns_count=1000,
                        disk='200M', cmd=['/bin/sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map'])
R.eq('--userns-uid/-gid/-count', (rc, out.split()), (0, ['0', '200000', '1000', '0', '300000', '1000']),
     err)
LT.check_clean('userns range', w.name)

# A workspace made with the old fixed range (100000, before ranges were
# assigned) keeps it: its DATA/upper is owned by it.
old = LT.Workspace('legacy')
os.makedirs(os.path.join(old.data, 'upper', 'root'))
os.chown(os.path.join(old.data, 'upper', 'root'), 100000, 100000)
rc, out, err = old.launch(disk='200M', cmd=['/bin/cat', '/proc/self/uid_map'])
R.eq('a legacy workspace keeps 100000', (rc, out.split()), (0, ['0', '100000', '65536']), err)
LT.check_clean('userns legacy', old.name)

rc, out, err = w.launch('--userns', disk='200M', cmd=['/nonexistent'])
R.eq('--userns, missing CMD: 127', rc, 127, err)
LT.check_clean('userns missing CMD', w.name)

R.summary_and_exit()
