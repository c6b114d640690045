#!/usr/bin/env python3
"""cvmfsd disk --volume loop (issue 14): a real ext4 on a real loop device.

df shows the limit and the same used bytes on the union and the lanes; a
write past the limit fails with ENOSPC on the union and on a lane, bytes
before intact; 16 writers never take used past the limit; the areas add
up and match a recount; kill -9 and restart lose nothing; fsck-clean after
kill -9 of everything; SIGHUP grows online; a shrink at restart is applied
when the data fits, refused with one line when not; --discard-upper;
volume-alloc = full; a host file system that fills under a sparse volume
gives errors inside, never silent damage. No loop device is left attached
(voltest.py's cleanup checks /sys/block/loop*/loop/backing_file).
Exit 77 when loop devices cannot be used here."""

import errno
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402
import voltest as vt  # noqa: E402

M = 1 << 20
res = dt.Results()


def image(base):
    img = os.path.join(base, 'img')
    os.makedirs(os.path.join(img, 'home', 'alice'))
    os.makedirs(os.path.join(img, 'etc'))
    dt.write_file(os.path.join(img, 'home', 'alice', 'notes'), 'from the image\n')
    os.chown(os.path.join(img, 'home', 'alice'), 1000, 1000)
    os.chown(os.path.join(img, 'home', 'alice', 'notes'), 1000, 1000)
    dt.write_file(os.path.join(img, 'etc', 'blob'), os.urandom(3 * M))
    return img


def conf(base, limit):
    path = os.path.join(base, 'disk.conf')
    dt.write_file(path, '[disk cvmfs-test-ws]\nlimit = %s\n' % limit)
    return path


def test_df_lanes_status():
    base = dt.tmpdir()
    d = vt.VolDisk(base, images=[image(base)], extra=['--image-idmap', '100000:100000:65536'])
    with dt.checked(res, d):
        d.start()
        fig = d.fresh_figures()
        home, docker = d.lane('/home'), d.lane('/var/lib/docker')
        res.eq('status: volume', fig.get('volume'), 'loop:' + d.image_file())
        res.eq('status: volume_mnt', fig.get('volume_mnt'), d.data)
        res.eq('status: lanes', fig.get('lanes'),
               [{'path': '/home', 'dir': home}, {'path': '/var/lib/docker', 'dir': docker}])
        sizes = {p: vt.statfs(p) for p in (d.mnt, home, docker)}
        res.check('df: size == limit on the union and both lanes',
                  all(s == 64 * M for s, _ in sizes.values()), sizes)
        with open(os.path.join(d.mnt, 'etc', 'new'), 'wb') as f:
            f.write(os.urandom(2 * M))
        with open(os.path.join(home, 'alice', 'more'), 'wb') as f:
            f.write(os.urandom(3 * M))
        used = {p: vt.statfs(p)[1] for p in (d.mnt, home, docker)}
        res.check('df: the same used bytes on all three after writes to each',
                  len(set(used.values())) == 1, used)
        res.eq('cvmfs-stat used == df used', d.fresh_figures()['used_bytes'], used[d.mnt])
        st = os.stat(os.path.join(home, 'alice', 'notes'))
        res.eq('lane /home: the image\'s file copied, owner shifted by --image-idmap',
               (open(os.path.join(home, 'alice', 'notes')).read(), st.st_uid),
               ('from the image\n', 101000))
        res.eq('lane roots owned as the union shows the path',
               (os.stat(home).st_uid, os.stat(docker).st_uid), (100000, 100000))
        flags = os.statvfs(home).f_flag
        res.check('the volume is mounted nosuid (binds of its lanes inherit it)',
                  flags & os.ST_NOSUID and flags & os.ST_NODEV, flags)
        res.check('the union has /var/lib/docker as a mountpoint for the bind',
                  os.path.isdir(os.path.join(d.mnt, 'var', 'lib', 'docker')))
        r = subprocess.run(['df', '-B1', '--output=size,used', d.mnt, home, docker],
                           capture_output=True, text=True)
        rows = r.stdout.split('\n')[1:4]
        res.check('df(1) prints one size and used for /, /home, /var/lib/docker',
                  len(set(rows)) == 1, r.stdout)
        r = subprocess.run([dt.CVMFS_STAT, '--run-dir', d.run], capture_output=True, text=True)
        lines = r.stdout.splitlines()
        res.check('cvmfs-stat: the table, then the host line for the volume dir',
                  r.returncode == 0 and lines[0].startswith('NAME') and
                  lines[2].startswith(d.voldir + ': 1 volume may still take') and
                  'WARNING' not in r.stdout, r.stdout + r.stderr)


