#!/bin/bash
# docker-bench.sh: Docker inside a CVM against Docker on the host.
#
#   bench/docker-bench.sh [BUILD_DIR] [--runs N] [--builds N] [--no-diag] [--no-doc]
#                         [--userns | --volume]
#
# --volume: the CVM in the default mode on a workspace volume (overlay2 on
# the ext4 lane /var/lib/docker); without it --volume none (the FUSE disk).
#
# As root, from a clean clone on a fresh Debian 12: installs the
# dependencies (scripts/deps.sh) if a tool is missing, configures (once) and
# builds BUILD_DIR (default build; scripts/build.sh), installs Debian's
# docker.io on the host if missing (no service started), and makes the
# workspace image (debootstrap + apt, cached in CVMFS_TEST_CACHE, about 2
# minutes the first time).  For release figures configure the build dir
# yourself first, e.g.
#   meson setup /work/bench-build . -Dbuildtype=release -Dwerror=true
#   bash bench/docker-bench.sh /work/bench-build
#
# Measures `docker run --rm IMG true` (median, p90 of 20) and a 200 MiB
# `docker build --no-cache` (median of 3) with dockerd inside a CVM and with
# a private host dockerd (Debian's docker.io, installed with apt if missing,
# no service started), plus a breakdown; prints a markdown table and records
# it in doc/bench-docker.md.  About 5 minutes here.  The logic, and what it
# creates and removes, are in bench/docker_bench.py.
#
# Environment: DOCKER_BENCH_RUNS (20), DOCKER_BENCH_BUILDS (3),
#              DOCKER_BENCH_FILES (20000), DOCKER_BENCH_KIB (10),
#              DOCKER_BENCH_KEEP (runs kept in the doc, 3),
#              DOCKER_BENCH_FS (loop: both sides' data on one fresh
#                loop-mounted ext4, the default; host: on /var/tmp and /tmp),
#              CVMFS_TEST_CACHE (image cache, /var/tmp/cvmfs-test-cache).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
BUILD=build
if [[ $# -gt 0 && $1 != -* ]]; then
	BUILD=$1
	shift
fi
BUILD=$(bench_build_dir "$REPO" "$BUILD")
[[ $(id -u) -eq 0 ]] || { echo "docker-bench: must run as root" >&2; exit 1; }
# What docker_bench.py runs on the host besides the reference docker.io,
# which it installs itself (apt-get, no service started).
bench_prepare docker-bench "$REPO" "$BUILD" python3 unshare nsenter chroot ip mount umount \
	mkfs.ext4 debootstrap apt-get fusermount3 || exit 1
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
exec "$PY" "$REPO/bench/docker_bench.py" "$BUILD" "$@"
