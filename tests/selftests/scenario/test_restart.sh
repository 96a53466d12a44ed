#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device logic is killed (SIGKILL) and restarted $1 ms later while a
# writer keeps writing blocks of the virtio-blk disk with O_DIRECT and fsync
# (split mode, Documentation/shm-bus.rst, "Restarting the device side"). The
# guest must see nothing but a delay: no write fails, the writes go on after
# the restart, every acknowledged block reads back, the device stays in
# service. scripts/scenarios.sh checks the image on the host too.
. ./lib.sh
ktap_print_header
ktap_set_plan 6
ms=${1:-1500}
base=512 n=32

writes_run() {
	start_writer $base $n || return 1
	ask_host "restart-device $ms"
}

# Longest pause between two acknowledged writes, in ms.
longest_gap() {
	awk 'NR > 1 { g = ($1 - t) * 1000; if (g > m) m = g } { t = $1 } END { printf "%d", m }' /tmp/w.acked
}

# Writes acknowledged after the longest pause.
after_gap() {
	awk 'NR > 1 { g = ($1 - t) * 1000; if (g > m) { m = g; at = NR } } { t = $1 } END { print NR - at + 1 }' /tmp/w.acked
}

# Whether a pause of at least half the restart delay was followed by 20 writes.
went_on() {
	[ -f /tmp/w.acked ] && [ "$(longest_gap)" -ge $((ms / 2)) ] && [ "$(after_gap)" -ge 20 ]
}

continue_across() {
	wait_for 90 went_on
	rc=$?
	touch /tmp/w.stop
	wait $wpid
	echo "# $(acked) write(s) acknowledged; longest pause $(longest_gap) ms, $(after_gap) write(s) after it"
	[ -f /tmp/w.failed ] && { echo "# failed writes:"; sed 's/^/#   /' /tmp/w.failed; return 1; }
	[ $rc = 0 ] || { echo "# no pause of at least $((ms / 2)) ms followed by 20 writes within 90 s"; return 1; }
}

read_back() {
	rounds=$(acked_rounds $base $n)
	echo "# last rounds acknowledged: $rounds"
	ask_host "check-image $base $rounds"
	blocks_read_back "$(blk_disk)" $base $n "$rounds"
}

in_service() {
	d=$(vdev_by_id 2) || return 1
	s=$(($(cat "$d/status")))
	[ $((s & 0xcf)) = $((0x0f)) ] || { echo "# $(basename "$d"): status $(cat "$d/status")"; return 1; }
	f=$(stats_files 2)
	grep -qx 'broken: false' $f || { echo "# $f: $(grep broken $f)"; return 1; }
}

still_writes() {
	disk=$(blk_disk) &&
		pattern 1 99 >/tmp/w.one &&
		quiet dd if=/tmp/w.one of="/dev/$disk" bs=4096 seek=1 count=1 oflag=direct conv=notrunc,fsync &&
		quiet dd if="/dev/$disk" of=/tmp/w.back bs=4096 skip=1 count=1 iflag=direct &&
		cmp /tmp/w.one /tmp/w.back
}

chain "virtio-blk is bound to virtio_blk" wait_bound 2 virtio_blk
chain "a writer runs (O_DIRECT, fsync); the host restarts the device logic ($ms ms down)" writes_run
chain "no write fails; writes pause and go on after the restart" continue_across
leaf "every acknowledged block reads back (caches dropped, O_DIRECT)" read_back
leaf "virtio-blk is at DRIVER_OK, not broken" in_service
leaf "a new write and read after the restart work" still_writes
ktap_finished
