#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# One virtio_msg_shm bus instance on the ivshmem-doorbell device carries the
# three devices vmsg-device serves (rng, blk, console), each bound to its
# unmodified virtio driver and driven to DRIVER_OK.
. ./lib.sh
require_ivshmem
ktap_print_header
ktap_set_plan 10

ivshmem_bound() {
	pci=$(ivshmem_pci) || { echo "# no PCI device 1af4:1110"; return 1; }
	drv=$(bound_driver "/sys/bus/pci/devices/$pci")
	[ "$drv" = virtio_msg_shm ] || { echo "# $pci is bound to '$drv'"; return 1; }
}

# Every virtio device is one of ours: below the ivshmem device, status
# ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK and neither FAILED nor NEEDS_RESET.
all_on_ivshmem_and_ok() {
	rc=0
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d" ] || continue
		on_ivshmem "$d" || rc=1
		s=$(($(cat "$d/status")))
		[ $((s & 0xcf)) = $((0x0f)) ] || { echo "# $(basename "$d"): status $(cat "$d/status")"; rc=1; }
	done
	return $rc
}

count_devices() {
	n=$(ls /sys/bus/virtio/devices | wc -l)
	[ "$n" = 3 ] || { echo "# $n virtio devices: $(ls /sys/bus/virtio/devices)"; return 1; }
}

check "virtio_msg is loaded" grep -q '^virtio_msg ' /proc/modules
check "virtio_msg_shm is loaded" grep -q '^virtio_msg_shm ' /proc/modules
check "the ivshmem-doorbell device is bound to virtio_msg_shm" ivshmem_bound
check "virtio-rng (id 4) is bound to virtio_rng" wait_bound 4 virtio_rng
check "virtio-blk (id 2) is bound to virtio_blk" wait_bound 2 virtio_blk
check "virtio-console (id 3) is bound to virtio_console" wait_bound 3 virtio_console
check "exactly three virtio devices" count_devices
check "all sit below the ivshmem device with status DRIVER_OK" all_on_ivshmem_and_ok
check "the kernel log names virtio_msg_shm" sh -c 'dmesg | grep -q "virtio_msg_shm"'
check "no warning or error about virtio in the kernel log" kernel_log_clean 0
ktap_finished
