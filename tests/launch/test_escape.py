"""Escapes a CVM's root would try, one check per class, each of which must
fail in a default CVM (the launcher's defaults, with a user namespace) and
with --no-userns, and also with every capability kept (--no-userns
--unsafe-host-root-caps --caps all), where only the seccomp filter and the
device allow-list stand in the way:

  devices   a host loop device (ours: a cvmfs-test- file) opened through a
            node made in the CVM's /dev and one made on its disk: EPERM
  keyring   add_key, keyctl(KEYCTL_GET_KEYRING_ID, user keyring): ENOSYS
            (as without kernel keys: runc, inside, goes on only then)
  modules   finit_module(/dev/null): EPERM
  kexec     kexec_load: EPERM
  handles   open_by_handle_at (the "shocker" escape): EPERM
  perf      perf_event_open: EPERM
  uffd      userfaultfd: EPERM
  bpf       bpf(BPF_MAP_CREATE): EPERM
  personality  READ_IMPLIES_EXEC: EPERM
  io_uring  io_uring_setup: ENOSYS (as on a kernel without it)
  i386      keyctl through int $0x80 (the 32-bit ABI, other numbers): ENOSYS

Each check is shown to detect the protection's absence: the same probe
with --seccomp unconfined (and a --device granting the loop device) must
get through, wherever this kernel lets it. What must keep working is
checked too: /dev/null, zero, full, random, urandom, tty, ptmx, fuse,
net/tun, name_to_handle_at, a new user namespace, mount -t tmpfs (with
sys_admin), reboot(2) of the CVM from its PID 1 (systemd's poweroff)."""
import os
import shutil
import subprocess

import launchtest as LT

T = LT.T
R = T.R
LT.require()

EPERM, EACCES, ENOSYS = os.strerror(1), os.strerror(13), os.strerror(38)
MAGIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'

