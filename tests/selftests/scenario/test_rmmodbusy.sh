#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# rmmod virtio_msg_shm while a workload keeps the virtio-blk disk busy
# (issue 20, bug 0): the removal must complete, bounded, with every device
# gone; the requests in flight complete (the device side still answers) or
# fail, none is left waiting. Then the module loads again and the disk works.
# $1 is the workload: direct (4 KiB O_DIRECT writes with fsync), sync
# (buffered writes and sync in a loop) or fs (file writes on ext2).
. ./lib.sh
ktap_print_header
ktap_set_plan 5
workload=${1:-direct}
shm_args=$(e2e_arg shm_args | tr , ' ')

# Buffered writes of 64 KiB blocks and a sync, round after round.
sync_loop() {
	i=0
	while [ ! -e /tmp/w.stop ]; do
		# Once the disk is gone, dd would create /dev/$1 as a file.
		[ -b "/dev/$1" ] || break
		dd if=/dev/urandom of="/dev/$1" bs=65536 seek=$((i % 256)) count=1 conv=notrunc 2>/dev/null || break
		sync
		i=$((i + 1))
		echo "$i" >/tmp/w.count
	done
}

# Files of 64 KiB written on an ext2 file system on the disk, until stopped.
fs_loop() {
	mkdir -p /mnt/busy
	mount -t ext2 "/dev/$1" /mnt/busy || return 1
	i=0
	while [ ! -e /tmp/w.stop ]; do
		head -c 65536 /dev/urandom >"/mnt/busy/f$((i % 64))" 2>/dev/null || break
		i=$((i + 1))
		echo "$i" >/tmp/w.count
	done
}
counted() { [ "$(cat /tmp/w.count 2>/dev/null || echo 0)" -ge 5 ]; }

# Starts the workload and waits until it is under way.
busy() {
	disk=$(blk_disk) || { echo "# no disk"; return 1; }
	case $workload in
	direct) start_writer 512 32 ;;
	sync | fs)
		rm -f /tmp/w.*
		[ "$workload" = fs ] && { quiet mke2fs -q -F "/dev/$disk" || return 1; }
		(
			exec >/dev/null 2>&1 </dev/null
			"${workload}_loop" "$disk"
		) &
		wpid=$!
		wait_for 60 counted || { echo "# the $workload workload did not get going in 60 s"; return 1; }
		;;
	*) echo "# unknown workload '$workload'"; return 1 ;;
	esac
}

removes() {
	run_bounded 60 rmmod virtio_msg_shm
	rc=$?
	[ $rc = 124 ] && return 1
	echo "# rmmod took $bounded_ms ms"
	[ $rc = 0 ] || { echo "# rmmod: $(cat /tmp/bounded.err)"; return 1; }
}

workload_ends() {
	touch /tmp/w.stop
	wait $wpid
	umount /mnt/busy 2>/dev/null
	# A dd that opened /dev/$disk just after the node went created a file there
	# (the writers check first, but the window stays): it would hide the node
	# of the disk that comes next.
	[ ! -f "/dev/$disk" ] || { echo "# removing the regular file a writer left at /dev/$disk"; rm -f "/dev/$disk"; }
}

reloads() {
	quiet insmod /vmsg/modules/virtio_msg_shm.ko $shm_args &&
		wait_bound 2 virtio_blk 60
}

chain "a $workload workload keeps virtio-blk busy" busy
chain "rmmod virtio_msg_shm under the $workload workload returns within 60 s" removes
# (A device whose removal just completed may still be listed for a moment.)
chain "no virtio device remains" wait_for 10 no_devices
leaf "the workload ends (its I/O failed or completed, none waits)" workload_ends
leaf "virtio_msg_shm loads again and the disk is bound" reloads
ktap_finished
