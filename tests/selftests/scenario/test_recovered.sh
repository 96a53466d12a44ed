#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The shared-memory bus instance stopped (corrupt ring, missed PING) and
# recovered by itself: virtio_msg_shm's debugfs counts a recovery and the
# instance is running again, and every device kind named in $1 (comma
# separated) is bound to its driver again, as a new virtio device
# (Documentation/shm-bus.rst, "Attaching, detaching and recovery").
. ./lib.sh
kinds=$(echo "$1" | tr , ' ')
ktap_print_header
ktap_set_plan $((1 + $(echo $kinds | wc -w)))

shm_stats() { ls /sys/kernel/debug/virtio_msg_shm/*/stats 2>/dev/null | head -n 1; }

running_again() {
	f=$(shm_stats) || return 1
	[ -n "$f" ] || return 1
	[ "$(stat_of "$f" recoveries)" -ge 1 ] 2>/dev/null && [ "$(stat_of "$f" broken)" = false ]
}

recovered() {
	wait_for 90 running_again && return 0
	f=$(shm_stats)
	echo "# no recovery after 90 s; ${f:-no virtio_msg_shm stats in debugfs}"
	[ -n "$f" ] && sed 's/^/#   /' "$f"
	return 1
}

t=$(now)
chain "the bus instance recovered and runs again" recovered
echo "# after $(ms_since "$t") ms: $(tr '\n' ' ' <"$(shm_stats)")"
for k in $kinds; do
	id=$(kind_id "$k") || exit 1
	drv=$(kind_driver "$k")
	leaf "virtio-$k is bound to $drv again" wait_for 60 is_bound "$id" "$drv"
done
ktap_finished
