#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest survives whatever a random device side did (vmsg-device's fuzz
# fault): the devices that appeared settle, then each one bound to its
# driver is used once under a time limit. I/O errors, absent or broken
# devices are no failure (the device side lied); a step that does not end
# in time is (it hangs), unless its device was marked broken (see step()).
# What each device did goes to the log as diagnostics.
. ./lib.sh
ktap_print_header
ktap_set_plan 5
# Longer than the 30 s limits of console_roundtrip.
LIMIT=40

# Kills process $1 and its descendants (busybox has no pkill).
kill_tree() {
	for p in /proc/[0-9]*; do
		[ "$(cut -d' ' -f4 "$p/stat" 2>/dev/null)" = "$1" ] && kill_tree "${p#/proc/}"
	done
	kill -KILL "$1" 2>/dev/null
}

# Whether the device with id $1 is marked broken.
is_broken() { f=$(stats_files "$1") && [ -n "$f" ] && grep -qx 'broken: true' $f; }

# Runs "$@" for the device with id $1 in the background; fails if it has not
# ended after $LIMIT s. Once the device is marked broken, a wait of more than
# BROKEN_GRACE s is the known limit (see step()) and is not sat out: a reader
# of /dev/hwrng waiting on a broken device holds the hwrng core's mutex, and
# the hwrng thread waiting for that mutex would be reported by the hung-task
# detector (20 s in tests/kernel.config) as the limit goes on. Returns 2 then.
BROKEN_GRACE=3
bounded() {
	dev_id=$1; shift
	"$@" >/tmp/survive.out 2>&1 &
	pid=$!
	t0=$(now) broken_at=
	while kill -0 $pid 2>/dev/null; do
		if [ -z "$broken_at" ] && is_broken "$dev_id"; then
			broken_at=$(now)
		fi
		if [ -n "$broken_at" ] && [ "$(ms_since "$broken_at")" -ge $((BROKEN_GRACE * 1000)) ]; then
			echo "# '$*' still waiting $BROKEN_GRACE s after its device was marked broken"
			kill_tree $pid
			return 2
		fi
		if [ "$(ms_since "$t0")" -ge $((LIMIT * 1000)) ]; then
			echo "# '$*' still running after $LIMIT s"
			kill_tree $pid
			return 1
		fi
		usleep 100000
	done
	wait $pid
	echo "# '$*' ended with status $? after $(ms_since "$t0") ms: $(head -c 200 /tmp/survive.out | tr '\n' ' ')"
}

# The probes that the bus started are over: the device list and every
# status stay the same for 2 s (bounded by $LIMIT).
snapshot() {
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d" ] && echo "$(basename "$d") $(bound_driver "$d") $(cat "$d/status" 2>/dev/null)"
	done
}
settled() {
	t0=$(now) a=$(snapshot)
	while [ "$(ms_since "$t0")" -lt $((LIMIT * 1000)) ]; do
		sleep 2
		b=$(snapshot)
		[ "$a" = "$b" ] && { list_devices; return 0; }
		a=$b
	done
	echo "# still changing after $LIMIT s:"
	list_devices
	return 1
}

# Reports step $3 ("$4 ..."), run if the device with id $1 is bound to its
# driver $2. A step that hangs on a device the transport marked broken is a
# known limit, reported as skipped: virtio_rng and virtio_blk wait for their
# buffers without a timeout, and a broken device completes none.
step() {
	id=$1 drv=$2 desc=$3; shift 3
	if ! is_bound "$id" "$drv"; then
		echo "# no device with id $id bound to $drv: nothing to do"
		ktap_test_pass "$desc"
		return
	fi
	bounded "$id" "$@"
	rc=$?
	f=$(stats_files "$id")
	case $rc in
	0) ktap_test_pass "$desc" ;;
	2) skip_because "$desc" "$drv waits forever for a buffer of a broken device (killed)" ;;
	*)
		echo "# device id $id: ${f:-no stats}: $([ -n "$f" ] && grep '^broken:' $f)"
		if is_broken "$id"; then
			skip_because "$desc" "$drv waits forever for a buffer of a broken device (killed)"
		else
			ktap_test_fail "$desc"
		fi
		;;
	esac
}

rng_read() { dd if=/dev/hwrng of=/dev/null bs=16 count=1; }
blk_dev() {
	for b in "$(vdev_by_id 2)"/block/*; do
		[ -e "$b" ] && { basename "$b"; return 0; }
	done
	return 1
}
blk_io() {
	dev=$(blk_dev) || { echo "no disk"; return 1; }
	dd if=/dev/urandom of=/tmp/survive.w bs=4096 count=4 2>/dev/null
	dd if=/tmp/survive.w of="/dev/$dev" bs=4096 seek=64 oflag=direct conv=notrunc
	dd if="/dev/$dev" of=/dev/null bs=4096 skip=64 count=4 iflag=direct
}
console_io() {
	echo "survive $(now)" >/tmp/survive.c
	console_roundtrip /tmp/survive.c
}

# Every debugfs stats file reads (the instance may have stopped).
stats_read() {
	for f in $(stats_files); do
		cat "$f" >/dev/null || return 1
		echo "# $f: $(grep -E '^(dev_num|device_id|broken|protocol_errors|timeouts):' "$f" | tr '\n' ' ')"
	done
}

check "the devices settle within $LIMIT s" settled
step 4 virtio_rng "virtio-rng, if bound, reads or fails in time" rng_read
step 2 virtio_blk "virtio-blk, if bound, writes and reads or fails in time" blk_io
step 3 virtio_console "virtio-console, if bound, writes and reads or fails in time" console_io
check "the debugfs stats files read" stats_read
ktap_finished
