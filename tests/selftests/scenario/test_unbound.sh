#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device kind $1 (rng, blk or console) registered, but its driver's
# probe failed on what the device side offered (a valid answer the driver
# cannot use, such as "no such queue"): it is not bound, its status has
# FAILED (0x80), and the transport did not mark it broken, so it still
# answers. scripts/scenarios.sh checks the log line of the failed probe.
. ./lib.sh
ktap_print_header
ktap_set_plan 3
id=$(kind_id "$1") || exit 1
drv=$(kind_driver "$1")

failed_probe() {
	d=$(vdev_by_id "$id") || return 1
	[ "$(bound_driver "$d")" != "$drv" ] && [ $(($(cat "$d/status") & 0x80)) != 0 ]
}

# Devices probe asynchronously after the bus module loads: wait for the outcome.
registered_unbound() {
	wait_for 30 failed_probe && r=0 || r=1
	d=$(vdev_by_id "$id") || { echo "# no virtio device with id $id"; return 1; }
	echo "# $(basename "$d"): driver '$(bound_driver "$d")', status $(cat "$d/status")"
	return $r
}

not_broken() {
	f=$(stats_files "$id")
	[ -n "$f" ] || { echo "# no debugfs stats for device id $id"; return 1; }
	grep -qx 'broken: false' $f || { echo "# $f: $(grep broken $f)"; return 1; }
}

still_answers() {
	f=$(stats_files "$id")
	d=$(vdev_by_id "$id")
	req=$(stat_of "$f" requests) resp=$(stat_of "$f" responses)
	s=$(($(cat "$d/status")))
	req2=$(stat_of "$f" requests) resp2=$(stat_of "$f" responses)
	echo "# status $s; requests $req -> $req2, responses $resp -> $resp2"
	[ "$req2" -gt "$req" ] && [ "$resp2" -gt "$resp" ]
}

check "virtio-$1 (id $id) registered, $drv is not bound, status has FAILED" registered_unbound
check "its debugfs stats say broken: false" not_broken
check "reading its status is a request that gets its response" still_answers
ktap_finished
