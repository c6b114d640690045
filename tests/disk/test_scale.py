#!/usr/bin/env python3
"""Memory per known inode, at a smaller scale than bench/disk-scale.sh
(CVMFS_DISK_SCALE_FILES, default 100,000 files in DATA/upper):
  - after an lstat of every file through the mount (the kernel then holds
    an inode, and the daemon a node, for each), the daemon's RSS grew by at
    most 256 bytes per node it added (known_inodes in the live figures);
  - when the kernel forgets them (drop_caches), the node table shrinks back
    and the memory returns to the system (at least half of it at this
    scale: a few megabytes of worker-thread overhead stay).
No timing is asserted: speed is for the benchmark."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

NFILES = int(os.environ.get('CVMFS_DISK_SCALE_FILES', '100000'))
BYTES_PER_INODE = 256
HELPER = os.path.join(dt.BUILD, 'bench', 'disk_scale')

dt.require_root_fuse()
if not os.path.exists(HELPER):
    dt.skip('%s not built' % HELPER)
if not os.access('/proc/sys/vm/drop_caches', os.W_OK):
    dt.skip('cannot write /proc/sys/vm/drop_caches')
if 'libasan' in subprocess.run(['ldd', dt.CVMFSD], capture_output=True, text=True).stdout:
    dt.skip('AddressSanitizer build: its redzones and quarantine are not the daemon\'s memory')
res = dt.Results()
base = dt.tmpdir()
disk = dt.Disk(base, limit='1G')
os.makedirs(disk.upper())
subprocess.run([HELPER, 'mktree', os.path.join(disk.upper(), 'tree'), str(NFILES)], check=True)


def rss_kib():
    with open('/proc/%d/status' % disk.proc.pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS')


def known():
    return disk.fresh_figures()['known_inodes']


def forget_all(floor, timeout=60):
    """Make the kernel drop its unused dentries and inodes; wait for the
    FORGETs to reach the daemon. Returns the last known_inodes."""
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2\n')
    t0 = time.time()
    k = known()
    while k > floor and time.time() - t0 < timeout:
        k = known()
    return k


def walk(path):
    return int(subprocess.run([HELPER, 'walk', path], check=True, capture_output=True,
                              text=True).stdout)


with dt.checked(res, disk):
    disk.start(timeout=120)
    # Warm up (worker threads and their buffers) so that the baseline holds
    # the daemon's fixed costs and the delta only the nodes.
    walk(os.path.join(disk.mnt, 'tree', 'd00000'))
    k0 = forget_all(2)
    rss0 = rss_kib()
    seen = walk(disk.mnt)
    k1 = known()
    rss1 = rss_kib()
    if k1 - k0 < seen * 9 // 10:
        # Not ours to decide: memory pressure, or another process's
        # drop_caches during the walk, made the kernel forget them.
        disk.stop()
        dt.skip('the kernel kept only %d of %d inodes looked up (memory pressure or a '
                'concurrent drop_caches): nothing to measure' % (k1 - k0, seen))
    res.check('the kernel holds every object looked up', k1 - k0 >= seen >= NFILES,
              (k0, k1, seen))
    per = (rss1 - rss0) * 1024 / max(k1 - k0, 1)
    print('# %d nodes: RSS %d -> %d KiB, %.0f B per known inode' % (k1 - k0, rss0, rss1, per))
    res.check('memory per known inode <= %d B' % BYTES_PER_INODE, per <= BYTES_PER_INODE, per)

    k2 = forget_all(k0 + 16)
    res.check('the node table shrinks when the kernel forgets', k2 <= k0 + 16, (k0, k2))
    # Freed after a grace period, returned by the publisher's trim (1 s tick).
    # Some megabytes stay whatever the number of files (worker threads
    # started meanwhile, chunks cached per thread and arena): at 100,000
    # files that is a third of the growth, at 1,000,000 a twentieth
    # (bench/disk-scale.sh), so half is asked for here.
    limit = rss1 - (rss1 - rss0) // 2
    t0 = time.time()
    while rss_kib() > limit and time.time() - t0 < 30:  # a bound, not a speed: busy hosts
        time.sleep(0.2)
    rss2 = rss_kib()
    print('# after the forgets: %d nodes, RSS %d KiB' % (k2, rss2))
    res.check('at least half of the memory comes back', rss2 <= limit, (rss0, rss1, rss2))
    fig = disk.fresh_figures()
    res.eq('usage untouched by lookups and forgets', fig['inodes_used'], seen + 1)
res.done()
