#!/usr/bin/env python3
"""Special files where a program expects a small regular file: a FIFO (an
open without a writer blocks forever), /dev/zero (never ends), a directory.
As a config file (-c) of cvmfsd disk, cvmfsd views and cvmfs-stat: refused
with one line naming it, non-zero exit, nothing mounted or created. As a
status file RUN_DIR/disk/*.json: cvmfs-stat skips it with one line and shows
the others. As DATA/state: cvmfsd disk warns, recounts and serves.
A hang is a failure: every run has a timeout."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
if not os.path.exists(dt.CVMFS_STAT):
    dt.skip('cvmfs-stat not built at %s' % dt.CVMFS_STAT)
res = dt.Results()
base = dt.tmpdir()
fifo = os.path.join(base, 'fifo.conf')
os.mkfifo(fifo)
confdir = os.path.join(base, 'conf.d')
os.mkdir(confdir)
SPECIAL = (('/dev/zero', 'not a regular file'), (fifo, 'not a regular file'),
           (confdir, os.strerror(21)))  # EISDIR


def run(label, argv, timeout=30):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        res.check('%s: returns (no hang)' % label, False, 'timed out after %d s' % timeout)
        return None


def refused(label, argv, prog, path, why, mnt=None):
    r = run(label, argv)
    if r is None:
        return
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    res.check('%s: non-zero exit' % label, r.returncode != 0, r.returncode)
    res.eq('%s: one line naming the file and why' % label, lines,
           ['%s: %s: %s' % (prog, path, why)])
    if mnt:
        res.check('%s: nothing mounted' % label, not dt.is_mounted(mnt))


# -c SPECIAL, for each program that reads a config file.
mnt = os.path.join(base, 'mnt')
os.makedirs(mnt)
data = os.path.join(base, 'refused-data')
run_dir = os.path.join(base, 'refused-run')
for path, why in SPECIAL:
    tag = os.path.basename(path)
    refused('disk -c %s' % tag,
            [dt.CVMFSD, 'disk', '-f', '--name', 'x', '--data', data, '--limit', '1M',
             '--run-dir', run_dir, '-c', path, mnt], 'cvmfsd disk', path, why, mnt)
    refused('views -c %s' % tag, [dt.CVMFSD, 'views', '-f', '-c', path, mnt],
            'cvmfsd views', path, why, mnt)
    refused('cvmfs-stat -c %s' % tag,
            [dt.CVMFS_STAT, '--run-dir', run_dir, '-c', path], 'cvmfs-stat', path, why)
res.check('refused configs: no DATA or RUN_DIR created',
          not os.path.exists(data) and not os.path.exists(run_dir))

# RUN_DIR/disk/*.json that are not regular files, next to a real one.
disks = []
with dt.checked(res, disks):
    wbase = os.path.join(base, 'ws')
    os.makedirs(wbase)
    d = dt.Disk(wbase, name='real', limit='32M')
    # DATA/state as a FIFO: a blocking read would hang the start.
    os.makedirs(d.data)
    os.mkfifo(os.path.join(d.data, 'state'))
    # FIFOs where the daemon writes its temporaries (then renames them):
    # opening one for writing would block the start or the publisher.
    os.makedirs(os.path.join(d.run, 'disk'))
    for tmp in ('.real.pid.tmp', '.real.json.tmp'):
        os.mkfifo(os.path.join(d.run, 'disk', tmp))
    os.mkfifo(os.path.join(d.data, '.state.tmp'))
    d.start(timeout=60)
    disks.append(d)
    warn = [x for x in d.logtext().splitlines() if 'state' in x and 'not a regular file' in x]
    res.eq('DATA/state FIFO: one warning line', len(warn), 1)
    res.check('FIFO temporaries: pid and status files are regular files',
              os.path.isfile(os.path.join(d.run, 'disk', 'real.pid')) and
              os.path.isfile(d.json_path()))
    dt.write_file(os.path.join(d.mnt, 'f'), b'y' * 8192)
    res.eq('DATA/state FIFO: the disk serves', os.path.getsize(os.path.join(d.mnt, 'f')), 8192)

    sdir = os.path.join(d.run, 'disk')
    os.mkfifo(os.path.join(sdir, 'x.json'))
    os.mkdir(os.path.join(sdir, 'y.json'))
    r = run('cvmfs-stat with a FIFO and a directory as status files',
            [dt.CVMFS_STAT, '--run-dir', d.run, '-c', '/dev/null', '--json'])
    if r is not None:
        import json
        res.eq('stat: exit 0', r.returncode, 0)
        res.eq('stat: the real workspace is shown', [o['name'] for o in json.loads(r.stdout)],
               ['real'])
        res.eq('stat: one line per skipped file, naming it', sorted(r.stderr.splitlines()),
               ['cvmfs-stat: %s/x.json: not a regular file, skipped' % sdir,
                'cvmfs-stat: %s/y.json: %s, skipped' % (sdir, os.strerror(21))])
    d.stop()
    res.check('DATA/state FIFO: a clean stop writes a regular state file',
              os.path.isfile(os.path.join(d.data, 'state')))

res.done()
