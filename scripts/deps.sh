#!/usr/bin/env bash
# Install everything cvmfs needs to build, test and benchmark on Debian 12.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "deps.sh: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg run instead of failing at once.
apt_opts=(-o DPkg::Lock::Timeout=300)
apt-get "${apt_opts[@]}" update -qq
# cvm-launch --image oci:/docker-archive: builds with libarchive (tar, gzip,
# zstd), OpenSSL's libcrypto (sha256) and jansson (the manifests' JSON);
# test_oci compresses an archive with zstd.
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends \
	libarchive-dev libssl-dev libjansson-dev zstd >/dev/null
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends \
	build-essential meson ninja-build pkg-config \
	libfuse3-dev fuse3 liburcu-dev libinih-dev libcap-dev \
	procps util-linux coreutils python3 lxcfs fuse-overlayfs debootstrap \
	e2fsprogs iproute2 busybox-static nftables passt \
	lowdown man-db python3-prometheus-client python3-yaml runc sysstat strace >/dev/null
# The cgroup v2 lane (tests/vm): qemu and Debian 12's own kernel, booted
# only inside qemu (installing it adds a boot entry and an initramfs for
# this machine, ~35 s; nothing boots it here).
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends \
	qemu-system-x86 linux-image-amd64 >/dev/null
# e2fsprogs: mkfs.ext4 (bench/disk-bench.sh and bench/docker-bench.sh make a
# fresh ext4); iproute2: ip (bench/docker-bench.sh's private host dockerd
# brings up lo in its own network namespace). Neither is in a minbase system.
# busybox-static: test_sysinfo runs busybox free/uptime/nproc in a CVM (the
# static binary needs nothing from the CVM's image).
# sysstat: test_tools runs iostat in a CVM (its collector stays off).
# strace: test_lowerfd counts the disk server's opens of image directories
# by path.
# nftables, passt: cvm-launch --net private (its default where they are):
# nft for the bridge's rules as root, pasta for a CVM in a user namespace.
# lxcfs's package may start its own service; the benchmark runs a private one.
# lowdown: the man pages (doc/md2man.py); man-db: test_install renders them.
# python3-prometheus-client: test_prometheus parses cvmfs-stat --prometheus;
# python3-yaml: test_k8s parses deploy/kubernetes/. runc: test_hook runs a
# container through cvmfs-hook.
