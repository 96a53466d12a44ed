#!/usr/bin/env bash
# `make run`: boots a guest with the project's modules loaded and shows what
# they report. Usage: run.sh <kernel build dir>
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"
kbuild=$1
mkdir -p "$VMSG_BUILD"
mapfile -t kos < <(find drivers -name '*.ko' | sort)
scripts/guest-image.sh "$VMSG_BUILD/guest.cpio.gz" "${kos[@]}"
scripts/qemu.sh "$kbuild/arch/x86/boot/bzImage" "$VMSG_BUILD/guest.cpio.gz" "$VMSG_BUILD/guest-run" 300 "vmsg.plan=run"
grep -E 'virtio|vmsg|VMSG' "$VMSG_BUILD/guest-run/console.log" | grep -v '^VMSG-GUEST-START'
