#!/usr/bin/env bash
# The whole test suite, as root on Debian 12: install, build with warnings as
# errors, run every test; then build with ASan+UBSan and run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
BUILD_DIR=build bash scripts/build.sh
# The launch and docker tests' image (debootstrap + apt, 1-3 minutes the
# first time, cached in /var/tmp/cvmfs-test-cache): built here rather than
# inside the first test's timeout. Where it cannot be built (no mirror),
# the tests that need it skip with the reason, as this says.
python3 tests/docker/image_cache.py ||
	echo "test.sh: no image cache (reason above): the tests that need it will skip"
# The cgroup v2 lane (tests/vm): Debian 12's kernel under qemu, once, on the
# normal build (skips with its reason without qemu). It runs beside the
# normal pass, at the lowest priority: that pass leaves about half of the
# CPU idle (its tests wait on daemons, kills, sleeps), which qemu takes,
# while a test that needs the CPU gets it first. Its own log base: two
# meson runs share the build directory. Its output is shown at the end.
nice -n 19 meson test -C build --no-rebuild --print-errorlogs --num-processes 1 \
	--suite vm --verbose --logbase vmlane >build/test-summary-vm.txt 2>&1 &
vm_pid=$!
vm_rc=0
# Whatever stops this script stops the lane (meson ends its test's process
# group, qemu included).
trap '[ -z "$vm_pid" ] || kill "$vm_pid" 2>/dev/null || true' EXIT
meson test -C build --no-rebuild --print-errorlogs --num-processes 1 --no-suite vm |
	tee build/test-summary.txt
BUILD_DIR=build-asan bash scripts/build.sh -Db_sanitize=address,undefined -Db_lundef=false
# Under ASan+UBSan: every test but the --volume none repeats (the daemons'
# paths of their default-mode twins) and, of the docker suite, all but
# docker_disk_survive (the others test Docker inside a CVM, which the pass
# above did; under ASan they added 9 minutes to a CI run that must stay
# well under 45).
asan_tests=$(meson test -C build-asan --list --no-suite vm 2>/dev/null |
	awk -F' / ' '$2 !~ /_volume_none$/ && ($1 !~ /docker/ || $2 == "docker_disk_survive") { print $2 }')
# shellcheck disable=SC2086 # one word per test name
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 1 $asan_tests | tee build-asan/test-summary.txt
wait "$vm_pid" || vm_rc=$?
vm_pid=
cat build/test-summary-vm.txt
[ "$vm_rc" -eq 0 ] || { echo "test.sh: the cgroup v2 lane failed (above)"; exit "$vm_rc"; }
# meson stops the script above on any failure; reaching here means none
# failed. Skipped tests (exit 77, with their reason in the log) are counted.
count() { awk -v k="$1" '$1 == k":" { n += $2 } END { print n + 0 }' build/test-summary.txt build-asan/test-summary.txt build/test-summary-vm.txt; }
n=$(meson test -C build --list 2>/dev/null | grep -c ' / ' || true)
echo "tests: $(count Ok) passed, $(count Skipped) skipped, 0 failed (${n} tests, normal and ASan+UBSan builds)"