def test_enospc():
    base = dt.tmpdir()
    d = vt.VolDisk(base, images=[image(base)])
    with dt.checked(res, d):
        d.start()
        first = os.urandom(4 * M)
        home = d.lane('/home')
        for where in (os.path.join(d.mnt, 'root-before'), os.path.join(home, 'before')):
            with open(where, 'wb') as f:
                f.write(first)
                f.flush()
                os.fsync(f.fileno())
        n, err = vt.fill(os.path.join(d.mnt, 'fill-union'))
        res.eq('union: a write past the limit fails with ENOSPC', err, errno.ENOSPC)
        n2, err2 = vt.fill(os.path.join(home, 'fill-lane'))
        res.eq('lane: a write past the limit fails with ENOSPC', err2, errno.ENOSPC)
        size, used = vt.statfs(d.mnt)
        res.check('used never above the limit', used <= size, (used, size))
        blob = open(os.path.join(base, 'img', 'etc', 'blob'), 'rb').read()
        try:
            with open(os.path.join(d.mnt, 'etc', 'blob'), 'ab') as f:
                f.write(b'more')
            copied = 0
        except OSError as e:
            copied = e.errno
        res.eq('full volume: a copy-up fails with ENOSPC', copied, errno.ENOSPC)
        res.check('full volume: the image file still shows, unchanged',
                  open(os.path.join(d.mnt, 'etc', 'blob'), 'rb').read() == blob)
        res.eq('full volume: no copy left behind in DATA/work', os.listdir(
            os.path.join(d.data, 'work')), [])
        res.check('bytes before the limit intact (union, lane)',
                  open(os.path.join(d.mnt, 'root-before'), 'rb').read() == first and
                  open(os.path.join(home, 'before'), 'rb').read() == first)
        fig = d.fresh_figures()
        res.check('figures: used <= limit at the limit', fig['used_bytes'] <= fig['limit_bytes'],
                  fig)
        os.unlink(os.path.join(d.mnt, 'fill-union'))
        os.unlink(os.path.join(home, 'fill-lane'))


def writer(path, stop, out):
    try:
        out.append(vt.fill(path, chunk=256 << 10))
    except OSError as e:
        out.append((0, e.errno))


def test_16_writers():
    base = dt.tmpdir()
    d = vt.VolDisk(base, limit='96M')
    with dt.checked(res, d):
        d.start()
        home, docker = d.lane('/home'), d.lane('/var/lib/docker')
        paths = []
        for i in range(16):
            where = (d.mnt, home, docker)[i % 3]
            paths.append(os.path.join(where, 'w%d' % i))
        out, peak, stop = [], [0], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], vt.statfs(d.mnt)[1], d.figures()['used_bytes'])
        s = threading.Thread(target=sample)
        s.start()
        ts = [threading.Thread(target=writer, args=(p, stop, out)) for p in paths]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        stop.set()
        s.join()
        res.eq('16 writers: each ends with ENOSPC', sorted(set(e for _, e in out)),
               [errno.ENOSPC])
        res.check('16 writers: used never above the limit (df and status sampled)',
                  peak[0] <= 96 * M, peak[0])
        fig = d.fresh_figures()
        res.check('16 writers: the figures at most the limit', fig['used_bytes'] <= 96 * M, fig)


