"""Kept for imports of old: the outcome of a test's checks is now
Results.status() in the one harness, tests/lib/cvmfs_harness.py."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'lib'))
import cvmfs_harness  # noqa: E402


def exit_status(passed, failed, unchecked, noted):
    r = cvmfs_harness.Results()
    r.passed, r.failed, r.unchecked, r.noted = passed, list(failed), unchecked, noted
    return r.status()


def not_checked(unchecked, noted, reason, point):
    (unchecked if point else noted).append(reason)
    print('# not checked%s: %s' % ('' if point else ' (a side check)', reason), flush=True)
