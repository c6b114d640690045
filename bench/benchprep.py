"""The one-command start of the Python benches from a clean clone, shared
with the shell ones (bench/lib.sh bench_prepare): as root, scripts/deps.sh
when a build tool, a library or one of the bench's tools is missing (not
otherwise, so that a machine that has them all runs offline), then the
build directory configured once and brought up to date (scripts/build.sh).

    import benchprep
    BUILD = benchprep.prepare('launch-bench', sys.argv[1:2], ('unshare', 'chroot'))

prepare() returns the build directory as an absolute path: the argument
(default build) as given when it exists from the current directory or is
absolute, else under the repository; it exits with a one-line error when
not root or when the dependencies or the build fail.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, 'bench', 'lib.sh')


def prepare(who, build_args, tools=()):
    if os.geteuid() != 0:
        sys.exit('%s: must run as root' % who)
    build = build_args[0] if build_args else ''
    # bench_prepare's own output (apt, meson) goes to stderr: stdout is the
    # bench's table.
    script = ('. "$1"; who=$2 repo=$3; shift 3; b=$(bench_build_dir "$repo" "$1") && '
              'shift && bench_prepare "$who" "$repo" "$b" "$@" >&2 && printf "%s\\n" "$b"')
    p = subprocess.run(['bash', '-c', script, 'benchprep', LIB, who, ROOT, build] + list(tools),
                       stdout=subprocess.PIPE, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        sys.exit('%s: could not prepare the build directory (see above)' % who)
    return p.stdout.strip()


def launch_helpers(who, build_args, tools=()):
    """prepare(), then what the launcher tests' helpers read (the build's
    cvmfsd and cvm-launch): returns (BUILD, the launchtest module), for the
    benches that start CVMs the way the tests do."""
    build = prepare(who, build_args, tools)
    os.environ.setdefault('CVMFSD', os.path.join(build, 'src', 'cvmfsd'))
    os.environ.setdefault('CVM_LAUNCH', os.path.join(build, 'src', 'launch', 'cvm-launch'))
    os.environ.setdefault('CVMFS_BUILD', build)
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'launch'))
    import launchtest  # noqa: E402  (reads the environment above at import)
    return build, launchtest
