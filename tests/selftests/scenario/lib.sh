#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Helpers of the scenario tests (sourced): the end-to-end helpers, and what a
# scenario asks about a device kind. scripts/scenarios.sh starts vmsg-device
# as the scenario says (tests/e2e/scenarios) and names the tests to run.
. ../virtio_msg/lib.sh

# The virtio device id and driver of a device kind vmsg-device serves.
kind_id() {
	case $1 in
	rng) echo 4 ;; blk) echo 2 ;; console) echo 3 ;;
	*) echo "# unknown device kind '$1'" >&2; return 1 ;;
	esac
}
kind_driver() { echo "virtio_$1"; }

# The debugfs stats files of the virtio-msg devices with virtio id $1 (all if empty).
stats_files() {
	for f in /sys/kernel/debug/virtio_msg/*/dev*/stats; do
		[ -r "$f" ] || continue
		[ -z "$1" ] || grep -qx "device_id: $1" "$f" && echo "$f"
	done
}

no_devices() {
	n=$(ls /sys/bus/virtio/devices | wc -l)
	[ "$n" = 0 ] || { echo "# virtio devices: $(ls /sys/bus/virtio/devices)"; return 1; }
}

# No bus instance is registered with virtio_msg: it has no debugfs directory.
no_instance() {
	set -- /sys/kernel/debug/virtio_msg/*
	[ ! -e "$1" ] || { echo "# debugfs: $*"; return 1; }
}

# Seconds since boot, with centiseconds, for timing a step.
now() { cut -d' ' -f1 /proc/uptime; }
# Milliseconds from time $1 (from now) to now.
ms_since() { echo "$(now) $1" | awk '{ printf "%d", ($1 - $2) * 1000 }'; }

# Runs "$@" until it succeeds, for at most $1 seconds by the clock (a fixed
# number of polls can take much longer under emulation).
wait_for() {
	secs=$1; shift
	t0=$(now)
	while :; do
		"$@" && return 0
		[ "$(ms_since "$t0")" -ge $((secs * 1000)) ] && return 1
		usleep 100000
	done
}

# Runs "$@" in the background (its stderr to /tmp/bounded.err) and waits for
# it at most $1 seconds, so that a hang is reported, with the tasks blocked
# in D state, rather than waited on. Returns its exit status, or 124 if it
# has not returned; sets bounded_ms to how long it took.
run_bounded() {
	rb_secs=$1; shift
	rm -f /tmp/bounded.rc
	rb_t=$(now)
	(
		exec >/dev/null 2>/tmp/bounded.err </dev/null
		"$@"
		echo $? >/tmp/bounded.rc
	) &
	if ! wait_for "$rb_secs" test -e /tmp/bounded.rc; then
		echo "# '$*' has not returned after $rb_secs s"
		grep -l ' D ' /proc/[0-9]*/stat 2>/dev/null | while read -r f; do
			echo "#   blocked: $(cut -d' ' -f2 "$f") $(tr '\0' ' ' <"${f%stat}wchan" 2>/dev/null)"
		done
		return 124
	fi
	bounded_ms=$(ms_since "$rb_t")
	return "$(cat /tmp/bounded.rc)"
}

# Whether a virtio device with id $1 is bound to driver $2.
is_bound() { d=$(vdev_by_id "$1") && [ "$(bound_driver "$d")" = "$2" ]; }

# Whether there are exactly $1 virtio devices, each bound to a driver.
all_bound() {
	n=$(ls /sys/bus/virtio/devices | wc -l)
	[ "$n" = "$1" ] || { echo "# $n virtio devices, expected $1"; list_devices; return 1; }
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d" ] || continue
		[ -n "$(bound_driver "$d")" ] || { echo "# $(basename "$d") has no driver"; return 1; }
	done
}

# Whether no virtio device has device id $1 (a device going away while
# vdev_by_id reads it makes cat complain), and whether its removal also
# completed: no debugfs stats left either.
off_the_bus() { ! vdev_by_id "$1" >/dev/null 2>&1; }
removed() { off_the_bus "$1" && [ -z "$(stats_files "$1")" ]; }

# Whether every virtio device is bound and none has device id $1.
all_bound_but() { off_the_bus "$1" && all_bound "$(ls /sys/bus/virtio/devices | wc -l)"; }

# Lists the virtio devices, as diagnostics.
list_devices() {
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d" ] && echo "#   $(basename "$d") device $(cat "$d/device") driver '$(bound_driver "$d")' status $(cat "$d/status")"
	done
}

# Asks scripts/scenarios.sh on the host for a control command ("add blk",
# "remove blk"). Written straight to the serial line: a pipe (run.sh's
# indenting sed) would hold the line back.
ask_host() { echo "# vmsg-host $*" >/dev/ttyS1; }

# Value of counter $2 in stats file $1.
stat_of() { sed -n "s/^$2: //p" "$1"; }

# A writer for the device-restart scenarios: block $1 of round $2 (4 KiB of a
# line naming both; scripts/scenarios.sh's check_image knows it too).
pattern() { yes "blk $(printf %06d "$1") round $(printf %04d "$2") vmsg" | head -c 4096; }

