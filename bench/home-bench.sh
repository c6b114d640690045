#!/bin/bash
# home-bench.sh: /home inside a CVM (on a workspace volume, and on the FUSE
# disk with --volume none) against a directory of the host's ext4.
#
#   bench/home-bench.sh [BUILD_DIR] [--rounds N] [--launches N]
#
# As root, from a clean clone on a fresh Debian 12: installs the
# dependencies (scripts/deps.sh) if a tool is missing, configures (once) and
# builds BUILD_DIR (default build), then runs bench/home_bench.py, which
# says what it measures and what it makes and removes. About 3 minutes here.
# Environment: HOME_BENCH_ROUNDS (3), HOME_BENCH_LAUNCHES (5).
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
bench_prepare home-bench "$REPO" "$BUILD" python3 nsenter mount umount mkfs.ext4 tar || exit 1
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
exec "$PY" "$REPO/bench/home_bench.py" "$BUILD" "$@"
