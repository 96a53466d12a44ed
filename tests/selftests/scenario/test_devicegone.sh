#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device logic is killed (SIGKILL) for good while a writer writes blocks
# of the virtio-blk disk (split mode). The bus instance notices by its PING;
# the disk is marked broken and new writes fail with EIO; every block
# acknowledged before the kill is in the host's image (scripts/scenarios.sh
# checks it). The write in flight at the kill never completes: virtio_blk has
# no timeout handler, so its writer stays blocked and the disk must not be
# removed (del_gendisk would wait for that write forever); this test leaves
# both alone.
. ./lib.sh
ktap_print_header
ktap_set_plan 6
base=512 n=32

writes_run() {
	start_writer $base $n || return 1
	ask_host kill-device
}

# The writer is stuck: no write acknowledged for 2 s.
stuck() {
	a=$(acked)
	sleep 2
	[ "$(acked)" = "$a" ]
}

missed_ping() { dmesg | grep -qE 'virtio_msg_shm [0-9a-f:.]+: device side missed a PING'; }

notices() {
	wait_for 60 stuck || { echo "# writes still acknowledged: $(acked)"; return 1; }
	wait_for 30 missed_ping || { echo "# no missed PING logged"; return 1; }
	echo "# $(acked) write(s) acknowledged; in flight: block $(cut -d' ' -f1 /tmp/w.cur$base) round $(cut -d' ' -f2 /tmp/w.cur$base)"
}

# The transport marks a device broken when a request for it fails; reading
# the status is such a request (Documentation/robustness.rst, "Known limits").
broken() {
	d=$(vdev_by_id 2) || return 1
	cat "$d/status" >/dev/null
	s=$(($(cat "$d/status")))
	f=$(stats_files 2)
	echo "# status $s; $(grep broken $f)"
	grep -qx 'broken: true' $f && [ $((s & 0x40)) != 0 ]
}

new_write_fails() {
	pattern 1 7 >/tmp/w.one
	out=$(timeout 30 dd if=/tmp/w.one of="/dev/$(blk_disk)" bs=4096 seek=1 count=1 oflag=direct conv=notrunc 2>&1)
	rc=$?
	echo "# dd exited with $rc: $out" | head -3
	[ $rc != 0 ] && [ $rc != 124 ] && [ $rc != 143 ] && echo "$out" | grep -q -e 'Input/output error' -e 'I/O error'
}

# Blocks acknowledged before the kill; the one in flight may hold either round.
image_holds_acked() {
	set -- $(cat /tmp/w.cur$base)
	rounds=$(acked_rounds $base $n | awk -F, -v cur=$(($1 - base)) -v r="$2" \
		'{ for (i = 1; i <= NF; i++) printf "%s%s", (i > 1 ? "," : ""), (i - 1 == cur ? $i "/" r : $i) }')
	echo "# rounds: $rounds"
	ask_host "check-image $base $rounds"
}

chain "virtio-blk is bound to virtio_blk" wait_bound 2 virtio_blk
chain "a writer runs (O_DIRECT, fsync); the host kills the device logic" writes_run
chain "writes stop and the bus instance logs the missed PING" notices
leaf "the disk is marked broken (status has DEVICE_NEEDS_RESET)" broken
leaf "a new write fails with EIO" new_write_fails
leaf "the host is asked to check the acknowledged blocks in its image" image_holds_acked
ktap_finished
