#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device kind $1 (rng, blk or console) is out of service after the
# device side misbehaved: it never registered (its GET_DEVICE_INFO failed),
# or its driver is not bound, or it is marked broken. A device marked broken
# fails every request at once (Documentation/transport.rst, "Errors and
# hostile device sides"): reading its status sends nothing, costs no
# timeout, and reports DEVICE_NEEDS_RESET. scripts/scenarios.sh checks the
# log line that says why.
. ./lib.sh
ktap_print_header
ktap_set_plan 3
id=$(kind_id "$1") || exit 1
drv=$(kind_driver "$1")

out_of_service() {
	d=$(vdev_by_id "$id") || { echo "# no virtio device with id $id: it never registered"; return 0; }
	b=$(bound_driver "$d")
	s=$(($(cat "$d/status")))
	f=$(stats_files "$id")
	echo "# $(basename "$d"): driver '$b', status $(cat "$d/status")${f:+, $(grep broken $f | tr '\n' ' ')}"
	[ "$b" != "$drv" ] && return 0
	[ $((s & 0xc0)) != 0 ] && return 0
	[ $((s & 0x04)) = 0 ] && return 0
	[ -n "$f" ] && grep -qx 'broken: true' $f && return 0
	echo "# it is bound to $drv and looks healthy"
	return 1
}

marked_broken() {
	f=$(stats_files "$id")
	[ -n "$f" ] || { echo "# no debugfs stats for device id $id"; return 1; }
	grep -qx 'broken: true' $f || { echo "# $f: $(grep broken $f)"; return 1; }
}

fails_fast() {
	f=$(stats_files "$id")
	d=$(vdev_by_id "$id")
	req=$(stat_of "$f" requests) tmo=$(stat_of "$f" timeouts)
	s1=$(($(cat "$d/status"))) s2=$(($(cat "$d/status")))
	req2=$(stat_of "$f" requests) tmo2=$(stat_of "$f" timeouts)
	echo "# status $s1, $s2; requests $req -> $req2, timeouts $tmo -> $tmo2"
	[ $((s1 & s2 & 0x40)) != 0 ] && [ "$req" = "$req2" ] && [ "$tmo" = "$tmo2" ]
}

check "virtio-$1 (id $id) is out of service" out_of_service
if vdev_by_id "$id" >/dev/null; then
	check "its debugfs stats say broken: true" marked_broken
	check "reading its status sends no request and reports DEVICE_NEEDS_RESET" fails_fast
else
	skip_because "its debugfs stats say broken: true" "it never registered"
	skip_because "reading its status sends no request and reports DEVICE_NEEDS_RESET" "it never registered"
fi
ktap_finished