def test_areas():
    base = dt.tmpdir()
    img = image(base)
    d = vt.VolDisk(base, images=[img])
    with dt.checked(res, d):
        d.start()
        os.makedirs(os.path.join(d.mnt, 'srv'))
        for i in range(20):
            dt.write_file(os.path.join(d.mnt, 'srv', 'f%d' % i), os.urandom(100 << 10))
        home, docker = d.lane('/home'), d.lane('/var/lib/docker')
        os.makedirs(os.path.join(docker, 'overlay2', 'x'))
        for i in range(30):
            dt.write_file(os.path.join(home, 'alice', 'h%d' % i), os.urandom(200 << 10))
            dt.write_file(os.path.join(docker, 'overlay2', 'x', 'd%d' % i), os.urandom(150 << 10))
        os.link(os.path.join(home, 'alice', 'h0'), os.path.join(home, 'alice', 'h0-link'))
        time.sleep(2.5)  # the "quiet for 2 s"
        fig = d.fresh_figures()
        want = {'home_bytes': vt.allocated(home), 'docker_bytes': vt.allocated(docker),
                'image_bytes': dt.recount(os.path.join(base, 'empty-upper-none'), [img])[
                    'image_bytes']}
        up = dt.recount(d.upper(), [])
        want['other_bytes'] = up['other_bytes']
        for k, v in want.items():
            got = fig[k]
            res.check('area %s == recount within 1 %% (%d vs %d)' % (k, got, v),
                      abs(got - v) <= v / 100 + (64 << 10 if k == 'other_bytes' else 0),
                      (got, v))
        res.eq('areas add up to used', fig['image_bytes'] + fig['docker_bytes'] +
               fig['home_bytes'] + fig['other_bytes'], fig['used_bytes'])
        res.eq('used == the volume\'s statfs', fig['used_bytes'], vt.statfs(d.data)[1])


def test_kill9():
    base = dt.tmpdir()
    d = vt.VolDisk(base, images=[image(base)])
    with dt.checked(res, d):
        d.start()
        home = d.lane('/home')
        data = os.urandom(5 * M)
        dt.write_file(os.path.join(home, 'unsynced'), data)   # no fsync
        dt.write_file(os.path.join(d.mnt, 'etc', 'rootfile'), b'root union\n')
        d.kill9()
        res.check('kill -9: the volume stays mounted (a CVM may hold its lanes)',
                  dt.is_mounted(d.data))
        d.start()
        res.check('restart after kill -9: one mount at DATA, the lane\'s bytes all there',
                  open(os.path.join(home, 'unsynced'), 'rb').read() == data)
        res.check('restart after kill -9: the root union\'s file is there',
                  open(os.path.join(d.mnt, 'etc', 'rootfile')).read() == 'root union\n')
        n = sum(1 for line in open('/proc/self/mounts') if line.split()[1] == d.data)
        res.eq('restart after kill -9: DATA mounted once', n, 1)
        # kill -9 of everything: the daemon and the mount (what a host reboot leaves)
        dt.write_file(os.path.join(home, 'second'), data)
        d.kill9()
        subprocess.run(['umount', '-l', d.data], check=False)
        res.eq('after the last user, autoclear detached the loop device', vt.wait_no_loops(), [])
        r = subprocess.run(['e2fsck', '-fn', d.image_file()], capture_output=True, text=True)
        res.check('after kill -9 of everything: e2fsck -fn finds the volume clean',
                  r.returncode == 0, r.stdout + r.stderr)
        d.start()
        res.check('after kill -9 of everything: restarts, lane data there',
                  open(os.path.join(home, 'second'), 'rb').read() == data and
                  open(os.path.join(home, 'unsynced'), 'rb').read() == data)
        # A crash image: the file copied while mounted (journal not
        # replayed, needs_recovery set), as a host crash leaves it.
        dt.write_file(os.path.join(home, 'third'), data)
        os.sync()
        base2 = dt.tmpdir()
        d2 = vt.VolDisk(base2, name='cvmfs-test-crash')
        subprocess.run(['cp', '--sparse=always', d.image_file(), d2.image_file()], check=True)
        d.stop()
        d2.start()
        res.check('crash image: e2fsck -p ran before the mount (one log line)',
                  'unclean stop: e2fsck -p' in d2.logtext(), d2.logtext())
        res.check('crash image: the synced lane data there',
                  open(os.path.join(d2.lane('/home'), 'third'), 'rb').read() == data)
        d2.stop()
        vt.cleanup_volume(d2)
        r = subprocess.run(['e2fsck', '-fn', d2.image_file()], capture_output=True, text=True)
        res.check('crash image: clean after the daemon\'s stop', r.returncode == 0,
                  r.stdout + r.stderr)


