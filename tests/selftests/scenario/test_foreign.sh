#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Two ivshmem devices (PCI 1af4:1110, an id every ivshmem user shares): the
# bus's, and one whose region is another user's (no virtio-msg magic). The
# driver binds to the first only, and leaves the other alone with ENODEV and
# an information line naming it; scripts/scenarios.sh checks that nothing
# was logged as an error.
. ./lib.sh
ktap_print_header
ktap_set_plan 3

ivshmem_devices() {
	for p in /sys/bus/pci/devices/*; do
		[ "$(cat "$p/vendor")" = 0x1af4 ] && [ "$(cat "$p/device")" = 0x1110 ] && basename "$p"
	done
}

two_devices() {
	n=$(ivshmem_devices | wc -l)
	[ "$n" = 2 ] || { echo "# $n ivshmem PCI devices"; return 1; }
}

# Exactly one bound to virtio_msg_shm; the other, $foreign, to nothing.
one_bound() {
	bound=0 foreign=
	for pci in $(ivshmem_devices); do
		case $(bound_driver "/sys/bus/pci/devices/$pci") in
		virtio_msg_shm) bound=$((bound + 1)) ;;
		'') foreign=$pci ;;
		*) echo "# $pci is bound to $(bound_driver "/sys/bus/pci/devices/$pci")"; return 1 ;;
		esac
	done
	[ "$bound" = 1 ] && [ -n "$foreign" ] || { echo "# $bound bound, foreign '$foreign'"; return 1; }
}

left_alone_logged() {
	dmesg | grep -q "virtio_msg_shm $foreign: no virtio-msg region (magic 0x0): left alone" ||
		{ echo "# no line for $foreign:"; dmesg | grep virtio_msg_shm | sed 's/^/# /'; return 1; }
}

chain "two ivshmem devices are there" two_devices
chain "virtio_msg_shm bound to the bus's only" one_bound
chain "the foreign region is named in an information line" left_alone_logged
ktap_finished
