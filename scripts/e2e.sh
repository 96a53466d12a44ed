#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end test: the guest's unmodified virtio drivers (rng, blk, console)
# over virtio_msg and virtio_msg_shm, served by tools/vmsg-device on the host
# through QEMU's ivshmem-doorbell device (Documentation/shm-bus.rst).
#
# Usage: e2e.sh <bzImage> <initramfs> <outdir>   (what scripts/check.sh runs)
#        e2e.sh                                  (`make e2e`: after `make modules`,
#            builds the guest image, runs, prints the verdict; kernel from
#            $KBUILD or build/kbuild-dir)
#
# Steps: build vmsg-device (release); in a fresh directory under /dev/shm
# create the guest RAM file and a disk image whose last 64 KiB are random
# (their SHA-256 goes to the guest); start vmsg-device with an rng, a disk and
# an echoing console; boot the guest (plan e2e: the kselftest target
# tests/selftests/virtio_msg/ through run_kselftest.sh) with the RAM file
# shared and the ivshmem-doorbell device connected to vmsg-device; stop vmsg-device with SIGTERM; then check the image on the
# host against what the guest reported writing.
#
# Environment: VMSG_E2E_TIMEOUT (guest time limit, s), VMSG_E2E_LOG_LEVEL and
# VMSG_E2E_DEVICE_ARGS (more vmsg-device options, e.g. "--fault delay=200:1").
#
# <outdir> gets what scripts/qemu.sh writes (console.log, tap.log, status),
# vmsg-device.log, and host.tap: the host-side checks as KTAP.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"
export PATH="$PATH:/usr/sbin:/sbin" # e2fsck, debugfs

DISK_MIB=64     # Small: mke2fs and e2fsck must stay fast under TCG with KASAN.
GUEST_RAM=1G    # Must equal scripts/qemu.sh's -m.
TAIL=65536      # Bytes of host data at the end of the image.

