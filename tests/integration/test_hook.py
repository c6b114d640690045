#!/usr/bin/env python3
"""cvmfs-hook with runc (Debian's package, no registry: the rootfs is
busybox-static): a plain container started with the hook as its
createContainer and poststop hooks reads its own limits in /proc/meminfo
and /sys/devices/system/cpu/online, through its named tree (cgroup
/cvmfs/NAME) and through an anonymous one (a cgroup elsewhere); after it
stops, nothing of its views is left: no record, no tree, no mount. A
container without limits runs untouched; a hook that cannot find the views
fails the container."""
import json
import os
import shutil
import subprocess

import cvmfstest as T
from cvmfstest import R

HOOK = os.path.join(T.BUILD, 'src', 'hook', 'cvmfs-hook')
MEM = 256 << 20


def rootfs(base):
    root = os.path.join(base, 'rootfs')
    for d in ('bin', 'proc', 'sys', 'dev', 'tmp'):
        os.makedirs(os.path.join(root, d))
    shutil.copy(shutil.which('busybox'), os.path.join(root, 'bin', 'busybox'))
    for tool in ('sh', 'grep', 'cat', 'sleep'):
        os.symlink('busybox', os.path.join(root, 'bin', tool))
    return root


def bundle(base, name, views, run, cgroup, limited=True):
    b = os.path.join(base, name)
    os.makedirs(b)
    subprocess.run(['runc', 'spec'], cwd=b, check=True)
    with open(os.path.join(b, 'config.json')) as f:
        c = json.load(f)
    c['root'] = {'path': os.path.join(base, 'rootfs'), 'readonly': True}  # shared, absolute
    c['process']['terminal'] = False
    c['process']['args'] = ['sh', '-c', 'grep MemTotal /proc/meminfo; '
                            'cat /sys/devices/system/cpu/online; exec sleep 60']
    c['linux']['cgroupsPath'] = cgroup
    if limited:
        c['linux']['resources'] = {'memory': {'limit': MEM},
                                   'cpu': {'quota': 50000, 'period': 100000}}
    args = ['cvmfs-hook', '-c', '/dev/null', '--views', views, '--run-dir', run]
    c['hooks'] = {'createContainer': [{'path': HOOK, 'args': args + ['create']}],
                  'poststop': [{'path': HOOK, 'args': args + ['poststop']}]}
    with open(os.path.join(b, 'config.json'), 'w') as f:
        json.dump(c, f)
    return b


class Container:
    def __init__(self, state, b, cid):
        self.state, self.cid = state, cid
        T.add_late_cleanup(self.delete)
        self.p = T.popen(['runc', '--root', state, 'run', '--bundle', b, cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        self.lines = [self.p.stdout.readline().strip() for _ in range(2)]

    def stop(self):
        subprocess.run(['runc', '--root', self.state, 'kill', self.cid, 'KILL'],
                       capture_output=True)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            pass
        self.err = self.p.stderr.read()
        T.forget(self.p)
        return self.p.returncode

    def delete(self):
        subprocess.run(['runc', '--root', self.state, 'delete', '--force', self.cid],
                       capture_output=True)


def remove_cgroup_parent(rel):
    def rm():
        for ctrl in os.listdir(T.CG_ROOT):
            try:
                os.rmdir(os.path.join(T.CG_ROOT, ctrl, rel))
            except OSError:
                pass
    T.add_late_cleanup(rm)


def gone_soon(path, tries=100):
    for _ in range(tries):
        if not os.path.exists(path):
            return True
        T.time.sleep(0.05)
    return False


def check_case(label, views, run, state, b, cid, expect_online, tree_gone):
    c = Container(state, b, cid)
    record = os.path.join(run, 'hook', cid)
    tree = open(record).read().strip() if os.path.exists(record) else None
    R.eq('%s: MemTotal in the container is its limit' % label, c.lines[0].split(),
         ['MemTotal:', str(MEM // 1024), 'kB'])
    R.eq('%s: /sys/devices/system/cpu/online shows its CPU quota' % label, c.lines[1],
         expect_online)
    R.check('%s: the record names its tree under the views' % label,
            tree is not None and tree.startswith(views.mnt + '/ct/'), tree)
    rc = c.stop()
    R.check('%s: runc ran the poststop hook without error' % label,
            'cvmfs-hook' not in c.err, (rc, c.err))
    R.eq('%s: record removed at poststop' % label, os.path.exists(record), False)
    if tree:
        R.check('%s: its tree is gone' % label, tree_gone(tree), tree)
    R.eq('%s: no mount of the views left on the host' % label,
         [m for m in T.mounts_under(views.mnt) if m not in (views.mnt, views.ct)], [])


def check_unlimited(views, run, state, base, host_mem):
    cid = T.unique('hook-free')  # outside /cvmfs: the anonymous way
    remove_cgroup_parent(cid + '/c')
    remove_cgroup_parent(cid)
    b = bundle(base, 'free', views.mnt, run, '/%s/c' % cid, limited=False)
    c = Container(state, b, cid)
    R.eq('no limits: the host\'s MemTotal', c.lines[0], host_mem)
    R.eq('no limits: no record', os.path.exists(os.path.join(run, 'hook', cid)), False)
    c.stop()


def check_no_views(run, state, base):
    cid = T.unique('hook-noviews')
    remove_cgroup_parent('cvmfs/' + cid)
    b = bundle(base, 'noviews', os.path.join(base, 'no-views'), run, '/cvmfs/' + cid)
    c = Container(state, b, cid)
    rc = c.stop()
    R.check('views missing: the container fails, the hook says why in one line',
            rc != 0 and c.lines == ['', ''] and 'cvmfs-hook: ' in c.err, (rc, c.lines, c.err))


def main():
    T.require(v1=False)
    for tool in ('runc', 'busybox'):
        if not shutil.which(tool):
            T.skip('no %s here (Debian: runc, busybox-static)' % tool)
    if not os.access(HOOK, os.X_OK):
        T.skip('cvmfs-hook not built at %s' % HOOK)
    base = T.tempdir('hook-')
    run, state = os.path.join(base, 'run'), os.path.join(base, 'runc')
    rootfs(base)
    views = T.start_daemon()
    online = sorted(T.cpulist(open('/sys/devices/system/cpu/online').read()))
    host_mem = [l for l in open('/proc/meminfo') if l.startswith('MemTotal')][0].strip()

    named = T.unique('hook')
    remove_cgroup_parent('cvmfs/' + named)
    b = bundle(base, 'named', views.mnt, run, '/cvmfs/' + named)
    check_case('named tree', views, run, state, b, named, str(online[0]),
               lambda t: gone_soon(os.path.join(views.ct, named, 'proc/meminfo')) and
               named not in os.listdir(views.ct))
    anon = T.unique('hook-anon')
    remove_cgroup_parent(anon + '/c')
    remove_cgroup_parent(anon)
    b = bundle(base, 'anon', views.mnt, run, '/%s/c' % anon)
    check_case('anonymous tree', views, run, state, b, anon, str(online[0]),
               lambda t: os.path.basename(t).startswith('@') and gone_soon(t))
    check_unlimited(views, run, state, base, host_mem)
    check_no_views(run, state, base)
    R.summary_and_exit()


if __name__ == '__main__':
    main()