PROBE = r'''
import ctypes, errno, os, stat, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
MAJ, MIN = int(sys.argv[1]), int(sys.argv[2])

def res(r):
    return 'ok' if r >= 0 else os.strerror(ctypes.get_errno())

def out(name, value):
    print(name, value, flush=True)

def py(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return os.strerror(e.errno)

def block_node(path):
    if os.path.lexists(path):
        os.unlink(path)
    made = py(lambda: os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(MAJ, MIN)))
    def read():
        with open(path, 'rb') as f:
            data = f.read(26)
        if data != MAGIC.encode():
            raise OSError(errno.EIO, 'unexpected data')
    return '%s/%s' % (made, py(read) if made == 'ok' else '-')

MAGIC = sys.argv[3]
if MAJ:
    out('blk_dev', block_node('/dev/x'))
    out('blk_disk', block_node('/root/x'))
    for name in sorted(os.listdir('/dev')):
        if name.startswith('loop'):  # given by --device /dev/loopN
            out('blk_bound', py(lambda: open('/dev/' + name, 'rb').read(26) == MAGIC.encode()
                                 or (_ for _ in ()).throw(OSError(errno.EIO, 'data'))))
SC = dict(add_key=248, keyctl=250, finit_module=313, kexec_load=246,
          open_by_handle_at=304, name_to_handle_at=303, perf_event_open=298,
          userfaultfd=323, bpf=321, personality=135, reboot=169, io_uring_setup=425)
out('add_key', res(libc.syscall(SC['add_key'], b'user', b'cvmfs-test', b'x', 1, -2)))
out('keyctl', res(libc.syscall(SC['keyctl'], 0, -4, 0)))
fd = os.open('/dev/null', os.O_RDONLY)
out('finit_module', res(libc.syscall(SC['finit_module'], fd, b'', 0)))
out('kexec_load', res(libc.syscall(SC['kexec_load'], 0, 0, None, 0xdead0000)))
handle = ctypes.create_string_buffer(8 + 128)
ctypes.c_uint.from_buffer(handle).value = 128
mount_id = ctypes.c_int()
out('name_to_handle_at', res(libc.syscall(SC['name_to_handle_at'], -100, b'/tmp', handle,
                                          ctypes.byref(mount_id), 0)))
tmp = os.open('/tmp', os.O_RDONLY)
out('open_by_handle_at', res(libc.syscall(SC['open_by_handle_at'], tmp, handle, os.O_RDONLY)))
attr = ctypes.create_string_buffer(128)
ctypes.c_uint.from_buffer(attr, 0).value = 1          # PERF_TYPE_SOFTWARE
ctypes.c_uint.from_buffer(attr, 4).value = 128        # size
ctypes.c_ulonglong.from_buffer(attr, 8).value = 1     # PERF_COUNT_SW_TASK_CLOCK
ctypes.c_ulonglong.from_buffer(attr, 40).value = 1 | 1 << 5 | 1 << 6  # disabled, exclude_kernel/hv
out('perf_event_open', res(libc.syscall(SC['perf_event_open'], attr, 0, -1, -1, 0)))
out('userfaultfd', res(libc.syscall(SC['userfaultfd'], 1 | os.O_CLOEXEC)))  # UFFD_USER_MODE_ONLY
mattr = ctypes.create_string_buffer(128)
for i, v in enumerate((2, 4, 4, 1)):                  # BPF_MAP_TYPE_ARRAY, 4, 4, 1 entry
    ctypes.c_uint.from_buffer(mattr, 4 * i).value = v
out('bpf', res(libc.syscall(SC['bpf'], 0, mattr, 128)))
uparams = ctypes.create_string_buffer(120)            # struct io_uring_params
r = libc.syscall(SC['io_uring_setup'], 4, uparams)
out('io_uring_setup', res(r))
if r >= 0:
    os.close(r)
r = libc.syscall(SC['personality'], 0x0400000)        # READ_IMPLIES_EXEC
out('personality', res(r))
if r >= 0:
    libc.syscall(SC['personality'], 0)
out('personality_query', res(libc.syscall(SC['personality'], 0xffffffff)))
if os.path.exists('/i80'):
    out('i386', os.popen('/i80').read().strip())
for node, mode in (('null', os.O_RDWR), ('zero', os.O_RDONLY), ('full', os.O_WRONLY),
                   ('random', os.O_RDONLY), ('urandom', os.O_RDONLY), ('ptmx', os.O_RDWR),
                   ('fuse', os.O_RDWR), ('net/tun', os.O_RDWR), ('tty', os.O_RDWR)):
    if os.path.exists('/dev/' + node):
        out('dev_' + node, py(lambda: os.close(os.open('/dev/' + node, mode))))
pid = os.fork()
if pid == 0:
    os._exit(0 if libc.unshare(0x10000000) == 0 else ctypes.get_errno())
out('unshare_user', 'ok' if os.waitpid(pid, 0)[1] == 0 else 'failed')
os.makedirs('/tmp/m', exist_ok=True)
out('mount_tmpfs', res(libc.mount(b'none', b'/tmp/m', b'tmpfs', 0, None)))
out('done', 'ok')
if len(sys.argv) > 4:
    libc.syscall(SC['reboot'], 0xfee1dead, 672274793, 0x4321fedc, None)  # POWER_OFF
    out('reboot', os.strerror(ctypes.get_errno()))
'''

# int $0x80 from x86-64 code: the 32-bit ABI's keyctl (288), with the
# 64-bit write (1) and exit (60) around it. No libc: static, tiny.
I80 = r'''
static long sys3(long nr, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
static long i386(long nr, long a, long b, long c) {
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return r;
}
void _start(void) {
	long r = i386(288, 0, -4, 0);
	char buf[24], *p = buf + sizeof(buf);
	int neg = r < 0;
	unsigned long v = neg ? -r : r;
	*--p = '\n';
	do { *--p = '0' + v % 10; v /= 10; } while (v);
	if (neg) *--p = '-';
	sys3(1, 1, (long)p, buf + sizeof(buf) - p);
	sys3(60, 0, 0, 0);
}
'''


