#!/usr/bin/env python3
"""TCP throughput out of a CVM, side by side in one run (root; about 1 min).

A receiver on the host takes SIZE MiB per connection and times it (first
byte to last). The same sender (python3, 1 MiB writes) runs:
  loopback   on the host, to 127.0.0.1 (the reference);
  bridge     in a --no-userns --net private --net-host CVM (veth, host
             bridge, nft rules), to the bridge's host address;
  pasta      in a default (user namespace) --net private CVM, to a host
             address other than the uplink's (pasta's user-mode stack; the
             uplink's address is the CVM's own there);
rounds interleaved, best of ROUNDS; reported in MB/s and as ratios to
loopback. python3 is the sender on every side, so the figures are
python3's ceiling as much as the path's: the ratios are what compares.

Usage: bench/net-bench.py [BUILD_DIR] [--size MiB] [--rounds N]
From a clean clone: installs the dependencies if a tool is missing and
builds BUILD_DIR (bench/benchprep.py). Everything is removed at the end.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import benchprep  # noqa: E402

ap = argparse.ArgumentParser(description='CVM network throughput (root)')
ap.add_argument('build', nargs='?', default='build')
ap.add_argument('--size', type=int, default=512, help='MiB per connection (512)')
ap.add_argument('--rounds', type=int, default=3, help='rounds, best kept (3)')
ARGS = ap.parse_args()
if ARGS.size < 1 or ARGS.rounds < 1:
    sys.exit('net-bench: --size and --rounds must be at least 1')
BUILD, LT = benchprep.launch_helpers('net-bench', [ARGS.build], ('ip', 'nft', 'pasta'))
T = LT.T

SENDER = r'''
import socket, struct, sys
addr = sys.argv[1]
if addr == 'gateway':  # the default route's (no ip(8) in a minimal image)
    for line in open('/proc/net/route').read().splitlines()[1:]:
        f = line.split()
        if f[1] == '00000000':
            addr = socket.inet_ntoa(struct.pack('<I', int(f[2], 16)))
s = socket.create_connection((addr, int(sys.argv[2])), timeout=30)
buf = b'x' * (1 << 20)
for _ in range(int(sys.argv[3])):
    s.sendall(buf)
s.close()
'''


class Receiver:
    """One listening socket on every address; the seconds of each transfer."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('0.0.0.0', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.times = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            c, _ = self.sock.accept()
            got, t0 = 0, None
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                t0 = t0 or time.monotonic()
                got += len(b)
            if t0 and got:
                self.times.append((got, time.monotonic() - t0))
            c.close()

    def measure(self, run):
        n = len(self.times)
        run()
        for _ in range(100):
            if len(self.times) > n:
                break
            time.sleep(0.05)
        if len(self.times) == n:
            return None
        got, secs = self.times[-1]
        return got / secs / 1e6 if got == ARGS.size << 20 else None


def host_addr():
    """A host address that is not the CVM's own under pasta (which copies
    the host's uplink address into the namespace): the host end of a veth
    to a network namespace of the bench's own (launchtest.outside)."""
    return LT.outside()[0]


def main():
    rx = Receiver()
    with open(LT.image() + '/send.py', 'w') as f:
        f.write(SENDER)
    w = LT.Workspace('netbench')
    out_addr = host_addr()
    rates = {'loopback': [], 'bridge': [], 'pasta': []}
    for _ in range(ARGS.rounds):
        rates['loopback'].append(rx.measure(lambda: subprocess.run(
            ['python3', '-c', SENDER, '127.0.0.1', str(rx.port), str(ARGS.size)])))
        # The bridge's host side: the gateway the launcher gives the CVM.
        script = 'python3 /send.py gateway %d %d' % (rx.port, ARGS.size)
        rates['bridge'].append(rx.measure(lambda: w.sh(
            script, '--no-userns', '--net', 'private', '--net-host', memory='1G')))
        if out_addr:
            rates['pasta'].append(rx.measure(lambda: w.sh(
                'python3 /send.py %s %d %d' % (out_addr, rx.port, ARGS.size),
                '--net', 'private', memory='1G')))
    best = {k: max([r for r in v if r] or [0]) for k, v in rates.items()}
    print('\n| path | MB/s (best of %d, %d MiB each) | ÷ loopback |' % (ARGS.rounds, ARGS.size))
    print('|---|---:|---:|')
    for k in ('loopback', 'bridge', 'pasta'):
        ratio = best[k] / best['loopback'] if best['loopback'] else 0
        print('| %s | %.0f | %.2f |' % (k, best[k], ratio))
    if not best['bridge'] or not best['pasta']:
        print('\n(a path without a figure failed: see the output above)')


if __name__ == '__main__':
    main()
