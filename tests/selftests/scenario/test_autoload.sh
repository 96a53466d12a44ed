#!/bin/sh
# The modules as users install them load by themselves (issue 14): the image
# holds them under /lib/modules/$(uname -r) as `make modules_install` put
# them there (with its depmod). With both unloaded, a uevent of the ivshmem
# PCI device reaches mdev, listening on netlink as udev would, which runs
# modprobe with the device's MODALIAS (/etc/mdev.conf below): the PCI alias
# of virtio_msg_shm picks it, modules.dep brings virtio_msg first, and the
# bus and its devices come up.
. ./lib.sh
ktap_plan 4
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

autoloads() {
	pci=$(ivshmem_pci) || { echo "# no ivshmem PCI device"; return 1; }
	echo '$MODALIAS=.* 0:0 0660 @modprobe "$MODALIAS"' >/etc/mdev.conf
	mdev -df >/dev/null 2>&1 </dev/null &
	mdev_pid=$!
	# mdev is listening once it has its netlink socket; then the uevent.
	sleep 1
	echo "# uevent of $pci: $(cat "/sys/bus/pci/devices/$pci/modalias")"
	echo add >"/sys/bus/pci/devices/$pci/uevent"
	wait_for 30 loaded
	rc=$?
	kill "$mdev_pid" 2>/dev/null
	[ $rc = 0 ] || { echo "# not loaded 30 s after the uevent: $(grep '^virtio' /proc/modules | tr '\n' ' ')"; return 1; }
}

devices_up() {
	wait_bound 4 virtio_rng 60 && wait_bound 2 virtio_blk 60 && wait_bound 3 virtio_console 60
}

chain "the installed modules and their alias are in $moddir" installed
chain "virtio_msg_shm and virtio_msg unload" unloaded
chain "a uevent of the ivshmem device loads both, by its alias" autoloads
leaf "the bus comes up and every device is bound" devices_up
ktap_finish
