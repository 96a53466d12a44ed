#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make run`: the project at work. Starts tools/vmsg-device with a virtio-rng,
# a virtio-blk backed by build/run-disk.img and an echoing virtio-console, all
# on one shared-memory bus instance, boots a guest that loads virtio_msg and
# virtio_msg_shm, and shows what the guest's unmodified virtio drivers do over
# virtio-msg: the devices, lsblk, bytes from /dev/hwrng, a checksum of data
# written to the disk and read back, a console round trip, the debugfs stats.
# Usage: run.sh <kernel build dir>
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"
kbuild=$1
out=$VMSG_BUILD/guest-run
mkdir -p "$VMSG_BUILD"
rm -rf "$out"

log "building vmsg-device"
cargo build --release --quiet --manifest-path tools/Cargo.toml -p vmsg-device || die "vmsg-device build failed"
mapfile -t kos < <(find drivers -name '*.ko' | sort)
KBUILD=$kbuild VMSG_GUEST_PROGRAMS="mke2fs e2fsck lsblk" scripts/guest-image.sh "$VMSG_BUILD/guest-run.cpio.gz" "${kos[@]}" ||
	die "building the guest image failed"

tmp=$(mktemp -d /dev/shm/vmsg-run.XXXXXX) || die "cannot create a directory under /dev/shm"
dev_pid=
trap '[ -n "$dev_pid" ] && kill "$dev_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
disk=$VMSG_BUILD/run-disk.img
[ -f "$disk" ] || truncate -s 64M "$disk"
truncate -s 1G "$tmp/ram"
mkdir -p "$out"
tools/target/release/vmsg-device --socket "$tmp/sock" --guest-memory "$tmp/ram" \
	--device rng --device "blk:path=$disk" --device console:output=echo \
	>"$out/vmsg-device.log" 2>&1 &
dev_pid=$!
for _ in $(seq 100); do [ -S "$tmp/sock" ] && break; sleep 0.1; done
[ -S "$tmp/sock" ] || die "vmsg-device did not start, see $out/vmsg-device.log"

log "booting the guest (TCG: about 30 s)"
scripts/qemu.sh "$kbuild/arch/x86/boot/bzImage" "$VMSG_BUILD/guest-run.cpio.gz" "$out" 300 \
	"vmsg.plan=run kunit.filter_glob=none-in-run" -- \
	-object "memory-backend-file,id=mem,size=1G,mem-path=$tmp/ram,share=on" \
	-machine memory-backend=mem -chardev "socket,path=$tmp/sock,id=ivsh" \
	-device ivshmem-doorbell,chardev=ivsh,vectors=1
kill -TERM "$dev_pid" 2>/dev/null
wait "$dev_pid" 2>/dev/null
dev_pid=

echo "--- kernel log (virtio-msg lines) ---"
grep -E '^(virtio_msg|virtio_blk|virtio_rng|virtio_msg_shm)' "$out/console.log"
echo "--- what the guest saw ---"
tr -d '\r' <"$out/tap.log"
echo "--- device side: $out/vmsg-device.log; guest console: $out/console.log ---"
python3 scripts/results.py verdict "$out" | sed 's/^/problem: /'
