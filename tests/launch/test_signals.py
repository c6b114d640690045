"""SIGTERM to cvm-launch stops the CVM, the status is reported, nothing is
left; PID 1 without a handler (sleep) is killed after --stop-timeout."""
import signal
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()

w = LT.Workspace('sig')
for sig, name in ((signal.SIGTERM, 'SIGTERM'), (signal.SIGINT, 'SIGINT')):
    p = T.popen(w.argv(cmd=['/bin/sleep', '1000'], memory='128M', disk='200M',
                       stop_timeout=2), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until PID 1 is sleep (the CVM is up).
    up = False
    for _ in range(200):
        if any('sleep 1000' in x for x in LT.leftovers(w.name) if x.startswith('process')):
            up = True
            break
        time.sleep(0.05)
    for _ in range(100):
        try:
            out = subprocess.run(['pgrep', '-x', 'sleep', '-P', str(p.pid)],
                                 stdout=subprocess.PIPE, text=True).stdout
        except OSError:
            out = ''
        if out.strip():
            break
        time.sleep(0.05)
    R.check('%s: CVM up' % name, bool(out.strip()), out)
    t0 = time.time()
    p.send_signal(sig)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    err = p.stderr.read().decode() if p.poll() is not None else ''
    R.eq('%s: launcher exits with 128+SIGKILL (sleep ignores it as PID 1)' % name,
         p.returncode, 137, err)
    R.check('%s: within stop-timeout + 3 s' % name, time.time() - t0 < 5, time.time() - t0)
    T.forget(p)
    LT.check_clean(name, w.name)

# A PID 1 with a handler stops on the forwarded signal itself.
p = T.popen(w.argv(cmd=['/bin/sh', '-c', 'trap "exit 3" TERM; while :; do sleep 0.1; done'],
                   disk='200M'), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
# Its loop's first sleep: the trap is set by then.
R.check('trap: CVM up', LT.wait_descendant(p.pid, 'sleep') > 0)
p.send_signal(signal.SIGTERM)
try:
    p.wait(timeout=30)
except subprocess.TimeoutExpired:
    pass
R.eq('SIGTERM forwarded to a trapping PID 1: its status (3)', p.returncode, 3)
T.forget(p)
LT.check_clean('trap', w.name)

R.summary_and_exit()
