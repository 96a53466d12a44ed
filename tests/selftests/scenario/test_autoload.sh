#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The modules as users install them load by themselves (issue 14): the image
# holds them under /lib/modules/$(uname -r) as `make modules_install` put
# them there (with its depmod). With both unloaded, modprobe of the ivshmem
# PCI device's modalias, as udev runs it: the PCI alias of virtio_msg_shm
# picks it, modules.dep brings virtio_msg first, and the bus and its devices
# come up.
. ./lib.sh
ktap_print_header
ktap_set_plan 4
moddir=/lib/modules/$(uname -r)

installed() {
	[ -f "$moddir/modules.dep" ] || { echo "# no $moddir/modules.dep"; return 1; }
	grep -q ' virtio_msg_shm$' "$moddir/modules.alias" ||
		{ echo "# no alias of virtio_msg_shm in $moddir/modules.alias"; return 1; }
}

unloaded() {
	quiet rmmod virtio_msg_shm && quiet rmmod virtio_msg || return 1
	! grep -q '^virtio_msg' /proc/modules || { echo "# still loaded: $(grep '^virtio_msg' /proc/modules)"; return 1; }
}

loaded() { grep -q '^virtio_msg_shm ' /proc/modules && grep -q '^virtio_msg ' /proc/modules; }

# What udev does for every device at boot (coldplug), and for a new one on
# its uevent: modprobe the device's MODALIAS. The test kernel has no netlink
# (no CONFIG_NET) and no uevent helper, so the uevent itself cannot reach
# user space here; the modalias is the one that uevent carries.
autoloads() {
	pci=$(ivshmem_pci) || { echo "# no ivshmem PCI device"; return 1; }
	alias=$(cat "/sys/bus/pci/devices/$pci/modalias")
	echo "# modprobe $alias"
	quiet modprobe "$alias" || return 1
	wait_for 30 loaded ||
		{ echo "# not loaded: $(grep '^virtio' /proc/modules | tr '\n' ' ')"; return 1; }
}

devices_up() {
	wait_bound 4 virtio_rng 60 && wait_bound 2 virtio_blk 60 && wait_bound 3 virtio_console 60
}

chain "the installed modules and their alias are in $moddir" installed
chain "virtio_msg_shm and virtio_msg unload" unloaded
chain "modprobe of the ivshmem device's modalias loads both" autoloads
leaf "the bus comes up and every device is bound" devices_up
ktap_finished
