"""/proc/sys in a CVM (issue 18), in the default user namespace and with
--no-userns, attacker style: the sysctls dockerd, systemd and kubelet write
at start that the kernel does not namespace are emulated per CVM by the
views (doc/cvmfsd-views.md, "Sysctls"):
  - a written value reads back; a bad one fails with EINVAL and changes
    nothing; an unprivileged user of the CVM gets EACCES;
  - a second CVM on the same views daemon keeps its own values, and a
    relaunch starts again from the host's (as a reboot does);
  - kernel.core_pattern is refused (EACCES) with a line in the views log;
  - namespaced ones (kernel.shmmax: the CVM's IPC namespace) stay writable;
  - systemd-sysctl with the host's sysctl.d and the kubelet's and dockerd's
    keys exits 0, and the only writes it could not make are the documented
    refusals;
  - dockerd starting inside raises the CVM's keys.root_maxkeys, not the
    host's.
Throughout, every readable file of the host's /proc/sys keeps its value
(a short list of counters aside)."""
import json
import os
import shutil
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_userns()

# key: (CVM A's value, CVM B's value, a value the kernel refuses)
EMULATED = {
    'vm/overcommit_memory': (1, 2, 3),
    'vm/panic_on_oom': (1, 2, 3),
    'kernel/panic': (10, -1, 'x'),
    'kernel/panic_on_oops': (1, 0, '1x'),
    'kernel/keys/root_maxkeys': (1000001, 2000000, 0),
    'kernel/keys/root_maxbytes': (25000025, 30000000, '12ab'),
    'fs/file-max': (9223372036854775807, 5000000, -1),
    'kernel/pid_max': (4194304, 99999, 300),
    'fs/protected_fifos': (1, 2, 3),
    'fs/protected_hardlinks': (1, 0, 2),
    'fs/protected_regular': (2, 1, 3),
    'fs/protected_symlinks': (1, 0, 2),
    'kernel/core_uses_pid': (1, 0, ''),
    'kernel/sysrq': (176, 16, 'z'),
}
EMULATED = {k: v for k, v in EMULATED.items() if os.path.exists('/proc/sys/' + k)}
REFUSED = ['kernel/core_pattern']
# Counters that move by themselves, and what the launcher itself manages
# on the host for --net private (ip_forward, doc/cvm-launch.md).
VOLATILE = ('fs/dentry-state', 'fs/file-nr', 'fs/inode-nr', 'fs/inode-state', 'fs/aio-nr',
            'kernel/ns_last_pid', 'kernel/random/', 'kernel/pty/nr', 'fs/quota/',
            'net/netfilter/nf_conntrack_count', 'net/ipv4/ip_forward')


def volatile(key):
    # conf/all/accept_redirects: the kernel sets it to !ip_forward whenever
    # ip_forward changes (inet_forward_change).
    return (key.startswith(VOLATILE) or key.endswith('/forwarding') or
            key == 'net/ipv4/conf/all/accept_redirects')


def snapshot():
    snap = {}
    for root, _, files in os.walk('/proc/sys'):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    snap[path[len('/proc/sys/'):]] = f.read()
            except OSError:
                pass
    return snap


def check_host(label, before):
    """Entries present in both snapshots (interfaces come and go)."""
    after = snapshot()
    changed = sorted(k for k in before if k in after and not volatile(k) and before[k] != after[k])
    R.eq('%s: the host\'s /proc/sys is unchanged (%d entries)' % (label, len(before)), changed, [],
         {k: (before[k], after[k]) for k in changed[:10]})


PROBE = r'''
import json, os, sys
keys = json.loads(sys.argv[2])
col = 0 if sys.argv[1] == 'A' else 1

def rd(k):
    try:
        with open('/proc/sys/' + k) as f:
            return f.read().strip()
    except OSError as e:
        return 'E%d' % e.errno

def wr(k, v):
    try:
        fd = os.open('/proc/sys/' + k, os.O_WRONLY | os.O_TRUNC)
    except OSError as e:
        return 'E%d' % e.errno
    try:
        os.write(fd, ('%s\n' % v).encode())
        return 'ok'
    except OSError as e:
        return 'E%d' % e.errno
    finally:
        os.close(fd)

def user_write(k):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setgid(65534)
        os.setuid(65534)
        os.write(w, wr(k, 1).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    return os.read(r, 64).decode()

res = {'fresh': {k: rd(k) for k in keys}}
res['write'] = {k: wr(k, v[col]) for k, v in keys.items()}
res['read'] = {k: rd(k) for k in keys}
res['bad'] = {k: wr(k, v[2]) for k, v in keys.items()}
res['after_bad'] = {k: rd(k) for k in keys}
res['user'] = user_write('vm/overcommit_memory')
res['refused'] = {k: [wr(k, '|/tmp/cvmfs-test-x %p'), rd(k)] for k in json.loads(sys.argv[3])}
res['shmmax'] = [wr('kernel/shmmax', 123456789), rd('kernel/shmmax')]
# A host-wide knob nobody emulates: read-only (EROFS), never the host's.
lease = rd('fs/lease-break-time')
res['other'] = wr('fs/lease-break-time', int(lease) + 1 if lease.isdigit() else 46)
print(json.dumps(res), flush=True)
if sys.argv[1] == 'A':
    sys.stdin.readline()
    print(json.dumps({'later': {k: rd(k) for k in keys}}), flush=True)
'''


