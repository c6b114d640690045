#!/usr/bin/env python3
"""Client-side probe for the cvmfs integration tests; prints one JSON object.

  probe.py [--wait] facts                 what a container sees (tools + files)
  probe.py [--wait] read PATH...          raw content of files
  probe.py [--wait] ls DIR...             sorted directory listings
  probe.py [--wait] series PATH N MS      N reads of PATH, MS ms apart
  probe.py [--wait] patterns PATH         one fd: full read, then preads at odd
                                          offsets/sizes; plus small-buffer reads
--wait: block until a line arrives on stdin (the test registers our pid first).
Bytes are carried as latin-1 strings.
"""
import json
import os
import subprocess
import sys
import time


def sh(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return {'rc': p.returncode, 'out': p.stdout.decode('latin-1'),
                'err': p.stderr.decode('latin-1')}
    except Exception as e:  # noqa: BLE001 - report anything
        return {'rc': -1, 'out': '', 'err': repr(e)}


def raw(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('latin-1')
    except OSError as e:
        return {'error': e.errno, 'strerror': e.strerror}


def facts():
    d = {}
    d['free_b'] = sh(['free', '-b'])
    d['getconf_onln'] = sh(['getconf', '_NPROCESSORS_ONLN'])
    d['getconf_conf'] = sh(['getconf', '_NPROCESSORS_CONF'])
    d['nproc'] = sh(['nproc'])
    d['py_cpu_count'] = sh([sys.executable, '-c', 'import os; print(os.cpu_count())'])
    d['affinity'] = sorted(os.sched_getaffinity(0))
    for f in ('meminfo', 'cpuinfo', 'stat', 'uptime', 'loadavg', 'swaps', 'diskstats'):
        d[f] = raw('/proc/' + f)
    for f in ('online', 'possible', 'present'):
        d['sys_' + f] = raw('/sys/devices/system/cpu/' + f)
    try:
        d['sys_cpu_dir'] = sorted(os.listdir('/sys/devices/system/cpu'))
    except OSError as e:
        d['sys_cpu_dir'] = {'error': e.errno}
    d['top'] = sh(['top', '-bn1'])
    d['uptime_cmd'] = sh(['uptime'])
    d['pid'] = os.getpid()
    return d


def series(path, n, ms):
    res = []
    for _ in range(n):
        res.append(raw(path))
        time.sleep(ms / 1000.0)
    return res


def patterns(path):
    res = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        full = b''.join(chunks)
        res['full'] = full.decode('latin-1')
        preads = []
        offsets = [0, 1, 7, 333, max(len(full) - 3, 0), len(full), len(full) + 10]
        for off in offsets:
            for size in range(1, 51):
                preads.append([off, size, os.pread(fd, size, off).decode('latin-1')])
        preads.append([0, 1 << 20, os.pread(fd, 1 << 20, 0).decode('latin-1')])
        res['preads'] = preads
    finally:
        os.close(fd)
    # A separate open, read with tiny buffers (like dd bs=1 / read builtins).
    for bs in (1, 7):
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks = []
            while True:
                b = os.read(fd, bs)
                if not b:
                    break
                chunks.append(b)
            res['bs%d' % bs] = b''.join(chunks).decode('latin-1')
        finally:
            os.close(fd)
    st = os.stat(path)
    res['st_size'] = st.st_size
    return res


def main():
    args = sys.argv[1:]
    if args and args[0] == '--wait':
        sys.stdin.readline()
        args = args[1:]
    cmd = args[0]
    if cmd == 'facts':
        out = facts()
    elif cmd == 'read':
        out = {p: raw(p) for p in args[1:]}
    elif cmd == 'ls':
        out = {}
        for p in args[1:]:
            try:
                out[p] = sorted(os.listdir(p))
            except OSError as e:
                out[p] = {'error': e.errno}
    elif cmd == 'series':
        out = series(args[1], int(args[2]), int(args[3]))
    elif cmd == 'patterns':
        out = patterns(args[1])
    else:
        print('unknown probe command %r' % cmd, file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
