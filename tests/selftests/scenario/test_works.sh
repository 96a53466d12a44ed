#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device kinds named in $1 (comma separated: rng, blk, console) work:
# each is bound to its virtio driver and moves data, is at DRIVER_OK and is
# not marked broken. blk needs vmsg.blk_sectors and vmsg.blk_tail_sha256
# (scripts/scenarios.sh).
. ./lib.sh
kinds=$(echo "$1" | tr , ' ')
n=0
for k in $kinds; do
	case $k in rng) n=$((n + 3)) ;; blk) n=$((n + 5)) ;; console) n=$((n + 3)) ;; *) n=$((n + 1)) ;; esac
done
ktap_print_header
ktap_set_plan $n

rng_reads() {
	timeout 30 dd if=/dev/hwrng of=/tmp/rng.s bs=64 count=1 2>/dev/null
	has_size /tmp/rng.s 64 && distinct_bytes /tmp/rng.s 2
}

blk_dev() {
	for b in "$(vdev_by_id 2)"/block/*; do
		[ -e "$b" ] && { basename "$b"; return 0; }
	done
	return 1
}

blk_size() {
	dev=$(blk_dev) || { echo "# the virtio-blk device has no disk"; return 1; }
	reads "/sys/block/$dev/size" "$(e2e_arg blk_sectors)"
}

blk_tail() {
	dev=$(blk_dev) || return 1
	bytes=$(($(e2e_arg blk_sectors) * 512))
	quiet dd if="/dev/$dev" of=/tmp/blk.tail bs=65536 skip=$((bytes / 65536 - 1)) count=1 iflag=direct || return 1
	got=$(sha256 /tmp/blk.tail) want=$(e2e_arg blk_tail_sha256)
	[ "$got" = "$want" ] || {
		echo "# last 64 KiB: sha256 $got, the host wrote $want"
		echo "# read $(wc -c </tmp/blk.tail) bytes; /dev/$dev: $(ls -l "/dev/$dev"), sysfs dev $(cat "/sys/block/$dev/dev"), size $(cat "/sys/block/$dev/size")"
		return 1
	}
}

blk_write_read() {
	dev=$(blk_dev) || return 1
	quiet dd if=/dev/urandom of=/tmp/blk.w bs=65536 count=4 &&
		quiet dd if=/tmp/blk.w of="/dev/$dev" bs=65536 seek=16 oflag=direct conv=notrunc,fsync &&
		quiet dd if="/dev/$dev" of=/tmp/blk.r bs=65536 skip=16 count=4 iflag=direct &&
		cmp /tmp/blk.w /tmp/blk.r
}

console_line() {
	printf 'vmsg-scenario %s\n' "$(od -An -v -tx1 -N16 /dev/urandom | tr -d ' \n')" >/tmp/hvc.s
	console_roundtrip /tmp/hvc.s
}

# The device with id $1 is at DRIVER_OK without FAILED or NEEDS_RESET, and
# debugfs does not call it broken.
in_service() {
	d=$(vdev_by_id "$1") || { echo "# no virtio device with id $1"; return 1; }
	s=$(($(cat "$d/status")))
	[ $((s & 0xcf)) = $((0x0f)) ] || { echo "# $(basename "$d"): status $(cat "$d/status")"; return 1; }
	f=$(stats_files "$1")
	[ -n "$f" ] || { echo "# no debugfs stats for device id $1"; return 1; }
	grep -qx 'broken: false' $f || { echo "# $f: $(grep broken $f)"; return 1; }
}

for k in $kinds; do
	case $k in
	rng)
		check "virtio-rng is bound to virtio_rng" wait_bound 4 virtio_rng
		check "/dev/hwrng gives random bytes" rng_reads
		check "virtio-rng is at DRIVER_OK, not broken" in_service 4
		;;
	blk)
		check "virtio-blk is bound to virtio_blk" wait_bound 2 virtio_blk
		check "its size is the image's" blk_size
		check "the host's data at the end of the image reads back" blk_tail
		check "256 KiB written (O_DIRECT, fsync) read back identical" blk_write_read
		check "virtio-blk is at DRIVER_OK, not broken" in_service 2
		;;
	console)
		check "virtio-console is bound to virtio_console" wait_bound 3 virtio_console
		check "a line written to /dev/hvc0 comes back" console_line
		check "virtio-console is at DRIVER_OK, not broken" in_service 3
		;;
	*) ktap_test_fail "unknown device kind '$k'" ;;
	esac
done
ktap_finished
