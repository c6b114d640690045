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
an upgrade in place to a DIFFERENT build: the daemon runs from a copy of
cvmfsd, which is replaced (renamed over, as a package upgrade does) by a
variant whose GNU build-id note (and version string) differ; SIGUSR2 makes
the supervisor exec it: 0 errors, the log's new supervisor line names the
new build id and version, the pid stays.

With --volume loop (the launcher's default) and --volume block: a kill,
an upgrade to another build, a kill, another upgrade, under the workload
plus a writer in a bind of the /home lane (as a CVM has it): 0 errors,
the new binaries adopt the mounted volume, data intact, the
figures equal the volume's statfs and a recount, and a stop afterwards
unmounts everything and (loop) detaches the loop device.

Also: with CVMFS_DISK_TEST_NO_RESEND (a kernel without FUSE_NOTIFY_RESEND)
a kill ends the daemon with one line and no restart, as before.
"""

import os
import re
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


SUP_LINE = re.compile(r'cvmfsd disk (\S+) \(build (\w+)\): supervisor pid (\d+)')


def supervisor_lines(disk):
    """(version, build id, pid) of each supervisor line in the log."""
    return [(m.group(1), m.group(2), int(m.group(3)))
            for m in SUP_LINE.finditer(disk.logtext())]


def upgrade_to_variant(res, label, disk, build):
    """SIGUSR2 after another build was put in place: the new supervisor
    line names its build id and version, the pid and connection stay.
    The time from the signal to the new binary's line (ms), or None."""
    sup = disk.proc.pid
    old_server = dt.server_pid(sup)
    before = supervisor_lines(disk)
    res.check('%s: the running supervisor\'s line' % label, before and before[-1][2] == sup,
              before)
    if not before:
        return None
    want = build.variant(before[-1][0])
    res.check('%s: a different build in place (build-id patched)' % label,
              want is not None and want[0] != before[-1][1], (want, before))
    if want is None:
        return None
    t0 = time.monotonic()
    os.kill(sup, signal.SIGUSR2)
    upgraded = dt.wait_for(lambda: len(supervisor_lines(disk)) > len(before), 30)
    ms = (time.monotonic() - t0) * 1000
    log = disk.logtext()
    res.check('%s: SIGUSR2: the new binary serves' % label,
              upgraded and 'upgraded in place' in log, log[-1500:])
    after = supervisor_lines(disk)[-1:]
    res.eq('%s: the new supervisor line: (version, build id, pid)' % label,
           after[0] if after else None, (want[1], want[0], sup))
    res.check('%s: the same supervisor pid, a new server' % label,
              disk.proc.poll() is None and dt.server_pid(sup) not in (0, old_server))
    # The status the new build's server publishes names it (a daemonised
    # disk's log goes to syslog: the CVM test has only this and /proc).
    res.check('%s: the status names the new build id' % label,
              dt.wait_for(lambda: disk.figures().get('build_id') == want[0], 5),
              disk.figures().get('build_id'))
    print('%s: upgrade (SIGUSR2 -> the new build serving): %.0f ms; %s -> %s' % (
        label, ms, before[-1][:2], want[::-1]), flush=True)
    return ms


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
    old = dt.server_pid(sup)
    if not old:
        return None, 'no server pid'
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    while time.monotonic() - t0 < 20:
        new = dt.server_pid(sup)
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
    build = dt.Build(base)
    build.use(disk)
    os.makedirs(disk.base, exist_ok=True)
    disk.mnt = os.path.join(disk.base, 'mnt')
    os.makedirs(disk.mnt, exist_ok=True)
    with dt.checked(res, disk):
        disk.start()
        sup = disk.proc.pid
        res.check('serving', wait_ready(disk))
        res.check('a server runs under the supervisor', dt.server_pid(sup) > 0)
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
        # Upgrade in place to another build under the same workload:
        # SIGUSR2 makes the supervisor exec the file now at its path,
        # keeping the connection and the pid.
        upgrade_to_variant(res, 'upgrade', disk, build)
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
        if disk.proc.returncode:
            print(disk.logtext()[-4000:], flush=True)


class LaneWriter:
    """Writes, fsyncs and reads back files in a bind of the /home lane
    (how a CVM has it: no FUSE on its path), across kills and upgrade."""

    def __init__(self, top):
        self.top = top
        self.stop = threading.Event()
        self.errors = []
        self.files = {}
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            p = os.path.join(self.top, 'lane-%04d' % self.n)
            data = os.urandom(4096 + (self.n * 7919) % 100000)
            try:
                with open(p, 'wb') as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                self.files[p] = data
                with open(p, 'rb') as f:
                    if f.read() != data:
                        self.errors.append('%s: read back differs' % p)
            except OSError as e:
                self.errors.append('%s: %s' % (p, e))
            self.n += 1
            time.sleep(0.01)

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(60)


def volume_figures(res, label, disk, vt):
    """With a volume: used == the volume's statfs; the areas == a recount
    of the union's upper plus the lanes' bytes (within 1 %, as
    test_volume's areas; OTHER holds the file system's few own blocks)."""
    lanes = os.path.join(disk.data, 'lanes')
    dt.wait_for(lambda: disk.fresh_figures().get('lanes_settled'), 20)
    fig = disk.fresh_figures()
    up = dt.recount(disk.upper(), disk.images)
    want = {'home_bytes': vt.allocated(os.path.join(lanes, 'home')) + up['home_bytes'],
            'docker_bytes': vt.allocated(os.path.join(lanes, 'var-lib-docker')) +
            up['docker_bytes'],
            'image_bytes': up['image_bytes'], 'other_bytes': up['other_bytes']}
    for k, v in want.items():
        res.check('%s: area %s == recount within 1 %% (%d vs %d)' % (label, k, fig[k], v),
                  abs(fig[k] - v) <= v / 100 + (256 << 10 if k == 'other_bytes' else 0),
                  (fig[k], v))
    res.eq('%s: used == the volume\'s statfs' % label, fig['used_bytes'],
           vt.statfs(disk.data)[1])
    res.eq('%s: areas add up to used' % label, fig['image_bytes'] + fig['docker_bytes'] +
           fig['home_bytes'] + fig['other_bytes'], fig['used_bytes'])


def block_device(res, base, vt):
    """A loop device of our own as the admin's block device, or None."""
    backing = os.path.join(vt.voldir(), 'cvmfs-test-block.img')
    with open(backing, 'wb') as f:
        f.truncate(512 << 20)
    r = subprocess.run(['losetup', '-f', '--show', backing], capture_output=True, text=True)
    if r.returncode != 0:
        res.not_checked('losetup: %s: the block variant' % r.stderr.strip(), point=False)
        return None
    return r.stdout.strip()


def survive_volume(res, base, tb, kind):
    """--volume loop (the launcher's default) or block:DEV: kills and an
    upgrade to another build under the workload and a lane writer; the
    new binary adopts the mounted volume; a stop afterwards unmounts it
    and (loop) the loop device detaches."""
    import voltest as vt
    label = 'volume %s' % kind
    if not os.path.exists('/dev/loop-control'):
        res.not_checked('no /dev/loop-control: the %s variant' % label, point=False)
        return
    dev = None
    if kind == 'loop':
        disk = vt.VolDisk(os.path.join(base, 'v'), limit='512M', extra=['--max-crashes', '20'])
    else:
        dev = block_device(res, base, vt)
        if not dev:
            return
        disk = dt.Disk(os.path.join(base, 'blk'), name='cvmfs-test-blk', limit='512M',
                       extra=['--volume', 'block:' + dev, '--max-crashes', '20'])
        vt._datas.append(disk.data)
        vt.logs.append(disk.log)
    build = dt.Build(os.path.join(base, 'bin-' + kind))
    build.use(disk)
    bind = os.path.join(disk.base, 'cvmfs-test-home')
    os.makedirs(bind, exist_ok=True)
    try:
        with dt.checked(res, disk):
            disk.start()
            sup = disk.proc.pid
            res.check('%s: serving' % label, wait_ready(disk))
            subprocess.run(['mount', '--bind', os.path.join(disk.data, 'lanes', 'home'), bind],
                           check=True)
            dt._mounts.append((bind, 'bind'))
            w, lw = Workload(disk.mnt, tb), LaneWriter(bind)
            w.start()
            lw.start()
            time.sleep(1.0)
            # One kill before (the carried fds kept by a later server),
            # one after the upgrade: survive_kills has the many kills.
            ms, why = takeover_ms(disk.mnt, sup)
            res.check('%s: a kill: a new server' % label, ms is not None, why)
            time.sleep(1.0)
            upgrade_to_variant(res, label, disk, build)
            time.sleep(1.0)
            # The new build's servers keep the carried fds across a crash,
            # and it carries them on to the next build.
            ms, why = takeover_ms(disk.mnt, sup)
            res.check('%s: a kill after the upgrade: a new server' % label, ms is not None, why)
            time.sleep(1.0)
            upgrade_to_variant(res, label + ' (second)', disk, build)
            time.sleep(1.0)
            w.finish()
            lw.finish()
            print('%s workload: %s, lane files %d, errors: %d + %d' % (
                label, w.ops, lw.n, len(w.errors), len(lw.errors)), flush=True)
            res.eq('%s: errors seen by the workload' % label, len(w.errors), 0)
            res.eq('%s: errors seen in the lane' % label, lw.errors[:5], [])
            res.check('%s: the workload ran' % label,
                      all(v > 0 for v in w.ops.values()) and lw.n > 0, (w.ops, lw.n))
            bad = [p for p, data in sorted(list(w.files.items()) + list(lw.files.items()))
                   if open(p, 'rb').read() != data]
            res.eq("%s: fsync'ed files intact (%d)" % (label, len(w.files) + len(lw.files)),
                   bad, [])
            volume_figures(res, label, disk, vt)
            log = disk.logtext()
            print('\n'.join(line for line in log.splitlines()
                            if 'adopted' in line or 'upgrad' in line or 'over' in line),
                  flush=True)
            res.check('%s: each new binary adopted the volume (one line each)' % label,
                      log.count('adopted from the binary before the upgrade') == 2, log[-2000:])
            res.check('%s: the daemon serves on' % label, disk.proc.poll() is None)
            dt.H.unmount(bind, 'bind')
            disk.stop()
            res.eq('%s: a stop ends the supervisor with 0' % label, disk.proc.returncode, 0)
            if disk.proc.returncode:
                print(disk.logtext()[-4000:], flush=True)
            res.check('%s: after the stop: nothing mounted' % label,
                      not dt.is_mounted(disk.mnt) and not dt.is_mounted(disk.data))
            if kind == 'loop':
                res.eq('%s: after the stop: the loop device detached' % label,
                       vt.wait_no_loops(), [])
            if 'Sanitizer' in log or 'runtime error' in log:
                res.check('%s: no sanitizer report' % label, False, log[-5000:])
    finally:
        dt.H.unmount(bind, 'bind')
        if kind == 'loop':
            vt.cleanup_volume(disk)
        else:  # the device is ours, not the daemon's: detached before the wait
            disk.stop()
            dt.H.unmount(disk.mnt)
            subprocess.run(['umount', '-l', disk.data], capture_output=True)
            subprocess.run(['losetup', '-d', dev], capture_output=True)
            vt.cleanup_between()


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
        pid = dt.server_pid(disk.proc.pid)
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
            pid = dt.server_pid(disk.proc.pid)
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
    dt.require_resend()
    res = dt.Results()
    base = dt.tmpdir()
    survive_kills(res, base)
    tb = make_tarball(os.path.join(base, 'vt'))
    survive_volume(res, base, tb, 'loop')
    survive_volume(res, base, tb, 'block')
    gives_up(res, base)
    no_resend(res, base)
    res.done()


if __name__ == '__main__':
    main()
