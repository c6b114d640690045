"""The workspace volume (--volume loop): one limit, kept by the kernel,
whatever path a write takes inside the CVM.

- `df -B1` on /, /home and /var/lib/docker prints the same size (the
  limit) and the same used bytes, before and after writes to each of them
  (/ is the disk daemon's union, the others are lanes bound from the
  volume's ext4 with no FUSE on their path);
- a write past the limit fails with ENOSPC through each path, and the
  bytes written before (a marker file on each path) stay intact;
- 16 concurrent writers across the three paths never bring used
  (cvmfs-stat --json, polled from the host while they write) above the
  limit; each stops with ENOSPC and nothing else.
Loop devices and mkfs.ext4 are needed, else exit 77."""
import json
import os
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_loop()

STAT = os.environ.get('CVMFS_STAT') or os.path.join(T.BUILD, 'src', 'stat', 'cvmfs-stat')
DISK = 320 * LT.MiB
PATHS = ['/root', '/home', '/var/lib/docker']  # / is the union; /root lies on it

# Inside the CVM: python3 of the test image. Prints one JSON object.
DF_AND_FILL = r'''
import errno, hashlib, json, os, subprocess, sys
PATHS = %r
MiB = 1 << 20

def df():
    out = subprocess.run(['df', '-B1', '/', '/home', '/var/lib/docker'],
                         stdout=subprocess.PIPE, text=True).stdout.splitlines()[1:]
    return [[int(f.split()[-5]), int(f.split()[-4]), f.split()[-1]] for f in out]

def write(path, size):
    data = os.urandom(MiB)
    h = hashlib.sha256()
    with open(path, 'wb') as f:
        for _ in range(size // MiB):
            f.write(data)
            h.update(data)
        f.flush()
        os.fsync(f.fileno())
    return h.hexdigest()

def fill(path):
    """Write until the kernel says no: (errno, bytes written)."""
    chunk = b'\xa5' * MiB
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            n += os.write(fd, chunk)
    except OSError as e:
        err = e.errno
    try:
        os.fsync(fd)
    except OSError as e:
        err = err or e.errno
    os.close(fd)
    return err, n

def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()

res = {'df': [df()], 'marks': {}, 'fills': []}
for p in PATHS:
    res['marks'][p] = write(p + '/cvmfs-test-mark', 8 * MiB)
    res['df'].append(df())
for p in PATHS:
    err, n = fill(p + '/cvmfs-test-fill')
    full = df()
    os.remove(p + '/cvmfs-test-fill')
    res['fills'].append([p, err, n, full])
res['intact'] = {p: sha(p + '/cvmfs-test-mark') == h for p, h in res['marks'].items()}
res['df'].append(df())
print(json.dumps(res))
''' % (PATHS,)

w = LT.Workspace('volume')
# Bad values: one line naming the option, 125, nothing left behind.
for opts, word in ((dict(volume='bogus'), "--volume 'bogus'"),
                   (dict(volume='block:dev/sdz'), "--volume 'block:dev/sdz'"),
                   (dict(volume='loop', volume_dir='rel/dir'), '--volume-dir'),
                   (dict(volume='loop', lanes='/home:var/x'), "'var/x'"),
                   (dict(volume='loop', lanes='/home/../etc'), "'/home/../etc'")):
    rc, out, err = w.launch(cmd=['/bin/true'], **opts)
    lines = [l for l in err.splitlines() if l.strip()]
    R.check('bad input %s: one line naming it, 125' % opts,
            rc == 125 and len(lines) == 1 and word in lines[0], (rc, err))
LT.check_clean('bad input', w.name)
rc, out, err = w.launch(cmd=['/usr/bin/python3', '-c', DF_AND_FILL], disk='320M',
                        volume='loop', timeout=300)
R.eq('volume: the CVM runs and exits 0', rc, 0, err)
try:
    res = json.loads(out.strip().splitlines()[-1])
except (ValueError, IndexError):
    res = {'df': [], 'fills': [], 'intact': {}}
    R.check('volume: the script inside printed its results', False, out, detail=err)

labels = ['before writes'] + ['after 8 MiB to %s' % p for p in PATHS] + \
    ['after the fills (removed)']
for label, rows in zip(labels, res['df']):
    R.eq('df -B1 lists /, /home, /var/lib/docker (%s)' % label, [r[2] for r in rows],
         ['/', '/home', '/var/lib/docker'])
    R.eq('df -B1: size is the limit on every path (%s)' % label,
         [r[0] for r in rows], [DISK] * 3, rows)
    R.check('df -B1: the same used on every path (%s)' % label,
            len({r[1] for r in rows}) == 1, rows)
