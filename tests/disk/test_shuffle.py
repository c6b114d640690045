#!/usr/bin/env python3
"""Namespace operations in a random order, on the union and on the host's
ext4 side by side, step by step: mkdir, create, write, rename of files and
directories (within and across directories, over files and empty
directories), unlink, rmdir, with drop_caches now and then (the daemon
forgets its nodes and the directory fds it kept). Each step must give the
same result or errno on both; at the end both trees are the same (names,
types, contents), also after a daemon restart, and charging equals a
recount. Over an image layer, so that copy-ups and
whiteouts are in the mix."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
SEED = int(os.environ.get('CVMFS_TEST_SEED', '20261204'))
STEPS = 3000
NAMES = ['a', 'b', 'c', 'd', 'e']


def image_tree(root):
    for d in ('a', 'a/b', 'c', 'c/d'):
        os.makedirs(os.path.join(root, d))
    for f in ('a/x', 'a/b/y', 'c/z', 'e'):
        dt.write_file(os.path.join(root, f), f * 100)


def tree(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.isdir(p):
                out[rel] = 'dir'
            else:
                with open(p, 'rb') as f:
                    out[rel] = f.read()
    return out


def step(rng, root, i):
    """One random operation, with the choices drawn before touching root,
    so that both sides draw the same."""
    op = rng.choice(['mkdir', 'create', 'write', 'rename', 'rename', 'unlink', 'rmdir'])
    src = os.path.join(rng.choice(['', 'a', 'a/b', 'c', 'c/d', 'b', 'a/c']), rng.choice(NAMES))
    dst = os.path.join(rng.choice(['', 'a', 'a/b', 'c', 'c/d', 'b', 'd/e']), rng.choice(NAMES))
    data = (b'%d' % i) * rng.randint(0, 3000)
    s, d = os.path.join(root, src), os.path.join(root, dst)
    if op == 'mkdir':
        os.mkdir(s)
    elif op == 'create':
        dt.write_file(s, data)
    elif op == 'write':
        with open(s, 'r+b') as f:
            f.seek(rng.randint(0, 2000))
            f.write(data[:500])
    elif op == 'rename':
        os.rename(s, d)
    elif op == 'unlink':
        os.unlink(s)
    else:
        os.rmdir(s)
    return op, src, dst


def run_steps(root, drops):
    """Each step draws from a generator of its own: a failed step leaves
    the next ones' draws as they are on the other side."""
    log = []
    for i in range(STEPS):
        rng = random.Random(SEED * 100003 + i)
        dt.attempt(log, i, lambda: step(rng, root, i))
        if drops and i % 500 == 499:
            os.sync()
            with open('/proc/sys/vm/drop_caches', 'w') as f:
                f.write('2')
    return log


host = os.path.join(base, 'host')
os.makedirs(host)
image_tree(host)
want = run_steps(host, False)
img = os.path.join(base, 'img')
os.makedirs(img)
image_tree(img)
disk = dt.Disk(base, limit='256M', images=[img])
with dt.checked(res, disk):
    disk.start()
    got = run_steps(disk.mnt, os.access('/proc/sys/vm/drop_caches', os.W_OK))
    diff = [(w, g) for w, g in zip(want, got) if w != g]
    res.eq('%d random steps: each as on the host (first differences)' % STEPS, diff[:5], [])
    res.check('the steps did things (%d of %d succeeded)' % (
        sum(1 for _, r in want if not str(r).startswith('errno')), STEPS),
        sum(1 for _, r in want if not str(r).startswith('errno')) > STEPS // 10)
    res.eq('the union\'s tree is the host\'s', sorted(tree(disk.mnt).items()),
           sorted(tree(host).items()))
    dt.compare(res, 'after the random steps', disk, settle_s=10)
    disk.stop()
    disk.start()
    res.eq('after a restart, the same tree', sorted(tree(disk.mnt).items()),
           sorted(tree(host).items()))
res.done()
