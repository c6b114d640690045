#!/usr/bin/env bash
# Install everything cvmfs needs to build, test and benchmark on Debian 12.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "deps.sh: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg run instead of failing at once.
apt_opts=(-o DPkg::Lock::Timeout=300)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends \
	build-essential meson ninja-build pkg-config \
	libfuse3-dev fuse3 liburcu-dev libinih-dev libcap-dev \
	procps util-linux coreutils python3 lxcfs fuse-overlayfs debootstrap >/dev/null
# lxcfs's package may start its own service; the benchmark runs a private one.
