# SPDX-License-Identifier: GPL-2.0
# Which accelerator the x86 test guests run under, and QEMU supervised so
# that a KVM which cannot run the guest costs seconds, not a time limit.
# Source it after lib.sh; scripts/qemu.sh is its user.
#
# /dev/kvm can be writable and a paused VM can start while KVM cannot run
# the guest (nested setups without VMX/SVM: "KVM internal error ...
# emulation failure" at the first instruction it cannot emulate). So KVM is
# chosen only when a boot of the kernel under test, with the test initramfs
# (plan accel-probe: print VMSG-ACCEL-PROBE-OK, power off), reaches PID 1 in
# VMSG_ACCEL_PROBE_SECS. The verdict is decided once per run (VMSG_RUN_ID,
# set by the Makefile or by the first script) and kernel image, and kept in
# $VMSG_BUILD/accel.verdict; a guest that still fails under KVM turns the
# verdict into TCG for the rest of the run.
# shellcheck shell=bash

VMSG_QEMU_X86=${VMSG_QEMU_X86:-qemu-system-x86_64}
VMSG_KVM_DEV=${VMSG_KVM_DEV:-/dev/kvm}
VMSG_ACCEL_PROBE_SECS=${VMSG_ACCEL_PROBE_SECS:-20}
# A kernel under KVM prints its first console line in well under a second.
VMSG_KVM_SILENT_SECS=${VMSG_KVM_SILENT_SECS:-30}
ACCEL_PROBE_MARKER=VMSG-ACCEL-PROBE-OK
ACCEL_VERDICT=$VMSG_BUILD/accel.verdict

# Sets the array accel_args to QEMU's options for accelerator $1 (kvm|tcg).
accel_qemu_args() {
	case $1 in
	kvm) accel_args=(-accel kvm -cpu host) ;;
	# No LA57 under TCG: Linux 7.2 with KASAN on 5-level paging reports a
	# wild-memory-access for any interrupt that lands in identify_boot_cpu(),
	# while the CPU's capabilities are cleared and read again (KASAN's shadow
	# bounds follow X86_FEATURE_LA57, which reads 0 for that moment).
	*) accel_args=(-accel tcg -cpu max,la57=off) ;;
	esac
}

# The line of QEMU's log $1 that says KVM could not run the guest, if any.
kvm_failure_in_log() {
	grep -m1 'KVM internal error' "$1" 2>/dev/null
}

# Boots the test machine once and waits for it (VMSG_QEMU_DEBUG_ARGS, split on
# spaces, are added for debugging: "-s" for QEMU's gdb stub, say):
#   qemu_supervised <accel> <secs> <outdir> <kernel> <initrd> <append> [qemu args...]
# Writes <outdir>/{console,tap,qemu}.log. Returns 0 when QEMU ended by itself,
# 124 when it ran past <secs>, and 3 when the accelerator failed (KVM only:
# "KVM internal error" in qemu.log, or no console output for
# VMSG_KVM_SILENT_SECS), with the reason in accel_failure.
qemu_supervised() {
	local accel=$1 secs=$2 outdir=$3 kernel=$4 initrd=$5 append=$6 pid start why= rc
	shift 6
	accel_failure=
	accel_qemu_args "$accel"
	rm -f "$outdir"/{console,tap,qemu}.log
	"$VMSG_QEMU_X86" "${accel_args[@]}" -machine pc -smp 2 -m 1G \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 printk.time=0 panic=-1 oops=panic loglevel=7 $append" \
		-display none -monitor none -no-reboot \
		-serial "file:$outdir/console.log" -serial "file:$outdir/tap.log" \
		${VMSG_QEMU_DEBUG_ARGS:-} "$@" </dev/null >"$outdir/qemu.log" 2>&1 &
	pid=$!
	start=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$accel" = kvm ]; then
			why=$(kvm_failure_in_log "$outdir/qemu.log")
			if [ -z "$why" ] && [ ! -s "$outdir/console.log" ] &&
				[ $((SECONDS - start)) -ge "$VMSG_KVM_SILENT_SECS" ]; then
				why="no console output in $VMSG_KVM_SILENT_SECS s"
			fi
		fi
		[ -n "$why" ] || [ $((SECONDS - start)) -ge "$secs" ] && break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=124
	else
		wait "$pid"
		rc=0
	fi
	# QEMU can also print the internal error, or fail to start KVM, and exit.
	if [ "$accel" = kvm ] && [ -z "$why" ]; then
		why=$(kvm_failure_in_log "$outdir/qemu.log")
		[ -z "$why" ] && [ $rc = 0 ] && [ ! -s "$outdir/console.log" ] &&
			why="QEMU exited with no console output: $(tail -1 "$outdir/qemu.log")"
	fi
	if [ -n "$why" ]; then
		accel_failure=$why
		return 3
	fi
	return $rc
}

