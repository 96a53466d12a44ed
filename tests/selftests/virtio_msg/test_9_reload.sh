#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Removing virtio_msg_shm removes its devices; loading it again brings them
# back (the bus detaches and attaches again, see Documentation/shm-bus.rst)
# with the data the disk held.
. ./lib.sh
require_ivshmem
if ! grep -q '^virtio_msg_shm ' /proc/modules; then
	ktap_print_header
	ktap_skip_all "virtio_msg_shm is not a loaded module (built in?): nothing to reload"
	exit "$KSFT_SKIP"
fi
ktap_print_header
ktap_set_plan 12

no_devices() {
	n=$(ls /sys/bus/virtio/devices | wc -l)
	[ "$n" = 0 ] || { echo "# still there after rmmod: $(ls /sys/bus/virtio/devices)"; return 1; }
}

no_virtio_rng() {
	sys=$(hwrng_sysfs) || return 0
	! grep -q virtio_rng "$sys/rng_available" || { echo "# rng_available: $(cat "$sys/rng_available")"; return 1; }
}

# The file test_3_blk wrote is still on the disk, whatever its name is now.
disk_kept_file() {
	[ -f /tmp/blk.file ] || { echo "# test_3_blk left no file to compare with"; return 1; }
	dev=$(basename "$(vdev_by_id 2)"/block/*)
	quiet mount -t ext2 -o ro "/dev/$dev" /mnt || return 1
	a=$(sha256 /tmp/blk.file) b=$(sha256 /mnt/data.bin 2>/dev/null)
	umount /mnt
	[ "$a" = "$b" ] || { echo "# /data.bin: sha256 '$b', expected $a"; return 1; }
}

rng_reads() {
	timeout 60 dd if=/dev/hwrng of=/tmp/rng.3 bs=64 count=1 2>/dev/null
	has_size /tmp/rng.3 64 && distinct_bytes /tmp/rng.3 2
}

console_line() {
	echo "vmsg-e2e after reload $$" >/tmp/hvc.line2
	console_roundtrip /tmp/hvc.line2
}

mark=$(log_mark)
chain "virtio_msg_shm unloads" quiet rmmod virtio_msg_shm
chain "its virtio devices are gone when rmmod returns" no_devices
leaf "the removal logged no warning or error about virtio" kernel_log_clean "$mark"
mark=$(log_mark)
chain "hw_random no longer offers a virtio rng" no_virtio_rng
chain "virtio_msg_shm loads again (modprobe)" quiet modprobe virtio_msg_shm
chain "virtio-rng is bound again" wait_bound 4 virtio_rng
chain "virtio-blk is bound again" wait_bound 2 virtio_blk
chain "virtio-console is bound again" wait_bound 3 virtio_console
leaf "/dev/hwrng gives random bytes again" rng_reads
leaf "the disk still holds the file written before the reload" disk_kept_file
leaf "the console echoes again" console_line
leaf "no warning or error about virtio since the reload" kernel_log_clean "$mark"
ktap_finished
