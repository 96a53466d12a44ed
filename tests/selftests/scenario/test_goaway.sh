#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device side goes away (split mode, the device logic stopped by
# SIGTERM: device_state 2, every device announced removed) and comes back
# (issue 18 point 1, issue 20 bug 10): the driver removes every device,
# detaches and sends nothing while it is away (no PING, no recovery), then
# attaches again once the device side is back and registers its devices anew.
. ./lib.sh
ktap_print_header
ktap_set_plan 4

shm_stats() { ls /sys/kernel/debug/virtio_msg_shm/*/stats 2>/dev/null | head -n 1; }
detached() { [ "$(stat_of "$(shm_stats)" detached)" = true ]; }
gone_and_detached() { no_devices >/dev/null && detached; }

goes_away() {
	ask_host stop-device
	wait_for 30 gone_and_detached && return 0
	echo "# after 30 s:"
	list_devices
	sed 's/^/#   /' "$(shm_stats)"
	return 1
}

# Nothing is sent for three PING intervals (ping_interval_ms=500).
quiet_while_away() {
	before=$(stat_of "$(shm_stats)" sent)
	sleep 2
	after=$(stat_of "$(shm_stats)" sent)
	[ "$before" = "$after" ] || { echo "# $((after - before)) message(s) sent while the device side was away"; return 1; }
	detached || { echo "# attached again while the device side was away"; return 1; }
}

attached() { ! detached; }
comes_back() {
	ask_host start-device
	wait_for 60 attached || { echo "# still detached 60 s after the device side came back"; return 1; }
}

chain "the device side goes away: every device removed, the instance detached" goes_away
chain "nothing is sent while it is away" quiet_while_away
chain "it comes back: the instance attaches again" comes_back
leaf "its devices are registered again" wait_for 60 all_bound 3
ktap_finished
