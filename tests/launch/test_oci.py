"""cvm-launch --image oci:DIR[:TAG] and docker-archive:FILE: images made
here from a rootfs of busybox-static in two layers (the top one deletes a
file of the base with a whiteout and makes a directory opaque), written as
an OCI layout and as a `docker save` archive with the standard library (no
registry). Both launch CVMs that see the merged tree with owners, modes and
times kept; their layers are unpacked once into the test's own layer store
and shared (same directories, not unpacked again), and each workspace is
charged for them. Bad images (truncated, corrupt, digest mismatch, '..',
absolute paths, symlink parents, device nodes, hard links out, ambiguous
tags) are refused in one line with the store unchanged; `cvmctl images`
lists the store and --prune removes only the layers no workspace uses."""
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile

import launchtest as LT

T = LT.T
R = T.R
LT.require()
LT.require_userns()
CVMCTL = os.environ.get('CVMCTL') or os.path.join(T.BUILD, 'src', 'ctl', 'cvmctl')
BUSYBOX = '/bin/busybox'
if not os.path.isfile(BUSYBOX) or subprocess.run(['ldd', BUSYBOX], stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL).returncode == 0:
    T.skip('busybox-static is not installed (scripts/deps.sh installs it)')

MTIME = 1500000000
# security.capability v2: cap_net_bind_service permitted + effective
CAPS = struct.pack('<IIIII', 0x02000001, 1 << 10, 0, 0, 0)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def info(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, data=b'', **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, MTIME
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data


def d(name, mode=0o755, **kw):
    return info(name, tarfile.DIRTYPE, mode, **kw)


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def base_layer():
    with open(BUSYBOX, 'rb') as f:
        bb = f.read()
    e = [d('./'), d('bin'), d('etc'), d('root', 0o700), d('tmp', 0o1777), d('opq'),
         info('bin/busybox', mode=0o755, data=bb)]
    for applet in ('sh', 'ls', 'cat', 'stat', 'test', 'df', 'echo', 'id'):
        e.append(info('bin/' + applet, tarfile.SYMTYPE, 0o777, linkname='busybox'))
    e += [info('etc/passwd', data=b'root:x:0:0:root:/root:/bin/sh\n'),
          info('etc/group', data=b'root:x:0:\n'),
          info('gone.txt', data=b'deleted by the top layer\n'),
          info('keep.txt', data=b'base\n'),
          info('opq/a', data=b'a\n'), info('opq/b', data=b'b\n'),
          info('suid', mode=0o4755, data=b'#!/bin/sh\n'),
          info('owned', mode=0o640, uid=1000, gid=1001, data=b'user file\n'),
          info('hl1', data=b'linked\n'),
          info('hl2', tarfile.LNKTYPE, linkname='hl1')]
    cap, data = info('capped', mode=0o755, data=b'caps\n')
    cap.pax_headers = {'SCHILY.xattr.security.capability': CAPS.decode('utf-8', 'surrogateescape'),
                       'SCHILY.xattr.user.note': 'kept'}
    e.append((cap, data))
    return tar_bytes(e)


def top_layer(extra=()):
    return tar_bytes([d('opq'), info('.wh.gone.txt'), info('opq/.wh..wh..opq'),
                      info('opq/c', data=b'c\n'), info('new.txt', data=b'top\n')] + list(extra))


def config_of(layers):
    return json.dumps({'architecture': 'amd64', 'os': 'linux',
                       'config': {'Cmd': ['/bin/sh']},
                       'rootfs': {'type': 'layers',
                                  'diff_ids': ['sha256:' + sha(t) for t in layers]}}).encode()


class Oci:
    """An OCI image layout in a directory of its own."""

    def __init__(self):
        self.dir = T.tempdir('oci-')
        os.makedirs(os.path.join(self.dir, 'blobs', 'sha256'))
        with open(os.path.join(self.dir, 'oci-layout'), 'w') as f:
            f.write('{"imageLayoutVersion": "1.0.0"}')
        self.manifests = []

    def blob(self, data):
        with open(os.path.join(self.dir, 'blobs', 'sha256', sha(data)), 'wb') as f:
            f.write(data)
        return {'digest': 'sha256:' + sha(data), 'size': len(data)}

    def add(self, layers, tag, config=None, blobs=None):
        """layers: uncompressed tars, bottom first; blobs: what is stored
        for each (default gzip of it)."""
        blobs = blobs or [gzip.compress(t, mtime=0) for t in layers]
        man = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
               'config': dict(self.blob(config or config_of(layers)),
                              mediaType='application/vnd.oci.image.config.v1+json'),
               'layers': [dict(self.blob(b), mediaType='application/vnd.oci.image.layer.v1.tar+gzip')
                          for b in blobs]}
        desc = dict(self.blob(json.dumps(man).encode()),
                    mediaType='application/vnd.oci.image.manifest.v1+json')
        if tag:
            desc['annotations'] = {'org.opencontainers.image.ref.name': tag}
        self.manifests.append(desc)
        with open(os.path.join(self.dir, 'index.json'), 'w') as f:
            json.dump({'schemaVersion': 2, 'manifests': self.manifests}, f)
        return self

    def ref(self, tag=None):
        return 'oci:' + self.dir + (':' + tag if tag else '')


