#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The bus instance dropped and counted messages from the device side: the
# counters virtio_msg_shm logs when its instance goes away (run after
# "unload") show dropped > 0.
. ./lib.sh
ktap_print_header
ktap_set_plan 1

dropped() {
	line=$(dmesg | grep -E 'virtio_msg_shm [0-9a-f:.]+: sent [0-9]+ received [0-9]+ .*dropped [0-9]+' | tail -n 1)
	[ -n "$line" ] || { echo "# no counters in the kernel log: was the instance removed?"; return 1; }
	echo "# ${line#*] }"
	n=$(echo "$line" | sed -n 's/.* dropped \([0-9]*\).*/\1/p')
	[ "${n:-0}" -gt 0 ]
}

check "the bus instance counted dropped messages" dropped
ktap_finished
