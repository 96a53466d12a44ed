#!/usr/bin/env bash
# Boots the test guest and records its two serial lines.
# Usage: qemu.sh <bzImage> <initramfs> <outdir> <timeout-seconds> [kernel args] [-- qemu args]
# Writes <outdir>/console.log (kernel console), <outdir>/tap.log (selftest
# KTAP) and <outdir>/status ("ok" or "timeout"). Uses KVM where /dev/kvm
# works and falls back to TCG.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

kernel=$1 initrd=$2 outdir=$3 secs=$4
shift 4
append=
if [ $# -gt 0 ] && [ "$1" != -- ]; then append=$1; shift; fi
[ "${1:-}" = -- ] && shift

# /dev/kvm can exist while KVM cannot run a vCPU (nested setups): probe it
# with a paused VM that must still be alive after two seconds.
# No LA57 under TCG: Linux 7.2 with KASAN on 5-level paging reports a
# wild-memory-access for any interrupt that lands in identify_boot_cpu(),
# while the CPU's capabilities are cleared and read again (KASAN's shadow
# bounds follow X86_FEATURE_LA57, which reads 0 for that moment). A slow,
# loaded TCG guest takes its first timer interrupts there now and then.
accel=(-accel tcg -cpu max,la57=off)
if [ -w /dev/kvm ] && [ "${VMSG_ACCEL:-auto}" != tcg ]; then
	# In a child shell so that a QEMU abort is not reported on our stderr.
	sh -c 'timeout 2 qemu-system-x86_64 -accel kvm -cpu host -machine pc -display none \
		-monitor none -serial none -nodefaults -S </dev/null >/dev/null 2>&1; echo $?' 2>/dev/null |
		grep -qx 124 && accel=(-accel kvm -cpu host)
fi

mkdir -p "$outdir"

boot() {
	rm -f "$outdir"/{console,tap}.log "$outdir/status"
	timeout --foreground -k 5 "$secs" qemu-system-x86_64 \
		"${accel[@]}" -machine pc -smp 2 -m 1G \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 printk.time=0 panic=-1 oops=panic loglevel=7 $append" \
		-display none -monitor none -no-reboot \
		-serial "file:$outdir/console.log" -serial "file:$outdir/tap.log" \
		"$@" </dev/null >"$outdir/qemu.log" 2>&1
	local rc=$?
	if [ $rc = 124 ] || [ $rc = 137 ]; then echo timeout >"$outdir/status"; else echo ok >"$outdir/status"; fi
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
