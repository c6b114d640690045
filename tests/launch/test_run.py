"""A CVM sees its own limits: memory, CPUs, disk, hostname, PID 1, its own
processes, its uptime; the exit status is CMD's; --net none has only lo."""
import os

import launchtest as LT

T = LT.T
R = T.R
LT.require()

LIMITS = dict(memory='256M', cpus=1, cpuset=0, pids=200, disk='200M', hostname='cvm-test')


def field(out, key):
    for line in out.splitlines():
        if line.startswith(key + ' '):
            return line[len(key) + 1:].strip()
    return None


w = LT.Workspace('run')
rc, out, err = w.sh(
    'echo "free $(free -b | grep Mem:)"; echo "onln $(getconf _NPROCESSORS_ONLN)"; '
    'echo "nproc $(nproc)"; echo "df $(df -B1 / | tail -n 1)"; echo "host $(hostname)"; '
    'echo "cmd $(cat /proc/1/cmdline)"; '
    'echo "pscmd $(ps -e -o comm= | grep -v -x -e sh -e ps -e grep -e wc | wc -l)"; '
    'echo "up $(cut -d" " -f1 /proc/uptime)"; '
    'echo "py $(python3 -c "import os; print(os.cpu_count())")"; exit 7', **LIMITS)
R.eq('exit status is CMD\'s (exit 7)', rc, 7, err)
free = (field(out, 'free') or '').split()
R.eq('free -b total == --memory', free[1:2], [str(256 * LT.MiB)], out)
R.eq('getconf _NPROCESSORS_ONLN == --cpus', field(out, 'onln'), '1', out)
R.eq('nproc == cpuset size', field(out, 'nproc'), '1', out)
R.eq('os.cpu_count() == --cpus', field(out, 'py'), '1', out)
df = (field(out, 'df') or '').split()
R.eq('df size == --disk', df[1:2], [str(200 * LT.MiB)], out)
R.check('df used > 0 (image bytes)', len(df) > 2 and df[2].isdigit() and int(df[2]) > 0, df)
R.eq('hostname', field(out, 'host'), 'cvm-test', out)
R.check('PID 1 is CMD', (field(out, 'cmd') or '').startswith('/bin/sh-c'), field(out, 'cmd'))
R.eq('ps -e shows only the CVM (sh, ps, grep, wc)', field(out, 'pscmd'), '0', out)
up = field(out, 'up')
R.check('uptime is the CVM\'s (< 30 s)', up is not None and float(up) < 30, up, detail=err)
LT.check_clean('run', w.name)
R.check('the disk\'s mountpoint directory is removed at exit',
        not os.path.exists(os.path.join(w.mnt_dir, w.name)), os.listdir(w.mnt_dir)
        if os.path.isdir(w.mnt_dir) else None)

rc, out, err = w.launch(cmd=['/bin/sh', '-c', 'exit 0'])
R.eq('exit 0 without limits', rc, 0, err)
LT.check_clean('no limits', w.name)

rc, out, err = w.launch('--net', 'none', cmd=['/bin/sh', '-c',
                        'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'])
R.eq('--net none: only lo', (rc, out.split()), (0, ['lo']), err)
LT.check_clean('net none', w.name)

# The CVM's root sees its limits at the root of its cgroup hierarchies
# (cvmfs/NAME/ns on the host); with --no-userns (host root) it may write
# there on v1, but raising them frees nothing: the same limits on
# cvmfs/NAME, out of its sight, still hold. On v2 the write itself fails:
# the root of its cgroup namespace is a delegation boundary (nsdelegate).
# (In the default user namespace the write fails on both:
# tests/launch/test_defaults.py.)
if LT.V2:
    RAISE = 'cd /sys/fs/cgroup && echo 0 > memory.swap.max && echo 1G > memory.max && echo wrote; '
else:
    RAISE = ('cd /sys/fs/cgroup/memory && echo 1G > memory.memsw.limit_in_bytes && '
             'echo 1G > memory.limit_in_bytes && echo wrote; ')
rc, out, err = w.launch('--no-userns', cmd=['/bin/sh', '-c',
                        'cat %s; ' % LT.MEM_LIMIT + RAISE +
                        'python3 -c "b = bytearray(400 << 20); b[::4096] = bytes(len(b[::4096]))"; '
                        'echo rc=$?; free -b | grep Mem:'],
                        memory='256M')
lines = out.split('\n')
R.eq('own memory limit seen at the cgroup root inside', lines[:1], [str(256 * LT.MiB)], err)
if LT.V2:
    R.check('v2: the cgroup namespace root\'s limits not writable inside (nsdelegate)',
            'wrote' not in out, out, detail=err)
else:
    R.check('cgroup root writable inside', 'wrote' in out, out, detail=err)
R.check('raising it inside does not lift the limit (OOM kill at 256M)', 'rc=137' in out, out,
        detail=err)
R.check('free still shows the limit', ('Mem: %d ' % (256 * LT.MiB)) in ' '.join(out.split()) + ' ',
        out)
LT.check_clean('cgroup raise', w.name)

# Kernel knobs: /proc/sys is read-only inside, except /proc/sys/net in the
# CVM's own network namespace (--net none) and the host-wide knobs the views
# emulate per CVM (vm.overcommit_memory); nothing reaches the host's.
def host_sysctl(path):
    with open('/proc/sys/' + path) as f:
        return f.read().strip()


before = (host_sysctl('net/ipv4/ip_forward'), host_sysctl('vm/overcommit_memory'),
          host_sysctl('fs/lease-break-time'))
knobs = ('echo 1 > /proc/sys/net/ipv4/ip_forward && echo fwd-ok; cat /proc/sys/net/ipv4/ip_forward; '
         'echo 1 > /proc/sys/vm/overcommit_memory && echo vm-ok; cat /proc/sys/vm/overcommit_memory; '
         'echo 46 > /proc/sys/fs/lease-break-time && echo fs-ok; true')
rc, out, err = w.launch('--net', 'none', '--caps', 'all', cmd=['/bin/sh', '-c', knobs])
R.check('--net none: ip_forward is the CVM\'s to set', out.split()[:2] == ['fwd-ok', '1'],
        out, detail=err)
R.check('--net none: vm.overcommit_memory is the CVM\'s own (emulated by the views)',
        out.split()[2:4] == ['vm-ok', '1'], (out, err))
R.check('--net none: a host-wide sysctl nobody emulates refused (read-only)',
        'fs-ok' not in out and 'Read-only file system' in err, (out, err))
rc, out, err = w.launch('--net', 'host', '--caps', 'all', cmd=['/bin/sh', '-c', knobs])
R.check('--net host: ip_forward refused (read-only)', 'fwd-ok' not in out and
        'Read-only file system' in err, (out, err))
R.eq('host sysctls unchanged', (host_sysctl('net/ipv4/ip_forward'),
                                host_sysctl('vm/overcommit_memory'),
                                host_sysctl('fs/lease-break-time')), before)
LT.check_clean('sysctls', w.name)

rc, out, err = w.launch(cmd=['/nonexistent'])
R.eq('missing CMD: 127', rc, 127, err)
R.check('missing CMD: one error line', 'exec: /nonexistent' in err, err)
LT.check_clean('missing CMD', w.name)

R.summary_and_exit()
