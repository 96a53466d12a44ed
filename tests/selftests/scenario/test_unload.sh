#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Whatever happened before, the bus module and then the transport unload:
# no virtio device and no bus instance remain, and neither module's debugfs
# directory (rust/module_dir.rs: it goes with its last instance).
. ./lib.sh
ktap_print_header
ktap_set_plan 5

timed_rmmod() {
	t=$(now)
	quiet rmmod "$1" || return 1
	echo "# rmmod $1 took $(ms_since "$t") ms"
}

chain "virtio_msg_shm unloads" timed_rmmod virtio_msg_shm
chain "no virtio device remains" no_devices
chain "no bus instance remains registered" no_instance
no_debugfs_dirs() {
	for m in virtio_msg_shm virtio_msg; do
		[ ! -e "/sys/kernel/debug/$m" ] || { echo "# /sys/kernel/debug/$m: $(ls "/sys/kernel/debug/$m")"; return 1; }
	done
}

chain "no debugfs directory of either module remains" no_debugfs_dirs
chain "virtio_msg unloads" timed_rmmod virtio_msg
ktap_finished
