#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Every virtio-msg device's debugfs stats file shows "$1" ("FIELD=VALUE").
. ./lib.sh
ktap_print_header
ktap_set_plan 2
field=${1%%=*} value=${1#*=}

have_stats() {
	n=$(stats_files | wc -l)
	[ "$n" -gt 0 ] || { echo "# no /sys/kernel/debug/virtio_msg/*/dev*/stats"; return 1; }
}

all_show() {
	rc=0
	for f in $(stats_files); do
		grep -qx "$field: $value" "$f" || { echo "# $f: $(grep "^$field:" "$f")"; rc=1; }
	done
	return $rc
}

check "the devices have debugfs stats files" have_stats
check "each shows $field: $value" all_show
ktap_finished
