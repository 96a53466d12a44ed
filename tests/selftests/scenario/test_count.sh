#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Exactly $1 virtio devices, one per device number, after the device side
# announced devices more than once (duplicate adds, flapping): each is bound
# to its driver, no two have the same device id (vmsg-device's standard
# devices are of distinct kinds), the instance has one debugfs directory per
# device, and it stays so for 2 s (a late duplicate add would show).
. ./lib.sh
ktap_print_header
ktap_set_plan 3

# Device ids of the virtio devices, sorted, one a line.
ids() {
	for d in /sys/bus/virtio/devices/*; do
		[ -r "$d/device" ] && echo $(($(cat "$d/device")))
	done | sort -n
}

distinct_ids() {
	dup=$(ids | uniq -d)
	[ -z "$dup" ] || { echo "# device ids more than once: $(echo $dup)"; list_devices; return 1; }
}

one_debugfs_dir_each() {
	n=$(ls -d /sys/kernel/debug/virtio_msg/*/dev* 2>/dev/null | wc -l)
	[ "$n" = "$1" ] || { echo "# $n debugfs device directories: $(ls -d /sys/kernel/debug/virtio_msg/*/dev* 2>/dev/null)"; return 1; }
}

ids_and_dirs() { distinct_ids && one_debugfs_dir_each "$1"; }

stays() { usleep 2000000; all_bound "$1" && distinct_ids; }

chain "$1 virtio devices, each bound to its driver" wait_for 60 all_bound "$1"
chain "no device id appears twice, one debugfs directory per device" ids_and_dirs "$1"
leaf "still so 2 s later" stays "$1"
ktap_finished
