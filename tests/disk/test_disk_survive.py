#!/usr/bin/env python3
"""cvmfsd disk survives kill -9s of its server (issue 17, doc/cvmfsd-disk.md).

A workload on a mounted disk (an image layer below): an untar in a loop, a
writer that writes + fsyncs files and reads them back, one file kept open
across every kill (written, fsynced and read back through the same fd),
and `ls -R` of the whole tree. The server is killed with SIGKILL 10 times
(the supervisor, the pid started, restarts it). Checks: 0 errors seen by
the workload, the fsync'ed data intact, the live figures equal a recount
afterwards, a take-over time from each kill to the first answered request
(printed), and the log's take-over lines. Then, under the same workload,
an upgrade in place (SIGUSR2: the supervisor execs its binary again): 0
errors, the log shows the new exec, the pid stays.

Also: with CVMFS_DISK_TEST_NO_RESEND (a kernel without FUSE_NOTIFY_RESEND)
a kill ends the daemon with one line and no restart, as before.
"""

import os
import signal
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

KILLS = int(os.environ.get('CVMFS_SURVIVE_KILLS', '10'))


def wait_ready(disk):
    """The supervisor's first line comes once its server serves."""
    return dt.wait_for(lambda: 'supervisor pid' in disk.logtext(), 20)


def server_pid(sup):
    try:
        with open('/proc/%d/task/%d/children' % (sup, sup)) as f:
            kids = f.read().split()
    except OSError:
        return 0
    return int(kids[0]) if kids else 0


def make_tarball(base):
    os.makedirs(base, exist_ok=True)
    src = os.path.join(base, 'tarsrc')
    for d in range(20):
        p = os.path.join(src, 'd%02d' % d)
        os.makedirs(p)
        for i in range(50):
            with open(os.path.join(p, 'f%03d' % i), 'wb') as f:
                f.write(os.urandom(100 + 97 * i))
    tb = os.path.join(base, 'src.tar')
    with tarfile.open(tb, 'w') as t:
        t.add(src, arcname='t')
    return tb


class Workload:
    def __init__(self, mnt, tarball):
        self.mnt = mnt
        self.tarball = tarball
        self.stop = threading.Event()
        self.errors = []
        self.ops = {'untar': 0, 'write': 0, 'lsR': 0, 'held': 0}
        self.files = {}  # path -> bytes, fsync'ed
        self.lock = threading.Lock()

    def err(self, what):
        with self.lock:
            self.errors.append(what)
        print('workload error: %s' % what, flush=True)

    def untar(self):
        n = 0
        while not self.stop.is_set():
            d = os.path.join(self.mnt, 'untar', str(n % 3))
            r = subprocess.run(['sh', '-c', 'rm -rf "$1" && mkdir -p "$1" && tar -xf "$2" -C "$1"',
                                'x', d, self.tarball], capture_output=True, text=True)
            if r.returncode:
                self.err('untar: %s' % r.stderr.strip()[:300])
            self.ops['untar'] += 1
            n += 1

    def writer(self):
        os.makedirs(os.path.join(self.mnt, 'w'), exist_ok=True)
        n = 0
        while not self.stop.is_set():
            p = os.path.join(self.mnt, 'w', 'f%04d' % n)
            data = os.urandom(4096 + (n * 7919) % 300000)
            step = 'open'
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    step = 'write'
                    os.write(fd, data)
                    step = 'fsync'
                    os.fsync(fd)
                finally:
                    step = 'close'
                    os.close(fd)
                with self.lock:
                    self.files[p] = data
                step = 'read back'
                with open(p, 'rb') as f:
                    if f.read() != data:
                        self.err('%s: read back differs' % p)
            except OSError as e:
                self.err('%s %s: %s' % (step, p, e))
            self.ops['write'] += 1
            n += 1

    def held(self):
        """Two fds open across every kill, one of a file unlinked while
        open: their file handles must survive."""
        p = os.path.join(self.mnt, 'held')
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        q = os.path.join(self.mnt, 'held-unlinked')
        ufd = os.open(q, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.unlink(q)
        off = 0
        try:
            while not self.stop.is_set():
                block = os.urandom(8192)
                for f, name in ((fd, 'held'), (ufd, 'held-unlinked')):
                    try:
                        os.pwrite(f, block, off)
                        os.fsync(f)
                        if os.pread(f, 8192, off) != block:
                            self.err('%s: read back differs at %d' % (name, off))
                        if os.fstat(f).st_size != off + 8192:
                            self.err('%s: size %d, not %d' % (name, os.fstat(f).st_size,
                                                              off + 8192))
                    except OSError as e:
                        self.err('%s fd at %d: %s' % (name, off, e))
                with self.lock:
                    self.files[p] = self.files.get(p, b'') + block
                off += 8192
                self.ops['held'] += 1
                time.sleep(0.005)
        finally:
            os.close(fd)
            os.close(ufd)

    def ls_r(self):
        while not self.stop.is_set():
            r = subprocess.run(['ls', '-R', self.mnt], capture_output=True, text=True)
            # An untar's rm -rf racing the listing may remove what ls was
            # about to enter: that is the workload, not the daemon.
            bad = [line for line in r.stderr.splitlines()
                   if 'No such file or directory' not in line]
            if r.returncode and bad:
                self.err('ls -R: %s' % '; '.join(bad)[:300])
            self.ops['lsR'] += 1

    def start(self):
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.untar, self.writer, self.held, self.ls_r)]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(120)


