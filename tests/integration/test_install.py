#!/usr/bin/env python3
"""`meson install --destdir` puts exactly the files doc/install.md lists
where it says, keeps an existing /etc/cvmfs/cvmfs.conf, the systemd units
pass `systemd-analyze verify` against the destdir's binaries, `man -l`
renders every man page without a warning, and `ninja uninstall` leaves the
config and the workspaces' data. Needs no root: nothing is
started, everything stays in a temporary directory."""
import os
import re
import shutil
import subprocess

import cvmfstest as T
from cvmfstest import R

PREFIX = '/usr/local'
HOST_TOOLS = ['/bin/kill']
UNITS = ('cvmfsd-views.service', 'cvm@.service')


def documented_files():
    """The paths of doc/install.md's table ('| `PATH` | what |')."""
    with open(os.path.join(T.SRC, 'doc', 'install.md')) as f:
        rows = re.findall(r'^\| `([^`]+)` \|', f.read(), re.M)
    if not shutil.which('lowdown'):  # the build leaves man pages out
        rows = [p for p in rows if '/man8/' not in p]
    return sorted(p.replace('PREFIX', PREFIX) for p in rows)


def installed_files(destdir):
    out = []
    for root, _, files in os.walk(destdir):
        out += ['/' + os.path.relpath(os.path.join(root, f), destdir) for f in files]
    return sorted(out)


def install(destdir):
    rc, out, err = T.run(['meson', 'install', '-C', T.BUILD, '--destdir', destdir,
                          '--no-rebuild', '--quiet'], timeout=120)
    if rc != 0:
        T.fatal('meson install failed: %s %s' % (out, err))


def check_config_kept(destdir):
    conf = os.path.join(destdir, 'etc/cvmfs/cvmfs.conf')
    with open(os.path.join(T.SRC, 'config', 'cvmfs.conf')) as f:
        R.eq('the shipped cvmfs.conf installed', open(conf).read(), f.read())
    R.check('/etc/cvmfs/workspaces made', os.path.isdir(os.path.join(destdir, 'etc/cvmfs/workspaces')))
    with open(conf, 'w') as f:
        f.write('# the admin\'s own\n')
    install(destdir)
    R.eq('a second install keeps an existing cvmfs.conf', open(conf).read(), '# the admin\'s own\n')


def verify_root(destdir):
    """The destdir plus the host's units (sysinit.target and the other
    targets the units' default dependencies name), for --root: the units'
    ExecStart paths then resolve to the destdir's binaries."""
    root = T.tempdir('verify-root')
    shutil.copytree(destdir, root, symlinks=True, dirs_exist_ok=True)
    host_units = '/usr/lib/systemd/system'
    shutil.copytree(host_units, os.path.join(root, host_units.lstrip('/')), symlinks=True,
                    dirs_exist_ok=True)
    # The host's tools the units run (ExecReload's kill), where verify looks.
    for tool in HOST_TOOLS:
        dst = os.path.join(root, tool.lstrip('/'))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(os.path.realpath(tool), dst)
    return root


def check_units(destdir):
    if not shutil.which('systemd-analyze') or not os.path.isdir('/usr/lib/systemd/system'):
        R.not_checked('no systemd-analyze or /usr/lib/systemd/system here', point=False)
        return
    root = verify_root(destdir)
    env = dict(os.environ, MANPATH=os.path.join(destdir, PREFIX.lstrip('/'), 'share/man'))
    for u in UNITS:
        path = os.path.join(root, PREFIX.lstrip('/'), 'lib/systemd/system', u)
        rc, out, err = T.run(['systemd-analyze', 'verify', '--root=' + root, path], env=env)
        R.check('systemd-analyze verify %s: exit 0, nothing said' % u,
                rc == 0 and not err.strip() and not out.strip(), (rc, out, err))
        text = open(path).read()
        R.check('%s runs the installed %s' % (u, PREFIX + '/bin'),
                'ExecStart=' + PREFIX + '/bin/' in text, text)
    views = open(os.path.join(root, PREFIX.lstrip('/'), 'lib/systemd/system', UNITS[0])).read()
    R.check('reload is the in-place upgrade: ExecReload= sends SIGUSR2 to the main pid',
            re.search(r'^ExecReload=/bin/kill -USR2 \$MAINPID$', views, re.M), views)


def check_man(destdir):
    mandir = os.path.join(destdir, PREFIX.lstrip('/'), 'share/man/man8')
    pages = sorted(os.listdir(mandir)) if os.path.isdir(mandir) else []
    if not pages or not shutil.which('man'):
        R.not_checked('no man pages built (lowdown missing) or no man here', point=False)
        return
    env = dict(os.environ, MANWIDTH='80', LC_ALL='C.UTF-8', MAN_KEEP_FORMATTING='')
    for p in pages:
        rc, out, err = T.run(['man', '-l', os.path.join(mandir, p)], env=env)
        name = p[:-2]
        R.check('man -l %s: exit 0, no warning, has NAME and its name' % p,
                rc == 0 and not err.strip() and 'NAME' in out and name in out,
                (rc, err, out[:300]))


def check_uninstall(destdir):
    """ninja uninstall removes what meson's log lists (the last install's:
    this destdir): not the config, not the workspaces' data."""
    data = os.path.join(destdir, 'var/lib/cvmfs/workspaces/ws/upper/home/f')
    os.makedirs(os.path.dirname(data))
    with open(data, 'w') as f:
        f.write('user data\n')
    rc, out, err = T.run(['ninja', '-C', T.BUILD, 'uninstall'], timeout=120)
    R.eq('ninja uninstall: exit 0', rc, 0, (out[-500:], err[-500:]))
    left = installed_files(destdir)
    R.eq('uninstall leaves the config and the data, removes the rest', left,
         sorted(['/etc/cvmfs/cvmfs.conf', '/var/lib/cvmfs/workspaces/ws/upper/home/f']))


def main():
    destdir = T.tempdir('install')
    install(destdir)
    R.eq('installed files = doc/install.md\'s list', installed_files(destdir),
         documented_files())
    check_config_kept(destdir)
    check_units(destdir)
    check_man(destdir)
    check_uninstall(destdir)
    R.summary_and_exit()


if __name__ == '__main__':
    main()
