#!/usr/bin/env python3
"""Atomic whiteouts: removing or renaming a name that an image layer also has
never lets the image's object show through.

Repeated cycles of rm, rmdir and rename (to a free name, over an upper
object, back over the whiteout) of a file `f` and a directory `d` that the
image also has, while
  - a poller process lstat()s DATA/upper/f and DATA/upper/d without pause:
    once the cycles have begun, the upper layer must hold our object or our
    whiteout there at every instant (an absent name is the window in which
    the image's object shows, and what a crash at that instant would leave);
  - reader threads look at f and d through the mount: never the image's
    content, never the image's directory inode;
then kill -9 at random points of the cycles, restart (recount), and the image
objects still never reappear. Usage equals a recount throughout."""
import ctypes
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

CYCLES = int(os.environ.get('CVMFS_WHITEOUT_CYCLES', '150'))
dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
img = os.path.join(base, 'img')
os.makedirs(os.path.join(img, 'd'))
dt.write_file(os.path.join(img, 'f'), 'IMAGE')
disk = dt.Disk(base, limit='64M', images=[img])

POLLER = r'''
import os, sys
stop, paths = sys.argv[1], sys.argv[2:]
absent = polls = 0
while not os.path.exists(stop):
    for p in paths:
        polls += 1
        try:
            os.lstat(p)
        except FileNotFoundError:
            absent += 1
print(absent, polls)
'''


def op(fn, *a):
    """Run one step of a cycle; a dead mount (kill -9) ends the cycle."""
    try:
        fn(*a)
        return True
    except OSError:
        return False


def cycle(m, first=False):
    f, g, h = (os.path.join(m, n) for n in ('f', 'g', 'h'))
    d, e = os.path.join(m, 'd'), os.path.join(m, 'e')
    steps = [
        (dt.write_file, f, 'upper f'),   # over the whiteout (or a copy-up)
        (os.unlink, f),                  # upper file -> whiteout
        (dt.write_file, f, 'upper f2'),
        (os.rename, f, g),               # source needs a whiteout, target free
        (os.rename, g, f),               # back over our whiteout
        (dt.write_file, h, 'h'),
        (os.rename, f, h),               # source needs a whiteout, target taken
        (os.unlink, h),
        (os.mkdir, d),                   # over the whiteout: opaque directory
        (os.rmdir, d),                   # upper dir -> whiteout, one exchange
        (os.mkdir, d),
        (os.rename, d, e),               # directory: source needs a whiteout
        (os.rename, e, d),
        (os.rmdir, d),
    ]
    if first:
        steps = [(os.rmdir, d)] + steps  # the image's d -> whiteout
    for s in steps:
        if not op(*s):
            return False
    return True


def readers(m, lower_d_ino, stop, seen):
    def run():
        while not stop.is_set():
            try:
                with open(os.path.join(m, 'f')) as fh:
                    if fh.read() == 'IMAGE':
                        seen.append('image f')
            except OSError:
                pass
            try:
                if os.lstat(os.path.join(m, 'd')).st_ino == lower_d_ino:
                    seen.append('image d')
            except OSError:
                pass
    ts = [threading.Thread(target=run) for _ in range(2)]
    for t in ts:
        t.start()
    return ts


with dt.checked(res, disk):
    disk.start()
    m = disk.mnt
    lower_d_ino = os.lstat(os.path.join(m, 'd')).st_ino
    res.eq('image f visible at first', open(os.path.join(m, 'f')).read(), 'IMAGE')
    # The first cycle puts our objects or whiteouts at f and d in upper.
    res.check('first cycle', cycle(m, first=True))
    stopf = os.path.join(base, 'poll.stop')
    poller = subprocess.Popen([sys.executable, '-c', POLLER, stopf,
                               os.path.join(disk.upper(), 'f'), os.path.join(disk.upper(), 'd')],
                              stdout=subprocess.PIPE, text=True)
    stop, seen = threading.Event(), []
    ts = readers(m, lower_d_ino, stop, seen)
    done = sum(cycle(m) for _ in range(CYCLES))
    stop.set()
    for t in ts:
        t.join()
    open(stopf, 'w').close()
    absent, polls = map(int, poller.communicate(timeout=30)[0].split())
    res.eq('%d cycles of rm/rmdir/rename' % CYCLES, done, CYCLES)
    print('# poller: %d lstats of DATA/upper/{f,d}' % polls)
    res.eq('upper never lacks f or d (no window for the image copy)', absent, 0)
    res.eq('readers never saw the image objects', seen[:5], [])
    res.eq('f whited out after the cycles', os.path.exists(os.path.join(m, 'f')), False)
    res.eq('d whited out after the cycles', os.path.exists(os.path.join(m, 'd')), False)
    dt.compare(res, 'after the cycles', disk)

    # RENAME_NOREPLACE onto a name we whited out: the name is free.
    libc = ctypes.CDLL(None, use_errno=True)
    dt.write_file(os.path.join(m, 'g'), 'g')
    r = libc.renameat2(-100, os.path.join(m, 'g').encode(), -100, os.path.join(m, 'f').encode(),
                       1)  # AT_FDCWD, RENAME_NOREPLACE
    res.eq('RENAME_NOREPLACE onto a whited-out name', (r, ctypes.get_errno() if r else 0), (0, 0))
    res.eq('... lands there', open(os.path.join(m, 'f')).read(), 'g')
    os.unlink(os.path.join(m, 'f'))
    dt.compare(res, 'after RENAME_NOREPLACE', disk)

    # Crashes in the middle of the cycles.
    back = []
    for rnd in range(6):
        t = threading.Thread(target=lambda: [cycle(m) for _ in range(1000)])
        t.start()
        time.sleep(random.uniform(0.05, 0.4))
        disk.kill9()
        t.join()
        disk.start()
        try:
            if open(os.path.join(m, 'f')).read() == 'IMAGE':
                back.append('f after crash %d' % rnd)
        except OSError:
            pass
        try:
            if os.lstat(os.path.join(m, 'd')).st_ino == lower_d_ino:
                back.append('d after crash %d' % rnd)
        except OSError:
            pass
    res.eq('image objects never back after kill -9 mid-cycle', back, [])
    dt.compare(res, 'after the crashes', disk)
    res.check('no errors logged', 'error' not in disk.logtext().lower(), disk.logtext()[-2000:])
res.done()