def docker_archive(layers, path, tag='cvmfs-test:latest', compress=True, layer_blobs=None):
    """`docker save`'s legacy layout: ID/layer.tar, HEX.json, manifest.json."""
    config = config_of(layers)
    entries, names = [], []
    for i, t in enumerate(layer_blobs or layers):
        lid = sha(b'%d' % i + t)
        entries += [d(lid), info(lid + '/layer.tar', data=t)]
        names.append(lid + '/layer.tar')
    entries.append(info(sha(config) + '.json', data=config))
    entries.append(info('manifest.json', data=json.dumps(
        [{'Config': sha(config) + '.json', 'RepoTags': [tag], 'Layers': names}]).encode()))
    data = tar_bytes(entries)
    with open(path, 'wb') as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)
    return 'docker-archive:' + path


BASE, TOP = base_layer(), top_layer()
TOP2 = top_layer([info('v2.txt', data=b'second tag\n')])
oci = Oci().add([BASE, TOP], 'v1').add([BASE, TOP2], 'v2')
arch_dir = T.tempdir('arch-')
DOCKER = docker_archive([BASE, TOP], os.path.join(arch_dir, 'image.tar.gz'))
STORE = os.path.join(T.tempdir('store-'), 'layers')
DIGESTS = sorted(sha(t) for t in (BASE, TOP))


def store_state(store=STORE):
    """What must not change after a refused launch: the layers, the refs,
    and nothing but per-layer lock files in tmp/."""
    ls = lambda sub: sorted(os.listdir(os.path.join(store, sub))) \
        if os.path.isdir(os.path.join(store, sub)) else []
    return ls('sha256'), ls('refs'), [n for n in ls('tmp') if not n.endswith('.lock')]


def launch(w, image, script, store=STORE, **kw):
    return w.launch('--layer-store', store, cmd=['/bin/sh', '-c', script],
                    image_dirs=image, **kw)


INSIDE = ('cd /; ls -a / | tr "\\n" " "; echo; cat keep.txt new.txt; '
          'test -e gone.txt && echo gone-visible; ls opq | tr "\\n" " "; echo; '
          'stat -c "%n %a %u %g %Y" suid owned keep.txt; stat -c "%h" hl1; '
          'test -e v2.txt && echo v2-visible; df -B1 / | tail -n 1')


def check_inside(label, rc, out, err):
    R.eq(label + ': exit 0', rc, 0, err)
    lines = out.splitlines()
    R.check(label + ': no whiteout or marker visible', lines and '.wh.' not in lines[0] and
            'gone.txt' not in lines[0] and 'busybox' not in lines[0], lines[:1])
    R.eq(label + ': files of both layers', lines[1:3], ['base', 'top'], out)
    R.check(label + ': .wh.gone.txt hides gone.txt', 'gone-visible' not in out, out)
    R.eq(label + ': opaque dir shows only the top layer\'s', lines[3:4], ['c '], out)
    R.eq(label + ': modes, owners (root inside), times kept', lines[4:7],
         ['suid 4755 0 0 %d' % MTIME, 'owned 640 1000 1001 %d' % MTIME,
          'keep.txt 644 0 0 %d' % MTIME], out)
    R.eq(label + ': hard link kept', lines[7:8], ['2'], out)
    return lines


def inode(hexd, store=STORE):
    return os.stat(os.path.join(store, 'sha256', hexd)).st_ino


