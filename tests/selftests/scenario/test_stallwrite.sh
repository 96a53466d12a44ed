#!/bin/sh
# The device side stops consuming the driver-to-device ring for a while
# (vmsg-device --fault stall, the smallest slot count) under four parallel
# O_DIRECT writers, an rng reader and a console writer (issue 20, bug 1): kicks that find the ring full are kept
# by the transport (debugfs kicks_deferred) and sent once there is room; no
# write fails, every acknowledged block reads back, the disk stays in service.
. ./lib.sh
ktap_plan 6
base=512 per=16 writers=4

shm_stats() { ls /sys/kernel/debug/virtio_msg_shm-*/stats 2>/dev/null | head -n 1; }
disk_stats() { stats_files 2; }

start_writers() {
	start_parallel_writers $base $per $writers || return 1
	# The rng and the console kick their own queues meanwhile: with EVENT_IDX a
	# stalled device side gets one kick per queue, so it takes three queues to
	# fill two slots.
	(
		exec >/dev/null 2>&1 </dev/null
		while [ ! -e /tmp/w.stop ]; do dd if=/dev/hwrng of=/dev/null bs=16 count=1; done
	) &
	pids="$pids $!"
	(
		exec >/dev/null 2>&1 </dev/null
		while [ ! -e /tmp/w.stop ]; do echo stall-test >/dev/hvc0; usleep 20000; done
	) &
	pids="$pids $!"
}

deferred() { stat_of "$(disk_stats)" kicks_deferred; }
# The stall happened (kicks were kept) and 40 more writes were acknowledged.
past_stall() {
	[ "${seen_at:-}" ] || { [ "$(deferred)" -gt 0 ] 2>/dev/null && seen_at=$(acked); }
	[ "${seen_at:-}" ] && [ "$(acked)" -ge $((seen_at + 40)) ]
}

writes_go_on() {
	wait_for 90 past_stall
	rc=$?
	stop_parallel_writers
	echo "# $(acked) write(s) acknowledged; kicks deferred: $(deferred); bus: $(grep events_blocked "$(shm_stats)")"
	[ $rc = 0 ] || { echo "# the ring never filled (no kick kept), or writes stopped after it did"; return 1; }
}

read_back() {
	blocks_read_back "$(blk_disk)" $base $((writers * per)) "$(acked_rounds $base $((writers * per)))"
}

in_service() {
	grep -qx 'broken: false' "$(disk_stats)" || { echo "# $(grep broken "$(disk_stats)")"; return 1; }
}

# Diagnostics on the serial line should the test itself get stuck.
(
	exec </dev/null >/dev/ttyS1 2>&1
	sleep 50
	[ -e /tmp/w.stop ] && exit 0
	echo "# stallwrite: still running after 50 s"
	for f in /sys/kernel/debug/virtio_msg*/stats /sys/kernel/debug/virtio_msg*/dev*/stats; do
		echo "# $f: $(tr '\n' ' ' <"$f")"
	done
	for p in /proc/[0-9]*; do
		echo "# $(cat "$p/comm" 2>/dev/null) $(cut -d' ' -f3 "$p/stat" 2>/dev/null) $(cat "$p/wchan" 2>/dev/null)"
	done
) &
chain "virtio-blk is bound to virtio_blk" wait_bound 2 virtio_blk
chain "$writers O_DIRECT writers, an rng reader and a console writer run" start_writers
chain "the device side stalls, kicks are kept, the writes go on" writes_go_on
leaf "no write failed" no_write_failed
leaf "every acknowledged block reads back" read_back
leaf "virtio-blk is not broken" in_service
ktap_finish
