#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A bus instance the driver refused at probe was never announced: the kernel
# log has no "bus instance up" (virtio_msg_shm) and no "bus instance
# registered" (virtio_msg) line (issue 18, point 2).
. ./lib.sh
ktap_print_header
ktap_set_plan 2

not_logged() {
	lines=$(dmesg | grep -F "$1")
	[ -z "$lines" ] && return 0
	echo "$lines" | head -n 3 | sed 's/^/# kernel: /'
	return 1
}

check "no 'bus instance up' line" not_logged "bus instance up"
check "no 'bus instance registered' line" not_logged "bus instance registered"
ktap_finished