# ---- an OCI layout, then a docker save archive of the same image
w1, w2 = LT.Workspace('oci1'), LT.Workspace('oci2')
rc, out, err = launch(w1, oci.ref('v1'), INSIDE)
lines = check_inside('oci:DIR:v1', rc, out, err)
R.eq('the store holds the two layers, by diff_id', store_state()[0], DIGESTS)
R.eq('the store is root\'s only (0700)', oct(os.stat(STORE).st_mode & 0o7777), '0o700')
LT.check_clean('oci', w1.name)
inodes = [inode(h) for h in DIGESTS]
cap = os.path.join(STORE, 'sha256', sha(BASE), 'capped')
R.eq('file capability (security.capability) kept', os.getxattr(cap, 'security.capability'), CAPS)
R.eq('user xattr kept', os.getxattr(cap, 'user.note'), b'kept')
R.check('OCI whiteouts kept as the union reads them',
        os.path.isfile(os.path.join(STORE, 'sha256', sha(TOP), '.wh.gone.txt')) and
        os.path.isfile(os.path.join(STORE, 'sha256', sha(TOP), 'opq', '.wh..wh..opq')))

rc, out, err = launch(w2, DOCKER, INSIDE)
check_inside('docker-archive', rc, out, err)
R.eq('docker-archive: the same layers, shared (not unpacked again)',
     (store_state()[0], [inode(h) for h in DIGESTS]), (DIGESTS, inodes))
LT.check_clean('docker-archive', w2.name)


def status(w):
    with open(os.path.join(w.run_dir, 'disk', w.name + '.json')) as f:
        return json.load(f)


# Docker 25's layout (blobs/sha256/HEX), zstd where the tool is, into a
# fresh store so that every layer is unpacked from it; its third layer
# puts a file where it first had a symlink out: replaced, never written
# through.
def docker25_archive(layers, path):
    config = config_of(layers)
    entries = [d('blobs'), d('blobs/sha256')]
    for t in layers + [config]:
        entries.append(info('blobs/sha256/' + sha(t), data=t))
    entries.append(info('manifest.json', data=json.dumps(
        [{'Config': 'blobs/sha256/' + sha(config), 'RepoTags': ['cvmfs-test:latest'],
          'Layers': ['blobs/sha256/' + sha(t) for t in layers]}]).encode()))
    with open(path, 'wb') as f:
        f.write(tar_bytes(entries))
    if shutil.which('zstd'):
        subprocess.run(['zstd', '-q', '--rm', path, '-o', path + '.zst'], check=True)
        return 'docker-archive:' + path + '.zst:cvmfs-test'
    return 'docker-archive:' + path + ':cvmfs-test'


outside = os.path.join(arch_dir, 'outside-target')
SYMREPL = tar_bytes([info('x', tarfile.SYMTYPE, 0o777, linkname=outside),
                     info('x', data=b'replaced\n')])
store3 = os.path.join(T.tempdir('store3-'), 'layers')
ref25 = docker25_archive([BASE, TOP, SYMREPL], os.path.join(arch_dir, 'docker25.tar'))
w4 = LT.Workspace('oci4')
rc, out, err = launch(w4, ref25, 'cat /keep.txt /new.txt /x', store=store3)
R.eq('docker-archive, Docker 25 layout%s, TAG without :latest' %
     (' (zstd)' if ref25.endswith('.zst:cvmfs-test') else ''), (rc, out.split()),
     (0, ['base', 'top', 'replaced']), err)
R.check('a file over a symlink of the layer replaces the link, nothing written outside',
        not os.path.lexists(outside), outside)
R.eq('... three layers in the fresh store', store_state(store3)[0],
     sorted(DIGESTS + [sha(SYMREPL)]))
LT.check_clean('docker 25', w4.name)

s1, s2 = status(w1), status(w2)
layer_dirs = ':'.join(os.path.join(STORE, 'sha256', h) for h in (sha(TOP), sha(BASE)))
R.eq('both disks served the store\'s directories, top first', (s1['image'], s2['image']),
     (layer_dirs, layer_dirs))
R.check('each workspace is charged for the image (busybox included)',
        s1['image_bytes'] >= os.path.getsize(BUSYBOX) and s1['image_bytes'] == s2['image_bytes'],
        (s1['image_bytes'], s2['image_bytes']))
df = lines[-1].split() if lines else []
R.check('df inside counts the image as used', len(df) > 2 and df[2].isdigit() and
        int(df[2]) >= os.path.getsize(BUSYBOX), df)

rc, data, out, err = T.run_json([CVMCTL, 'images', '--json', '--layer-store', STORE])
R.eq('cvmctl images: both layers, both (stopped) workspaces',
     sorted((e['digest'], e['workspaces'], e['size_bytes'] > 0) for e in data or []),
     [('sha256:' + h, sorted([w1.name, w2.name]), True) for h in DIGESTS], out + err)