def image():
    img = LT.image()
    if not os.path.exists(img + '/sysctl_probe.py'):
        with open(img + '/sysctl_probe.py', 'w') as f:
            f.write(PROBE)
    return img


def probe_argv(role):
    return ['python3', '/sysctl_probe.py', role, json.dumps(EMULATED), json.dumps(REFUSED)]


def check_probe(label, res, col, host):
    want = {k: str(v[col]) for k, v in EMULATED.items()}
    R.eq(label + ': a fresh CVM reads the host\'s values', res['fresh'],
         {k: host[k].strip() for k in EMULATED})
    R.eq(label + ': every write is taken', res['write'], {k: 'ok' for k in EMULATED})
    R.eq(label + ': every value reads back', res['read'], want)
    R.eq(label + ': a value out of range or not a number: EINVAL', res['bad'],
         {k: 'E22' for k in EMULATED})
    R.eq(label + ': ... and the value stays', res['after_bad'], want)
    R.eq(label + ': an unprivileged user of the CVM: EACCES', res['user'], 'E13')
    for k in REFUSED:
        R.eq(label + ': %s refused with EACCES, the host\'s value shown' % k,
             res['refused'][k], ['E13', host[k].strip()])
    R.eq(label + ': kernel.shmmax (the CVM\'s IPC namespace) is writable', res['shmmax'],
         ['ok', '123456789'])
    R.eq(label + ': fs.lease-break-time (host-wide, not emulated): EROFS', res['other'], 'E30')


def parse(out):
    for line in out.splitlines():
        if line.startswith('{'):
            return json.loads(line)
    return None


