#!/usr/bin/env python3
"""cvmfs-stat --prometheus: parsed by prometheus_client's own parser, its
values equal cvmfs-stat --json's for every workspace and area (running and
stopped), and the daemons' request and error counts are there and move
after requests: a disk's (RUN_DIR/disk/NAME.json) and the views daemon's
(MOUNT.json, gone once it stops)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disktest as dt  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a Python of its own (pyenv) beside Debian's package
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        dt.skip('no prometheus_client (Debian: python3-prometheus-client)')

dt.require_root_fuse()
res = dt.Results()
base = dt.tmpdir()
run = os.path.join(base, 'run')
views_mnt = os.path.join(base, 'views')
MiB = 1 << 20
FIGURES = {'cvmfs_workspace_limit_bytes': 'limit_bytes',
           'cvmfs_workspace_used_bytes': 'used_bytes',
           'cvmfs_workspace_avail_bytes': 'avail_bytes',
           'cvmfs_workspace_inodes_used': 'inodes_used',
           'cvmfs_workspace_inodes_limit': 'inodes_limit',
           'cvmfs_disk_requests_total': 'requests',
           'cvmfs_disk_errors_total': 'errors'}


def stat_out(*args):
    r = subprocess.run([dt.CVMFS_STAT, '--run-dir', run, '-c', '/dev/null'] + list(args),
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError('cvmfs-stat %s: %d %s' % (args, r.returncode, r.stderr))
    return r.stdout


def samples(text):
    """{(name, frozenset(labels)): value}; counters' samples keep _total."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def consistent_read():
    """--prometheus between two equal --json reads (figures move once a second)."""
    for _ in range(10):
        j1 = stat_out('--json')
        prom = stat_out('--prometheus', '--views', views_mnt)
        if stat_out('--json') == j1:
            return json.loads(j1), prom
        time.sleep(0.3)
    raise RuntimeError('figures kept moving')


def expected(rows):
    want = {}
    for o in rows:
        ws = ('workspace', o['name'])
        for metric, key in FIGURES.items():
            want[(metric, frozenset([ws]))] = float(o[key])
        for area in ('image', 'docker', 'home', 'other'):
            want[('cvmfs_workspace_area_bytes', frozenset([ws, ('area', area)]))] = \
                float(o[area + '_bytes'])
        for st in ('running', 'stopped', 'crashed'):
            want[('cvmfs_workspace_state', frozenset([ws, ('state', st)]))] = \
                float(o['state'] == st)
    return want


def compare(label):
    rows, prom = consistent_read()
    got = samples(prom)
    ws_got = {k: v for k, v in got.items() if not k[0].startswith('cvmfs_views_')}
    res.eq('%s: --prometheus == --json (%d workspaces)' % (label, len(rows)), ws_got,
           expected(rows))
    return rows, got


def start_views():
    os.makedirs(views_mnt)
    log = open(os.path.join(base, 'views.log'), 'a')
    p = subprocess.Popen([dt.CVMFSD, 'views', '-f', '-c', '/dev/null', views_mnt], stdout=log,
                         stderr=log, start_new_session=True)
    dt._daemons.append(p)
    dt._mounts.append((views_mnt, 'fuse'))
    dt._mounts.append((os.path.join(views_mnt, 'ct'), 'fuse'))
    for _ in range(300):
        if dt.is_mounted(os.path.join(views_mnt, 'ct')) and os.path.exists(views_mnt + '.json'):
            return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError('cvmfsd views did not start: %s' % open(log.name).read())


def wait_views_count(at_least):
    for _ in range(50):
        with open(views_mnt + '.json') as f:
            c = json.load(f)
        if c['requests'] >= at_least:
            return c
        time.sleep(0.1)
    return c


def check_views(views):
    with open(views_mnt + '.json') as f:
        c0 = json.load(f)
    for _ in range(20):
        open(os.path.join(views_mnt, 'proc/meminfo')).read()
    try:
        os.stat(os.path.join(views_mnt, 'proc/no-such-file'))
    except FileNotFoundError:
        pass
    c1 = wait_views_count(c0['requests'] + 40)
    res.check('views: 20 reads (open, read, release each) counted', c1['requests'] >=
              c0['requests'] + 40, (c0, c1))
    res.check('views: a failed lookup counted as an error', c1['errors'] > c0['errors'], (c0, c1))
    _, got = compare('views running')
    res.eq('cvmfs_views_up 1', got.get(('cvmfs_views_up', frozenset())), 1.0)
    with open(views_mnt + '.json') as f:
        c2 = json.load(f)
    res.eq('cvmfs_views_requests_total = MOUNT.json',
           got.get(('cvmfs_views_requests_total', frozenset())), float(c2['requests']))
    views.terminate()
    views.wait(30)
    res.eq('views: MOUNT.json removed on stop', os.path.exists(views_mnt + '.json'), False)
    got = samples(stat_out('--prometheus', '--views', views_mnt))
    res.eq('cvmfs_views_up 0 once stopped', got.get(('cvmfs_views_up', frozenset())), 0.0)


def check_disk_counts(d):
    f0 = d.fresh_figures()
    for i in range(10):
        dt.write_file(os.path.join(d.mnt, 'n%d' % i), b'x' * 4096)
    try:
        os.stat(os.path.join(d.mnt, 'no-such-file'))
    except FileNotFoundError:
        pass
    f1 = d.fresh_figures()
    res.check('disk: 10 creates and writes counted', f1['requests'] >= f0['requests'] + 20,
              (f0['requests'], f1['requests']))
    res.check('disk: a failed lookup counted as an error', f1['errors'] > f0['errors'],
              (f0['errors'], f1['errors']))


disks = []
with dt.checked(res, disks):
    for name, limit in (('beta', '32M'), ('alpha', '64M')):
        b = os.path.join(base, name)
        os.makedirs(b)
        d = dt.Disk(b, name=name, limit=limit)
        d.run = run
        d.start()
        disks.append(d)
    alpha = disks[1]
    dt.write_file(os.path.join(alpha.mnt, 'f'), os.urandom(3 * MiB))
    os.makedirs(os.path.join(alpha.mnt, 'home/u'))
    dt.write_file(os.path.join(alpha.mnt, 'home/u/h'), os.urandom(MiB))
    check_disk_counts(alpha)
    views = start_views()
    rows, _ = compare('two running')
    res.check('alpha counts requests', rows[0]['requests'] > 0, rows[0])
    check_views(views)
    disks[0].stop()
    rows, _ = compare('beta stopped')
    res.eq('beta state', rows[1]['state'], 'stopped')
res.done()
