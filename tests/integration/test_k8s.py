#!/usr/bin/env python3
"""deploy/kubernetes/, offline: every manifest parses (python3-yaml) and
holds what the pods rely on: selectors that match their pods, privileged
containers, the node paths the DaemonSet's views and the workspace pod
share (with mount propagation that carries the FUSE mounts across), the
block-mode claim behind cvm-launch's --volume block:DEVICE, a grace period
longer than the CVM's stop timeout, and only options the programs accept
(checked against their --help). No cluster, no root."""
import os
import re
import subprocess
import sys

import cvmfstest as T
from cvmfstest import R

try:
    import yaml
except ImportError:  # a Python of its own (pyenv) beside Debian's package
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        import yaml
    except ImportError:
        T.skip('no PyYAML (Debian: python3-yaml)')

DEPLOY = os.path.join(T.SRC, 'deploy', 'kubernetes')
LAUNCH = os.path.join(T.BUILD, 'src', 'launch', 'cvm-launch')


def load_all():
    docs = []
    for f in sorted(os.listdir(DEPLOY)):
        if f.endswith('.yaml'):
            with open(os.path.join(DEPLOY, f)) as fh:
                docs += [(f, d) for d in yaml.safe_load_all(fh) if d]
    return docs


def help_options(argv):
    out = subprocess.run(argv + ['--help'], capture_output=True, text=True).stdout
    return set(re.findall(r'^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)', out, re.M))


def option_value(args, opt):
    return args[args.index(opt) + 1] if opt in args else None


def host_paths(spec):
    return {v['name']: v['hostPath']['path'] for v in spec.get('volumes', []) if 'hostPath' in v}


def mount_of(container, path):
    return next((m for m in container.get('volumeMounts', []) if m['mountPath'] == path), None)


def check_common(f, d):
    R.check('%s: apiVersion, kind, metadata.name' % f,
            all(k in d for k in ('apiVersion', 'kind')) and 'name' in d.get('metadata', {}), d)
    if d['kind'] in ('DaemonSet', 'StatefulSet'):
        tmpl = d['spec']['template']
        sel = d['spec']['selector']['matchLabels']
        R.check('%s: selector matches the pod template\'s labels' % f,
                all(tmpl['metadata']['labels'].get(k) == v for k, v in sel.items()), sel)
        R.eq('%s: namespace' % f, d['metadata'].get('namespace'), 'cvmfs')
        for c in tmpl['spec']['containers']:
            R.eq('%s: %s privileged' % (f, c['name']),
                 c.get('securityContext', {}).get('privileged'), True)


def check_views(ds):
    spec = ds['spec']['template']['spec']
    c = spec['containers'][0]
    cmd = c['command']
    R.eq('views: cvmfsd views in the foreground', cmd[:3], ['cvmfsd', 'views', '-f'])
    R.eq('views: hostPID (FUSE gives readers\' pids in the daemon\'s namespace)',
         spec.get('hostPID'), True)
    opts = [a for a in cmd[2:] if a.startswith('--')]
    known = help_options([T.CVMFSD, 'views'])
    R.check('views: every option is cvmfsd views\'s', set(opts) <= known, set(opts) - known)
    mnt = cmd[-1]
    m = mount_of(c, os.path.dirname(mnt))
    R.check('views: its mountpoint\'s parent is a Bidirectional mount of the node\'s',
            m is not None and m.get('mountPropagation') == 'Bidirectional' and
            host_paths(spec).get(m['name']) == os.path.dirname(mnt), m)
    R.eq('views: /dev/fuse from the node', host_paths(spec).get(
        (mount_of(c, '/dev/fuse') or {}).get('name')), '/dev/fuse')
    return mnt


def check_workspace(sts, views_mnt):
    spec = sts['spec']['template']['spec']
    c = spec['containers'][0]
    args = c['args']
    R.eq('workspace: runs cvm-launch', c['command'], ['cvm-launch'])
    opts = [a for a in args if a.startswith('--')]
    if os.access(LAUNCH, os.X_OK):
        known = help_options([LAUNCH])
        R.check('workspace: every option is cvm-launch\'s', set(opts) <= known, set(opts) - known)
    else:
        R.not_checked('cvm-launch not built: options unchecked', point=False)
    vol = option_value(args, '--volume') or ''
    dev = [d for d in c.get('volumeDevices', []) if 'block:' + d['devicePath'] == vol]
    claims = {t['metadata']['name']: t['spec'] for t in sts['spec'].get('volumeClaimTemplates', [])}
    R.check('workspace: --volume block:DEVICE is a volumeDevice', len(dev) == 1, (vol, dev))
    R.eq('workspace: its claim is in block mode', claims.get(dev[0]['name'] if dev else None,
                                                             {}).get('volumeMode'), 'Block')
    R.eq('workspace: --views is the DaemonSet\'s mount', option_value(args, '--views'), views_mnt)
    m = mount_of(c, os.path.dirname(views_mnt))
    R.check('workspace: the views\' node directory, HostToContainer',
            m is not None and m.get('mountPropagation') == 'HostToContainer' and
            host_paths(spec).get(m['name']) == os.path.dirname(views_mnt), m)
    run = option_value(args, '--run-dir')
    R.eq('workspace: --run-dir is the node\'s (cvmfs-stat there)',
         host_paths(spec).get((mount_of(c, run) or {}).get('name')), run)
    name = option_value(args, '--name')
    env = {e['name']: e for e in c.get('env', [])}
    R.check('workspace: --name from the pod\'s name', name == '$(WS_NAME)' and
            env.get('WS_NAME', {}).get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') ==
            'metadata.name', (name, env))
    R.check('workspace: grace period longer than --stop-timeout',
            spec.get('terminationGracePeriodSeconds', 30) > int(option_value(args, '--stop-timeout')
                                                                 or 30), spec)
    R.check('workspace: requests what the CVM is given', 'requests' in c.get('resources', {}))


def main():
    docs = load_all()
    R.check('manifests found', len(docs) >= 3, [f for f, _ in docs])
    for f, d in docs:
        check_common(f, d)
    by_kind = {d['kind']: d for _, d in docs}
    if 'DaemonSet' not in by_kind or 'StatefulSet' not in by_kind:
        T.fatal('deploy/kubernetes lacks the DaemonSet or the StatefulSet')
    views_mnt = check_views(by_kind['DaemonSet'])
    check_workspace(by_kind['StatefulSet'], views_mnt)
    R.summary_and_exit()


if __name__ == '__main__':
    main()
