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
    R.eq('%s: exit 125 (the launcher failed)' % label, rc, 125)
    R.check('%s: one line naming it' % label, len(lines) == 1 and want in lines[0]
            and lines[0].startswith('cvm-launch: '), err)
    LT.check_clean(label, w.name)
    R.check('%s: no data, mount dir, views or run dir (lock) created' % label,
            not any(os.path.exists(p) for p in (w.data, w.mnt_dir, w.views, w.run_dir)),
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

# Limits that are no limit: refused, never silently "none" or "default".
for opt in ('memory', 'pids', 'disk'):
    bad('--%s 0' % opt, w.argv(cmd=['true'], **{opt: '0'}), '--%s 0' % opt)
# CPU quotas the kernel cannot set (below 1 ms per 100 ms), or not numbers.
for v in ('1e-9', '0.009', '0', '-1', 'nan', 'inf', '-inf', ''):
    bad('--cpus %r' % v, w.argv(cmd=['true'], cpus=v), "--cpus '%s'" % v)
def with_image(value, *extra):
    a = w.argv(*extra, cmd=['true'])
    i = a.index('--image')
    return a[:i + 1] + [value] + a[i + 2:] if value is not None else a[:i] + a[i + 2:]


# Empty image layers: "" is no image, "a::b" and "a:" hide a mistake.
for v in ('', LT.image() + '::' + LT.image(), LT.image() + ':', ':' + LT.image()):
    bad('--image %r' % v, with_image(v), "--image '%s'" % v)


def conf(text):
    path = os.path.join(w.dir, 'launch.conf')
    with open(path, 'w') as f:
        f.write(text)
    return path


# The same through the config file.
for key, val, want in (('memory', '0', '--memory 0'), ('pids', '0', '--pids 0'),
                       ('disk', '0', '--disk 0'), ('cpus', '1e-9', "--cpus '1e-9'")):
    bad('config %s = %s' % (key, val),
        w.argv('-c', conf('[launch]\n%s = %s\n' % (key, val)), cmd=['true']), want)
bad('config image = (empty)', with_image(None, '-c', conf('[launch]\nimage =\n')), "--image ''")

# DATA in, equal to, or around an image layer: the CVM would write into
# its read-only image. Through a symlink too (compared after realpath).
img = LT.image()
outer = T.tempdir('outer-')
inner = os.path.join(outer, 'layer')
os.makedirs(os.path.join(inner, 'usr'))
link = os.path.join(w.dir, 'link-to-image')
os.symlink(img, link)
for label, data, layers in (
        ('--data = image layer', img, img),
        ('--data inside image layer (not there yet)', os.path.join(img, 'new/deeper'), img),
        ('--data inside image layer via ..', os.path.join(img, 'usr/../new'), img),
        ('--data contains image layer', outer, inner + ':' + img),
        ('--data inside image layer via a symlink', os.path.join(link, 'ws'), img)):
    bad(label, w.argv(cmd=['true'], data=data, image_dirs=layers), '--data')
R.check('refused --data: nothing created in the image',
        not os.path.exists(os.path.join(img, 'new')) and
        not os.path.exists(os.path.join(img, 'ws')) and
        sorted(os.listdir(outer)) == ['layer'], os.listdir(img))
os.unlink(link)
bad('--data inside --run-dir', w.argv(cmd=['true'], data=os.path.join(w.run_dir, 'd')),
    '--run-dir')
bad('--data = --mnt-dir', w.argv(cmd=['true'], data=w.mnt_dir), '--mnt-dir')

# Special files as the config file: refused at once, never a hang.
fifo = os.path.join(w.dir, 'launch.fifo')
os.mkfifo(fifo)
bad('-c /dev/zero', w.argv('-c', '/dev/zero', cmd=['true']), '/dev/zero: not a regular file')
bad('-c FIFO', w.argv('-c', fifo, cmd=['true']), fifo + ': not a regular file')
bad('-c DIR', w.argv('-c', outer, cmd=['true']), outer + ': Is a directory')
os.unlink(fifo)

# RUN_DIR files that are not regular files. The lock: refused, one line,
# and the FIFO is not ours to remove.
lock = os.path.join(w.run_dir, 'launch', w.name + '.lock')
os.makedirs(os.path.dirname(lock))
os.mkfifo(lock)
rc, out, err = T.run(w.argv(cmd=['true']), timeout=60)
R.check('lock FIFO: exit 125, one line naming it',
        rc == 125 and len(err.splitlines()) == 1 and lock + ': not a regular file' in err,
        (rc, err))
R.check('lock FIFO: left in place', os.path.exists(lock))
LT.check_clean('lock FIFO', w.name)
os.unlink(lock)
# A FIFO as the disk's pid file: one warning, ignored (no disk of ours
# runs), and the CVM starts.
pidfile = os.path.join(w.run_dir, 'disk', w.name + '.pid')
os.makedirs(os.path.dirname(pidfile))
os.mkfifo(pidfile)
rc, out, err = T.run(w.argv(cmd=['/bin/sh', '-c', 'exit 3'], disk='200M'), timeout=120)
R.check('pid FIFO: one warning naming it, the CVM runs (exit 3)',
        rc == 3 and [x for x in err.splitlines() if x.startswith('cvm-launch')] ==
        ['cvm-launch: %s: not a regular file, ignored' % pidfile], (rc, err))
LT.check_clean('pid FIFO', w.name)

# A name already running: the second launcher fails, the first is unharmed.
p = T.popen(w.argv(cmd=['/bin/sh', '-c', 'sleep 3; exit 4'], disk='200M'),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
# Running: its init (`sh`, then its `sleep 3`) is up.
LT.wait_descendant(p.pid, 'sleep')
rc, out, err = T.run(w.argv(cmd=['true'], disk='200M'), timeout=60)
R.check('already running: non-zero, one line', rc not in (0, None) and
        len(err.splitlines()) == 1 and 'already running' in err, (rc, err))
p.wait(timeout=60)
R.eq('already running: the first one is unharmed (exit 4)', p.returncode, 4)
T.forget(p)
LT.check_clean('already running', w.name)

R.summary_and_exit()
