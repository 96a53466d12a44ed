#!/bin/sh
# Helpers of the scenario tests (sourced): the end-to-end helpers, and what a
# scenario asks about a device kind. scripts/scenarios.sh starts vmsg-device
# as the scenario says (tests/e2e/scenarios) and names the tests to run.
. ../e2e/lib.sh

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
	for f in /sys/kernel/debug/virtio_msg-*/dev*/stats; do
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
	set -- /sys/kernel/debug/virtio_msg-*
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

# Whether a virtio device with id $1 is bound to driver $2.
is_bound() { d=$(vdev_by_id "$1") && [ "$(bound_driver "$d")" = "$2" ]; }

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
