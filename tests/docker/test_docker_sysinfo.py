"""Issue 18's must-hold list in an inner Docker container (docker run -m
256m --cpus 1) of a CVM (--memory 1G --cpus 2 --cpuset 0-1), default mode:
busybox free/uptime/nproc, getconf _PHYS_PAGES,
os.sysconf('SC_PHYS_PAGES'), nproc and os.sched_getaffinity agree with the
container's own limits (the views' supervisor answers sysinfo and
sched_getaffinity for the caller's cgroup); boot time from btime agrees
with /proc/uptime. procps free/top/vmstat and iostat there, which read
/proc files the views' hook binds: test_docker_proc.py."""
import os
import shutil

import dockertest as DT

T = DT.T
R = DT.R
DT.require()
MiB = DT.MiB
PAGE = os.sysconf('SC_PAGE_SIZE')
if os.cpu_count() < 2:
    T.skip('needs 2 CPUs (--cpuset 0-1)')

PROBE = r'''
import os, time
print('pyphys', os.sysconf('SC_PHYS_PAGES'))
print('pyaff', ','.join(map(str, sorted(os.sched_getaffinity(0)))))
st = open('/proc/stat').read()
btime = [int(l.split()[1]) for l in st.splitlines() if l.startswith('btime ')][0]
up = float(open('/proc/uptime').read().split()[0])
print('btimeskew', abs(btime + up - time.time()))
mem = {l.split(':')[0]: int(l.split()[1]) * 1024 for l in open('/proc/meminfo')}
print('meminfo', mem['MemTotal'])
'''
SCRIPT = r'''
python3 /sysinfo_probe.py
echo "getconf $(getconf _PHYS_PAGES)"
echo "nproc $(nproc)"
echo "bbfree $(busybox free -b | grep Mem:)"
echo "bbnproc $(busybox nproc)"
echo "bbuptime $(busybox uptime)"
'''


def fields(out):
    d = {}
    for line in out.splitlines():
        k, _, v = line.partition(' ')
        d.setdefault(k, v.strip())
    return d


img = DT.LT.image()
bb = shutil.which('busybox')
if not bb:
    T.skip('busybox is not installed (scripts/deps.sh: busybox-static)')
if not os.path.exists(img + '/sysinfo_probe.py'):
    with open(img + '/sysinfo_probe.py', 'w') as f:
        f.write(PROBE)
    DT.LT._copy(os.path.realpath(bb), img)
    for lib in DT.LT._libs(bb):
        DT.LT._copy(lib, img)
    if not os.path.lexists(img + '/bin/busybox'):
        os.symlink(os.path.realpath(bb), img + '/bin/busybox')

layers = DT.image_layers(DT.test_layer())
w = DT.LT.Workspace('dk-sysinfo')
cvm = DT.CVM(w, layers, memory='1G', cpus='2', cpuset='0-1', disk='4G', tag='sysinfo')
if cvm.wait_docker()[0]:
    rc, out = cvm.sh('docker import /root/cvmfs-test/img.tar %s >/dev/null && '
                     'docker run --rm -m 256m --cpus 1 %s sh -c \'%s\''
                     % (DT.IMG, DT.IMG, SCRIPT.replace("'", "'\\''")), timeout=300)
    f = fields(out)
    lab = 'docker run -m 256m --cpus 1'
    R.eq(lab + ': busybox free total == 256M',
         f.get('bbfree', '').partition('Mem:')[2][:15].strip(), str(256 * MiB), out)
    R.eq(lab + ': busybox nproc == 1', f.get('bbnproc'), '1')
    bbup = f.get('bbuptime', '')
    R.check(lab + ': busybox uptime is the container\'s (up 0/1 min)',
            ' up 0 min' in bbup or ' up 1 min' in bbup, bbup)
    R.eq(lab + ': getconf _PHYS_PAGES == 256M', f.get('getconf'), str(256 * MiB // PAGE))
    R.eq(lab + ': os.sysconf(SC_PHYS_PAGES) == 256M', f.get('pyphys'), str(256 * MiB // PAGE))
    R.eq(lab + ': nproc == 1', f.get('nproc'), '1')
    R.check(lab + ': os.sched_getaffinity(0): one CPU of 0-1',
            f.get('pyaff') in ('0', '1'), f.get('pyaff'))
    R.check(lab + ': btime + /proc/uptime = now (within 2 s)',
            float(f.get('btimeskew', '99')) <= 2, f.get('btimeskew'))
    print('# %s: /proc/meminfo MemTotal (the views\' through cvmfs-hook): %s'
          % (lab, f.get('meminfo')), flush=True)
cvm.stop()
R.summary_and_exit()
