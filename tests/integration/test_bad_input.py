#!/usr/bin/env python3
"""Bad input: one line on stderr naming what is wrong (prefixed by the
program name), a non-zero exit, nothing mounted."""
import os

import cvmfstest as T
from cvmfstest import R


def case(label, args, must_mention=(), foreground=True, base=None):
    base = base or T.tempdir('bad-')
    mnt = os.path.join(base, 'mnt')
    os.makedirs(mnt, exist_ok=True)
    T._mounts.extend([mnt, os.path.join(mnt, 'ct')])
    argv = [T.CVMFSD, 'views'] + (['-f'] if foreground else []) + \
        [a.replace('@MNT@', mnt).replace('@BASE@', base) for a in args]
    rc, out, err = T.run(argv, timeout=10)
    lines = [l for l in err.splitlines() if l.strip()]
    R.check('%s: non-zero exit' % label, rc not in (0, None), rc, 'non-zero',
            detail='argv: %s' % ' '.join(argv))
    R.eq('%s: exactly one line on stderr' % label, len(lines), 1, detail=err)
    R.check('%s: message starts with the program name' % label,
            bool(lines) and lines[0].startswith('cvmfsd'), lines[:1], 'cvmfsd...')
    for m in must_mention:
        m = m.replace('@MNT@', mnt).replace('@BASE@', base)
        R.check('%s: message names %r' % (label, m), bool(lines) and m in lines[0], lines[:1], m)
    R.eq('%s: nothing mounted' % label, T.mounts_under(base), [])
    R.eq('%s: nothing on stdout' % label, out, '')
    return lines


def main():
    T.require(v1=False)
    base = T.tempdir('bad-')
    conf = os.path.join(base, 'views.conf')
    with open(conf, 'w') as f:
        f.write('[views]\n')
    badconf = os.path.join(base, 'bad.conf')
    with open(badconf, 'w') as f:
        f.write('# views settings\n[views]\ncache-ms = 100\nno-such-key = 1\n')
    badval = os.path.join(base, 'badval.conf')
    with open(badval, 'w') as f:
        f.write('[views]\n\ncache-ms = lots\n')

    case('unknown option', ['-c', conf, '--no-such-option', '@MNT@'], ['--no-such-option'])
    case('missing mountpoint', ['-c', conf], ['MOUNTPOINT'])
    case('two mountpoints', ['-c', conf, '@MNT@', '@MNT@'])
    case('--cpu-view bogus', ['-c', conf, '--cpu-view', 'bogus', '@MNT@'], ['bogus', 'cpu-view'])
    case('-c file with an unknown key', ['-c', badconf, '@MNT@'], [badconf + ':4', 'no-such-key'])
    case('-c file with a bad value', ['-c', badval, '@MNT@'], [badval + ':3', 'cache-ms'])
    case('-c file that does not exist', ['-c', '@BASE@/nope.conf', '@MNT@'], ['@BASE@/nope.conf'])
    case('nonexistent --cgroup-root', ['-c', conf, '--cgroup-root', '@BASE@/no-cgroups', '@MNT@'],
         ['@BASE@/no-cgroups'])
    empty = os.path.join(base, 'empty-cgroot')
    os.makedirs(empty)
    case('--cgroup-root without any hierarchy', ['-c', conf, '--cgroup-root', empty, '@MNT@'],
         [empty])
    case('nonexistent --proc-root', ['-c', conf, '--proc-root', '@BASE@/no-proc', '@MNT@'],
         ['@BASE@/no-proc'])
    case('--cache-ms not a number', ['-c', conf, '--cache-ms', 'abc', '@MNT@'], ['cache-ms'])
    case('nonexistent mountpoint', ['-c', conf, '@BASE@/no-such-dir'], ['@BASE@/no-such-dir'])
    # the daemonizing start reports failure by its exit status too
    case('nonexistent --cgroup-root (without -f)',
         ['-c', conf, '--cgroup-root', '@BASE@/no-cgroups', '@MNT@'], ['@BASE@/no-cgroups'],
         foreground=False)
    case('nonexistent mountpoint (without -f)', ['-c', conf, '@BASE@/no-such-dir'],
         ['@BASE@/no-such-dir'], foreground=False)
    R.summary_and_exit()


if __name__ == '__main__':
    main()
