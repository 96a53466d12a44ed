#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Self-test of the accelerator choice (scripts/accel.sh through
# scripts/qemu.sh), against tests/harness/fake-qemu.sh: a KVM boot probe that
# reaches PID 1 chooses KVM; one that logs a KVM internal error or prints
# nothing chooses TCG, in seconds; the verdict is made once per run; a guest
# that fails under KVM boots again under TCG, and later guests use TCG.
# Prints KTAP (harness:accel-*).
set -uo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/kernel"
: >"$work/initrd"
: >"$work/kvm"
export VMSG_QEMU_X86=$VMSG_TOP/tests/harness/fake-qemu.sh
export VMSG_ACCEL_PROBE_SECS=4 VMSG_KVM_SILENT_SECS=4
n=0 results=()

# One run: run <name> <FAKE_QEMU_KVM> <FAKE_QEMU_TCG> <VMSG_ACCEL> <kvm device> <guests>
# Boots <guests> guests through scripts/qemu.sh in one run; leaves the
# accelerators QEMU was started with in $calls, each guest's outcome
# ("status/accel") in $ran, the verdict's reason in $why and the time in $took.
run() {
	local name=$1 i start=$SECONDS
	export FAKE_QEMU_KVM=$2 FAKE_QEMU_TCG=$3 VMSG_ACCEL=$4 VMSG_KVM_DEV=$5
	export VMSG_BUILD=$work/$name VMSG_RUN_ID=selftest-$name FAKE_QEMU_CALLS=$work/$name.calls
	mkdir -p "$VMSG_BUILD"
	: >"$FAKE_QEMU_CALLS"
	ran=
	for i in $(seq "$6"); do
		"$VMSG_TOP/scripts/qemu.sh" "$work/kernel" "$work/initrd" "$VMSG_BUILD/guest$i" 20 \
			"vmsg.plan=check" 2>>"$work/$name.log"
		ran="$ran $(cat "$VMSG_BUILD/guest$i/status")/$(cat "$VMSG_BUILD/guest$i/accel")"
	done
	ran=${ran# }
	calls=$(tr '\n' ' ' <"$FAKE_QEMU_CALLS" | sed 's/ $//')
	why=$(sed -n 's/^\[vmsg\] accelerator: //p' "$work/$name.log" | head -1)
	took=$((SECONDS - start))
}

# check <name> <condition...>: one KTAP line.
check() {
	local name=$1
	shift
	n=$((n + 1))
	if "$@"; then
		results+=("ok $n harness:accel-$name")
	else
		results+=("not ok $n harness:accel-$name # calls '$calls', guests '$ran', verdict '$why', $took s")
	fi
}
is() { [ "$1" = "$2" ]; }
has() { case $1 in *"$2"*) return 0 ;; esac; return 1; }

run kvm-boots boot boot auto "$work/kvm" 2
check probe-boot-chooses-kvm is "$calls/$ran" "kvm kvm kvm/ok/kvm ok/kvm"
check choice-is-logged has "$why" "KVM, because a KVM boot of kernel reached PID 1"

run kvm-internal-error internal-error boot auto "$work/kvm" 2
check internal-error-chooses-tcg is "$calls/$ran" "kvm tcg tcg/ok/tcg ok/tcg"
check internal-error-names-why has "$why" "TCG, because the KVM boot probe failed: KVM internal error"
check internal-error-is-seen-at-once [ "$took" -lt "$VMSG_ACCEL_PROBE_SECS" ]

run kvm-silent silent boot auto "$work/kvm" 1
check silent-probe-chooses-tcg is "$calls/$ran" "kvm tcg/ok/tcg"
check silent-probe-names-why has "$why" "TCG, because the KVM boot probe failed: no console output in 4 s"

run guest-fails-under-kvm probe-only boot auto "$work/kvm" 2
check guest-reboots-under-tcg-then-tcg-stays is "$calls/$ran" "kvm kvm tcg tcg/ok/tcg ok/tcg"
check guest-failure-is-recorded [ -s "$VMSG_BUILD/guest1/accel-failure" ] && [ ! -e "$VMSG_BUILD/guest2/accel-failure" ]

run forced-kvm-falls-back internal-error boot kvm "$work/kvm" 1
check forced-kvm-skips-probe-and-falls-back is "$calls/$ran" "kvm tcg/ok/tcg"

run forced-tcg boot boot tcg "$work/kvm" 1
check forced-tcg-never-tries-kvm is "$calls/$ran" "tcg/ok/tcg"

run no-kvm-device boot boot auto "$work/absent" 1
check no-kvm-device-chooses-tcg-without-probe is "$calls/$ran" "tcg/ok/tcg"

# A guest that hangs under TCG is the guest's own failure: a timeout.
FAKE_QEMU_TCG=silent VMSG_ACCEL=tcg VMSG_BUILD=$work/hang FAKE_QEMU_CALLS=$work/hang.calls \
	"$VMSG_TOP/scripts/qemu.sh" "$work/kernel" "$work/initrd" "$work/hang/guest" 2 vmsg.plan=check 2>/dev/null
ran=$(cat "$work/hang/guest/status")
check tcg-hang-is-a-timeout is "$ran" timeout

echo "KTAP version 1"
echo "1..$n"
printf '%s\n' "${results[@]}"
