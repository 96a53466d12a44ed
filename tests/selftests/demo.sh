#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# What `make run` shows: unmodified virtio drivers at work over virtio-msg.
# Output goes to the second serial line, which run.sh prints.
step() { echo; echo "== $* =="; }

step "virtio devices (all on one virtio-msg bus instance)"
for d in /sys/bus/virtio/devices/*; do
	[ -e "$d" ] || continue
	echo "$(basename "$d"): virtio id $(($(cat "$d/device"))), driver $(basename "$(readlink "$d/driver")"), on $(basename "$(readlink -f "$d/..")")"
done

step "lsblk"
lsblk 2>/dev/null || cat /proc/partitions

step "32 bytes from /dev/hwrng ($(cat /sys/class/misc/hw_random/rng_current))"
dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1

step "virtio-blk: write 4 MiB of random data, drop caches, read it back"
dd if=/dev/urandom of=/tmp/data bs=1M count=4 2>/dev/null
dd if=/tmp/data of=/dev/vda bs=1M oflag=direct conv=fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
written=$(sha256sum </tmp/data | cut -d' ' -f1)
read_back=$(dd if=/dev/vda bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
echo "written   sha256 $written"
echo "read back sha256 $read_back"
[ "$written" = "$read_back" ] && echo "MATCH" || echo "MISMATCH"

step "virtio-console: a line through /dev/hvc0 and back (the device echoes)"
msg="hello over virtio-msg"
(
	exec 3<>/dev/hvc0
	stty raw -echo -echonl -iexten <&3
	timeout 10 head -c $((${#msg} + 1)) <&3 >/tmp/echo &
	echo "$msg" >&3
	wait
)
echo "sent: $msg"
echo "got:  $(cat /tmp/echo)"

step "transport statistics (debugfs)"
for f in /sys/kernel/debug/virtio_msg/*/dev*/stats; do
	echo "$f: $(tr '\n' ' ' <"$f")"
done
