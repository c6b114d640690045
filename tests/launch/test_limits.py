"""Limits bite inside the CVM only: ENOSPC past --disk, OOM kill past
--memory (the launcher survives and reports it), EAGAIN past --pids."""
import launchtest as LT

T = LT.T
R = T.R
LT.require()

w = LT.Workspace('limits')
rc, out, err = w.sh('dd if=/dev/zero of=/root/big bs=1M count=400 2>&1; echo "dd=$?"',
                    disk='100M', memory='256M')
R.check('write past --disk: No space left on device',
        'No space left on device' in out and 'dd=1' in out, out, detail=err)
R.eq('write past --disk: CMD exit 0', rc, 0, err)
LT.check_clean('disk', w.name)

rc, out, err = w.sh('head -c 400M /dev/zero | tail > /dev/null; echo "pipe=$?"',
                    memory='64M', disk='200M')
R.check('memory past --memory: tail OOM-killed (137)', 'pipe=137' in out, out, detail=err)
R.eq('memory: the CVM goes on and exits 0', rc, 0, err)
rc, out, err = w.launch(cmd=['/usr/bin/python3', '-c', 'b = bytearray(400 << 20)'],
                        memory='64M', disk='200M')
R.eq('memory: PID 1 OOM-killed -> launcher reports 137', rc, 137, err)
LT.check_clean('memory', w.name)

# dash gives up at the first failed fork; only builtins run after it, as
# the pids stay taken by the sleeps (killed with PID 1 at the end).
rc, out, err = w.sh('(i=0; for i in $(seq 400); do sleep 5 & echo $i > /tmp/n; done) 2>/tmp/e; '
                    'read n < /tmp/n; echo "started=$n"; '
                    'while read l; do case $l in *fork*) echo FORKFAIL;; esac; done < /tmp/e',
                    pids=50, memory='256M', disk='200M', timeout=120)
n = [int(x[8:]) for x in out.split() if x.startswith('started=')]
R.check('fork bomb: fork fails past --pids, CVM survives', rc == 0 and 'FORKFAIL' in out,
        out, detail=err)
R.check('fork bomb: at most --pids processes started', n and n[0] <= 50, n)
LT.check_clean('pids', w.name)

R.summary_and_exit()
