#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device side stops consuming the driver-to-device ring for 3 s
# ("vmsg-host stall 3000", the smallest slot count) under O_DIRECT writers
# on two disks and an rng reader (issue 20, bug 1): kicks that find the ring full are kept
# by the transport (debugfs kicks_deferred) and sent once there is room; no
# write fails, every acknowledged block reads back, the disk stays in service.
. ./lib.sh
ktap_print_header
ktap_set_plan 6
base=512 per=16 writers=2

shm_stats() { ls /sys/kernel/debug/virtio_msg_shm/*/stats 2>/dev/null | head -n 1; }
disk_stats() { stats_files 2; }

# The disk the host added (vmsg-host add blk): the virtio-blk disk other than $1.
other_disk() {
	for d in /sys/bus/virtio/devices/*; do
		[ "$(($(cat "$d/device" 2>/dev/null || echo 0)))" = 2 ] || continue
		for b in "$d"/block/*; do
			[ -e "$b" ] && [ "$(basename "$b")" != "$1" ] && { basename "$b"; return 0; }
		done
	done
	return 1
}

start_writers() {
	start_parallel_writers $base $per $writers || return 1
	# With EVENT_IDX a stalled device side gets one kick per virtqueue: it takes
	# three queues to overfill two slots. A second disk (on blocks of its own
	# of the same image) and the rng make three; the console is left out, as
	# virtio_console spins with interrupts disabled until the device side has
	# taken its output (Documentation/robustness.rst).
	ask_host add blk
	wait_for 60 other_disk "$disk" >/dev/null || { echo "# no second disk"; return 1; }
	disk2=$(other_disk "$disk")
	wait_for 10 test -b "/dev/$disk2" || { echo "# no /dev/$disk2"; return 1; }
	(
		exec >/dev/null 2>&1 </dev/null
		writer "$disk2" 1024 $per
	) &
	pids="$pids $!"
	# One dd reading for ever: a loop of short ones would spend the guest's
	# CPU on forks, which under TCG leaves the disks few writes a second.
	dd if=/dev/hwrng of=/dev/null bs=16 2>/dev/null &
	rng_pid=$!
	wait_for 60 disk2_acked || { echo "# $(acked) write(s), none on /dev/$disk2, in 60 s"; return 1; }
	# Now that the three queues are busy: the stall, chosen by the test (a count
	# of messages would depend on how fast the guest runs), long enough for
	# each queue to kick into it (a writer forks between its writes, which
	# under TCG takes a second or more), shorter than a PING's 5 s timeout.
	ask_host stall 3000
}

# Writes acknowledged on the second disk (blocks from 1024 on).
disk2_acked() { [ "$(awk '$2 >= 1024' /tmp/w.acked 2>/dev/null | wc -l)" -ge 3 ]; }

# Kicks kept for later, over every device.
deferred() {
	sum=0
	for f in $(stats_files); do sum=$((sum + $(stat_of "$f" kicks_deferred))); done
	echo $sum
}
# The stall happened (kicks were kept) and 20 more writes were acknowledged.
past_stall() {
	[ "${seen_at:-}" ] || { [ "$(deferred)" -gt 0 ] 2>/dev/null && seen_at=$(acked); }
	[ "${seen_at:-}" ] && [ "$(acked)" -ge $((seen_at + 20)) ]
}

writes_go_on() {
	wait_for 90 past_stall
	rc=$?
	kill "$rng_pid" 2>/dev/null
	stop_parallel_writers
	echo "# $(acked) write(s) acknowledged; kicks deferred: $(deferred); bus: $(grep events_blocked "$(shm_stats)")"
	[ $rc = 0 ] || { echo "# the ring never filled (no kick kept), or writes stopped after it did"; return 1; }
}

read_back() {
	blocks_read_back "$(blk_disk)" $base $((writers * per)) "$(acked_rounds $base $((writers * per)))"
}

in_service() {
	for f in $(disk_stats); do
		grep -qx 'broken: false' "$f" || { echo "# $f: $(grep broken "$f")"; return 1; }
	done
}

# Diagnostics on the serial line should the test itself get stuck.
(
	exec </dev/null >/dev/ttyS1 2>&1
	sleep 50
	[ -e /tmp/w.stop ] && exit 0
	echo "# stallwrite: still running after 50 s"
	for f in /sys/kernel/debug/virtio_msg*/*/stats /sys/kernel/debug/virtio_msg*/*/dev*/stats; do
		echo "# $f: $(tr '\n' ' ' <"$f")"
	done
	for p in /proc/[0-9]*; do
		echo "# $(cat "$p/comm" 2>/dev/null) $(cut -d' ' -f3 "$p/stat" 2>/dev/null) $(cat "$p/wchan" 2>/dev/null)"
	done
) &
chain "virtio-blk is bound to virtio_blk" wait_bound 2 virtio_blk
chain "O_DIRECT writers on two disks and an rng reader run" start_writers
chain "the device side stalls, kicks are kept, the writes go on" writes_go_on
leaf "no write failed" no_write_failed
leaf "every acknowledged block reads back" read_back
leaf "the disks are not broken" in_service
ktap_finished
