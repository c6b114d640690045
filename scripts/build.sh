#!/usr/bin/env bash
# Configure (once) and build into BUILD_DIR (default: build). Extra args go to meson setup.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" -Dwerror=true "$@"
fi
# --quiet: no progress lines, but a compiler's errors and warnings (which
# ninja prints on stdout) are shown.
ninja -C "$dir" --quiet