sizes = {e['digest']: e['size_bytes'] for e in data or []}
R.check('cvmctl images: a layer\'s size is its allocated bytes (busybox in the base)',
        sizes.get('sha256:' + sha(BASE), 0) >= os.path.getsize(BUSYBOX) and
        sum(sizes.values()) <= s1['image_bytes'] + 64 * 1024, (sizes, s1['image_bytes']))
rc, out, err = T.run([CVMCTL, 'images', '--layer-store', STORE])
print(out, flush=True)
R.check('cvmctl images: a table', rc == 0 and out.split()[:3] == ['LAYER', 'SIZE', 'WORKSPACES']
        and ','.join(sorted([w1.name, w2.name])) in out, out + err)

# ---- tags: without one an index of two images is ambiguous
before = store_state()
rc, out, err = launch(w1, oci.ref(), 'true')
R.check('oci:DIR of an index of two: refused in one line naming the tags',
        rc != 0 and len(err.strip().splitlines()) == 1 and 'v1, v2' in err, (rc, err))
rc, out, err = launch(w1, oci.ref('v3'), 'true')
R.check('oci:DIR:unknown-tag: refused in one line', rc != 0 and
        len(err.strip().splitlines()) == 1 and 'no image with this tag' in err, (rc, err))
R.eq('refused tags: store unchanged', store_state(), before)


# ---- bad images: one line, non-zero exit, the store unchanged
def bad_oci(layer, gz=True, **kw):
    o = Oci()
    blob = gzip.compress(layer, mtime=0) if gz else layer
    return o.add([BASE, layer], 'bad', blobs=[gzip.compress(BASE, mtime=0), blob], **kw).ref('bad')


def evil(*entries):
    return tar_bytes([info('ok', data=b'x')] + list(entries))


# A layer the store does not have yet: one it has is not read again (its
# diff_id names content already verified), so these must be new.
TOP3 = top_layer([info('three.txt', data=b'3\n')])
good_gz = gzip.compress(TOP3, mtime=0)
trunc_arch = os.path.join(arch_dir, 'trunc.tar')
with open(DOCKER[len('docker-archive:'):], 'rb') as f:
    whole = gzip.decompress(f.read())
