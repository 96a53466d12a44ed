#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A stand-in for qemu-system-x86_64 in the accelerator self-test
# (tests/harness/accel-selftest.sh). Under -accel kvm it does what
# FAKE_QEMU_KVM says, under -accel tcg what FAKE_QEMU_TCG says:
#   boot            print a kernel line (and the probe's marker when the
#                   command line asks for the probe) to the first -serial
#                   file, then exit 0, as a guest that powers off
#   internal-error  print KVM's emulation failure to stderr, then hang
#   silent          print nothing, hang
#   probe-only      boot for the accelerator probe, internal-error otherwise
# Every start appends its accelerator to FAKE_QEMU_CALLS.
accel= console= append=
while [ $# -gt 0 ]; do
	case $1 in
	-accel) accel=$2; shift ;;
	-append) append=$2; shift ;;
	-serial) [ -z "$console" ] && console=${2#file:}; shift ;;
	esac
	shift
done
echo "$accel" >>"$FAKE_QEMU_CALLS"
case $accel in
kvm) what=$FAKE_QEMU_KVM ;;
*) what=$FAKE_QEMU_TCG ;;
esac
if [ "$what" = probe-only ]; then
	case $append in
	*vmsg.plan=accel-probe*) what=boot ;;
	*) what=internal-error ;;
	esac
fi
case $what in
boot)
	echo "Linux version 7.2.11 (fake)" >"$console"
	case $append in
	*vmsg.plan=accel-probe*) echo "VMSG-ACCEL-PROBE-OK" >>"$console" ;;
	esac
	exit 0
	;;
internal-error)
	printf 'KVM internal error. Suberror: 1\nemulation failure\n' >&2
	exec sleep 1000
	;;
*) exec sleep 1000 ;;
esac
