#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The bus instance must not come up (negotiation refused or failed): the
# module is loaded, its probe of the ivshmem device failed, and there is no
# virtio device and no virtio_msg instance. scripts/scenarios.sh checks the
# log line that says why.
. ./lib.sh
ktap_print_header
ktap_set_plan 5

has_ivshmem() { ivshmem_pci >/dev/null || { echo "# no PCI device 1af4:1110"; return 1; }; }

ivshmem_unbound() {
	pci=$(ivshmem_pci) || return 1
	drv=$(bound_driver "/sys/bus/pci/devices/$pci")
	[ -z "$drv" ] || { echo "# $pci is bound to $drv"; return 1; }
}

check "virtio_msg_shm is loaded" grep -q '^virtio_msg_shm ' /proc/modules
check "the ivshmem-doorbell device is there" has_ivshmem
check "virtio_msg_shm did not bind to it (its probe failed)" ivshmem_unbound
check "no virtio device exists" no_devices
check "no bus instance was registered with virtio_msg" no_instance
ktap_finished
