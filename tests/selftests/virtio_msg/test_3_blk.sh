#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# virtio-blk over virtio-msg, backed by a fresh image file on the host
# (scripts/e2e.sh). The host wrote random data at the end of the image and
# passed its SHA-256 (vmsg.blk_tail_sha256); the guest reads it, writes random
# data at 3/4 of the disk and an ext2 file system on the first half, and
# prints both checksums ("# vmsg-e2e ...") for the host to check the image
# after the guest has finished.
. ./lib.sh
require_ivshmem
ktap_print_header
ktap_set_plan 16

sectors=$(e2e_arg blk_sectors)
tail_sha=$(e2e_arg blk_tail_sha256)
bytes=$((sectors * 512))
raw_off=$((bytes / 4 * 3)) raw_len=1048576
tail_len=65536
fs_kib=$((sectors / 4))

find_disk() {
	wait_bound 2 virtio_blk || return 1
	for b in "$(vdev_by_id 2)"/block/*; do
		[ -e "$b" ] && { dev=$(basename "$b"); return 0; }
	done
	echo "# the virtio-blk device has no block disk"
	return 1
}

host_tail_reads() {
	quiet dd if="/dev/$dev" of=/tmp/blk.tail bs=$tail_len skip=$(((bytes - tail_len) / tail_len)) count=1 iflag=direct || return 1
	got=$(sha256 /tmp/blk.tail)
	[ "$got" = "$tail_sha" ] || { echo "# last 64 KiB: sha256 $got, the host wrote $tail_sha"; return 1; }
}

write_raw() {
	quiet dd if=/dev/urandom of=/tmp/blk.raw bs=65536 count=$((raw_len / 65536)) &&
		quiet dd if=/tmp/blk.raw of="/dev/$dev" bs=65536 seek=$((raw_off / 65536)) oflag=direct conv=notrunc,fsync
}

raw_reads_back() {
	quiet dd if="/dev/$dev" of=/tmp/blk.raw.back bs=65536 skip=$((raw_off / 65536)) count=$((raw_len / 65536)) iflag=direct &&
		cmp /tmp/blk.raw /tmp/blk.raw.back
}

write_file() {
	quiet dd if=/dev/urandom of=/tmp/blk.file bs=65536 count=32 &&
		quiet dd if=/tmp/blk.file of=/mnt/data.bin bs=65536 conv=fsync && sync
}

drop_caches() { echo 3 >/proc/sys/vm/drop_caches; }

file_reads_back() {
	has_size /mnt/data.bin "$(wc -c </tmp/blk.file)" || return 1
	a=$(sha256 /tmp/blk.file) b=$(sha256 /mnt/data.bin)
	[ "$a" = "$b" ] || { echo "# /data.bin: sha256 $b after remount, $a written"; return 1; }
}

chain "the kernel command line gives the disk size and the host data checksum" \
	test -n "$sectors" -a -n "$tail_sha" -a "$bytes" -ge $((8 << 20))
chain "a virtio-blk disk /dev/vdX exists" find_disk
chain "its size is the image's ($sectors sectors)" reads "/sys/block/$dev/size" "$sectors"
chain "it is writable" reads "/sys/block/$dev/ro" 0
chain "the host's data at the end of the image reads back (O_DIRECT)" host_tail_reads
chain "1 MiB of random data written at 3/4 of the disk (O_DIRECT, fsync)" write_raw
chain "and read back identical (O_DIRECT)" raw_reads_back
[ -z "$e2e_blocked" ] && echo "# vmsg-e2e blk-raw offset=$raw_off length=$raw_len sha256=$(sha256 /tmp/blk.raw)"
chain "mke2fs (e2fsprogs) on the first half of the disk" \
	quiet "$(e2prog mke2fs)" -q -F -t ext2 -b 1024 -E nodiscard "/dev/$dev" "$fs_kib"
chain "mount -t ext2" quiet mount -t ext2 "/dev/$dev" /mnt
chain "write 2 MiB of random data to a file, sync" write_file
chain "unmount" quiet umount /mnt
chain "drop the page cache" drop_caches
chain "mount again" quiet mount -t ext2 "/dev/$dev" /mnt
chain "the file reads back identical" file_reads_back
[ -z "$e2e_blocked" ] && echo "# vmsg-e2e blk-file path=/data.bin length=$(wc -c </tmp/blk.file) sha256=$(sha256 /tmp/blk.file)"
chain "unmount again" quiet umount /mnt
chain "e2fsck -fn finds the file system clean" quiet "$(e2prog e2fsck)" -fn "/dev/$dev"
ktap_finished