used = [rows[0][1] for rows in res['df']]
R.check('df used grows by the 8 MiB written to each path in turn',
        len(used) == 5 and all(b - a >= 8 * LT.MiB for a, b in zip(used[:3], used[1:4])),
        used)
for p, errno_, n, full in res['fills']:
    R.eq('a write past the limit through %s fails with ENOSPC' % p, errno_, 28, (n, full))
    R.check('at the limit (via %s) df shows the same used on every path, not above the size'
            % p, len({r[1] for r in full}) == 1 and all(r[1] <= r[0] for r in full), full)
R.eq('the marker written before on each path is intact after the fills', res['intact'],
     {p: True for p in PATHS})
LT.check_clean('volume', w.name)

# 16 writers at once across the three paths, cvmfs-stat polled meanwhile.
WRITERS = r'''
import json, os, sys
PATHS = %r
kids = []
for i in range(16):
    pid = os.fork()
    if pid == 0:
        fd = os.open('%%s/cvmfs-test-w%%d' %% (PATHS[i %% 3], i), os.O_WRONLY | os.O_CREAT, 0o644)
        chunk = b'\x5a' * (256 << 10)
        try:
            while True:
                os.write(fd, chunk)
        except OSError as e:
            os._exit(e.errno)
    kids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids]
st = os.statvfs('/')
print(json.dumps({'codes': codes, 'size': st.f_blocks * st.f_frsize,
                  'used': (st.f_blocks - st.f_bfree) * st.f_frsize}))
''' % (PATHS,)
p = T.popen(w.argv(cmd=['/usr/bin/python3', '-c', WRITERS], disk='320M', volume='loop'),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
samples, peak = 0, 0
limit = None
while p.poll() is None:
    q = subprocess.run([STAT, '--run-dir', w.run_dir, '--json', w.name],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        f = json.loads(q.stdout)[0]
        samples += 1
        peak = max(peak, f['used_bytes'])
        limit = f['limit_bytes']
    except (ValueError, IndexError, KeyError):
        pass
    time.sleep(0.02)
out, err = p.communicate()
T.forget(p)
R.eq('16 writers: the CVM exits 0', p.returncode, 0, err)
try:
    res = json.loads(out.strip().splitlines()[-1])
except (ValueError, IndexError):
    res = {}
print('cvmfs-stat polled %d times while 16 writers ran; peak used %d of %s'
      % (samples, peak, limit), flush=True)
R.check('16 writers: cvmfs-stat was read while they wrote', samples > 0, samples)
R.eq('16 writers: cvmfs-stat limit is --disk', limit, DISK)
R.check('16 writers: used never above the limit (cvmfs-stat)', peak <= DISK, (peak, DISK))
R.eq('16 writers: every one stopped with ENOSPC', res.get('codes'), [28] * 16, res)
R.check('16 writers: statfs used at the end not above the size',
        res.get('used', DISK + 1) <= res.get('size', 0) == DISK, res)
LT.check_clean('writers', w.name)

# Escape class "host paths through the CVM's symlinks": the launcher makes
# a missing lane mountpoint in the union as host root, before the CVM
# runs. The CVM moves /var/lib away (the /var/lib/docker lane goes with it)
# and leaves /var/lib a symlink to a host directory: the next launch must
# resolve it inside the CVM's root (openat2 RESOLVE_IN_ROOT), never make
# anything in the host's directory.
target = T.tempdir('target-')
ATTACK = ('import os; os.rename("/var/lib", "/var/lib.moved"); os.symlink(%r, "/var/lib"); '
          'print("planted")' % target)
rc, out, err = w.launch(cmd=['/usr/bin/python3', '-c', ATTACK], disk='320M', volume='loop')
R.eq('escape: the CVM plants /var/lib -> a host directory', (rc, out.strip()), (0, 'planted'),
     err)
rc, out, err = w.sh('ls -d /var/lib/docker', disk='320M', volume='loop')
R.eq('escape: the next launch makes nothing in the host directory', os.listdir(target), [],
     (rc, out, err))
R.check('escape: the next launch either binds the lane inside the CVM or fails in one line',
        rc == 0 or (rc == 125 and sum(1 for l in err.splitlines()
                                      if l.startswith('cvm-launch:')) == 1), (rc, out, err))
LT.check_clean('escape', w.name)
R.summary_and_exit()
