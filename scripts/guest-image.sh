#!/usr/bin/env bash
# Builds the test guest's initramfs: busybox, the project's modules, the
# selftests and the user programs they need (with their shared libraries).
# Usage: guest-image.sh <output.cpio.gz> <module.ko>...
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$1; shift
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,etc,vmsg/modules,vmsg/selftests}
cp /bin/busybox "$root/bin/busybox"
cp "$VMSG_TOP/tests/guest/init" "$root/init"
cp "$VMSG_TOP"/tests/selftests/*.sh "$root/vmsg/selftests/"

# Modules, and the order the guest loads them in (transport before buses).
: >"$root/vmsg/modules/load-order"
for ko in "$@"; do
	cp "$ko" "$root/vmsg/modules/"
	name=$(basename "$ko" .ko)
	case "$name" in vmsg_harness_*) ;; *) echo "$name" >>"$root/vmsg/modules/load-order" ;; esac
done

# Dynamically linked programs the selftests use, with their libraries.
for prog in ${VMSG_GUEST_PROGRAMS:-}; do
	path=$(command -v "$prog") || die "guest program $prog not found on the host"
	mkdir -p "$root$(dirname "$path")"
	cp -L "$path" "$root$path"
	for lib in $(ldd "$path" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -Ln "$lib" "$root$lib"
	done
done

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