with open(trunc_arch, 'wb') as f:
    f.write(whole[:len(whole) // 2])
corrupt = bytearray(good_gz)
corrupt[len(corrupt) // 2] ^= 0xff
tampered = Oci().add([BASE, TOP3], 'bad')
os.rename(os.path.join(tampered.dir, 'blobs', 'sha256', sha(good_gz)),
          os.path.join(tampered.dir, 'x'))
with open(os.path.join(tampered.dir, 'blobs', 'sha256', sha(good_gz)), 'wb') as f:
    f.write(gzip.compress(TOP2, mtime=0))
wrong_diff = Oci().add([BASE, TOP3], 'bad', config=config_of([BASE, TOP2]))

BAD = [
    ('truncated docker archive', 'docker-archive:' + trunc_arch, 'trunc.tar'),
    ('truncated gzip layer', Oci().add([BASE, TOP3], 'bad', blobs=[
        gzip.compress(BASE, mtime=0), good_gz[:len(good_gz) // 2]]).ref('bad'), 'layer sha256:'),
    ('corrupt gzip layer', Oci().add([BASE, TOP3], 'bad', blobs=[gzip.compress(BASE, mtime=0),
                                                               bytes(corrupt)]).ref('bad'),
     'layer sha256:'),
    ('blob digest mismatch', tampered.ref('bad'), 'digest mismatch'),
    ('diff_id mismatch', wrong_diff.ref('bad'), 'digest mismatch'),
    ('.. in a path', bad_oci(evil(info('../escaped', data=b'x'))), "'..'"),
    ('absolute path', bad_oci(evil(info('/abs-escaped', data=b'x'))), 'absolute'),
    ('symlink parent', bad_oci(evil(info('lnk', tarfile.SYMTYPE, 0o777, linkname='/tmp'),
                                    info('lnk/escaped', data=b'x'))), 'symlink'),
    ('char device', bad_oci(evil(info('mem', tarfile.CHRTYPE, devmajor=1, devminor=1))),
     'device'),
    ('block device', bad_oci(evil(info('sda', tarfile.BLKTYPE, devmajor=8, devminor=0))),
     'device'),
    ('hard link out (..)', bad_oci(evil(info('hl', tarfile.LNKTYPE, linkname='../../etc/passwd'))),
     'hard link'),
    ('hard link out (absolute)', bad_oci(evil(info('hl', tarfile.LNKTYPE, linkname='/etc/passwd'))),
     'hard link'),
    ('hard link through a symlink', bad_oci(evil(
        info('lnk', tarfile.SYMTYPE, 0o777, linkname='/etc'),
        info('hl', tarfile.LNKTYPE, linkname='lnk/passwd'))), 'hard link'),
]
for label, ref, expect in BAD:
    before = store_state()
    rc, out, err = launch(w1, ref, 'echo started')
    lines = err.strip().splitlines()
    print('# %s: %s' % (label, err.strip()), flush=True)
    R.check('%s: refused (exit != 0, one line naming %r)' % (label, expect),
            rc not in (0, None) and 'started' not in out and len(lines) == 1 and
            expect in err and '--image' in err, (rc, err))
    R.eq('%s: store unchanged, nothing half-unpacked' % label, store_state(), before)
LT.check_clean('bad images', w1.name)
R.check('nothing escaped the layer', not os.path.exists(os.path.join(STORE, 'escaped')) and
        not os.path.exists('/abs-escaped') and not os.path.exists('/tmp/escaped'))

# ---- concurrent launches of one image into an empty store: one unpack each
store2 = os.path.join(T.tempdir('store2-'), 'layers')
wa, wb = LT.Workspace('ocia'), LT.Workspace('ocib')
procs = [T.popen(w.argv('--layer-store', store2, cmd=['/bin/sh', '-c', 'cat /new.txt'],
                        image_dirs=oci.ref('v1')), stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE) for w in (wa, wb)]
res = [p.communicate(timeout=120) for p in procs]
R.eq('two launches at once from one image: both run', [(p.returncode, o.strip())
     for p, (o, e) in zip(procs, res)], [(0, b'top'), (0, b'top')], res)
R.eq('... and share one copy of each layer', store_state(store2), (DIGESTS, sorted(
    [wa.name, wb.name]), []))
for w in (wa, wb):
    T.forget(procs.pop(0))
    LT.check_clean('concurrent', w.name)

# ---- prune: only the layers no workspace's ref names
w3 = LT.Workspace('oci3')
rc, out, err = launch(w3, oci.ref('v2'), 'cat /v2.txt')
R.eq('oci:DIR:v2 runs', (rc, out.strip()), (0, 'second tag'), err)
LT.check_clean('v2', w3.name)
os.makedirs(os.path.join(STORE, 'tmp', sha(TOP2) + '.99999.dead'))  # a crashed unpack
rc, out, err = T.run([CVMCTL, 'images', '--prune', '--layer-store', STORE])
R.eq('prune with every layer in use: nothing removed',
     (rc, store_state()[0], out.strip().splitlines()[-1:]),
     (0, sorted(DIGESTS + [sha(TOP2)]), ['0 layers removed, 0 bytes freed']), err)
R.eq('prune sweeps what a crashed unpack left', store_state()[2], [])
rc, out, err = T.run([CVMCTL, 'images', '--forget', w3.name, '--layer-store', STORE])
R.eq('cvmctl images --forget NAME', rc, 0, err)
rc, out, err = T.run([CVMCTL, 'images', '--prune', '--layer-store', STORE])
R.eq('prune removes only the layer no ref names', (rc, store_state()[0]), (0, DIGESTS), out + err)
R.check('prune says what it removed', 'removed sha256:' + sha(TOP2) in out, out)
rc, out, err = launch(w1, oci.ref('v1'), 'cat /keep.txt')
R.eq('the kept layers still launch', (rc, out.strip()), (0, 'base'), err)
LT.check_clean('after prune', w1.name)
# The same workspace from plain directories uses none of the store's.
plain = T.tempdir('plain-')
os.makedirs(os.path.join(plain, 'bin'))
shutil.copy2(BUSYBOX, os.path.join(plain, 'bin', 'busybox'))
os.symlink('busybox', os.path.join(plain, 'bin', 'sh'))
rc, out, err = launch(w1, plain, 'true')
R.eq('a launch from plain directories drops the workspace\'s ref',
     (rc, store_state()[1]), (0, [w2.name]), err)
nostore = os.path.join(plain, 'no-store')
rc, out, err = launch(w1, plain, 'true', store=nostore)
R.eq('... and with no store makes none', (rc, os.path.exists(nostore)), (0, False), err)
LT.check_clean('plain', w1.name)

R.summary_and_exit()
