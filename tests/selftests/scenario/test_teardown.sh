#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The bus device goes away while something is under way on it (issue 20:
# rmmod, PCI unbind and PCI removal during a probe, a hot add, a recovery and
# a flood). $1 is HOW:DURING.
#   HOW     rmmod   rmmod virtio_msg_shm (insmod brings it back)
#           unbind  unbind the ivshmem device from virtio_msg_shm (bind)
#           remove  remove the ivshmem PCI device (a PCI rescan)
#   DURING  probe     the disk's driver still probes (the scenario delays the
#                     disk's answers): the bus is brought up again first
#           hotadd    a disk hot added, its driver still probing (the
#                     scenario delays the new device's answers)
#           recovery  the device logic killed: the instance retries to attach
#                     (split mode, short request timeout)
#           flood     the device side keeps the to-driver ring full
#                     ("vmsg-host flood", 10 s)
# The teardown must return within $LIMIT_MS: what is under way holds it for
# at most one request (a driver still probing has its device marked broken
# first, so its probe fails at its next request; a device being added is
# turned away by the registration's gate; the retrying and the receive work
# stop), no virtio device and no instance may remain, and the bus must come
# back with every device bound. Before the probing device was marked broken,
# rmmod and the PCI removal waited for the whole probe (10.3 s and 9.7 s). KASAN would report a work item or the
# interrupt thread running on after the teardown (scripts/results.py).
. ./lib.sh
ktap_print_header
ktap_set_plan 4
how=${1%%:*} during=${1#*:}
shm_args=$(e2e_arg shm_args | tr , ' ')
pci=$(ivshmem_pci)
# A few requests of the slowest scenario (delay 300 ms), with room for TCG; a
# hang takes 60 s. During a recovery, stopping the retrying ends the waits of
# the attempt under way for a device side that does not answer, and only the
# teardown's own detach waits for it (up to 5 s, drivers/virtio_msg_shm/link.rs,
# wait_device_state): 5 s and room. Before, the attempt's detach or attach
# waited its full 5 s first (11.9 s seen).
LIMIT_MS=6000
[ "$during" = recovery ] && LIMIT_MS=8000

bus_gone() {
	case $how in
	rmmod) rmmod virtio_msg_shm ;;
	unbind) echo "$pci" >/sys/bus/pci/drivers/virtio_msg_shm/unbind ;;
	remove) echo 1 >"/sys/bus/pci/devices/$pci/remove" ;;
	*) echo "unknown teardown '$how'" >&2; return 1 ;;
	esac
}

bus_back() {
	case $how in
	rmmod) insmod /vmsg/modules/virtio_msg_shm.ko $shm_args ;;
	unbind) echo "$pci" >/sys/bus/pci/drivers/virtio_msg_shm/bind ;;
	remove) echo 1 >/sys/bus/pci/rescan ;;
	esac
}

# Whether the disk is bound to virtio_blk and not yet at DRIVER_OK: its
# driver's probe is under way.
probing() {
	d=$(vdev_by_id 2) && [ "$(bound_driver "$d")" = virtio_blk ] || return 1
	[ $(($(cat "$d/status" 2>/dev/null || echo 4) & 4)) = 0 ]
}

shm_stats() { ls /sys/kernel/debug/virtio_msg_shm/*/stats 2>/dev/null | head -n 1; }
retrying() { dmesg | grep -q 'virtio_msg_shm .*: recovery failed'; }
deferring() { [ "$(stat_of "$(shm_stats)" rx_deferred)" -gt "$deferred" ]; }

under_way() {
	case $during in
	probe)
		# Everything up first, then the bus again, caught while the disk probes.
		wait_bound 2 virtio_blk 60 || return 1
		quiet bus_gone && wait_for 20 no_devices && quiet bus_back || return 1
		wait_for 30 probing || { echo "# the disk was not caught probing"; list_devices; return 1; }
		;;
	hotadd)
		wait_bound 3 virtio_console 60 || return 1
		ask_host add blk
		wait_for 30 probing || { echo "# the added disk was not caught probing"; list_devices; return 1; }
		;;
	recovery)
		wait_bound 2 virtio_blk 60 || return 1
		ask_host kill-device
		wait_for 30 retrying || { echo "# no failed recovery attempt logged in 30 s"; return 1; }
		;;
	flood)
		wait_bound 2 virtio_blk 60 || return 1
		deferred=$(stat_of "$(shm_stats)" rx_deferred)
		flood_t=$(now)
		ask_host flood 1 10000
		wait_for 10 deferring || { echo "# the flood did not reach the receive work"; return 1; }
		;;
	*) echo "# unknown situation '$during'"; return 1 ;;
	esac
}

tears_down() {
	run_bounded 60 bus_gone
	rc=$?
	[ $rc = 124 ] && return 1
	echo "# $how during the $during took $bounded_ms ms"
	[ $rc = 0 ] || { echo "# $how: $(cat /tmp/bounded.err)"; return 1; }
	[ "$bounded_ms" -le $LIMIT_MS ] || { echo "# longer than $LIMIT_MS ms"; return 1; }
}

nothing_left() {
	wait_for 10 no_devices || return 1
	[ "$how" = rmmod ] || no_instance
}

comes_back() {
	case $during in
	recovery) ask_host start-device ;;
	# The bus comes back once the flood is over: a VERSION answer queued behind
	# a ring kept full may miss its request timeout, and the probe fails.
	flood) while [ "$(ms_since "$flood_t")" -lt 11000 ]; do usleep 200000; done ;;
	esac
	quiet bus_back || return 1
	wait_bound 4 virtio_rng 60 && wait_bound 2 virtio_blk 60 && wait_bound 3 virtio_console 60
}

chain "the $during is under way" under_way
chain "$how during the $during returns within $LIMIT_MS ms" tears_down
chain "no virtio device and no bus instance remain" nothing_left
chain "the bus comes back and every device is bound" comes_back
ktap_finished