def test_held_lane():
    """A CVM still holds a lane (its bind) when the daemon stops: the next
    start must mount the SAME file system (the loop device still attached
    to our file), never attach a second loop device to the same file,
    which would mount one ext4 twice and corrupt it."""
    base = dt.tmpdir()
    d = vt.VolDisk(base)
    hold = os.path.join(base, 'cvmfs-test-hold')
    os.makedirs(hold)
    with dt.checked(res, d):
        d.start()
        r = subprocess.run(['mount', '--bind', d.lane('/home'), hold], capture_output=True,
                           text=True)
        vt._datas.insert(0, hold)   # unmounted first by the cleanup
        if r.returncode != 0:
            res.not_checked('mount --bind: %s' % r.stderr.strip(), point=False)
            return
        d.stop()
        res.eq('stop with a lane held: DATA unmounted, the loop device stays',
               (dt.is_mounted(d.data), len(vt.our_loops())), (False, 1))
        d.start()
        res.eq('restart with a lane held: still one loop device for our file',
               len(vt.our_loops()), 1)
        res.eq('restart with a lane held: DATA and the held lane are one file system',
               os.stat(d.data).st_dev, os.stat(hold).st_dev)
        dt.write_file(os.path.join(d.lane('/home'), 'seen'), 'one fs')
        res.check('a file written through DATA shows in the held bind',
                  os.path.exists(os.path.join(hold, 'seen')))
        d.stop()
    subprocess.run(['umount', hold], capture_output=True)
    vt.wait_no_loops()
    r = subprocess.run(['e2fsck', '-fn', d.image_file()], capture_output=True, text=True)
    res.check('held lane: the volume is fsck-clean after all let go', r.returncode == 0,
              r.stdout + r.stderr)


def test_grow_shrink():
    base = dt.tmpdir()
    cfg = conf(base, '64M')
    d = vt.VolDisk(base, config=cfg, limit=None)
    with dt.checked(res, d):
        d.start()
        res.eq('start: size 64M', vt.statfs(d.mnt)[0], 64 * M)
        dt.write_file(os.path.join(d.lane('/home'), 'keep'), os.urandom(8 * M))
        conf(base, '100M')
        d.hup()
        for _ in range(100):
            if vt.statfs(d.mnt)[0] == 100 * M or 'CAP_SYS_RESOURCE' in d.logtext():
                break
            time.sleep(0.05)
        if 'CAP_SYS_RESOURCE' in d.logtext():
            # the kernel's online resize (EXT4_IOC_RESIZE_FS) wants it
            res.not_checked('online grow: this machine\'s root lacks CAP_SYS_RESOURCE', point=False)
            res.eq('SIGHUP grow without CAP_SYS_RESOURCE: the size stays', vt.statfs(d.mnt)[0],
                   64 * M)
            d.stop()
            d.start()
            res.eq('grow refused online: applied at the next start, exactly',
                   vt.statfs(d.mnt)[0], 100 * M)
        else:
            res.eq('SIGHUP grow: df on the union shows the new limit, online',
                   vt.statfs(d.mnt)[0], 100 * M)
        res.eq('grow: and on the lane', vt.statfs(d.lane('/home'))[0], 100 * M)
        res.eq('grow: the status file', d.fresh_figures()['limit_bytes'], 100 * M)
        res.check('grow: the data kept',
                  os.path.getsize(os.path.join(d.lane('/home'), 'keep')) == 8 * M)
        conf(base, '48M')
        d.hup()
        time.sleep(0.5)  # the test: a shrink that must not come online in this time
        res.eq('SIGHUP shrink: not online (applied at the next start)', vt.statfs(d.mnt)[0],
               100 * M)
        d.stop()
        d.start()
        res.eq('shrink at restart, the data fits: applied exactly', vt.statfs(d.mnt)[0], 48 * M)
        res.check('shrink at restart: the data kept',
                  os.path.getsize(os.path.join(d.lane('/home'), 'keep')) == 8 * M)
        dt.write_file(os.path.join(d.lane('/home'), 'big'), os.urandom(30 * M))
        d.stop()
        conf(base, '24M')
        with open(d.log, 'a') as f:
            f.write('--- 24M ---\n')
        d.start()
        tail = d.logtext().split('--- 24M ---')[1]
        refused = [line for line in tail.splitlines() if 'until enough is deleted' in line]
        res.eq('shrink below the data: refused with one line', len(refused), 1)
        res.eq('shrink below the data: the volume keeps its size', vt.statfs(d.mnt)[0], 48 * M)
        hostsize = os.stat(d.image_file()).st_size
        res.check('the image file shrank with the file system', hostsize < 64 * M, hostsize)