def build_i80(img):
    """The 32-bit ABI probe, if this machine can build and run it."""
    gcc = shutil.which('gcc')
    if not gcc or os.uname().machine != 'x86_64':
        return 'no gcc for x86_64 here'
    src = os.path.join(T.tempdir('i80-'), 'i80.c')
    with open(src, 'w') as f:
        f.write(I80)
    p = subprocess.run([gcc, '-O1', '-static', '-nostdlib', '-fno-stack-protector', '-o',
                        img + '/i80', src], stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return 'gcc failed: ' + p.stderr.strip()[-200:]
    try:
        host = subprocess.run([img + '/i80'], stdout=subprocess.PIPE, text=True,
                              timeout=10).stdout.strip()
    except OSError as e:
        return 'cannot run it: %s' % e
    if not host.lstrip('-').isdigit() or int(host) in (-38, -14):
        os.unlink(img + '/i80')
        return 'int $0x80 does not work on this kernel (%s)' % host
    return None


def loop_device():
    """A loop device over our own file with MAGIC at its start."""
    if not shutil.which('losetup'):
        return None, 'losetup is missing'
    path = os.path.join(T.tempdir('loop-'), 'cvmfs-test-disk')
    with open(path, 'wb') as f:
        f.write(MAGIC.encode() + b'\0' * (1 << 20))
    p = subprocess.run(['losetup', '--find', '--show', path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return None, 'losetup failed: ' + p.stderr.strip()
    dev = p.stdout.strip()
    _detach_on_cleanup(dev)
    return dev, None


def _detach_on_cleanup(dev):
    """Detach our loop device (by its name, ours only) in the shared
    cleanup, which also runs on SIGTERM and on failure."""
    shared = T.cleanup_all

    def cleanup():
        subprocess.run(['losetup', '-d', dev], stderr=subprocess.DEVNULL)
        shared()
    T.cleanup_all = cleanup
    T.atexit.register(cleanup)


def supports(option):
    p = subprocess.run([LT.LAUNCH, option, '--name', '.', '--image', '/nonexistent'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return 'unrecognized option' not in p.stderr and 'unknown option' not in p.stderr


img = LT.image()
with open(img + '/probe.py', 'w') as f:
    f.write(PROBE)
i80_missing = build_i80(img)
dev, loop_missing = loop_device()
if dev:
    st = os.stat(dev)
    MAJ, MIN = os.major(st.st_rdev), os.minor(st.st_rdev)
else:
    MAJ = MIN = 0
    # An escape class not tried: the test skips (77) unless a check fails.
    R.not_checked('devices (a host loop device): %s' % loop_missing)
if i80_missing:
    R.not_checked('i386 (int $0x80): %s' % i80_missing)

NO_USERNS = supports('--no-userns')
ALL_CAPS = ['--caps', 'all']
if NO_USERNS:
    ALL_CAPS = ['--no-userns'] + (['--unsafe-host-root-caps']
                                  if supports('--unsafe-host-root-caps') else []) + ALL_CAPS
w = LT.Workspace('escape')


def probe(label, *extra, reboot=False):
    devs = ['0', '0'] if reboot else [str(MAJ), str(MIN)]
    cmd = ['/usr/bin/python3', '/probe.py'] + devs + [MAGIC] + (['reboot'] if reboot else [])
    rc, out, err = w.launch(*extra, cmd=cmd, memory='256M', disk='200M', pids=200)
    LT.check_clean(label, w.name)
    got = dict(line.split(' ', 1) for line in out.splitlines() if ' ' in line)
    if got.get('done') != 'ok':
        R.check('%s: the probe ran to its end' % label, False, out, detail=err)
    return rc, got, out + err


SECCOMP_CLASSES = [('add_key', ENOSYS), ('keyctl', ENOSYS), ('finit_module', EPERM),
                   ('kexec_load', EPERM), ('open_by_handle_at', EPERM),
                   ('perf_event_open', EPERM), ('userfaultfd', EPERM), ('bpf', EPERM),
                   ('personality', EPERM), ('io_uring_setup', ENOSYS)]


def blocked(label, got, detail):
    R.check('%s: no loop device in /dev' % label, 'blk_bound' not in got, got.get('blk_bound'))
    """Every escape class fails, with the errno that says who stopped it."""
    if MAJ:
        # Without a user namespace the node can be made ("b *:* m", as
        # runc needs); opening it is what the allow-list refuses. In one,
        # the kernel refuses the mknod itself.
        v = got.get('blk_dev', '')
        R.check('%s: host loop device through a node in /dev: %s' % (label, v),
                v in ('ok/' + EPERM, EPERM + '/-'), v, 'ok/' + EPERM, detail)
        # The disk is mounted nodev (libfuse's default): EACCES comes first,
        # the allow-list stands behind it.
        v = got.get('blk_disk', '')
        R.check('%s: host loop device through a node on the disk: %s' % (label, v),
                v in ('ok/' + EPERM, 'ok/' + EACCES, EPERM + '/-'), v, 'ok/' + EACCES, detail)
    for key, want in SECCOMP_CLASSES:
        R.eq('%s: %s' % (label, key), got.get(key), want, detail)
    if not i80_missing:
        R.eq('%s: keyctl through int $0x80 (32-bit ABI)' % label, got.get('i386'), '-38', detail)


def works(label, got, detail, mount=True):
    for key in ('dev_null', 'dev_zero', 'dev_full', 'dev_random', 'dev_urandom', 'dev_ptmx',
                'dev_fuse', 'dev_net/tun', 'name_to_handle_at', 'unshare_user',
                'personality_query'):
        if key in got or key in ('dev_null', 'dev_zero', 'dev_urandom', 'name_to_handle_at'):
            R.eq('%s: %s works' % (label, key), got.get(key), 'ok', detail)
    # No controlling terminal here: ENXIO, never EPERM.
    R.check('%s: /dev/tty is not refused' % label, got.get('dev_tty') != EPERM, got.get('dev_tty'))
    if mount:
        R.eq('%s: mount -t tmpfs' % label, got.get('mount_tmpfs'), 'ok', detail)


# 1. The launcher's defaults (limits only).
rc, got, detail = probe('default')
R.eq('default: exit 0', rc, 0, detail)
blocked('default', got, detail)
works('default', got, detail, mount=got.get('mount_tmpfs') != EPERM or NO_USERNS)

# 2. Without a user namespace: host root inside, Docker's capabilities.
if NO_USERNS:
    rc, got, detail = probe('no-userns', '--no-userns')
    R.eq('no-userns: exit 0', rc, 0, detail)
    blocked('no-userns', got, detail)
    works('no-userns', got, detail, mount=False)  # no sys_admin by default

# 3. Every capability: only the filter and the allow-list stand.
rc, got, detail = probe('all caps', *ALL_CAPS)
R.eq('all caps: exit 0', rc, 0, detail)
blocked('all caps', got, detail)
works('all caps', got, detail)

# 4. The same attacker without the protections gets through wherever this
# kernel lets it: each check above detects their absence.
rc, got, detail = probe('unconfined', *ALL_CAPS, '--seccomp', 'unconfined',
                        *(['--device', 'b %d:%d r' % (MAJ, MIN), '--device', dev + ' r']
                          if MAJ else []))
R.eq('unconfined: exit 0', rc, 0, detail)
for key, want in SECCOMP_CLASSES:
    # The class was tried and refused above; only the proof that the
    # filter is what refuses it is out of reach where the kernel refuses
    # it by itself too (or lacks it: ENOSYS): a side check, noted.
    if got.get(key) in (want, ENOSYS):
        R.not_checked('%s unconfined: this kernel refuses it by itself too (%s): the filter '
                      'is not separately observable' % (key, got.get(key)), point=False)
    else:
        R.check('unconfined: %s gets through (%s)' % (key, got.get(key)),
                key in got and got[key] != want)
if not i80_missing:
    R.check('unconfined: int $0x80 keyctl gets through (%s)' % got.get('i386'),
            got.get('i386', '-38').lstrip('-').isdigit() and got.get('i386') != '-38')
if MAJ and NO_USERNS:
    R.eq('--device b %d:%d r: the loop device reads through /dev' % (MAJ, MIN),
         got.get('blk_dev'), 'ok/ok', detail)
    R.eq('--device %s r: bound into the CVM\'s /dev, reads' % dev, got.get('blk_bound'), 'ok',
         detail)

# Bad values: one line naming the option, 125, nothing left.
for extra, word in ((['--device', 'x 1:3'], '--device'), (['--device', '/etc/passwd'], '--device'),
                    (['--seccomp', 'off'], '--seccomp')):
    rc, out, err = w.launch(*extra, cmd=['/bin/true'])
    R.check('%s %s: one line naming it, exit 125' % tuple(extra),
            rc == 125 and len(err.strip().splitlines()) == 1 and word in err, (rc, err))
    LT.check_clean('bad %s' % word, w.name)
rc, out, err = w.launch('--seccomp', 'unconfined', cmd=['/bin/true'])
R.check('--seccomp unconfined: a warning line', rc == 0 and 'unconfined' in err, (rc, err))
LT.check_clean('unconfined warning', w.name)

# 5. reboot(2) from PID 1 ends the CVM, as systemd's poweroff does.
rc, got, detail = probe('reboot', reboot=True)
R.check('reboot(POWER_OFF) by PID 1 ends the CVM with 0, not EPERM (%s)' % got.get('reboot'),
        rc == 0 and 'reboot' not in got, detail)

R.summary_and_exit()
