#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds the test guest's initramfs: busybox, the project's modules, the
# selftests and the user programs they need (with their shared libraries).
# Usage: guest-image.sh <output.cpio.gz> <module.ko>...
# The kselftest target is installed from the source of the kernel build $KBUILD
# (default: the one in build/kbuild-dir) into /vmsg/kselftest, with the
# project's scenario tests beside it (drivers/scenario/); /vmsg/selftests has
# the project's runner (run.sh) and what `make run` shows (demo.sh).
# With VMSG_GUEST_MODROOT=<dir>, the image also gets <dir>/lib/modules (the
# modules as install_modules in scripts/lib.sh installed them).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$1; shift
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,etc,vmsg/modules,vmsg/selftests}
cp /bin/busybox "$root/bin/busybox"
cp "$VMSG_TOP/tests/guest/init" "$root/init"
cp "$VMSG_TOP"/tests/selftests/*.sh "$root/vmsg/selftests/"
kbuild=${KBUILD:-$(cat "$VMSG_BUILD/kbuild-dir" 2>/dev/null)} || die "no kernel build directory: set KBUILD"
kselftest_install "$(kernel_source_of "$kbuild")" "$root/vmsg/kselftest" || die "installing the kselftest target failed"
mkdir -p "$root/vmsg/kselftest/drivers/scenario"
cp "$VMSG_TOP"/tests/selftests/scenario/*.sh "$root/vmsg/kselftest/drivers/scenario/"

# Modules, and the order the guest loads them in: the transport virtio_msg
# first, as every bus module needs its symbols; then the bus modules.
names=()
for ko in "$@"; do
	cp "$ko" "$root/vmsg/modules/"
	name=$(basename "$ko" .ko)
	case "$name" in vmsg_harness_*) ;; *) names+=("$name") ;; esac
done
printf '%s\n' "${names[@]}" | { grep -x virtio_msg || true; } >"$root/vmsg/modules/load-order"
printf '%s\n' "${names[@]}" | { grep -vx -e virtio_msg -e '' || true; } >>"$root/vmsg/modules/load-order"

export PATH="$PATH:/usr/sbin:/sbin"
# Dynamically linked programs the selftests use, with their libraries
# (e2fsprogs for the end-to-end virtio-blk test).
for prog in ${VMSG_GUEST_PROGRAMS-mke2fs e2fsck}; do
	path=$(command -v "$prog") || die "guest program $prog not found on the host"
	mkdir -p "$root$(dirname "$path")"
	cp -L "$path" "$root$path"
	for lib in $(ldd "$path" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -Ln "$lib" "$root$lib"
	done
done

if [ -n "${VMSG_GUEST_MODROOT:-}" ]; then
	mkdir -p "$root/lib"
	cp -a "$VMSG_GUEST_MODROOT/lib/modules" "$root/lib/"
fi

mkdir -p "$(dirname "$out")"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
