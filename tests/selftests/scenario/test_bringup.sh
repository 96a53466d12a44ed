#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Devices that never answer do not hold up insmod or rmmod (issue 20, bug 3):
# the bus module adds the devices GET_DEVICES listed in a work item after its
# probe returned, one request timeout each, so insmod waits for none of them
# and rmmod for at most the request under way. The scenario lists three
# devices and answers none of their messages; $1 is the request timeout in
# ms the scenario gave virtio_msg_shm. Before the fix, insmod took one
# timeout per device (bring-up inside the probe).
. ./lib.sh
ktap_print_header
ktap_set_plan 4
timeout_ms=${1:-3000}
shm_args=$(e2e_arg shm_args | tr , ' ')

timed() {
	t=$(now)
	quiet "$@" || return 1
	ms=$(ms_since "$t")
	echo "# $* took $ms ms"
}

# Whatever the boot's insmod left under way is stopped first.
loads_quickly() {
	quiet rmmod virtio_msg_shm
	timed insmod /vmsg/modules/virtio_msg_shm.ko $shm_args || return 1
	[ "$ms" -lt $((timeout_ms / 2)) ] || { echo "# not under half a request timeout ($((timeout_ms / 2)) ms)"; return 1; }
}

unloads_within_one_timeout() {
	timed rmmod virtio_msg_shm || return 1
	[ "$ms" -lt $((timeout_ms + 1500)) ] || { echo "# not under one request timeout and 1.5 s"; return 1; }
}

# Every listed device was tried, one timeout each, and given up on.
given_up() { dmesg | grep -c 'virtio_msg_shm .*: device [0-2] could not be added: Error(110)$'; }
tried() { [ "$(given_up)" -ge "$1" ]; }

each_device_tried() {
	before=$(given_up)
	quiet insmod /vmsg/modules/virtio_msg_shm.ko $shm_args || return 1
	wait_for $((timeout_ms * 3 / 1000 + 30)) tried $((before + 3)) ||
		{ echo "# devices given up on: $(($(given_up) - before)) of 3"; return 1; }
	no_devices
}

chain "insmod returns within half a request timeout while three devices stay silent" loads_quickly
chain "rmmod during their bring-up returns within one request timeout" unloads_within_one_timeout
chain "loaded again, each of the three devices is tried and given up on" each_device_tried
chain "rmmod returns within one request timeout" unloads_within_one_timeout
ktap_finished
