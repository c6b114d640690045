"""A running disk whose limit differs from --disk: a larger --disk grows it
online (the launcher asks through RUN_DIR/disk/NAME.limit and SIGHUP and
reads the answer in the disk's status), a smaller one is refused in one
line naming both sizes, and so is a growth the daemon cannot apply (a loop
volume's online growth needs CAP_SYS_RESOURCE): the disk keeps serving with
its limit. Checked inside the CVM (df) and by cvmfs-stat. In the volume
mode of the launches (CVMFS_TEST_VOLUME, else the launcher's default);
--net none: the host-wide leases of --net private are not this test's."""
import json
import os
import signal
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()

STAT = os.environ.get('CVMFS_STAT') or os.path.join(T.BUILD, 'src', 'stat', 'cvmfs-stat')
MODE = LT.volume_mode()
CAP_SYS_RESOURCE = 24


def have_cap(n):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('CapEff:'):
                return bool(int(line.split()[1], 16) >> n & 1)
    return False


# The disk inherits our capabilities (the launcher's): without this one an
# ext4 volume cannot grow online; the accounting-only disk always can.
CAN_GROW = MODE == 'none' or have_cap(CAP_SYS_RESOURCE)


def launcher_lines(err):
    return [line for line in err.splitlines() if line.startswith('cvm-launch:')
            and 'no-userns' not in line and 'user namespace' not in line]


def stat_limit(w):
    q = subprocess.run([STAT, '--run-dir', w.run_dir, '--json', w.name],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return json.loads(q.stdout)[0]['limit_bytes']
    except (ValueError, IndexError, KeyError):
        return 'cvmfs-stat: %r %r' % (q.stdout, q.stderr)


def df_size(out):
    """The size field of `df -B1 /` output's last line."""
    f = out.strip().splitlines()[-1].split() if out.strip() else []
    return int(f[1]) if len(f) > 1 and f[1].isdigit() else out


w = LT.Workspace('resize')
mnt = os.path.join(w.mnt_dir, w.name)
os.makedirs(mnt)
log = open(os.path.join(w.dir, 'disk.log'), 'w+')
disk = T.popen([T.CVMFSD, 'disk', '-f', '--name', w.name, '--data', w.data, '--limit', '200M',
                '--image', LT.image(), '--run-dir', w.run_dir, '-c', LT.empty_config(w.dir),
                '--volume', MODE, '--volume-dir', os.path.join(w.dir, 'volumes'), mnt],
               stderr=log)
T._mounts.append(mnt)
pidfile = os.path.join(w.run_dir, 'disk', w.name + '.pid')
for _ in range(1500):
    if os.path.exists(pidfile) and os.path.ismount(mnt):
        break
    time.sleep(0.02)
R.check('the disk serves (%s)' % MODE, disk.poll() is None and os.path.ismount(mnt))

rc, out, err = w.sh('echo kept > /root/k; df -B1 / | tail -n 1', '--no-userns', net='none', disk='200M')
R.eq('--disk as the running disk: used as it is, df shows it', (rc, df_size(out)),
     (0, 200 * LT.MiB), err)

# Smaller: refused in one line naming both sizes; nothing asked of the disk.
rc, out, err = w.sh('true', '--no-userns', net='none', disk='100M')
lines = launcher_lines(err)
R.check('--disk 100M on a running 200M disk: refused in one line naming both sizes',
        rc == 125 and len(lines) == 1 and str(200 * LT.MiB) in lines[0] and
        str(100 * LT.MiB) in lines[0] and 'shrink' in lines[0], (rc, err))
R.check('shrink refused: the disk still serves, its file is there',
        disk.poll() is None and open(os.path.join(mnt, 'root/k')).read() == 'kept\n')
R.eq('shrink refused: cvmfs-stat limit still 200M', stat_limit(w), 200 * LT.MiB)
R.check('shrink refused: no request left in the run dir',
        not os.path.exists(os.path.join(w.run_dir, 'disk', w.name + '.limit')))

# Larger: grown online where the daemon can, else refused in one line.
t0 = time.monotonic()
rc, out, err = w.sh('cat /root/k; df -B1 / | tail -n 1', '--no-userns', net='none', disk='300M')
took = time.monotonic() - t0
if CAN_GROW:
    R.eq('--disk 300M on a running 200M disk: grown, df inside shows 300M',
         (rc, out.split('\n')[0], df_size(out)), (0, 'kept', 300 * LT.MiB), err)
    R.eq('grown: cvmfs-stat limit 300M', stat_limit(w), 300 * LT.MiB)
    rc, out, err = w.sh('df -B1 / | tail -n 1', '--no-userns', net='none', disk='300M')
    R.eq('grown: the next launch with --disk 300M uses it as it is', (rc, df_size(out)),
         (0, 300 * LT.MiB), err)
else:
    lines = launcher_lines(err)
    R.check('--disk 300M on a running 200M loop volume without CAP_SYS_RESOURCE: '
            'refused in one line naming both sizes',
            rc == 125 and len(lines) == 1 and str(200 * LT.MiB) in lines[0] and
            str(300 * LT.MiB) in lines[0] and 'could not grow' in lines[0], (rc, err))
    R.eq('growth refused: cvmfs-stat limit still 200M', stat_limit(w), 200 * LT.MiB)
    log.seek(0)
    R.check('growth refused: the daemon logged why', 'CAP_SYS_RESOURCE' in log.read())
print('the resize launch took %.2f s' % took, flush=True)

# A request that is not a size (not the launcher's: any writer of the run
# dir): logged, removed, the limits kept.
request = os.path.join(w.run_dir, 'disk', w.name + '.limit')
before = stat_limit(w)
with open(request, 'w') as f:
    f.write('lots\n')
os.kill(disk.pid, signal.SIGHUP)
for _ in range(500):
    if not os.path.exists(request):
        break
    time.sleep(0.01)
log.seek(0)
R.check('a bad request: removed, logged, the limit kept',
        not os.path.exists(request) and "not a size: 'lots'" in log.read() and
        stat_limit(w) == before, (os.path.exists(request), before, stat_limit(w)))
R.check('the disk still serves its files', disk.poll() is None and
        open(os.path.join(mnt, 'root/k')).read() == 'kept\n')
R.check('no request left in the run dir',
        not os.path.exists(os.path.join(w.run_dir, 'disk', w.name + '.limit')))
disk.terminate()
disk.wait(30)
LT.check_clean('resized disk', w.name)

R.summary_and_exit()
