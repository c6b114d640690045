#!/usr/bin/env python3
"""Reads at any offset and size: cat, dd bs=1, head -c 100, a shell read
loop, and pread at odd offsets/sizes all give bytes consistent with one full
read. Content is made stable with a frozen fixture (meminfo, cpuinfo) and the
per-container tree (page-cached for ct-ttl); files whose values change per
read (stat, uptime: live in both trees) are compared by structure."""
import json
import re

import cvmfstest as T
from cvmfstest import R

FILES = ('meminfo', 'cpuinfo', 'stat', 'uptime')
STABLE_SHARED = ('meminfo', 'cpuinfo')  # frozen host copies + fixed cgroup values
LIVE = ('stat', 'uptime')  # rendered afresh for each read in both trees


def structure(name, text):
    if name == 'uptime':
        return bool(re.match(r'^\d+\.\d\d \d+\.\d\d\n$', text))
    return [l.split()[0] if l.split() else '' for l in text.splitlines()]


def same(name, a, b, exact):
    return a == b if exact else structure(name, a) == structure(name, b)


def same_slice(got, want, exact):
    """A live file (uptime, stat through the shared tree) is rendered
    afresh at each read at offset 0 and its numbers move every 10 ms: a
    slice must match in everything but its digits."""
    if exact:
        return got == want
    return re.sub(r'\d', '0', got) == re.sub(r'\d', '0', want)


def check_patterns(label, name, res, exact):
    full = res['full']
    R.check('%s %s: full read non-empty and newline-terminated' % (label, name),
            len(full) > 0 and full.endswith('\n'), full[-80:], 'text ending in \\n')
    bad = [(off, size, got) for off, size, got in res['preads']
           if not same_slice(got, full[off:off + size], exact)]
    R.check('%s %s: %d preads on one fd at offsets 0,1,7,333,end-3,end,end+10 sizes 1..50 '
            'match the full read' % (label, name, len(res['preads'])), not bad, bad[:5], 'slices')
    for bs in (1, 7):
        R.check('%s %s: read(%d)-sized loop (own open) consistent' % (label, name, bs),
                same(name, res['bs%d' % bs], full, exact), res['bs%d' % bs][:300], full[:300])
    return full


def tools(run_one, label, name, path, full, exact):
    rc, out, err = run_one(['cat', path])
    R.check('%s %s: cat consistent' % (label, name), rc == 0 and same(name, out, full, exact),
            (rc, out[:300], err), full[:300])
    rc, out, err = run_one(['dd', 'if=' + path, 'bs=1', 'status=none'])
    R.check('%s %s: dd bs=1 consistent' % (label, name), rc == 0 and same(name, out, full, exact),
            (rc, out[:300], err), full[:300])
    rc, out, err = run_one(['head', '-c', '100', path])
    if exact:
        ok = out == full[:100]
    elif name == 'uptime':  # both numbers move between two reads
        ok = structure(name, out)
    else:
        ok = len(out) == min(100, len(full)) and out.split()[:1] == full.split()[:1]
    R.check('%s %s: head -c 100 consistent' % (label, name), rc == 0 and ok, (rc, out, err),
            full[:100])
    rc, out, err = run_one(['sh', '-c', 'while IFS= read -r l; do printf "%s\\n" "$l"; done < "$0"',
                            path])
    R.check('%s %s: sh read loop consistent' % (label, name), rc == 0 and same(name, out, full, exact),
            (rc, out[:300], err), full[:300])


def main():
    T.require(v1=False)
    base = T.tempdir('rp-')
    fx = T.V2Fixture(base)
    lim = {'memory.max': '268435456\n', 'cpu.max': '50000 100000\n',
           'cpu.stat': 'usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n'}
    fx.cgroup('cvmfs-test-rp', files=dict(lim))
    fx.cgroup('cvmfs-test-rpfree')
    fx.cgroup('cvmfs/cvmfs-test-rpct', files=dict(lim))
    d = T.start_daemon(fx.daemon_args() + ['--ct-ttl-ms', '60000'])

    # (a) the shared tree, each reader registered in the fixture cgroup
    for rel, label, stable in (('cvmfs-test-rp', 'shared/limited', STABLE_SHARED),
                               ('cvmfs-test-rpfree', 'shared/unlimited', STABLE_SHARED)):
        def run_one(argv, rel=rel):
            return T.fixture_read(fx, rel, argv)
        for name in FILES:
            path = d.path('proc', name)
            rc, out, err = run_one(T.probe_argv('patterns', path))
            try:
                res = json.loads(out)
            except ValueError:
                R.check('%s %s: pattern probe ran' % (label, name), False, (rc, out[-300:], err[-300:]))
                continue
            exact = name in stable
            full = check_patterns(label, name, res, exact)
            tools(run_one, label, name, path, full, exact)
        mi = T.meminfo(T.fixture_read(fx, rel, ['cat', d.path('proc/meminfo')])[1])
        if rel == 'cvmfs-test-rp':
            R.eq('%s: the reads were rendered for the cgroup (MemTotal)' % label, mi.get('MemTotal'),
                 262144)

    # (b) the per-container tree: stable for the ct TTL, whoever reads
    label = 'ct tree'
    for name in FILES:
        path = d.path('ct', 'cvmfs-test-rpct', 'proc', name)
        rc, data, out, err = T.run_json(T.probe_argv('patterns', path))
        if not R.check('%s %s: pattern probe ran' % (label, name), data is not None,
                       (rc, out[-300:], err[-300:])):
            continue
        exact = name not in LIVE
        full = check_patterns(label, name, data, exact)
        if exact:
            R.eq('%s %s: st_size is the content length' % (label, name), data['st_size'],
                 len(full))

        def run_one(argv):
            return T.run(argv)
        tools(run_one, label, name, path, full, exact)
        if name == 'meminfo':
            R.eq('%s: rendered for the cgroup (MemTotal)' % label, T.meminfo(full).get('MemTotal'),
                 262144)
        if name == 'cpuinfo':
            R.eq('%s: rendered for the cgroup (1 CPU)' % label, len(T.cpuinfo_processors(full)), 1)

    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    R.summary_and_exit()


if __name__ == '__main__':
    main()
