"""--rebuild keeps the persist paths (/home, /var/lib/docker) and discards
the rest of the upper layer; the disk recounts its usage."""
import os
import time

import launchtest as LT

T = LT.T
R = T.R
LT.require()

w = LT.Workspace('rebuild')
rc, out, err = w.sh('echo keep > /home/x; echo gone > /etc/y; mkdir -p /var/lib/docker; '
                    'echo d > /var/lib/docker/z; echo v > /var/lib/other; '
                    'dd if=/dev/zero of=/root/big bs=1M count=20 2>/dev/null; df -B1 / | tail -n 1',
                    disk='200M')
R.eq('write files', rc, 0, err)
used_before = int(out.split()[2]) if rc == 0 else 0
LT.check_clean('first run', w.name)

rc, out, err = w.sh('cat /home/x /var/lib/docker/z; ls /etc/y /var/lib/other /root/big 2>&1; '
                    'df -B1 / | tail -n 1', '--rebuild', disk='200M')
R.eq('rebuild: exit 0', rc, 0, err)
R.check('/home/x survives --rebuild', 'keep' in out, out)
R.check('/var/lib/docker/z survives --rebuild', '\nd\n' in '\n' + out, out)
R.check('/etc/y, /var/lib/other and /root/big are gone',
        out.count('No such file') == 3, out)
used_after = int(out.split()[-4]) if rc == 0 else 0
R.check('usage recounted (20 MiB less)', used_before - used_after >= 20 * LT.MiB,
        (used_before, used_after))
R.check('image /etc/passwd still there', os.path.exists(LT.image() + '/etc/passwd'))
LT.check_clean('rebuild', w.name)

# A changed image (a new layer on top): /home and /var/lib/docker stay, the
# new layer's files appear, and its bytes are charged to the workspace.
layer = T.tempdir('layer-')
os.makedirs(layer + '/etc')
with open(layer + '/etc/release-2', 'w') as f:
    f.write('2\n')
with open(layer + '/etc/blob', 'wb') as f:
    f.write(os.urandom(5 * LT.MiB))
rc, out, err = w.sh('cat /home/x /var/lib/docker/z /etc/release-2; df -B1 / | tail -n 1',
                    disk='200M', image_dirs=layer + ':' + LT.image())
R.eq('changed image: exit 0', rc, 0, err)
R.check('/home/x and /var/lib/docker/z survive a changed image',
        out.startswith('keep\nd\n'), out)
R.check('the new layer is visible', '\n2\n' in out, out)
used_new = int(out.split()[-4]) if rc == 0 else 0
R.check('the new layer is charged (+5 MiB)', used_new - used_after >= 5 * LT.MiB,
        (used_after, used_new))
LT.check_clean('changed image', w.name)



def launcher_lines(err):
    return sum(1 for line in err.splitlines() if line.startswith('cvm-launch:'))


# A disk already running for the name (an admin's, or one a killed launcher
# left) is used when it unions the same data and image (a smaller limit is
# grown to --disk: test_resize.py), and refused with one line otherwise:
# another image, a larger limit, or no
# id shift for a --userns CVM (all from the status the disk publishes).
w2 = LT.Workspace('reuse')
mnt = os.path.join(w2.mnt_dir, w2.name)
os.makedirs(mnt)
# The volume mode the launches below ask for (the launcher's default, or
# CVMFS_TEST_VOLUME): a disk started with another one is refused (below).
MODE = LT.volume_mode()
disk = T.popen([T.CVMFSD, 'disk', '-f', '--name', w2.name, '--data', w2.data, '--limit', '200M',
                '--image=' + LT.image() + '/', '--run-dir', w2.run_dir,
                '--volume', MODE, '--volume-dir', os.path.join(w2.dir, 'volumes'), mnt])
T._mounts.append(mnt)
pidfile = os.path.join(w2.run_dir, 'disk', w2.name + '.pid')
for _ in range(500):
    if os.path.exists(pidfile) and os.path.ismount(mnt):
        break
    time.sleep(0.02)
rc, out, err = w2.sh('echo reused > /root/r; cat /root/r', '--no-userns', disk='200M')
R.eq('the running disk is used (same data, the same image spelt otherwise, --image=)',
     (rc, out.strip()), (0, 'reused'), err)
R.check('and left running', disk.poll() is None and os.path.ismount(mnt))
rc, out, err = w2.sh('true', '--userns', disk='200M')
R.check('--userns on a disk without an id shift: refused in one line',
        rc == 125 and launcher_lines(err) == 1 and "--image-idmap '(none)'" in err, (rc, err))
# (A larger one grows it: test_resize.py.)
rc, out, err = w2.sh('true', '--no-userns', disk='100M')
R.check('a smaller limit (--disk 100M on a disk of 200M): refused in one line naming it',
        rc == 125 and launcher_lines(err) == 2 and 'limit 209715200 bytes' in err,
        (rc, err))  # + the --no-userns warning
rc, out, err = w2.sh('true', disk='200M', image_dirs=layer + ':' + LT.image())
R.check('another image: refused in one line naming --image',
        rc == 125 and launcher_lines(err) == 1 and "--image '" in err, (rc, err))
other = 'none' if MODE != 'none' else 'loop'
rc, out, err = w2.sh('true', '--no-userns', disk='200M', volume=other)
R.check('another volume mode (--volume %s on a disk with %s): refused in one line naming '
        '--volume' % (other, MODE),
        rc == 125 and launcher_lines(err) == 2 and "--volume '%s" % MODE in err,  # + the
        (rc, err))                                                # --no-userns warning
R.check('the disk still serves', disk.poll() is None and
        open(os.path.join(mnt, 'root/r')).read() == 'reused\n')
disk.terminate()
disk.wait(30)
LT.check_clean('reused disk', w2.name)

R.summary_and_exit()
