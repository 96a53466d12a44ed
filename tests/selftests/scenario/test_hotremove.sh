#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Hot remove while the bus is up (after test_hotadd): the guest asks the host
# ("# vmsg-host remove KIND"), scripts/scenarios.sh sends the control command
# (EVENT_DEVICE removed follows), and the guest waits (bounded) until the
# device is gone: no longer on the virtio bus and, once its removal has
# completed, without debugfs stats. $1 is the kind (blk).
. ./lib.sh
ktap_print_header
ktap_set_plan 5
id=$(kind_id "$1") || exit 1
drv=$(kind_driver "$1")

present() { vdev_by_id "$id" >/dev/null 2>&1; }

disappears() {
	wait_for 60 off_the_bus "$id" && return 0
	echo "# still there after 60 s:"
	list_devices
	return 1
}

removal_completes() {
	wait_for 60 removed "$id" && return 0
	echo "# debugfs stats still there after 60 s: $(stats_files "$id")"
	return 1
}

before=$(ls /sys/bus/virtio/devices | wc -l)
chain "virtio-$1 is there before the hot remove" present
mark=$(log_mark)
ask_host remove "$1"
t=$(now)
chain "hot-removed, it leaves the virtio bus" disappears
chain "its removal completes (its debugfs stats go)" removal_completes
echo "# it took $(ms_since "$t") ms"
chain "the other devices are still there and bound" all_bound $((before - 1))
leaf "the removal logged no warning or error about virtio" kernel_log_clean "$mark"
ktap_finished