def test_discard_upper():
    base = dt.tmpdir()
    d = vt.VolDisk(base, images=[image(base)])
    with dt.checked(res, d):
        d.start()
        dt.write_file(os.path.join(d.mnt, 'etc', 'gone'), 'x')
        os.makedirs(os.path.join(d.mnt, 'srv', 'kept'))
        dt.write_file(os.path.join(d.mnt, 'srv', 'kept', 'f'), 'persist')
        dt.write_file(os.path.join(d.lane('/home'), 'lanefile'), 'lane')
        d.stop()
        d.extra += ['--discard-upper', '--persist', '/srv/kept']
        d.start()
        res.check('--discard-upper: the root union\'s change is gone',
                  not os.path.exists(os.path.join(d.mnt, 'etc', 'gone')))
        res.check('--discard-upper: the image shows through again',
                  os.path.exists(os.path.join(d.mnt, 'etc', 'blob')))
        res.check('--discard-upper: persist paths kept',
                  open(os.path.join(d.mnt, 'srv', 'kept', 'f')).read() == 'persist')
        res.check('--discard-upper: the lanes kept',
                  open(os.path.join(d.lane('/home'), 'lanefile')).read() == 'lane')
        got, want = d.fresh_figures(), dt.recount(d.upper(), d.images)
        res.eq('--discard-upper: the image recounted', got['image_bytes'], want['image_bytes'])


def test_alloc_full():
    base = dt.tmpdir()
    cfg = os.path.join(base, 'full.conf')
    dt.write_file(cfg, '[disk]\nvolume-alloc = full\n')
    d = vt.VolDisk(base, config=cfg)
    with dt.checked(res, d):
        d.start()
        st = os.stat(d.image_file())
        res.check('volume-alloc = full: every byte of the file allocated',
                  st.st_blocks * 512 >= st.st_size, (st.st_blocks * 512, st.st_size))
    base2 = dt.tmpdir()
    d2 = vt.VolDisk(base2)
    with dt.checked(res, d2):
        d2.start()
        st = os.stat(d2.image_file())
        res.check('volume-alloc = sparse (default): the file is mostly holes',
                  st.st_blocks * 512 < st.st_size / 4, (st.st_blocks * 512, st.st_size))


def test_host_full():
    """A sparse 64M volume on a 24M host file system: writes inside fail,
    data that was acknowledged stays readable."""
    base = dt.tmpdir()
    host = vt.voldir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=24M', 'cvmfs-test-host', host],
                       capture_output=True, text=True)
    if r.returncode != 0:
        res.not_checked('cannot mount a small tmpfs: %s' % r.stderr.strip(), point=False)
        return
    d = vt.VolDisk(base, vdir=host)
    try:
        with dt.checked(res, d):
            d.start()
            home = d.lane('/home')
            first = os.urandom(4 * M)
            dt.write_file(os.path.join(home, 'first'), first)
            os.sync()
            errs = []
            for i in range(12):
                p = os.path.join(home, 'f%d' % i)
                try:
                    with open(p, 'wb') as f:
                        f.write(os.urandom(4 * M))
                        f.flush()
                        os.fsync(f.fileno())
                except OSError as e:
                    errs.append(e.errno)
            res.check('host full under a sparse volume: writes inside fail (%s)' %
                      sorted(set(errno.errorcode.get(e, e) for e in errs)),
                      bool(errs) and set(errs) <= {errno.EIO, errno.ENOSPC, errno.EROFS}, errs)
            ok = open(os.path.join(home, 'first'), 'rb').read() == first
            res.check('host full: data acknowledged before is intact', ok)
            r = subprocess.run([dt.CVMFS_STAT, '--run-dir', d.run], capture_output=True,
                               text=True)
            res.check('cvmfs-stat warns: the sparse volume promises more than the host has',
                      ('WARNING: %s: 1 volume may still take' % host) in r.stdout, r.stdout)
            try:
                with open(os.path.join(d.mnt, 'etc-after'), 'wb') as f:
                    f.write(b'x')
                    f.flush()
                    os.fsync(f.fileno())
                after = 0
            except OSError as e:
                after = e.errno
            res.check('host full: the root union refuses writes too (%s)' %
                      errno.errorcode.get(after, after), after in (errno.EROFS, errno.EIO))
            d.stop()
            subprocess.run(['umount', '-l', d.data], capture_output=True)
            vt.wait_no_loops()
            subprocess.run(['mount', '-o', 'remount,size=128M', host], check=True)
            d.start()
            res.check('host space freed, restart: e2fsck -p repairs, starts',
                      'e2fsck -p' in d.logtext(), d.logtext())
            res.check('host space freed, restart: data acknowledged before intact',
                      open(os.path.join(home, 'first'), 'rb').read() == first)
            with open(os.path.join(home, 'later'), 'wb') as f:
                f.write(first)
            res.check('host space freed: writable again', os.path.getsize(
                os.path.join(home, 'later')) == len(first))
            print('# log: ' + ' | '.join(d.logtext().splitlines()[-3:]))
            print('# dmesg: ' + subprocess.run(['dmesg'], capture_output=True,
                                               text=True).stdout.splitlines()[-1:][0]
                  if subprocess.run(['dmesg'], capture_output=True).returncode == 0 else '')
    finally:
        vt.cleanup_volume(d)
        subprocess.run(['umount', '-l', host], check=False)


