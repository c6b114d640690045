#!/usr/bin/env python3
"""Docker's overlay2 on the disk: a kernel overlayfs mount with upperdir and
workdir on the disk mount succeeds, and a create/modify/delete/rename round
trip leaves the right whiteouts (char 0/0) and opaque xattrs in its upper,
which the disk keeps as the user's own files."""
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
disk = dt.Disk(base, limit='128M')
try:
    disk.start()
    m = disk.mnt
    lower = os.path.join(base, 'ovl-lower')
    os.makedirs(os.path.join(lower, 'dir'))
    dt.write_file(os.path.join(lower, 'keep'), 'keep\n')
    dt.write_file(os.path.join(lower, 'del'), 'del\n')
    dt.write_file(os.path.join(lower, 'mod'), 'mod\n')
    dt.write_file(os.path.join(lower, 'dir/x'), 'x\n')
    d = os.path.join(m, 'var/lib/docker/overlay2/l1')
    for sub in ('diff', 'work', 'merged'):
        os.makedirs(os.path.join(d, sub))
    r = dt.overlay_mount(lower, os.path.join(d, 'diff'), os.path.join(d, 'work'),
                         os.path.join(d, 'merged'))
    if not res.eq('kernel overlayfs mounts on the disk', r.returncode, 0):
        print(r.stderr)
        raise SystemExit
    mg = os.path.join(d, 'merged')
    dt.write_file(os.path.join(mg, 'new'), 'new\n')
    with open(os.path.join(mg, 'mod'), 'a') as f:
        f.write('more\n')
    os.unlink(os.path.join(mg, 'del'))
    os.rename(os.path.join(mg, 'keep'), os.path.join(mg, 'kept'))
    import shutil
    shutil.rmtree(os.path.join(mg, 'dir'))
    os.mkdir(os.path.join(mg, 'dir'))
    res.eq('merged view', sorted(os.listdir(mg)), ['dir', 'kept', 'mod', 'new'])
    res.eq('modified content', open(os.path.join(mg, 'mod')).read(), 'mod\nmore\n')
    dt.unmount(mg, 'overlay')
    diff = os.path.join(d, 'diff')
    for name in ('del', 'keep'):
        st = os.lstat(os.path.join(diff, name))
        res.check('overlay whiteout for %s is char 0/0 in its upper' % name,
                  stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    res.check('opaque xattr on recreated dir',
              os.getxattr(os.path.join(diff, 'dir'), 'trusted.overlay.opaque') == b'y')
    res.eq('new file in upper', open(os.path.join(diff, 'new')).read(), 'new\n')
    res.check('whiteouts are plain devices on the disk (not union whiteouts)',
              'trusted.cvmfs.whiteout' not in os.listxattr(
                  os.path.join(disk.upper(), 'var/lib/docker/overlay2/l1/diff/del'),
                  follow_symlinks=False))
    r = dt.overlay_mount(lower, diff, os.path.join(d, 'work'), mg)
    res.eq('remount', r.returncode, 0)
    res.eq('merged view after remount', sorted(os.listdir(mg)), ['dir', 'kept', 'mod', 'new'])
    dt.unmount(mg, 'overlay')
    dt.compare(res, 'after overlay round trip', disk)
except SystemExit:
    pass
except Exception as e:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    res.check('no exception', False, e)
finally:
    dt.cleanup_overlays()
    disk.stop()
res.done()
