#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boots the test guest and records its two serial lines.
# Usage: qemu.sh <bzImage> <initramfs> <outdir> <timeout-seconds> [kernel args] [-- qemu args]
# Writes <outdir>/console.log (kernel console), <outdir>/tap.log (selftest
# KTAP), <outdir>/status ("ok" or "timeout") and <outdir>/accel (kvm or tcg:
# what the guest ran under; scripts/accel.sh chooses).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

kernel=$1 initrd=$2 outdir=$3 secs=$4
shift 4
append=
if [ $# -gt 0 ] && [ "$1" != -- ]; then append=$1; shift; fi
[ "${1:-}" = -- ] && shift

. "$VMSG_TOP/scripts/accel.sh"
mkdir -p "$outdir"
rm -f "$outdir/accel-failure"
accel_choose "$kernel" "$initrd"

# One boot under the chosen accelerator; an accelerator failure under KVM is
# not the guest's: the same boot runs again under TCG, and every later guest
# of this run uses TCG. <outdir>/accel says what ran.
boot() {
	local rc
	rm -f "$outdir/status"
	qemu_supervised "$accel" "$secs" "$outdir" "$kernel" "$initrd" "$append" "$@"
	rc=$?
	if [ $rc = 3 ]; then
		log "guest $(basename "$outdir"): accelerator failure under KVM ($accel_failure): booting again under TCG"
		echo "$accel_failure" >"$outdir/accel-failure"
		accel_demote "$kernel" "KVM failed a guest of this run: $accel_failure"
		accel=tcg accel_why="KVM failed this guest"
		qemu_supervised tcg "$secs" "$outdir" "$kernel" "$initrd" "$append" "$@"
		rc=$?
	fi
	echo "$accel" >"$outdir/accel"
	if [ $rc = 124 ]; then echo timeout >"$outdir/status"; else echo ok >"$outdir/status"; fi
}

boot "$@"
# A kernel report before /init ran cannot come from the project's code: it is
# the base kernel under emulation on a loaded host. Boot once more, keep the
# first console, and say so; a second one is reported like any other.
early=$(python3 "$VMSG_TOP/scripts/results.py" early-boot "$outdir")
if [ -n "$early" ]; then
	mv "$outdir/console.log" "$outdir/console.early-boot-report.log"
	log "guest $(basename "$outdir"): kernel report before /init, booting again: $(echo "$early" | head -1)"
	boot "$@"
fi
exit 0
