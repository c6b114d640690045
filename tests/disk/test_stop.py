#!/usr/bin/env python3
"""A clean stop is clean whatever other mount namespaces hold copies of the
mount (a CVM's root, dockerd's namespace): SIGTERM (or SIGINT) ends the
FUSE connection for every copy (they get ENOTCONN), the daemon exits
within seconds, DATA/state says `clean 1`, and the next start trusts it
(no recount) with figures equal to a recount. Checked with no copy, with a
copy holding a file open, with a write in flight through a copy, and after
`fusermount3 -u` here while a copy lives elsewhere (the daemon keeps
serving the copy; SIGTERM then leaves alone whatever is mounted at the
mount point now; or the daemon stops by itself when the copy goes)."""
import atexit
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

STOP_S = 5  # "within a few seconds": 1 s of grace, then the abort
FUSECTL = '/sys/fs/fuse/connections'

dt.require_root_fuse()
if not shutil.which('unshare'):
    dt.skip('unshare (util-linux) is missing')
res = dt.Results()
base = dt.tmpdir()
holders = []  # Popen of the processes holding copies, killed by pid


def kill_holders():
    for p in holders:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(kill_holders)  # runs before disktest's cleanup_all


def hold_copy(disk, open_file=None):
    """A process in a new private mount namespace (a copy of every mount,
    ours included, that our unmounts do not reach), optionally with a file
    of the mount open. Returns (process, the mount point as seen through
    its namespace)."""
    script = 'echo ready; exec sleep 1000'
    if open_file:
        script = 'exec 3<"$1" || exit 1; ' + script
    p = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script,
                          'sh', os.path.join(disk.mnt, open_file or '')],
                         stdout=subprocess.PIPE, text=True)
    holders.append(p)
    if p.stdout.readline().strip() != 'ready':
        raise RuntimeError('the holder of a copy did not start')
    return p, '/proc/%d/root%s' % (p.pid, os.path.realpath(disk.mnt))


