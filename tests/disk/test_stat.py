#!/usr/bin/env python3
"""cvmfs-stat (table, JSON, unknown name, bad option, stopped workspace) and
cvmfsd disk's option and config errors: one line naming the culprit,
non-zero exit, nothing mounted."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

dt.require_root_fuse()
if not os.path.exists(dt.CVMFS_STAT):
    dt.skip('cvmfs-stat not built at %s' % dt.CVMFS_STAT)
res = dt.Results()
base = dt.tmpdir()
run = os.path.join(base, 'run')
MiB = 1 << 20


def stat_cmd(*args):
    return subprocess.run([dt.CVMFS_STAT, '--run-dir', run, '-c', '/dev/null'] + list(args),
                          capture_output=True, text=True)


def bad(name, argv, needle):
    mnt = os.path.join(base, 'badmnt')
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run([dt.CVMFSD, 'disk', '-f'] + argv + [mnt], capture_output=True, text=True,
                       timeout=20)
    lines = [line for line in r.stderr.splitlines() if line]
    res.check('%s: non-zero exit' % name, r.returncode != 0, r.returncode)
    res.check('%s: one line naming %r' % (name, needle),
              len(lines) == 1 and needle in lines[0] and lines[0].startswith('cvmfsd disk:'),
              r.stderr)
    res.check('%s: nothing mounted' % name, not dt.is_mounted(mnt))


disks = []
with dt.checked(res, disks):
    for name, limit in (('beta', '32M'), ('alpha', '64M')):
        b = os.path.join(base, name)
        os.makedirs(b)
        d = dt.Disk(b, name=name, limit=limit)
        d.run = run
        d.start()
        disks.append(d)
    dt.write_file(os.path.join(disks[1].mnt, 'f'), os.urandom(5 * MiB))
    os.makedirs(os.path.join(disks[1].mnt, 'home/u'))
    dt.write_file(os.path.join(disks[1].mnt, 'home/u/h'), os.urandom(MiB))
    disks[1].fresh_figures()
    r = stat_cmd()
    lines = r.stdout.splitlines()
    res.eq('table exit 0', r.returncode, 0)
    res.eq('table header', lines[0].split(),
           ['NAME', 'STATE', 'LIMIT', 'USED', 'AVAIL', 'USE%', 'IMAGE', 'DOCKER', 'HOME',
            'OTHER', 'INODES'])
    res.eq('rows sorted by name', [line.split()[0] for line in lines[1:]], ['alpha', 'beta'])
    res.eq('alpha row: state, limit like df -h', lines[1].split()[1:3], ['running', '64M'])
    res.eq('alpha USED like df -h', lines[1].split()[3], '6.1M')
    r = stat_cmd('--json')
    arr = json.loads(r.stdout)
    res.eq('json names', [o['name'] for o in arr], ['alpha', 'beta'])
    a = arr[0]
    res.eq('json keys', sorted(a), sorted(['name', 'state', 'limit_bytes', 'used_bytes',
                                           'avail_bytes', 'image_bytes', 'docker_bytes',
                                           'home_bytes', 'other_bytes', 'inodes_used',
                                           'inodes_limit', 'requests', 'errors']))
    res.eq('json limit', a['limit_bytes'], 64 * MiB)
    res.eq('json used == recount', a['used_bytes'], disks[1].recount()['used_bytes'])
    res.eq('json home == recount', a['home_bytes'], disks[1].recount()['home_bytes'])
    r = stat_cmd('--json', 'beta')
    res.eq('select by name', [o['name'] for o in json.loads(r.stdout)], ['beta'])
    r = stat_cmd('nosuch')
    res.eq('unknown name exit 1', r.returncode, 1)
    res.eq('unknown name one line', r.stderr.strip(), 'cvmfs-stat: nosuch: no such workspace')
    r = stat_cmd('--frob')
    res.check('bad option exits 2 with a message', r.returncode == 2 and '--frob' in r.stderr,
              (r.returncode, r.stderr))
    disks[0].stop()
    r = stat_cmd('--json', 'beta')
    res.eq('stopped workspace shows state stopped', json.loads(r.stdout)[0]['state'], 'stopped')
    r = stat_cmd()
    res.eq('stopped row in table', r.stdout.splitlines()[2].split()[:2], ['beta', 'stopped'])
    res.eq('pid file removed on stop', os.path.exists(os.path.join(run, 'disk', 'beta.pid')),
           False)
    res.eq('live file mode 0600', os.stat(disks[1].json_path()).st_mode & 0o777, 0o600)

    # option and config errors
    data = os.path.join(base, 'bd')
    bad('missing --limit', ['--name', 'x', '--data', data, '-c', '/dev/null'], '--limit')
    bad('bad --limit', ['--name', 'x', '--data', data, '--limit', '12Q', '-c', '/dev/null'],
        "--limit: '12Q'")
    bad('bad --name', ['--name', '../x', '--data', data, '--limit', '1M', '-c', '/dev/null'],
        '--name')
    bad('unknown option', ['--frob', '--name', 'x'], "'--frob'")
    bad('missing image', ['--name', 'x', '--data', data, '--limit', '1M', '-c', '/dev/null',
                          '--image', '/nonexistent-layer'], '/nonexistent-layer')
    conf = os.path.join(base, 'bad.conf')
    with open(conf, 'w') as f:
        f.write('[disk]\n\n[disk x]\nlimit = 1M\nfrobnicate = 1\n')
    bad('bad config key', ['--name', 'x', '--data', data, '-c', conf], 'bad.conf:5')
    bad('data in use', ['--name', 'x2', '--data', disks[1].data, '--limit', '1M', '-c',
                        '/dev/null'], 'in use')
res.done()
