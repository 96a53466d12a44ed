#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Hot remove of a disk carrying 16 parallel O_DIRECT writers (issue 20, bug
# 0b), after test_hotadd: the device side announces the removal and serves
# the disk until its driver resets it, so the writes in flight complete, the
# removal completes (bounded), and the writers see their I/O end (done, or
# failed once the disk is gone). A disk added afterwards gets its own debugfs
# entry (test_hotadd after this one).
. ./lib.sh
ktap_print_header
ktap_set_plan 4

removes() {
	ask_host remove blk
	t=$(now)
	wait_for 60 removed 2 || {
		echo "# removal not complete after 60 s"
		list_devices
		return 1
	}
	echo "# removal took $(ms_since "$t") ms, $(acked) write(s) acknowledged by then"
}

writers_end() {
	t=$(now)
	touch /tmp/w.stop
	(
		sleep 30
		[ -e /tmp/w.done ] || echo "# writers still running 30 s after the removal" >/dev/ttyS1
	) &
	wait $pids
	touch /tmp/w.done
	# A dd that opened /dev/$disk just after the node went created a file there:
	# it would hide the node of the disk added next.
	[ ! -f "/dev/$disk" ] || { echo "# removing the regular file a writer left at /dev/$disk"; rm -f "/dev/$disk"; }
	echo "# writers ended in $(ms_since "$t") ms; $(wc -l </tmp/w.failed 2>/dev/null || echo 0) failed write(s) after the disk went"
}

chain "16 O_DIRECT writers keep the hot-added disk busy" start_parallel_writers 256 8 16
mark=$(log_mark)
chain "hot-removed under them, its removal completes" removes
leaf "the writers' I/O ends" writers_end
leaf "the removal logged no warning or error about virtio" kernel_log_clean "$mark"
ktap_finished
