"""Bad input: one line on stderr, non-zero exit, nothing left behind."""
import os
import subprocess
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()

w = LT.Workspace('bad')


def bad(label, argv, want):
    rc, out, err = T.run(argv, timeout=60)
    lines = [x for x in err.splitlines() if x.strip()]
    R.check('%s: non-zero exit' % label, rc not in (0, None), rc)
    R.check('%s: one line naming it' % label, len(lines) == 1 and want in lines[0]
            and lines[0].startswith('cvm-launch: '), err)
    LT.check_clean(label, w.name)
    R.check('%s: no data, mount dir or views created' % label,
            not any(os.path.exists(p) for p in (w.data, w.mnt_dir, w.views)),
            os.listdir(w.dir))


bad('missing image', w.argv(image_dirs='/nonexistent-image', cmd=['true']), '/nonexistent-image')
bad('bad size', w.argv(memory='12Q', cmd=['true']), '--memory')
bad('unknown option', w.argv('--bogus', cmd=['true']), '--bogus')
bad('cpuset outside host', w.argv(cpuset='64', cmd=['true']), 'CPU 64')
bad('bad cpus', w.argv(cpus='zero', cmd=['true']), '--cpus')
bad('bad name', [LT.LAUNCH, '--name', '../x', '--image', LT.image(), '--data', w.data,
                 '--run-dir', w.run_dir, '--mnt-dir', w.mnt_dir, '--views', w.views, '--', 'true'],
    '--name')
bad('--userns range', w.argv('--userns', userns_count=1 << 32, cmd=['true']), '--userns-count')
bad('--net bogus', w.argv(net='bogus', cmd=['true']), '--net')

# A name already running: the second launcher fails, the first is unharmed.
p = T.popen(w.argv(cmd=['/bin/sh', '-c', 'sleep 3; exit 4'], disk='200M'),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
for _ in range(100):
    if os.path.exists(os.path.join(w.run_dir, 'disk', w.name + '.pid')):
        break
    time.sleep(0.05)
time.sleep(0.3)
rc, out, err = T.run(w.argv(cmd=['true'], disk='200M'), timeout=60)
R.check('already running: non-zero, one line', rc not in (0, None) and
        len(err.splitlines()) == 1 and 'already running' in err, (rc, err))
p.wait(timeout=60)
R.eq('already running: the first one is unharmed (exit 4)', p.returncode, 4)
T.forget(p)
LT.check_clean('already running', w.name)

R.summary_and_exit()
