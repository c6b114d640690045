"""sysinfo(2) and sched_getaffinity(2) answered for the caller (issue 18):
in CVMs with --memory 512M --cpus 1 --cpuset 0-1 and with --memory 768M
--cpuset 1, busybox free/uptime/nproc, getconf _PHYS_PAGES,
os.sysconf('SC_PHYS_PAGES'), nproc and os.sched_getaffinity agree with the
limits, while the real affinity (taskset -p, Cpus_allowed_list, another
process's sched_getaffinity) keeps the whole cpuset; the kernel's EINVAL/EFAULT cases stay; a child cgroup with a
smaller memory limit (what docker run -m makes) sees its own limit, in the
default user namespace and without; a killed views daemon leaves the calls
answered natively (never ENOSYS, never a hang) and a new one takes over."""
import os
import shutil
import signal
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_userns()

MiB = LT.MiB
PAGE = os.sysconf('SC_PAGE_SIZE')
if os.cpu_count() < 2:
    T.skip('needs 2 CPUs (--cpuset 0-1)')

# Inside the CVM: the raw calls through ctypes (no libc caching), then the
# tools. One "key value" line each.
PROBE = r'''
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class SI(ctypes.Structure):
    _fields_ = [('uptime', ctypes.c_long), ('loads', ctypes.c_ulong * 3),
                ('totalram', ctypes.c_ulong), ('freeram', ctypes.c_ulong),
                ('sharedram', ctypes.c_ulong), ('bufferram', ctypes.c_ulong),
                ('totalswap', ctypes.c_ulong), ('freeswap', ctypes.c_ulong),
                ('procs', ctypes.c_ushort), ('pad', ctypes.c_ushort),
                ('totalhigh', ctypes.c_ulong), ('freehigh', ctypes.c_ulong),
                ('mem_unit', ctypes.c_uint), ('f', ctypes.c_char * 4)]
si = SI()
rc = libc.syscall(99, ctypes.byref(si))  # SYS_sysinfo (x86_64)
u = si.mem_unit
print('si', rc, si.totalram * u, si.freeram * u, si.totalswap * u, si.uptime, si.procs,
      ' '.join(str(l) for l in si.loads))
up = open('/proc/uptime').read().split()[0]
print('procuptime', up)
print('procload', ' '.join(open('/proc/loadavg').read().split()[:3]))
mem = {l.split(':')[0]: int(l.split()[1]) * 1024 for l in open('/proc/meminfo')}
print('meminfo', mem['MemTotal'], mem['MemFree'], mem['SwapTotal'])
print('efault', libc.syscall(99, ctypes.c_void_p(8)), ctypes.get_errno())
buf = ctypes.create_string_buffer(256)
for n in (0, 4, 6, 8, 128):
    ctypes.set_errno(0)
    r = libc.syscall(204, 0, n, buf)  # SYS_sched_getaffinity
    print('aff%d' % n, r, ctypes.get_errno() if r < 0 else buf.raw[0])
print('afffault', libc.syscall(204, 0, 8, ctypes.c_void_p(8)), ctypes.get_errno())
print('pyaff0', ','.join(map(str, sorted(os.sched_getaffinity(0)))))
print('pyaffpid', ','.join(map(str, sorted(os.sched_getaffinity(os.getpid())))))
print('pyaff1', ','.join(map(str, sorted(os.sched_getaffinity(1)))))
print('pyphys', os.sysconf('SC_PHYS_PAGES'))
'''

SCRIPT = r'''
python3 /probe.py
echo "getconf $(getconf _PHYS_PAGES)"
echo "nproc $(nproc)"
echo "status $(grep Cpus_allowed_list /proc/self/status | cut -f2)"
t=$(taskset -p $$); echo "taskset ${t##*: }"
if [ -x /bin/busybox ]; then
  echo "bbfree $(busybox free -b | grep Mem:)"
  echo "bbnproc $(busybox nproc)"
  echo "bbuptime $(busybox uptime)"
fi
'''


def fields(out):
    d = {}
    for line in out.splitlines():
        k, _, v = line.partition(' ')
        d.setdefault(k, v.strip())
    return d


def bb_total(line):
    """The total of busybox free's Mem: line: the 15 characters past 'Mem:'
    (under the header "total"); the columns have no separator. (Its
    "used" is total - free - buffers - cached, free from sysinfo and cached
    from /proc/meminfo, two readings that may be up to ct-ttl-ms apart: in
    a fresh small cgroup it can wrap below 0 and fill its column.)"""
    rest = line.partition('Mem:')[2]
    return rest[:15].strip()