def errno_of(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def stop(disk, sig=signal.SIGTERM):
    """Signal; seconds to exit (None if it had not exited in 30 s)."""
    t0 = time.time()
    disk.proc.send_signal(sig)
    try:
        disk.proc.wait(30)
    except subprocess.TimeoutExpired:
        return None
    return time.time() - t0


def state_clean(disk):
    with open(os.path.join(disk.data, 'state')) as f:
        return 'clean 1' in f.read().splitlines()


def check_stopped(label, disk, secs, log0):
    res.check('%s: the daemon exits within %d s' % (label, STOP_S),
              secs is not None and secs < STOP_S, secs)
    res.eq('%s: exit status' % label, disk.proc.returncode, 0)
    res.check('%s: DATA/state says clean 1' % label, state_clean(disk),
              open(os.path.join(disk.data, 'state')).read())
    new = disk.logtext()[log0:]
    res.check('%s: no "still in use", no failed abort in the log' % label,
              'still in use' not in new and 'cannot abort' not in new, new)
    res.eq('%s: stopped figures published' % label, disk.figures()['state'], 'stopped')


def check_restart(label, disk):
    """The next start trusts DATA/state, and its figures equal a recount."""
    log0 = len(disk.logtext())
    disk.start()
    new = disk.logtext()[log0:]
    res.check('%s: the restart reads usage from DATA/state, no recount' % label,
              'usage from DATA/state (clean stop)' in new and 'recounted' not in new, new)
    dt.compare(res, label + ': after restart', disk)


def fusectl_here():
    """Is fusectl mounted at its place in our mount namespace?"""
    with open('/proc/self/mountinfo') as f:
        return any(line.split(' - ', 1)[1].split()[0] == 'fusectl' and
                   line.split()[4] == FUSECTL for line in f)


def fill(disk, tag):
    m = disk.mnt
    for d in ('home/u', 'var/lib/docker/x', 'etc'):
        os.makedirs(os.path.join(m, d), exist_ok=True)
    dt.write_file(os.path.join(m, 'home/u/%s' % tag), os.urandom(300000))
    dt.write_file(os.path.join(m, 'var/lib/docker/x/%s' % tag), os.urandom(70000))
    dt.write_file(os.path.join(m, 'etc/%s' % tag), 'conf\n')
    os.link(os.path.join(m, 'etc/%s' % tag), os.path.join(m, 'etc/%s.link' % tag))


WRITER = r'''
import os, sys
path, total = sys.argv[1], int(sys.argv[2])
buf = os.urandom(1 << 20)
done = err = 0
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    while done < total:
        done += os.write(fd, buf)
        if done == 8 << 20:
            print('going', flush=True)
    os.close(fd)
except OSError as e:
    err = e.errno
print(done, err, flush=True)
'''

disk = dt.Disk(base, limit='4G', inodes=0)
with dt.checked(res, disk):
    # 1. No copy anywhere: the detach ends the connection at once.
    disk.start()
    fill(disk, 'plain')
    log0 = len(disk.logtext())
    check_stopped('no copy', disk, stop(disk), log0)
    check_restart('no copy', disk)

    # 2. A copy in another namespace, with a file of it open.
    had_fusectl = fusectl_here()
    print('# fusectl %s mounted at %s: the daemon %s' % (
        'is' if had_fusectl else 'is not', FUSECTL,
        'aborts through it' if had_fusectl else 'mounts its own, in a private namespace'))
    fill(disk, 'copy')
    holder, via = hold_copy(disk, open_file='etc/copy')
    dt.write_file(os.path.join(via, 'home/u/through-copy'), os.urandom(50000))
    res.eq('copy: the copy serves before the stop',
           len(read_file(os.path.join(via, 'home/u/through-copy'))), 50000)
    log0 = len(disk.logtext())
    check_stopped('copy', disk, stop(disk), log0)
    res.eq('copy: statfs through the copy fails ENOTCONN', errno_of(os.statvfs, via),
           errno.ENOTCONN)
    res.eq('copy: opening a file through the copy fails ENOTCONN',
           errno_of(read_file, os.path.join(via, 'etc/copy')), errno.ENOTCONN)
    res.eq('copy: the file it held open fails ENOTCONN',
           errno_of(read_file, '/proc/%d/fd/3' % holder.pid), errno.ENOTCONN)
    res.eq('copy: no fusectl mount left in our namespace', fusectl_here(), had_fusectl)
    check_restart('copy (its dead copy still held)', disk)
    res.eq('copy: what was written through the copy is kept',
           len(read_file(os.path.join(disk.mnt, 'home/u/through-copy'))), 50000)
    kill_holders()

    # 3. A write in flight through a copy at SIGTERM: completed, or failed
    # cleanly (the write whose reply the abort took may have landed).
    holder, via = hold_copy(disk)
    w = subprocess.Popen([sys.executable, '-c', WRITER, os.path.join(via, 'big'), str(1 << 30)],
                         stdout=subprocess.PIPE, text=True)
    res.eq('in flight: the writer is writing', w.stdout.readline().strip(), 'going')
    log0 = len(disk.logtext())
    check_stopped('in flight', disk, stop(disk), log0)
    out = w.communicate(timeout=30)[0].split()
    done, err = int(out[0]), int(out[1])
    size = os.path.getsize(os.path.join(disk.upper(), 'big'))
    print('# in flight: %d bytes acknowledged, then %s; %d bytes in DATA/upper' % (
        done, errno.errorcode.get(err, err), size))
    res.check('in flight: completed, or failed with ENOTCONN/ECONNABORTED',
              err in (0, errno.ENOTCONN, errno.ECONNABORTED), err)
    res.check('in flight: every acknowledged byte is in DATA/upper, at most the '
              'one write in flight more', done <= size <= done + (1 << 20), (done, size))
    check_restart('in flight', disk)
    kill_holders()

    # 4. fusermount3 -u here while a copy lives elsewhere: the daemon keeps
    # serving the copy (it cannot see the copy's users); SIGINT then ends it,
    # leaving alone what is mounted at the mount point by now.
    holder, via = hold_copy(disk)
    res.eq('fusermount3 -u: unmounts here',
           subprocess.run(['fusermount3', '-u', disk.mnt]).returncode, 0)
    time.sleep(1)  # the test: the daemon must not exit in this second
    res.check('fusermount3 -u: the daemon still serves the copy', disk.proc.poll() is None)
    dt.write_file(os.path.join(via, 'after-umount'), b'a' * 10000)
    res.eq('fusermount3 -u: the copy still works', read_file(os.path.join(via, 'after-umount')),
           b'a' * 10000)
    r = subprocess.run(['mount', '-t', 'tmpfs', 'cvmfs-test-other', disk.mnt],
                       capture_output=True, text=True)
    res.eq('another mount at the mount point', r.returncode, 0)
    try:
        log0 = len(disk.logtext())
        check_stopped('fusermount3 -u, then SIGINT', disk, stop(disk, signal.SIGINT), log0)
        res.check('fusermount3 -u, then SIGINT: the other mount at the mount point is left',
                  dt.is_mounted(disk.mnt))
        res.eq('fusermount3 -u, then SIGINT: the copy fails ENOTCONN', errno_of(os.statvfs, via),
               errno.ENOTCONN)
    finally:
        subprocess.run(['umount', disk.mnt], capture_output=True, check=False)
    kill_holders()
    check_restart('fusermount3 -u, then SIGINT', disk)

    # 5. fusermount3 -u here, then the copy goes: the daemon stops by itself.
    holder, via = hold_copy(disk)
    res.eq('fusermount3 -u, copy gone: unmounts here',
           subprocess.run(['fusermount3', '-u', disk.mnt]).returncode, 0)
    log0 = len(disk.logtext())
    t0 = time.time()
    kill_holders()
    try:
        disk.proc.wait(10)
        secs = time.time() - t0
    except subprocess.TimeoutExpired:
        secs = None
    check_stopped('fusermount3 -u, copy gone', disk, secs, log0)
    check_restart('fusermount3 -u, copy gone', disk)

    # 6. umount -f (MNT_FORCE) here with a copy elsewhere: aborts every copy.
    holder, via = hold_copy(disk)
    log0 = len(disk.logtext())
    t0 = time.time()
    res.eq('umount -f: unmounts', subprocess.run(['umount', '-f', disk.mnt]).returncode, 0)
    try:
        disk.proc.wait(10)
        secs = time.time() - t0
    except subprocess.TimeoutExpired:
        secs = None
    check_stopped('umount -f', disk, secs, log0)
    res.eq('umount -f: the copy fails ENOTCONN', errno_of(os.statvfs, via), errno.ENOTCONN)
    kill_holders()
    check_restart('umount -f', disk)

    # 7. The other way to fusectl: mounted at its place, as systemd does.
    mounted = False
    if not had_fusectl:
        mounted = subprocess.run(['mount', '-t', 'fusectl', 'fusectl', FUSECTL],
                                 capture_output=True).returncode == 0
    try:
        if fusectl_here():
            holder, via = hold_copy(disk)
            log0 = len(disk.logtext())
            check_stopped('fusectl mounted', disk, stop(disk), log0)
            res.eq('fusectl mounted: the copy fails ENOTCONN', errno_of(os.statvfs, via),
                   errno.ENOTCONN)
            kill_holders()
            check_restart('fusectl mounted', disk)
        else:
            res.not_checked('cannot mount fusectl at %s' % FUSECTL, point=False)
    finally:
        if mounted:
            subprocess.run(['umount', FUSECTL], check=False)
res.done()