def test_block():
    """--volume block:DEV: the admin's device (here a loop device this test
    attaches itself) is formatted only when it holds no file system."""
    base = dt.tmpdir()
    # Not in a volume dir: the loop device is the admin's, attached until
    # the end, and the waits for our loop devices to detach must not wait
    # for it (30 s each).
    backing = os.path.join(base, 'cvmfs-test-block.img')
    with open(backing, 'wb') as f:
        f.truncate(80 * M)
    r = subprocess.run(['losetup', '-f', '--show', backing], capture_output=True, text=True)
    if r.returncode != 0:
        res.not_checked('losetup: %s' % r.stderr.strip(), point=False)
        return
    dev = r.stdout.strip()
    d = dt.Disk(base, name='cvmfs-test-blk', extra=['--volume', 'block:' + dev])
    vt._datas.append(d.data)
    vt.logs.append(d.log)
    try:
        with dt.checked(res, d):
            d.start()
            fig = d.fresh_figures()
            res.eq('block: status names the device', fig['volume'], 'block:' + dev)
            res.eq('block: df on the union == the device\'s file system', vt.statfs(d.mnt),
                   vt.statfs(d.data))
            lane = os.path.join(d.data, 'lanes', 'home')
            dt.write_file(os.path.join(lane, 'kept'), 'on the device')
            d.stop()
            vt.cleanup_between()
            d.start()
            res.check('block: formatted once, data kept across restarts',
                      open(os.path.join(lane, 'kept')).read() == 'on the device')
    finally:
        vt.cleanup_between()
        subprocess.run(['losetup', '-d', dev], capture_output=True)


def test_refusals():
    base = dt.tmpdir()
    d = vt.VolDisk(base)
    os.makedirs(os.path.join(d.data, 'upper', 'etc'))
    dt.write_file(os.path.join(d.data, 'state'), 'version 1\n')
    code, out = d.run_once()
    lines = [line for line in out.splitlines() if line.strip()]
    res.check('a DATA made with --volume none: refused with one line, exit 1',
              code == 1 and len(lines) == 1 and 'not migrated' in out, (code, out))
    res.check('... and nothing made', not os.path.exists(d.image_file()))
    base2 = dt.tmpdir()
    for args, what in ((['--volume', 'floppy'], '--volume'), (['--lanes', 'home'], '--lanes'),
                       (['--lanes', '/home:/home/x'], '--lanes')):
        e = dt.Disk(base2, extra=args + ['--volume-dir', vt.voldir()] +
                    ([] if args[0] == '--volume' else ['--volume', 'loop']))
        r = subprocess.run(e.argv(), capture_output=True, text=True, timeout=30)
        res.check('bad %s %s: one line naming it, exit 1' % (what, args[1]),
                  r.returncode == 1 and r.stderr.count('\n') == 1 and 'bad value for ' + what in r.stderr,
                  r.stderr)


def main():
    vt.require_loop()
    only = sys.argv[1:]  # test names, for a quick run by hand
    for t in (test_df_lanes_status, test_enospc, test_16_writers, test_areas, test_kill9,
              test_held_lane, test_grow_shrink, test_discard_upper, test_alloc_full, test_host_full,
              test_block, test_refusals):
        if only and t.__name__ not in only:
            continue
        print('# %s' % t.__name__, flush=True)
        t()
        vt.cleanup_between()
    res.eq('no loop device of ours left attached', vt.wait_no_loops(), [])
    res.eq('no sanitizer report in any daemon log', vt.sanitizer_reports(), [])
    vt.cleanup()
    res.done()


if __name__ == '__main__':
    main()
