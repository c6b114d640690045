"""A test's outcome from its checks, shared by the test libraries
(cvmfstest.Results, tests/disk/disktest.Results); standard library only,
no side effects on import.

A check that cannot collect what it asserts on (the machine lacks a kernel
feature, a tracepoint, a device) is recorded with the reason instead of
passing: where it is what the test exists to check, the test skips (77)
with its reasons unless another check failed; where it is a side check of
a test that checks much else, it is noted and the test passes on the rest.
"""


def exit_status(passed, failed, unchecked, noted):
    """Prints the summary; returns 1 if a check failed, else 77 (with
    `SKIP: reasons`) if the test's point went unchecked, else 0."""
    print('# %d checks, %d passed, %d failed' % (passed + len(failed), passed, len(failed)),
          flush=True)
    for f in failed:
        print('#   failed: %s' % f, flush=True)
    for n in noted:
        print('#   not checked (a side check): %s' % n, flush=True)
    if failed:
        return 1
    if unchecked:
        print('SKIP: %s' % '; '.join(unchecked), flush=True)
        return 77
    return 0


def not_checked(unchecked, noted, reason, point):
    (unchecked if point else noted).append(reason)
    print('# not checked%s: %s' % ('' if point else ' (a side check)', reason), flush=True)