def image():
    img = LT.image()
    if not os.path.exists(img + '/probe.py'):
        with open(img + '/probe.py', 'w') as f:
            f.write(PROBE)
        LT._add_program(img, shutil.which('taskset'))
        bb = shutil.which('busybox')
        if bb:
            LT._copy(os.path.realpath(bb), img)
            for lib in LT._libs(bb):
                LT._copy(lib, img)
            os.symlink(os.path.realpath(bb), img + '/bin/busybox') \
                if not os.path.lexists(img + '/bin/busybox') else None
    return img


def host_affinity_results():
    """The kernel's own answers to the size cases, on the host."""
    p = subprocess.run(['python3', '-c', PROBE], stdout=subprocess.PIPE, text=True)
    return fields(p.stdout)


def check_cvm(label, out, err, mem, cpus_shown, cpuset, host):
    f = fields(out)
    si = (f.get('si') or '').split()
    R.check(label + ': sysinfo returns 0', si[:1] == ['0'], out, detail=err)
    if len(si) < 9:
        return
    R.eq(label + ': sysinfo totalram == --memory', int(si[1]), mem, out)
    meminfo = [int(x) for x in f['meminfo'].split()]
    R.eq(label + ': sysinfo totalram == MemTotal of the view', int(si[1]), meminfo[0])
    R.check(label + ': sysinfo freeram <= totalram, near MemFree',
            int(si[2]) <= int(si[1]) and abs(int(si[2]) - meminfo[1]) < 64 * MiB, si, meminfo)
    R.eq(label + ': sysinfo totalswap == SwapTotal of the view', int(si[3]), meminfo[2])
    up = float(f['procuptime'])
    R.check(label + ': sysinfo uptime is the CVM\'s /proc/uptime (< 60 s)',
            up - 1 <= int(si[4]) <= up + 2 and int(si[4]) < 60, (si[4], up))
    R.check(label + ': sysinfo procs counts the CVM\'s threads (< 50)', 0 < int(si[5]) < 50, si)
    loads = [int(x) / 65536 for x in si[6:9]]
    view = [float(x) for x in f['procload'].split()]
    R.check(label + ': sysinfo loads == /proc/loadavg of the view',
            all(abs(a - b) <= 0.011 for a, b in zip(loads, view)), (loads, view))
    R.eq(label + ': sysinfo(bad pointer): EFAULT', f.get('efault'), '-1 14')
    for n in (0, 4, 6):
        R.eq(label + ': sched_getaffinity len %d: as the kernel (EINVAL)' % n,
             f.get('aff%d' % n), host.get('aff%d' % n))
    R.eq(label + ': sched_getaffinity(0, 8): 8 bytes, the shown CPUs',
         f.get('aff8'), '8 %d' % sum(1 << c for c in cpus_shown))
    R.eq(label + ': sched_getaffinity(0, 128): the kernel\'s length',
         (f.get('aff128') or ' ').split()[0], host['aff128'].split()[0])
    R.eq(label + ': sched_getaffinity to a bad pointer: EFAULT', f.get('afffault'), '-1 14')
    shown = ','.join(map(str, cpus_shown))
    R.eq(label + ': os.sched_getaffinity(0)', f.get('pyaff0'), shown, out)
    R.eq(label + ': nproc', f.get('nproc'), str(len(cpus_shown)), out)
    R.eq(label + ': getconf _PHYS_PAGES == --memory', f.get('getconf'), str(mem // PAGE), out)
    R.eq(label + ': os.sysconf(SC_PHYS_PAGES) == --memory', f.get('pyphys'), str(mem // PAGE))
    real = ','.join(map(str, cpuset))
    R.eq(label + ': os.sched_getaffinity(own pid): the shown CPUs (dockerd asks so)',
         f.get('pyaffpid'), shown)
    R.eq(label + ': os.sched_getaffinity(1), another process: the real mask',
         f.get('pyaff1'), real)
    R.eq(label + ': Cpus_allowed_list: the whole cpuset', f.get('status'),
         '%d-%d' % (cpuset[0], cpuset[-1]) if len(cpuset) > 1 else str(cpuset[0]))
    R.eq(label + ': taskset -p: the whole cpuset', f.get('taskset'),
         '%x' % sum(1 << c for c in cpuset), out)
    if 'bbfree' not in f:
        R.not_checked('busybox is not installed on the host (scripts/deps.sh: '
                      'busybox-static): busybox free/nproc/uptime', point=False)
        return
    R.eq(label + ': busybox free total == --memory', bb_total(f['bbfree']), str(mem), out)
    R.eq(label + ': busybox nproc', f.get('bbnproc'), str(len(cpus_shown)))
    bbup = f.get('bbuptime', '')
    R.check(label + ': busybox uptime is the CVM\'s (up 0/1 min)',
            ' up 0 min' in bbup or ' up 1 min' in bbup, bbup)
    bbload = bbup.rpartition('load average:')[2].replace(',', ' ').split()
    R.check(label + ': busybox uptime load == /proc/loadavg of the view',
            len(bbload) == 3 and all(abs(float(a) - b) <= 0.011 for a, b in zip(bbload, view)),
            (bbload, view))


image()
host = host_affinity_results()
w = LT.Workspace('sysinfo')

rc, out, err = w.sh(SCRIPT, memory='512M', cpus=1, cpuset='0-1')
R.eq('512M/1 CPU/0-1: exit 0', rc, 0, err)
check_cvm('512M/1 CPU/0-1', out, err, 512 * MiB, [0], [0, 1], host)
LT.check_clean('512M', w.name)

rc, out, err = w.sh(SCRIPT, memory='768M', cpuset='1')
R.eq('768M/cpuset 1: exit 0', rc, 0, err)
check_cvm('768M/cpuset 1', out, err, 768 * MiB, [1], [1], host)
LT.check_clean('768M', w.name)

# 8 threads calling at once (ctypes drops the GIL): every answer is the
# CVM's, none fails, none falls back.
STRESS = r'''
import ctypes, threading
libc = ctypes.CDLL(None, use_errno=True)
res = []
def work():
    buf = ctypes.create_string_buffer(128)
    mask = ctypes.create_string_buffer(128)
    for _ in range(500):
        r1 = libc.syscall(99, buf)
        r2 = libc.syscall(204, 0, 128, mask)
        res.append((r1, int.from_bytes(buf.raw[32:40], 'little'), r2, mask.raw[0]))
ts = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print('stress', len(res), len(set(res)), sorted(set(res))[:3])
'''
with open(LT.image() + '/stress.py', 'w') as fs:
    fs.write(STRESS)
rc, out, err = w.launch(memory='512M', cpus=1, cpuset='0-1', cmd=['python3', '/stress.py'])
R.eq('8 threads x 500 calls: all answered, the same answer',
     fields(out).get('stress'), '4000 1 [(0, %d, %s, 1)]' % (512 * MiB, host['aff128'].split()[0]),
     err)
R.check('no native fallback logged', 'natively' not in err and 'host\'s' not in err, err)
LT.check_clean('stress', w.name)

# What docker run -m 256m makes: a child cgroup with its own limit, the
# caller in it. Both in the default user namespace and with host root.
NESTED = r'''
cg=/sys/fs/cgroup/memory/cvmfs-test-inner
mkdir $cg && echo 256M > $cg/memory.limit_in_bytes && echo $$ > $cg/cgroup.procs || echo "setup failed"
python3 /probe.py
echo "getconf $(getconf _PHYS_PAGES)"
[ -x /bin/busybox ] && echo "bbfree $(busybox free -b | grep Mem:)"
echo $$ > /sys/fs/cgroup/memory/cgroup.procs; python3 -c "import os; os.rmdir('$cg')"
'''
for mode in ((), ('--no-userns',)):
    label = 'nested cgroup -m 256M' + (' (no userns)' if mode else '')
    rc, out, err = w.sh(NESTED, *mode, memory='512M', cpus=1, cpuset='0-1')
    f = fields(out)
    R.check(label + ': made', rc == 0 and 'setup failed' not in out, out, detail=err)
    R.eq(label + ': sysinfo totalram == the child\'s 256M', (f.get('si') or ' 0').split()[1],
         str(256 * MiB), out)
    R.eq(label + ': getconf _PHYS_PAGES', f.get('getconf'), str(256 * MiB // PAGE))
    if 'bbfree' in f:
        R.eq(label + ': busybox free total', bb_total(f['bbfree']), str(256 * MiB))
    LT.check_clean(label, w.name)

# --seccomp unconfined traps nothing: the host's figures (the check above
# is not satisfied by something else).
rc, out, err = w.sh('python3 /probe.py', '--seccomp', 'unconfined', memory='512M')
f = fields(out)
R.check('--seccomp unconfined: sysinfo is the host\'s', (f.get('si') or ' 0').split()[1] !=
        str(512 * MiB), out, detail=err)
LT.check_clean('unconfined', w.name)


# cvmctl exec: its CMD gets the CVM's answers too (a filter and listener
# of its own, handed to the same supervisor), and so does what CMD leaves
# running after cvmctl has returned.
CTL = os.environ.get('CVMCTL') or os.path.join(T.BUILD, 'src', 'ctl', 'cvmctl')
BG = r"""
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(128)
time.sleep(1.5)  # the test: cvmctl has returned by then
with open('/tmp/bg.out', 'w') as out:
    for _ in range(10):
        r = libc.syscall(99, buf)
        out.write('%d %d %d\n' % (r, ctypes.get_errno() if r else 0,
                                  int.from_bytes(buf.raw[32:40], 'little')))
        time.sleep(0.1)
"""
with open(LT.image() + '/bg.py', 'w') as fb:
    fb.write(BG)


def ctl_exec(*cmd):
    return T.run([CTL, 'exec', '--run-dir', w.run_dir, w.name, '--'] + list(cmd), timeout=60)


rec = os.path.join(w.run_dir, 'launch', w.name + '.json')
# (init waits for a file the test makes once done, then ends: a shell as
# PID 1 would not end at a SIGTERM.)
INIT = 'while [ ! -e /tmp/cvmfs-test-done ]; do sleep 0.1; done'
p = T.popen(w.argv(memory='512M', cpus=1, cpuset='0-1', cmd=['sh', '-c', INIT]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
for _ in range(600):
    if os.path.exists(rec) or p.poll() is not None:
        break
    time.sleep(0.05)
if R.check('cvmctl exec: the CVM is up', os.path.exists(rec)):
    rc, out, err = ctl_exec('sh', '-c', SCRIPT)
    check_cvm('cvmctl exec', out, err, 512 * MiB, [0], [0, 1], host)
    rc, out, err = ctl_exec('sh', '-c', 'python3 /bg.py </dev/null >/dev/null 2>&1 &')
    R.eq('cvmctl exec of a background process: exit 0', rc, 0, err)
    # bg.py writes its 10 rows 1.5 s after cvmctl returned.
    T.wait_for(lambda: len(ctl_exec('cat', '/tmp/bg.out')[1].splitlines()) >= 10,
               30 * LT.SLOW, 'the 10 rows of bg.py written', 0.2)
    rc, out, err = ctl_exec('cat', '/tmp/bg.out')
    rows = [line.split() for line in out.splitlines()]
    R.eq('after cvmctl returned, its CMD\'s child: sysinfo answered as the CVM\'s (0, 512M)',
         sorted({(r[0], r[2]) for r in rows}), [('0', str(512 * MiB))], out + err)
    ctl_exec('touch', '/tmp/cvmfs-test-done')
try:
    p.wait(timeout=60)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
T.forget(p)
LT.check_clean('cvmctl exec', w.name)


# The views daemon killed while the CVM runs: the calls go on (native,
# never ENOSYS, never hanging); a views daemon started again on the same
# mountpoint is handed the listener and answers again.
def views_pid(launcher):
    for pid in os.listdir('/proc'):
        try:
            with open('/proc/%s/stat' % pid) as f:
                ppid = int(f.read().rpartition(')')[2].split()[1])
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmd = f.read().split(b'\0')
        except (OSError, ValueError, IndexError):
            continue
        if ppid == launcher and b'views' in cmd:
            return int(pid)
    return 0


LOOP = r'''
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(128)
t0 = time.time()
while time.time() - t0 < 12:
    r = libc.syscall(99, buf)
    print('t %.1f %d %d %d' % (time.time() - t0, r, ctypes.get_errno() if r else 0,
          int.from_bytes(buf.raw[32:40], 'little')), flush=True)
    time.sleep(0.2)
'''
with open(LT.image() + '/loop.py', 'w') as fl:
    fl.write(LOOP)
p = T.popen(w.argv(memory='512M', cmd=['python3', '/loop.py']), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
# The CVM has made its first 5 calls (the checks below) with the views daemon up.
first = ''.join(p.stdout.readline() for _ in range(5))
vp = T.wait_for(lambda: views_pid(p.pid), 30 * LT.SLOW, 'the views daemon up', 0.05)
R.check('restart: the views daemon is the launcher\'s child', vp > 0, vp)
if vp:
    os.kill(vp, signal.SIGKILL)
time.sleep(3)  # the test: the CVM goes on calling for 3 s with no views daemon
subprocess.run(['umount', '-l', w.views + '/ct'], stderr=subprocess.DEVNULL)
subprocess.run(['umount', '-l', w.views], stderr=subprocess.DEVNULL)
v2 = T.popen([T.CVMFSD, 'views', '-f', '-c', LT.empty_config(w.dir), w.views],
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
out, err = p.communicate(timeout=60)
out = first + out
v2.send_signal(signal.SIGTERM)
v2.wait(timeout=30)
T.unmount(w.views + '/ct')
T.unmount(w.views)
rows = [line.split() for line in out.splitlines() if line.startswith('t ')]
R.check('restart: the CVM kept calling for 12 s (no hang)', rows and float(rows[-1][1]) > 11,
        out[-500:], detail=err[-2000:])
R.check('restart: never an error (ENOSYS)', all(r[2] == '0' for r in rows), out[-2000:])
totals = [int(r[4]) for r in rows]
R.check('restart: 512M before the kill', totals[:5] == [512 * MiB] * 5, totals)
R.check('restart: the host\'s while no views daemon runs', any(t > 512 * MiB for t in totals),
        totals)
R.check('restart: 512M again from the new views daemon', totals[-5:] == [512 * MiB] * 5,
        totals, detail=err[-2000:])
LT.check_clean('restart', w.name)

R.summary_and_exit()