def takeover_ms(mnt, sup):
    """Kill the server; the time until a new one has answered a request
    (a stat of a name nobody looked up yet: a LOOKUP the kernel sends and
    waits for while no server runs)."""
    old = server_pid(sup)
    if not old:
        return None, 'no server pid'
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    while time.monotonic() - t0 < 20:
        new = server_pid(sup)
        if new and new != old:
            try:
                os.stat(os.path.join(mnt, 'probe-%d' % old))
            except FileNotFoundError:
                pass
            return (time.monotonic() - t0) * 1000, None
        time.sleep(0.0005)
    return None, 'no new server in 20 s'


def survive_kills(res, base):
    img = os.path.join(base, 'img')
    os.makedirs(os.path.join(img, 'etc', 'deep', 'er'))
    for i in range(200):
        dt.write_file(os.path.join(img, 'etc', 'deep', 'er', 'i%03d' % i), 'image %d\n' % i)
    tb = make_tarball(base)
    disk = dt.Disk(os.path.join(base, 'a'), limit='1G', images=[img],
                   extra=['--max-crashes', str(KILLS + 5)])
    os.makedirs(disk.base, exist_ok=True)
    disk.mnt = os.path.join(disk.base, 'mnt')
    os.makedirs(disk.mnt, exist_ok=True)
    with dt.checked(res, disk):
        disk.start()
        sup = disk.proc.pid
        res.check('serving', wait_ready(disk))
        res.check('a server runs under the supervisor', server_pid(sup) > 0)
        w = Workload(disk.mnt, tb)
        w.start()
        times = []
        time.sleep(1.0)
        for k in range(KILLS):
            try:
                ms, why = takeover_ms(disk.mnt, sup)
            except OSError:
                print(disk.logtext()[-3000:], flush=True)
                raise
            res.check('kill %d: a new server' % (k + 1), ms is not None, why)
            if ms is not None:
                times.append(ms)
            time.sleep(1.0)
        # Upgrade in place under the same workload: SIGUSR2 makes the
        # supervisor exec its binary, keeping the connection and the pid.
        old_server = server_pid(sup)
        t0 = time.monotonic()
        os.kill(sup, signal.SIGUSR2)
        upgraded = dt.wait_for(lambda: 'upgraded in place' in disk.logtext(), 30)
        up_ms = (time.monotonic() - t0) * 1000
        res.check('SIGUSR2: the log shows the new exec', upgraded, disk.logtext()[-1500:])
        res.check('SIGUSR2: the same supervisor pid, a new server',
                  disk.proc.poll() is None and server_pid(sup) not in (0, old_server))
        print('upgrade (SIGUSR2 -> the new binary serving): %.0f ms' % up_ms, flush=True)
        time.sleep(1.5)
        w.finish()
        print('workload: %s, errors: %d' % (w.ops, len(w.errors)), flush=True)
        if times:
            times.sort()
            print('take-over (kill -> a LOOKUP answered): median %.1f ms, max %.1f ms' % (
                times[len(times) // 2], times[-1]), flush=True)
        res.eq('errors seen by the workload', len(w.errors), 0)
        if w.errors:
            print(disk.logtext()[-3000:], flush=True)
        res.check('the workload ran', all(v > 0 for v in w.ops.values()), w.ops)
        bad = []
        for p, data in sorted(w.files.items()):
            with open(p, 'rb') as f:
                if f.read() != data:
                    bad.append(p)
        res.eq("fsync'ed files intact (%d)" % len(w.files), bad, [])
        dt.compare(res, 'after %d kills' % KILLS, disk, settle_s=5)
        log = disk.logtext()
        print('\n'.join(l for l in log.splitlines() if 'over' in l or 'died' in l), flush=True)
        res.eq('take-overs in the log', log.count(') took over in'), KILLS)
        died = [line for line in log.splitlines() if 'server died' in line]
        res.eq('every server died of our SIGKILL', [d for d in died if 'signal 9)' not in d], [])
        if len(died) != KILLS or 'Sanitizer' in log:
            print(log[-20000:], flush=True)
        res.check('the supervisor still runs', disk.proc.poll() is None)
        disk.stop()
        res.eq('a stop ends the supervisor with 0', disk.proc.returncode, 0)


def survive_volume(res, base, tb):
    """--volume loop (the launcher's default): the same kills under the
    same workload (the /home lane is the volume itself, no FUSE); an
    upgrade is refused there with one line and the daemon serves on."""
    import voltest as vt
    if not os.path.exists('/dev/loop-control'):
        res.not_checked('no /dev/loop-control: the volume variant', point=False)
        return
    disk = vt.VolDisk(os.path.join(base, 'v'), limit='512M',
                      extra=['--max-crashes', '20'])
    os.makedirs(disk.base, exist_ok=True)
    disk.mnt = os.path.join(disk.base, 'mnt')
    os.makedirs(disk.mnt, exist_ok=True)
    with dt.checked(res, disk):
        disk.start()
        sup = disk.proc.pid
        res.check('volume: serving', wait_ready(disk))
        w = Workload(disk.mnt, tb)
        w.start()
        time.sleep(1.0)
        for k in range(3):
            ms, why = takeover_ms(disk.mnt, sup)
            res.check('volume: kill %d: a new server' % (k + 1), ms is not None, why)
            time.sleep(1.0)
        os.kill(sup, signal.SIGUSR2)
        res.check('volume: SIGUSR2 refused in one line',
                  dt.wait_for(lambda: 'not with a volume yet' in disk.logtext(), 10))
        time.sleep(0.5)
        w.finish()
        print('volume workload: %s, errors: %d' % (w.ops, len(w.errors)), flush=True)
        res.eq('volume: errors seen by the workload', len(w.errors), 0)
        res.check('volume: the daemon serves on', disk.proc.poll() is None)
        disk.stop()
        res.eq('volume: a stop ends the supervisor with 0', disk.proc.returncode, 0)
        vt.cleanup_volume(disk)


def gives_up(res, base):
    """--max-crashes 2: the second crash within the window ends the
    daemon with one line."""
    disk = dt.Disk(os.path.join(base, 'c'), limit='64M', extra=['--max-crashes', '2'])
    os.makedirs(disk.base, exist_ok=True)
    disk.mnt = os.path.join(disk.base, 'mnt')
    os.makedirs(disk.mnt, exist_ok=True)
    with dt.checked(res, disk):
        disk.start()
        res.check('max-crashes 2: serving', wait_ready(disk))
        ms, why = takeover_ms(disk.mnt, disk.proc.pid)
        res.check('max-crashes 2: the first crash restarts', ms is not None, why)
        dt.wait_for(lambda: 'took over in' in disk.logtext(), 20)
        pid = server_pid(disk.proc.pid)
        if pid:
            os.kill(pid, signal.SIGKILL)
        try:
            disk.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        res.check('max-crashes 2: the second ends the daemon', disk.proc.poll() is not None)
        res.check('max-crashes 2: one line says so',
                  'crashed 2 times within 60 s: giving up' in disk.logtext(),
                  disk.logtext()[-500:])
        dt.unmount(disk.mnt)


def no_resend(res, base):
    """No FUSE_NOTIFY_RESEND: one line, no restart, the daemon ends."""
    disk = dt.Disk(os.path.join(base, 'b'), limit='64M')
    os.makedirs(disk.base, exist_ok=True)
    disk.mnt = os.path.join(disk.base, 'mnt')
    os.makedirs(disk.mnt, exist_ok=True)
    os.environ['CVMFS_DISK_TEST_NO_RESEND'] = '1'
    try:
        with dt.checked(res, disk):
            disk.start()
            del os.environ['CVMFS_DISK_TEST_NO_RESEND']
            res.check('no resend: serving', wait_ready(disk))
            pid = server_pid(disk.proc.pid)
            if pid:
                os.kill(pid, signal.SIGKILL)
            try:
                disk.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            res.check('no resend: the daemon ends', disk.proc.poll() is not None)
            res.check('no resend: one line says why',
                      'no FUSE_NOTIFY_RESEND' in disk.logtext(), disk.logtext()[-500:])
            dt.unmount(disk.mnt)
    finally:
        os.environ.pop('CVMFS_DISK_TEST_NO_RESEND', None)


def main():
    dt.require_root_fuse()
    rel = os.uname().release.split('.')
    if (int(rel[0]), int(''.join(c for c in rel[1] if c.isdigit()) or 0)) < (6, 9):
        dt.skip('Linux %s has no FUSE_NOTIFY_RESEND (6.9+): the disk does not restart there'
                % os.uname().release)
    res = dt.Results()
    base = dt.tmpdir()
    survive_kills(res, base)
    survive_volume(res, base, make_tarball(os.path.join(base, 'vt')))
    gives_up(res, base)
    no_resend(res, base)
    res.done()


if __name__ == '__main__':
    main()
