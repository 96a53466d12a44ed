#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: builds everything, runs every test and prints one summary line.
#
# Steps: install what is missing, get the (cached) kernel, build the modules
# with clippy and -D warnings, check formatting, run the host `cargo test`,
# boot the test guest (KUnit suites run as modules load, then the selftests),
# boot the arm64 guest (the FF-A bus; scripts/arm64.sh), and prove the
# harness itself notices a failing test, a WARN and a hang.
# Results: build/test-results.tap; exit status non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"

mkdir -p "$VMSG_BUILD"
# Results of an earlier run must not be counted again.
rm -rf "$VMSG_BUILD"/guest-main "$VMSG_BUILD"/guest-e2e "$VMSG_BUILD"/e2e-skip.tap \
	"$VMSG_BUILD"/harness.tap "$VMSG_BUILD"/accel-selftest.tap "$VMSG_BUILD"/cargo-test.log{,.rc}
rm -rf "$VMSG_BUILD"/scenarios
rm -rf "$VMSG_BUILD"/guest-arm64 "$VMSG_BUILD"/arm64-skip.tap
steps=$VMSG_BUILD/steps.tap
: >"$steps"
nstep=0

# Records one step of the run as a test: step "name" command [args...].
step() {
	local name=$1; shift
	nstep=$((nstep + 1))
	log "$name"
	if "$@"; then
		echo "ok $nstep $name" >>"$steps"
		return 0
	fi
	echo "not ok $nstep $name" >>"$steps"
	log "FAILED: $name"
	return 1
}

report() {
	local args=(--out "$VMSG_BUILD/test-results.tap")
	args+=(--tap "$steps")
	[ -f "$VMSG_BUILD/cargo-test.log" ] && args+=(--cargo "$VMSG_BUILD/cargo-test.log")
	[ -f "$VMSG_BUILD/guest-main/status" ] && args+=(--guest "main=$VMSG_BUILD/guest-main")
	[ -f "$VMSG_BUILD/guest-e2e/status" ] && args+=(--guest "e2e=$VMSG_BUILD/guest-e2e")
	[ -f "$VMSG_BUILD/guest-e2e/host.tap" ] && args+=(--tap "$VMSG_BUILD/guest-e2e/host.tap")
	[ -f "$VMSG_BUILD/e2e-skip.tap" ] && args+=(--tap "$VMSG_BUILD/e2e-skip.tap")
	for d in "$VMSG_BUILD"/scenarios/*/; do # scripts/scenarios.sh, one per scenario
		[ -f "$d/status" ] && args+=(--guest "scenario-$(basename "$d")=$d")
		[ -f "$d/host.tap" ] && args+=(--tap "$d/host.tap")
	done
	[ -f "$VMSG_BUILD/harness.tap" ] && args+=(--tap "$VMSG_BUILD/harness.tap")
	[ -f "$VMSG_BUILD/accel-selftest.tap" ] && args+=(--tap "$VMSG_BUILD/accel-selftest.tap")
	[ -f "$VMSG_BUILD/guest-arm64/status" ] && args+=(--guest "arm64=$VMSG_BUILD/guest-arm64")
	[ -f "$VMSG_BUILD/arm64-skip.tap" ] && args+=(--tap "$VMSG_BUILD/arm64-skip.tap")
	python3 "$VMSG_TOP/scripts/results.py" report "${args[@]}"
	exit $?
}

step setup scripts/setup.sh || report
KBUILD=$(scripts/kernel.sh) || { step kernel false; report; }
echo "$KBUILD" >"$VMSG_BUILD/kbuild-dir"
step modules make --no-print-directory modules KDIR="$KBUILD" CLIPPY=1 || report
# The same sources with the KUnit options on (drivers/Kconfig), for the KUnit
# guest; the modules above are the ones users load, and the e2e and scenario
# guests load those.
step kunit-modules make --no-print-directory kunit-modules KDIR="$KBUILD" CLIPPY=1 || report
step kunit-suites-only-in-test-modules scripts/kunit-sections.sh drivers build/kunit-src/drivers
step rustfmt make --no-print-directory rustfmt-check
step bindings-up-to-date scripts/gen-bindings.sh --check
step checkpatch scripts/checkpatch.sh "$KBUILD"
# The patch series for a kernel tree (README, "In your own kernel tree"),
# from the source of the kernel built above.
step intree-series-applies sh -c 'python3 scripts/intree-patch.py "$1" "$2" --check >/dev/null' _ \
	"$(kernel_source_of "$KBUILD")" "$VMSG_BUILD/intree"

# Host tools: tests, lints, formatting.
(cd tools && cargo test --workspace 2>&1; echo $? >"$VMSG_BUILD/cargo-test.log.rc") >"$VMSG_BUILD/cargo-test.log"
step cargo-clippy sh -c 'cd tools && cargo clippy --workspace --all-targets --quiet -- -D warnings'
step cargo-fmt sh -c 'cd tools && cargo fmt --all --check'

# The accelerator choice itself, against a fake QEMU (seconds); the real
# choice is made, and logged, by the first guest's boot.
tests/harness/accel-selftest.sh >"$VMSG_BUILD/accel-selftest.tap"

# The guest: every module built with its KUnit suites, which run at load, then
# the selftests. The e2e and scenario guests get the modules users load.
kernel_image=$KBUILD/arch/x86/boot/bzImage
mapfile -t kos < <(find build/kunit-src/drivers build/kunit-src/tests/harness -name '*.ko' | sort)
step kunit-guest-image scripts/guest-image.sh "$VMSG_BUILD/guest-kunit.cpio.gz" "${kos[@]}" || report
mapfile -t kos < <(find drivers -name '*.ko' | sort)
step modules-install install_modules "$KBUILD" "$VMSG_BUILD/modroot" || report
VMSG_GUEST_MODROOT=$VMSG_BUILD/modroot step guest-image \
	scripts/guest-image.sh "$VMSG_BUILD/guest.cpio.gz" "${kos[@]}" || report
scripts/qemu.sh "$kernel_image" "$VMSG_BUILD/guest-kunit.cpio.gz" "$VMSG_BUILD/guest-main" \
	"${VMSG_GUEST_TIMEOUT:-600}" "vmsg.plan=check"

# End to end: real virtio drivers over virtio_msg_shm, served by
# tools/vmsg-device (scripts/e2e.sh). Skipped until the bus module builds.
if [ -f drivers/virtio_msg_shm/virtio_msg_shm.ko ]; then
	scripts/e2e.sh "$kernel_image" "$VMSG_BUILD/guest.cpio.gz" "$VMSG_BUILD/guest-e2e"
	# Scenarios: a boot each against vmsg-device configured differently
	# (tests/e2e/scenarios, tier check; the tier soak is `make soak`).
	scripts/scenarios.sh "$kernel_image" "$VMSG_BUILD/guest.cpio.gz" "$VMSG_BUILD/scenarios" check
else
	printf 'KTAP version 1\n1..1\nok 1 e2e # SKIP drivers/virtio_msg_shm/virtio_msg_shm.ko not built\n' >"$VMSG_BUILD/e2e-skip.tap"
fi

# The kernel's own KTAP parser (tools/testing/kunit/kunit.py parse) on what the
# guests printed: KUnit's results must all pass by its reading too, and the
# kselftest runner's and the scenario runner's KTAP must parse with no error.
ksrc=$(kernel_source_of "$KBUILD")
step kunit-results-by-kunit.py-parse kunit_py_parse "$VMSG_BUILD/guest-main/console.log" "$ksrc" all-pass
if [ -f "$VMSG_BUILD/guest-e2e/tap.log" ]; then
	step kselftest-ktap-by-kunit.py-parse kunit_py_parse "$VMSG_BUILD/guest-e2e/tap.log" "$ksrc"
fi
scenario_ktap_parses() {
	local t rc=0
	for t in "$VMSG_BUILD"/scenarios/*/tap.log; do
		[ -f "$t" ] || continue
		kunit_py_parse "$t" "$ksrc" || rc=1
	done
	return $rc
}
step scenario-ktap-by-kunit.py-parse scenario_ktap_parses

