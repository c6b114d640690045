#!/usr/bin/env python3
"""A CVM relaunched under the same name at once: its cgroup is removed and
re-created under the same path with another memory limit. The views must
take the new directory for another cgroup (identity by inode, not by path)
and show its limit through both trees once the documented staleness bound
(1.25 x ct-ttl-ms + cache-ms, doc/cvmfsd.md) has passed — not the host's
MemTotal that the old cgroup's kept-open files turn into.

Cases (real v1 hierarchy):
  quick   remove and re-create at once, nothing read in between;
  gap     a reader keeps the ct file open and reads it while the cgroup is
          gone (the daemon then serves the nearest ancestor), then the
          cgroup comes back;
and quick on a v2 fixture tree, whose old directory is moved aside rather
than removed so that its inode cannot be reused at once (ext4 reuses
inodes; cgroupfs ids never come back soon).
Each is read through the shared tree (a process in the cgroup), the ct tree
opened afresh, and a ct file descriptor held across the relaunch (as top
keeps /proc/meminfo open)."""
import os
import time

import cvmfstest as T
from cvmfstest import R

MIB = 1024 * 1024
CT_TTL_MS = 500
CACHE_MS = 100
# The documented bound, plus scheduling slack for a loaded 2-CPU machine.
BOUND_S = (1.25 * CT_TTL_MS + CACHE_MS) / 1000.0
SLACK_S = 0.25
# The background thread that lets go of removed cgroups runs every second.
SAMPLER_S = 1.0


def memtotal_of(text):
    return T.meminfo(text).get('MemTotal')


class Readers:
    """The three ways a CVM reads its meminfo."""

    def __init__(self, d, name):
        self.d = d
        self.ct_path = d.path('ct', name, 'proc', 'meminfo')
        self.held = os.open(self.ct_path, os.O_RDONLY)

    def close(self):
        os.close(self.held)

    @staticmethod
    def value(text):
        return memtotal_of(text)

    def shared(self, cg):
        rc, out, err = T.run(cg.wrap(['cat', self.d.path('proc', 'meminfo')]))
        return self.value(out) if rc == 0 else 'rc %s: %s' % (rc, err.strip())

    def ct_fresh(self):
        try:
            return self.value(T.read_text(self.ct_path))
        except OSError as e:
            return 'error: %s' % e

    def ct_held(self):
        try:
            return self.value(os.pread(self.held, 1 << 16, 0).decode('latin-1'))
        except OSError as e:
            return 'error: %s' % e

    def all(self, cg):
        res = {'ct_fresh': self.ct_fresh(), 'ct_held': self.ct_held()}
        if cg is not None:
            res['shared'] = self.shared(cg)
        return res


def poll_past_bound(rd, cg, t0):
    """Read every way until the bound has passed since t0; every value seen."""
    seen = []
    while time.monotonic() - t0 < BOUND_S + SLACK_S:
        seen.append(rd.all(cg))
        time.sleep(0.05)
    return seen


def expect_all(label, rd, cg, kb):
    got = rd.all(cg)
    for way in ('shared', 'ct_fresh', 'ct_held'):
        R.eq('%s: %s MemTotal after the bound' % (label, way), got.get(way), kb)


def relaunch(cg, limit, between=None):
    """Remove the cgroup and make it again under the same path at once."""
    if not cg.remove():
        T.fatal('cannot remove cgroup %s' % cg.rel)
    if between:
        between()
    cg = T.CGroup(cg.rel)
    cg.set_memory(limit)
    return cg, time.monotonic()


class FixtureReaders(Readers):
    """Readers of a v2 fixture tree: the shared-tree reader is registered in
    the fixture's proc tree as a member of the cgroup. On v2 the limit is
    walked by path at every refresh, so MemFree (limit - memory.current, a
    kept-open file) is what tells the old cgroup from the new one."""

    def __init__(self, d, fx, name):
        Readers.__init__(self, d, name)
        self.fx = fx

    def shared(self, rel):
        out, err = T.fixture_cat(self.fx, rel, self.d.path('proc', 'meminfo'))
        return self.value(out) if out is not None else 'error: %s' % err.strip()

    @staticmethod
    def value(text):
        mi = T.meminfo(text)
        return (mi.get('MemTotal'), mi.get('MemFree'))


def v2_fixture():
    base = T.tempdir('relaunch-v2-')
    fx = T.V2Fixture(base)
    name = T.unique('relaunch-v2')
    rel = 'cvmfs/' + name
    fx.cgroup(rel, files={'memory.max': '%d\n' % (300 * MIB),
                          'memory.current': '%d\n' % (100 * MIB)})
    d = T.start_daemon(args=fx.daemon_args() + ['--ct-ttl-ms', str(CT_TTL_MS),
                                                 '--cache-ms', str(CACHE_MS)])
    rd = FixtureReaders(d, fx, name)
    for way, kb in sorted(rd.all(rel).items()):
        R.eq('v2 before: %s MemTotal, MemFree: 300M limit, 100M used' % way, kb, (307200, 204800))
    cgdir = os.path.join(fx.root, rel)
    os.rename(cgdir, cgdir + '.removed')
    fx.cgroup(rel, files={'memory.max': '%d\n' % (200 * MIB),
                          'memory.current': '%d\n' % (50 * MIB)})
    poll_past_bound(rd, rel, time.monotonic())
    for way, kb in sorted(rd.all(rel).items()):
        R.eq('v2 quick: %s MemTotal, MemFree after the bound' % way, kb, (204800, 153600))
    rd.close()
    d.stop()


def main():
    T.require()
    host_kb = memtotal_of(T.read_text('/proc/meminfo'))
    name = T.unique('relaunch')
    rel = 'cvmfs/' + name
    cg = T.CGroup(rel)
    cg.set_memory(300 * MIB)
    d = T.start_daemon(args=['--ct-ttl-ms', str(CT_TTL_MS), '--cache-ms', str(CACHE_MS)])
    rd = Readers(d, name)

    first = rd.all(cg)
    for way in ('shared', 'ct_fresh', 'ct_held'):
        R.eq('before: %s MemTotal is the 300M limit' % way, first[way], 307200)

    # quick: the fds the daemon keeps of the old cgroup now fail; its path
    # names the new one.
    cg, t0 = relaunch(cg, 200 * MIB)
    seen = poll_past_bound(rd, cg, t0)
    hostly = [s for s in seen if host_kb in s.values()]
    R.check('quick: no read after the relaunch shows the host MemTotal (%d reads)' % len(seen),
            not hostly, hostly[:3], 'only 307200 or 204800 kB')
    expect_all('quick', rd, cg, 204800)

    # gap: the held fd is read while no cgroup has the path, until the
    # daemon has surely let go of the old cgroup and answered from the
    # ancestor (sampler pass + bound), whichever way it noticed.
    def gap():
        t = time.monotonic()
        while time.monotonic() - t < SAMPLER_S + BOUND_S + SLACK_S:
            rd.ct_held()
            time.sleep(0.05)
    cg, t0 = relaunch(cg, 150 * MIB, between=gap)
    poll_past_bound(rd, cg, t0)
    expect_all('gap', rd, cg, 153600)

    rd.close()
    cg.remove()
    cg.remove_parents()
    R.check('daemon still running', d.alive(), d.proc.poll(), None, detail=d.log_text()[-2000:])
    d.stop()
    v2_fixture()
    R.summary_and_exit()


if __name__ == '__main__':
    main()
