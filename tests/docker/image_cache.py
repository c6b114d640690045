#!/usr/bin/env python3
"""Builds the image cache of the launch and docker tests before the suite
runs (scripts/test.sh): the debootstrap'ed bookworm with systemd and the
docker layer on it (CVMFS_TEST_CACHE, default /var/tmp/cvmfs-test-cache;
1-3 minutes the first time, nothing once built), so that no test spends
its meson timeout on a slow mirror.

Exit status: 0 the cache is there; 77 it cannot be built here (not root,
no debootstrap, no mirror: the reason printed; the tests that need it then
skip with the same reason). Nothing else is created: the helpers' own
temporary directories are removed at exit.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockertest as DT  # noqa: E402

if os.geteuid() != 0:
    DT.T.skip('needs root')
t0 = time.time()
layers = (DT.docker_layer(), DT.LT.systemd_rootfs())  # each exits 77 with its reason
print('image cache ready in %.0f s: %s' % (time.time() - t0, ':'.join(layers)), flush=True)