# Writes 4 KiB blocks $2 .. $2+$3-1 of disk /dev/$1, round after round, each
# with O_DIRECT and an fsync, until /tmp/w.stop exists or the disk is gone.
# Every write dd reports done appends "UPTIME BLOCK ROUND" to /tmp/w.acked,
# every failed one to /tmp/w.failed (appends of one line: several writers may
# share them); /tmp/w.cur$2 names the write under way.
writer() {
	r=1
	while :; do
		b=0
		while [ $b -lt "$3" ]; do
			[ -e /tmp/w.stop ] && return 0
			# Once the disk is gone, dd would create /dev/$1 as a file.
			[ -b "/dev/$1" ] || return 0
			blk=$(($2 + b))
			pattern $blk $r >"/tmp/w.blk$2"
			echo "$blk $r" >"/tmp/w.cur$2"
			if dd if="/tmp/w.blk$2" of="/dev/$1" bs=4096 seek=$blk count=1 oflag=direct \
				conv=notrunc,fsync 2>"/tmp/w.err$2"; then
				echo "$(now) $blk $r" >>/tmp/w.acked
			else
				echo "$(now) $blk $r $(tr '\n' ' ' <"/tmp/w.err$2")" >>/tmp/w.failed
			fi
			b=$((b + 1))
		done
		r=$((r + 1))
	done
}

# Number of writes acknowledged so far.
acked() { [ -f /tmp/w.acked ] && wc -l </tmp/w.acked || echo 0; }
ten_acked() { [ "$(acked)" -ge 10 ]; }

# Starts writer on blocks $1 .. $1+$2-1 of the virtio-blk disk (named in $disk,
# the writer's pid in $wpid) and waits until it has 10 writes acknowledged.
start_writer() {
	disk=$(blk_disk) || { echo "# no disk"; return 1; }
	rm -f /tmp/w.*
	# Off the KTAP pipe, by exec: busybox sh keeps a copy of the pipe open in a
	# background function given a redirection, and a writer stuck in a write
	# would then hold run.sh's pipe open for ever.
	(
		exec >/dev/null 2>&1 </dev/null
		writer "$disk" "$1" "$2"
	) &
	wpid=$!
	wait_for 60 ten_acked || { echo "# $(acked) write(s) in 60 s"; return 1; }
}

# The last round acknowledged for each block $1 .. $1+$2-1, comma separated
# (0: never written), as scripts/scenarios.sh's check-image takes it.
acked_rounds() {
	awk -v base="$1" -v n="$2" '{ last[$2] = $3 }
		END { for (i = 0; i < n; i++) printf "%s%d", (i ? "," : ""), last[base + i] + 0 }' \
		/tmp/w.acked 2>/dev/null
}

# Reads blocks $2 .. $2+$3-1 of /dev/$1 (O_DIRECT, after dropping caches) and
# compares each with the pattern of the round list $4 (as acked_rounds prints).
blocks_read_back() {
	echo 3 >/proc/sys/vm/drop_caches
	i=0 bad=0
	for r in $(echo "$4" | tr , ' '); do
		blk=$(($2 + i))
		if [ "$r" = 0 ]; then
			head -c 4096 /dev/zero >/tmp/w.want
		else
			pattern $blk "$r" >/tmp/w.want
		fi
		dd if="/dev/$1" of=/tmp/w.got bs=4096 skip=$blk count=1 iflag=direct 2>/dev/null &&
			cmp -s /tmp/w.want /tmp/w.got || {
			bad=$((bad + 1))
			echo "# block $blk: not what round $r wrote: $(head -c 24 /tmp/w.got | od -An -c | tr -s ' ' | head -1)"
		}
		i=$((i + 1))
	done
	[ $bad = 0 ]
}

# The disk of the virtio-blk device (vda, ...).
blk_disk() {
	for b in "$(vdev_by_id 2)"/block/*; do
		[ -e "$b" ] && { basename "$b"; return 0; }
	done
	return 1
}

# Starts $3 writers on the virtio-blk disk, writer j on blocks $1+j*$2 ..
# $1+(j+1)*$2-1 (O_DIRECT, fsync), their pids in $pids, and waits until ten
# writes are acknowledged.
start_parallel_writers() {
	disk=$(blk_disk) || { echo "# no disk"; return 1; }
	rm -f /tmp/w.*
	pids=
	j=0
	while [ $j -lt "$3" ]; do
		(
			exec >/dev/null 2>&1 </dev/null
			writer "$disk" $(($1 + j * $2)) "$2"
		) &
		pids="$pids $!"
		j=$((j + 1))
	done
	wait_for 60 ten_acked || { echo "# $(acked) write(s) in 60 s"; return 1; }
}

# Stops the writers of start_parallel_writers and waits for them.
stop_parallel_writers() {
	touch /tmp/w.stop
	wait $pids
}

# Whether no write failed (the failures listed otherwise).
no_write_failed() {
	[ -f /tmp/w.failed ] || return 0
	echo "# $(wc -l </tmp/w.failed) failed write(s):"
	sed 's/^/#   /' /tmp/w.failed | head -n 10
	return 1
}