# The probe: a KVM boot of <kernel> with <initrd> that must reach PID 1.
# accel_probe <kernel> <initrd>; returns 0 when it did, else sets accel_why.
accel_probe() {
	local dir=$VMSG_BUILD/accel-probe rc start=$SECONDS
	mkdir -p "$dir"
	VMSG_KVM_SILENT_SECS=$((VMSG_ACCEL_PROBE_SECS < VMSG_KVM_SILENT_SECS ? VMSG_ACCEL_PROBE_SECS : VMSG_KVM_SILENT_SECS)) \
		qemu_supervised kvm "$VMSG_ACCEL_PROBE_SECS" "$dir" "$1" "$2" "vmsg.plan=accel-probe"
	rc=$?
	if [ $rc = 0 ] && grep -q "$ACCEL_PROBE_MARKER" "$dir/console.log" 2>/dev/null; then
		accel_why="a KVM boot of $(basename "$1") reached PID 1 in $((SECONDS - start)) s"
		return 0
	fi
	case $rc in
	3) accel_why="the KVM boot probe failed: $accel_failure" ;;
	124) accel_why="the KVM boot probe did not reach PID 1 in $VMSG_ACCEL_PROBE_SECS s" ;;
	*) accel_why="the KVM boot probe ended without reaching PID 1 ($(tail -1 "$dir/qemu.log" 2>/dev/null))" ;;
	esac
	return 1
}

# The identity of a verdict: this run and this kernel image.
accel_key() {
	echo "${VMSG_RUN_ID:-} $(stat -L -c '%n %s %Y' "$1")"
}

# Sets accel (kvm|tcg) and accel_why for guests of kernel $1 with initrd $2:
# VMSG_ACCEL=kvm|tcg as told; auto (the default) from this run's verdict,
# probing first when there is none. Logs the choice when it is made.
accel_choose() {
	local kernel=$1 initrd=$2 key line lock
	case ${VMSG_ACCEL:-auto} in
	kvm | tcg)
		accel=$VMSG_ACCEL accel_why="VMSG_ACCEL=$VMSG_ACCEL"
		return
		;;
	auto) ;;
	*) die "VMSG_ACCEL=$VMSG_ACCEL: say kvm, tcg or auto" ;;
	esac
	key=$(accel_key "$kernel")
	mkdir -p "$VMSG_BUILD"
	exec {lock}>>"$ACCEL_VERDICT.lock"
	flock "$lock"
	if [ -f "$ACCEL_VERDICT" ] && [ "$(head -1 "$ACCEL_VERDICT")" = "$key" ]; then
		line=$(sed -n 2p "$ACCEL_VERDICT")
		accel=${line%% *} accel_why=${line#* }
	else
		if [ ! -w "$VMSG_KVM_DEV" ]; then
			accel=tcg accel_why="$VMSG_KVM_DEV is not there or not writable"
		elif accel_probe "$kernel" "$initrd"; then
			accel=kvm
		else
			accel=tcg
		fi
		printf '%s\n%s %s\n' "$key" "$accel" "$accel_why" >"$ACCEL_VERDICT"
		log "accelerator: $(echo "$accel" | tr a-z A-Z), because $accel_why"
	fi
	flock -u "$lock"
	exec {lock}>&-
}

# After a guest failed under KVM: TCG for every later guest of this run.
# accel_demote <kernel> <reason>
accel_demote() {
	local lock
	exec {lock}>>"$ACCEL_VERDICT.lock"
	flock "$lock"
	printf '%s\ntcg %s\n' "$(accel_key "$1")" "$2" >"$ACCEL_VERDICT"
	flock -u "$lock"
	exec {lock}>&-
}
