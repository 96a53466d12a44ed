#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Helpers of the end-to-end selftests (sourced). The guest talks to
# tools/vmsg-device through the ivshmem-doorbell PCI device (1af4:1110) and
# the virtio_msg_shm bus module; scripts/e2e.sh starts both sides and passes
# the test parameters on the kernel command line (vmsg.NAME=VALUE).
#
# Tests run from their own directory, drivers/virtio_msg/ of a kselftest
# installation or of tools/testing/selftests, so kselftest's KTAP helpers are
# two levels up (the project's scenario tests sit beside, in drivers/scenario/).
. ../../kselftest/ktap_helpers.sh

# Reports one check: check "description" command [args...]. Unlike
# ktap_test_result, the command's arguments keep their quoting.
check() {
	desc=$1; shift
	if "$@"; then ktap_test_pass "$desc"; else ktap_test_fail "$desc"; fi
}

# Reports check $1 as skipped, with reason $2 as a diagnostic line before it.
skip_because() {
	ktap_print_msg "$1: $2"
	ktap_test_skip "$1"
}

# Ends a test with nothing to test when there is no ivshmem-doorbell PCI
# device (1af4:1110): the machine has no shared-memory bus at all. A device
# that is there but not bound to virtio_msg_shm is a failure, not a skip.
require_ivshmem() {
	for p in /sys/bus/pci/devices/*; do
		[ "$(cat "$p/vendor" 2>/dev/null)" = 0x1af4 ] &&
			[ "$(cat "$p/device" 2>/dev/null)" = 0x1110 ] && return 0
	done
	ktap_print_header
	ktap_skip_all "no ivshmem-doorbell PCI device (1af4:1110)"
	exit "$KSFT_SKIP"
}

# Value of vmsg.$1 on the kernel command line.
e2e_arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^vmsg\.$1=//p"; }

# A check that later checks of the same file depend on: once one failed, the
# rest are reported as skipped, naming the failure.
e2e_blocked=
chain() {
	desc=$1; shift
	if [ -n "$e2e_blocked" ]; then
		skip_because "$desc" "after failure of: $e2e_blocked"
	elif "$@"; then
		ktap_test_pass "$desc"
	else
		ktap_test_fail "$desc"
		e2e_blocked=$desc
	fi
}

# A check that needs the checks of chain() before it but that no later check
# depends on.
leaf() {
	desc=$1; shift
	if [ -n "$e2e_blocked" ]; then
		skip_because "$desc" "after failure of: $e2e_blocked"
	else
		check "$desc" "$@"
	fi
}

# Prints the sysfs directory of the first virtio device with device id $1.
vdev_by_id() {
	for d in /sys/bus/virtio/devices/*; do
		[ -r "$d/device" ] || continue
		[ "$(($(cat "$d/device")))" = "$1" ] && { echo "$d"; return 0; }
	done
	return 1
}

# Name of the driver bound to device directory $1 (empty when unbound).
bound_driver() { [ -L "$1/driver" ] && basename "$(readlink "$1/driver")"; }

# Waits up to $3 seconds (default 30) until the device with id $1 is bound to
# driver $2 and its probe is done: devices appear asynchronously after the bus
# module loaded (in a work item), the "driver" link before the driver's probe
# runs, and DRIVER_OK (status bit 2) once it has set the device up.
wait_bound() {
	i=0
	while [ $i -lt $((${3:-30} * 10)) ]; do
		d=$(vdev_by_id "$1") && [ "$(bound_driver "$d")" = "$2" ] &&
			[ $(($(cat "$d/status" 2>/dev/null || echo 0) & 4)) != 0 ] && return 0
		usleep 100000
		i=$((i + 1))
	done
	echo "# no virtio device with id $1 bound to $2 after ${3:-30} s; virtio devices:"
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d" ] && echo "#   $(basename "$d") device $(cat "$d/device") driver $(bound_driver "$d")"
	done
	return 1
}

# The PCI address of the ivshmem-doorbell device.
ivshmem_pci() {
	for p in /sys/bus/pci/devices/*; do
		[ "$(cat "$p/vendor")" = 0x1af4 ] && [ "$(cat "$p/device")" = 0x1110 ] && { basename "$p"; return 0; }
	done
	return 1
}

# Whether device directory $1 sits below the ivshmem-doorbell PCI device.
on_ivshmem() {
	pci=$(ivshmem_pci) || return 1
	case "$(readlink -f "$1")" in */"$pci"/*) return 0 ;; esac
	echo "# $(basename "$1") is at $(readlink -f "$1"), not below PCI device $pci"
	return 1
}

# Prints the hw_random sysfs directory.
hwrng_sysfs() {
	for d in /sys/class/misc/hw_random /sys/devices/virtual/misc/hw_random; do
		[ -r "$d/rng_current" ] && { echo "$d"; return 0; }
	done
	return 1
}

# Whether file $1 holds at least $2 different byte values.
distinct_bytes() {
	n=$(od -An -v -tx1 "$1" | tr -s ' ' '\n' | grep . | sort -u | wc -l)
	[ "$n" -ge "$2" ] || { echo "# $1: only $n distinct byte value(s)"; return 1; }
}

# Whether file $1 has exactly $2 bytes.
has_size() {
	n=$(wc -c <"$1")
	[ "$n" = "$2" ] || { echo "# $1: $n bytes, expected $2"; return 1; }
}

# Whether `cat $1` is $2.
reads() {
	v=$(cat "$1")
	[ "$v" = "$2" ] || { echo "# $1 is '$v', expected '$2'"; return 1; }
}

# Path of an e2fsprogs program: the real one, not a busybox applet of that name.
e2prog() {
	for d in /usr/sbin /sbin /usr/bin /bin; do
		[ -x "$d/$1" ] && [ ! -L "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	echo "/nonexistent/$1"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Sends file $1 through /dev/hvc0 and expects it back (vmsg-device's console
# echoes what the guest writes), byte for byte, within 30 s.
console_roundtrip() {
	n=$(wc -c <"$1")
	rm -f /tmp/hvc.rx
	(
		exec 3<>/dev/hvc0 || exit 1
		stty raw -echo -echonl -iexten <&3 || exit 1
		timeout 30 head -c "$n" <&3 >/tmp/hvc.rx &
		reader=$!
		timeout 30 cat "$1" >&3 || { echo "# writing to /dev/hvc0 failed or timed out"; exit 1; }
		wait $reader
	)
	got=$(wc -c </tmp/hvc.rx 2>/dev/null || echo 0)
	[ "$got" = "$n" ] || { echo "# /dev/hvc0: $got of $n bytes came back"; return 1; }
	cmp "$1" /tmp/hvc.rx || { echo "# /dev/hvc0: the data came back changed"; return 1; }
}

# Runs a command with its output kept out of the KTAP stream; on failure the
# output is shown as diagnostic lines.
quiet() {
	out=$("$@" 2>&1)
	rc=$?
	[ $rc = 0 ] && return 0
	echo "$out" | tail -n 20 | sed 's/^/# /'
	echo "# '$*' exited with status $rc"
	return $rc
}

# Number of lines in the kernel log so far, for kernel_log_clean.
log_mark() { dmesg -r | wc -l; }

# Whether the kernel logged no warning or error (level 0-4; user-space lines
# carry a facility and do not match) mentioning virtio after line $1 (0: the
# whole log), apart from the taint warning of out-of-tree modules.
kernel_log_clean() {
	bad=$(dmesg -r | tail -n +$(($1 + 1)) | grep -E '^<[0-4]>' | grep -i virtio | grep -v 'taints kernel')
	[ -z "$bad" ] && return 0
	echo "$bad" | head -n 10 | sed 's/^/# kernel: /'
	return 1
}
