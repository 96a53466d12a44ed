#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Hot add while the bus is up. The guest cannot reach vmsg-device's control
# socket: it asks the host on the test serial line ("# vmsg-host add KIND"),
# scripts/scenarios.sh sends the control command (EVENT_DEVICE added
# follows), and the guest waits (bounded) for the device to appear bound to
# its driver. $1 is the kind (blk); there must be no other device of its kind.
. ./lib.sh
ktap_print_header
ktap_set_plan 5
id=$(kind_id "$1") || exit 1
drv=$(kind_driver "$1")

absent() { ! vdev_by_id "$id" >/dev/null; }

appears() {
	wait_for 60 is_bound "$id" "$drv" && return 0
	echo "# no virtio device with id $id bound to $drv after 60 s; virtio devices:"
	list_devices
	return 1
}

moves_data() {
	[ "$1" = blk ] || return 0
	for b in "$(vdev_by_id 2)"/block/*; do
		[ -e "$b" ] && quiet dd if="/dev/$(basename "$b")" of=/dev/null bs=4096 count=16 iflag=direct && return 0
	done
	echo "# no readable disk"
	return 1
}

before=$(ls /sys/bus/virtio/devices | wc -l)
chain "no virtio-$1 before the hot add" absent
ask_host add "$1"
t=$(now)
chain "a hot-added virtio-$1 is bound to $drv" appears
echo "# it took $(ms_since "$t") ms"
leaf "it moves data" moves_data "$1"
leaf "it has debugfs stats" eval '[ -n "$(stats_files "$id")" ]'
chain "the devices there before are still bound" all_bound $((before + 1))
ktap_finished