def two_cvms(mode, label):
    """CVM A writes its values and waits; CVM B, on the same views
    daemon, writes others; A still reads its own; a relaunch of A reads
    the host's again."""
    host = snapshot()
    wa = LT.Workspace('sysctl-a')
    wb = LT.Workspace('sysctl-b')
    wb.views = wa.views
    pa = T.popen(wa.argv(*mode, disk='200M', net='none', cmd=probe_argv('A')),
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = pa.stdout.readline()
    res_a = parse(first)
    R.check(label + ': CVM A ran its probe', res_a is not None, first)
    rc, out, err = wb.launch(*mode, disk='200M', net='none', cmd=probe_argv('B'))
    res_b = parse(out)
    R.check(label + ': CVM B ran its probe', rc == 0 and res_b is not None, (rc, out, err[-2000:]))
    try:
        out_a, err_a = pa.communicate('go\n', timeout=60)
    except subprocess.TimeoutExpired:
        pa.kill()
        out_a, err_a = pa.communicate()
    T.forget(pa)
    later = parse(out_a) or {}
    if res_a:
        check_probe(label + ' A', res_a, 0, host)
    if res_b:
        check_probe(label + ' B', res_b, 1, host)
    R.eq(label + ': A still reads its own values after B wrote', later.get('later'),
         {k: str(v[0]) for k, v in EMULATED.items()})
    R.check(label + ': the refused write is logged by the views',
            'kernel.core_pattern: write by pid' in err_a + err, err_a[-1500:])
    rc, out, err = wa.launch(*mode, disk='200M', net='none',
                             cmd=['cat'] + ['/proc/sys/' + k for k in EMULATED])
    R.eq(label + ': a relaunched CVM starts from the host\'s values', out.split(),
         [host[k].strip() for k in EMULATED])
    LT.check_clean(label + ' A', wa.name)
    LT.check_clean(label + ' B', wb.name)
    check_host(label, host)


# --- systemd-sysctl -------------------------------------------------------
# What a booting CVM applies: the host's /usr/lib/sysctl.d, upstream
# systemd's 50-default.conf and 50-coredump.conf, dockerd's and kubelet's.
SYSCTL_CONF = '''
kernel.sysrq = 16
kernel.core_uses_pid = 1
kernel.core_pattern = |/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h
net.ipv4.conf.default.rp_filter = 2
net.ipv4.conf.default.accept_source_route = 0
-net.ipv4.ping_group_range = 0 2147483647
net.core.default_qdisc = fq_codel
fs.protected_hardlinks = 1
fs.protected_symlinks = 1
fs.protected_regular = 1
fs.protected_fifos = 1
fs.file-max = 9223372036854775807
kernel.keys.root_maxkeys = 1000000
kernel.keys.root_maxbytes = 25000000
vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
net.ipv4.ip_forward = 1
'''
# What it may fail to write (doc/cvmfsd-views.md): the refused ones, and
# with --no-userns ip_forward (EPERM: no CAP_NET_ADMIN). Knobs the kernel
# lacks there (ENOENT: kernel.sysrq without CONFIG_MAGIC_SYSRQ,
# net.core.default_qdisc outside the initial network namespace) are the
# kernel's, logged and ignored by systemd-sysctl as on a VM of that kernel.
DOCUMENTED_REFUSALS = {'kernel/core_pattern'}
NO_USERNS_REFUSALS = {'net/ipv4/ip_forward'}
# In a user namespace the kernel takes only mapped gids (EINVAL for the
# whole range): upstream's 50-default.conf marks the line '-' for this.
USERNS_REFUSALS = {'net/ipv4/ping_group_range'}


def systemd_sysctl(mode, label):
    exe = '/lib/systemd/systemd-sysctl'
    if not os.access(exe, os.X_OK):
        R.not_checked('systemd-sysctl is not installed on the host', point=False)
        return
    img = image()
    if not os.path.exists(img + '/usr/bin/systemd-sysctl'):
        LT._add_program(img, exe)
        os.makedirs(img + '/usr/lib/sysctl.d', exist_ok=True)
        os.makedirs(img + '/etc/sysctl.d', exist_ok=True)
        if os.path.isdir('/usr/lib/sysctl.d'):
            for name in os.listdir('/usr/lib/sysctl.d'):
                shutil.copy('/usr/lib/sysctl.d/' + name, img + '/usr/lib/sysctl.d/')
        with open(img + '/etc/sysctl.d/90-cvmfs-test.conf', 'w') as f:
            f.write(SYSCTL_CONF)
    host = snapshot()
    w = LT.Workspace('sysctl-sd')
    rc, out, err = w.sh('SYSTEMD_LOG_LEVEL=debug /usr/bin/systemd-sysctl; echo "rc $?"; '
                        'cat /proc/sys/kernel/pid_max /proc/sys/vm/overcommit_memory '
                        '/proc/sys/kernel/panic', *mode, disk='200M', net='none')
    lines = out.splitlines() + err.splitlines()
    R.check(label + ': systemd-sysctl exits 0', 'rc 0' in lines, (out, err[-3000:]))
    failed, absent = set(), set()
    for line in lines:
        if "Couldn't write" in line:
            key = line.split("' to '")[-1].split("'")[0]
            (absent if line.endswith('No such file or directory') else failed).add(key)
    print('# %s: systemd-sysctl could not write: %s; absent: %s'
          % (label, sorted(failed), sorted(absent)), flush=True)
    allowed = DOCUMENTED_REFUSALS | (NO_USERNS_REFUSALS if mode else USERNS_REFUSALS)
    R.check(label + ': its failed writes are the documented refusals only',
            failed <= allowed and REFUSED[0] in failed, failed)
    R.check(label + ': the knobs it found absent are absent on the host or outside '
            'the initial network namespace',
            all(not os.path.exists('/proc/sys/' + k) or k.startswith('net/') for k in absent),
            absent)
    R.eq(label + ': its values read back (pid_max, overcommit_memory, panic)',
         out.split()[-3:], ['4194304', '1', '10'])
    LT.check_clean(label + ' systemd-sysctl', w.name)
    check_host(label + ' systemd-sysctl', host)


# --- dockerd ---------------------------------------------------------------
def dockerd(label):
    """dockerd raises keys.root_maxkeys/maxbytes below 1000000/25000000:
    set lower first, inside, so that it writes."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(LT.HERE), 'docker'))
    try:
        import dockertest as DT
        layers = [DT.docker_layer(), LT.systemd_rootfs()]
    except (SystemExit, Exception) as e:  # noqa: B902 (a skip inside the helper)
        R.not_checked('dockerd: no Docker image (%s)' % e, point=False)
        return
    host = snapshot()
    w = LT.Workspace('sysctl-dk')
    cmd = ['/bin/sh', '-c', 'echo 200 > /proc/sys/kernel/keys/root_maxkeys; '
           'echo 5000 > /proc/sys/kernel/keys/root_maxbytes; exec "$@"', 'sh'] + DT.DOCKERD
    cvm = DT.CVM(w, layers, memory='1G', disk='3G', tag='sysctl-dk', cmd=cmd)
    if cvm.wait_docker()[0]:
        rc, out = cvm.sh('cat /proc/sys/kernel/keys/root_maxkeys '
                         '/proc/sys/kernel/keys/root_maxbytes')
        R.eq(label + ': dockerd raised the CVM\'s own keys.root_maxkeys/maxbytes',
             out.split(), ['1000000', '25000000'])
        log = cvm.console(2000)
        R.check(label + ': ... through the views\' emulation (their log says so)',
                'sysctl kernel.keys.root_maxkeys = 1000000 in CVM' in log, log[-1500:])
        check_host(label + ' with dockerd running', host)
    cvm.stop()
    check_host(label + ' after dockerd', host)


image()
for mode, label in (([], 'userns'), (['--no-userns'], 'no-userns')):
    two_cvms(mode, label)
    systemd_sysctl(mode, label)
dockerd('userns')
R.summary_and_exit()