# arm64: the modules and the FF-A bus (drivers/virtio_msg_ffa, arm64 only)
# built for an arm64 kernel with clippy and -D warnings, then a boot of QEMU's
# virt machine (TCG, no FF-A firmware): the modules load, their KUnit suites
# run (the FF-A bus against its fake partition), the bus stays idle and
# everything unloads. See scripts/arm64.sh. VMSG_ARM64=0 skips it.
if [ "${VMSG_ARM64:-1}" = 0 ]; then
	printf 'KTAP version 1\n1..1\nok 1 arm64 # SKIP VMSG_ARM64=0\n' >"$VMSG_BUILD/arm64-skip.tap"
elif step arm64-kernel sh -c 'scripts/arm64.sh kernel >"$1"' _ "$VMSG_BUILD/kbuild-arm64-dir"; then
	KBUILD_ARM64=$(cat "$VMSG_BUILD/kbuild-arm64-dir")
	if step arm64-modules scripts/arm64.sh modules "$KBUILD_ARM64" &&
		step arm64-guest-image scripts/arm64.sh image "$VMSG_BUILD/arm64-guest.cpio.gz"; then
		scripts/arm64.sh boot "$KBUILD_ARM64" "$VMSG_BUILD/arm64-guest.cpio.gz" \
			"$VMSG_BUILD/guest-arm64" "${VMSG_ARM64_TIMEOUT:-600}"
	fi
fi

# Harness self-tests: each guest misbehaves on purpose and the verdict must
# name the failure. The hang case waits out its own, shorter, time limit.
harness_case() {
	local mode=$1 secs=$2 expect=$3 dir=$VMSG_BUILD/guest-harness-$1
	scripts/qemu.sh "$kernel_image" "$VMSG_BUILD/guest-kunit.cpio.gz" "$dir" "$secs" "vmsg.plan=harness-$mode"
	python3 scripts/results.py verdict "$dir" >"$dir/verdict"
	if [ -z "$expect" ]; then
		[ ! -s "$dir/verdict" ] || { cat "$dir/verdict" >&2; return 1; }
		grep -q '^ *ok [0-9]* mode_is_not_fail' "$dir/console.log" # The passing KUnit case was seen.
	else
		grep -q "^$expect: " "$dir/verdict"
	fi
}
log "harness self-tests"
{
	echo "KTAP version 1"
	echo "1..4"
	harness_case 3 "${VMSG_HANG_TIMEOUT:-90}" timeout >/dev/null 2>&1 &
	hang=$!
	harness_case 0 300 "" && echo "ok 1 harness:passing-kunit-test-is-clean" || echo "not ok 1 harness:passing-kunit-test-is-clean"
	harness_case 1 300 test-failure && echo "ok 2 harness:failing-kunit-test-fails-the-run" || echo "not ok 2 harness:failing-kunit-test-fails-the-run"
	harness_case 2 300 warning && echo "ok 3 harness:kernel-warn-fails-the-run" || echo "not ok 3 harness:kernel-warn-fails-the-run"
	wait $hang && echo "ok 4 harness:hung-guest-fails-the-run" || echo "not ok 4 harness:hung-guest-fails-the-run"
} >"$VMSG_BUILD/harness.tap"

report