standalone=
if [ $# = 0 ]; then
	standalone=1
	kbuild=${KBUILD:-$(cat "$VMSG_BUILD/kbuild-dir" 2>/dev/null)} ||
		die "no kernel build directory: run make check once, or set KBUILD"
	kernel=$kbuild/arch/x86/boot/bzImage
	initrd=$VMSG_BUILD/guest-e2e.cpio.gz
	outdir=$VMSG_BUILD/guest-e2e
	mapfile -t kos < <(find drivers -name '*.ko' | sort)
	# The modules installed as users do too: the reload test uses modprobe.
	install_modules "$kbuild" "$VMSG_BUILD/modroot" || die "make modules_install failed"
	KBUILD=$kbuild VMSG_GUEST_MODROOT=$VMSG_BUILD/modroot scripts/guest-image.sh "$initrd" "${kos[@]}" ||
		die "building the guest image failed"
elif [ $# = 3 ]; then
	kernel=$1 initrd=$2 outdir=$3
else
	die "usage: e2e.sh [<bzImage> <initramfs> <outdir>]"
fi

rm -rf "$outdir"
mkdir -p "$outdir"
host_tap=$outdir/host.tap
# Records one host-side check: result ok|fail|skip name [reason].
result() { host_result e2e "$@"; }
write_host_tap() { host_tap_write e2e-host: "$host_tap"; }

tmp=$(mktemp -d /dev/shm/vmsg-e2e.XXXXXX) || die "cannot create a directory under /dev/shm"
dev_pid=
cleanup() {
	[ -n "$dev_pid" ] && kill -KILL "$dev_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

finish() {
	write_host_tap
	[ -n "$standalone" ] || exit 0
	python3 scripts/results.py report --guest "e2e=$outdir" --tap "$host_tap" --out "$VMSG_BUILD/e2e-results.tap"
	exit $?
}

log "e2e: building vmsg-device"
if ! cargo build --release --quiet --manifest-path tools/Cargo.toml -p vmsg-device >"$outdir/vmsg-device-build.log" 2>&1; then
	result fail vmsg-device-builds "see $outdir/vmsg-device-build.log"
	finish
fi
result ok vmsg-device-builds
device=tools/target/release/vmsg-device

# The disk: zeros, then random data in its last 64 KiB that the guest must read.
disk=$tmp/disk.img sock=$tmp/ivshmem.sock ram=$tmp/guest-ram
truncate -s "${DISK_MIB}M" "$disk"
dd if=/dev/urandom of="$disk" bs=$TAIL count=1 seek=$((DISK_MIB * 1048576 / TAIL - 1)) conv=notrunc status=none
tail_sha=$(tail -c $TAIL "$disk" | sha256sum | cut -d' ' -f1)
truncate -s "$GUEST_RAM" "$ram"

log "e2e: starting vmsg-device"
"$device" --socket "$sock" --guest-memory "$ram" \
	--device rng --device "blk:path=$disk" --device console:output=echo \
	--log-level "${VMSG_E2E_LOG_LEVEL:-info}" ${VMSG_E2E_DEVICE_ARGS:-} >"$outdir/vmsg-device.log" 2>&1 &
dev_pid=$!
for _ in $(seq 100); do
	[ -S "$sock" ] && break
	kill -0 "$dev_pid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -S "$sock" ]; then
	result fail vmsg-device-listens "no socket after 10 s, see $outdir/vmsg-device.log"
	finish
fi
result ok vmsg-device-listens

log "e2e: booting the guest (plan e2e)"
# KUnit ran in the main guest already: a filter that matches no suite keeps it
# (and its KTAP header) out of this one.
scripts/qemu.sh "$kernel" "$initrd" "$outdir" "${VMSG_E2E_TIMEOUT:-400}" \
	"vmsg.plan=e2e kunit.filter_glob=none-in-e2e vmsg.blk_sectors=$((DISK_MIB * 2048)) vmsg.blk_tail_sha256=$tail_sha" -- \
	-object "memory-backend-file,id=mem,size=$GUEST_RAM,mem-path=$ram,share=on" \
	-machine memory-backend=mem \
	-chardev "socket,path=$sock,id=ivsh" \
	-device ivshmem-doorbell,chardev=ivsh,vectors=1

# The device program must have served the whole run and must stop cleanly.
stop_and_check vmsg-device-exits-cleanly-on-SIGTERM "$dev_pid"
dev_pid=
errors=$(grep -c ' ERROR ' "$outdir/vmsg-device.log")
if [ "$errors" = 0 ]; then result ok vmsg-device-logged-no-error
else result fail vmsg-device-logged-no-error "$errors ERROR line(s) in $outdir/vmsg-device.log"; fi

# What the guest wrote must be in the image file: its raw data at the offset
# it names, and its file in the ext2 file system.
reported() { { tr -d '\r' <"$outdir/tap.log"; } 2>/dev/null | sed -n "s/^[ #]*# vmsg-e2e $1 .*$2=\([^ ]*\).*/\1/p" | tail -n 1; }
off=$(reported blk-raw offset) len=$(reported blk-raw length) sha=$(reported blk-raw sha256)
if [ -z "$sha" ]; then
	result fail blk-image-holds-the-guests-raw-data "the guest reported no raw write"
else
	got=$(tail -c +$((off + 1)) "$disk" | head -c "$len" | sha256sum | cut -d' ' -f1)
	if [ "$got" = "$sha" ]; then result ok blk-image-holds-the-guests-raw-data
	else result fail blk-image-holds-the-guests-raw-data "image bytes $off+$len: sha256 $got, the guest wrote $sha"; fi
fi
path=$(reported blk-file path) sha=$(reported blk-file sha256)
if [ -z "$sha" ]; then
	result fail blk-image-file-system-is-clean "the guest reported no file"
	result fail blk-image-holds-the-guests-file "the guest reported no file"
else
	if e2fsck -fn "$disk" >"$outdir/host-e2fsck.log" 2>&1; then result ok blk-image-file-system-is-clean
	else result fail blk-image-file-system-is-clean "see $outdir/host-e2fsck.log"; fi
	got=$(debugfs -R "cat $path" "$disk" 2>/dev/null | sha256sum | cut -d' ' -f1)
	if [ "$got" = "$sha" ]; then result ok blk-image-holds-the-guests-file
	else result fail blk-image-holds-the-guests-file "$path in the image: sha256 $got, the guest wrote $sha"; fi
fi
finish
