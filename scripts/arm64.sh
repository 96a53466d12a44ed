#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The arm64 side of `make check`: the project's modules built for an arm64
# kernel (with the FF-A bus), a guest image, and a boot in QEMU's `virt`
# machine (TCG) that loads the modules and runs their KUnit suites.
#
# Usage:
#   arm64.sh kernel                     build (or find cached) the arm64 kernel, print its objtree
#   arm64.sh modules <objtree>          build the modules (clippy, -D warnings) in build/arm64-src,
#                                       and with their KUnit suites in build/arm64-kunit-src
#   arm64.sh init                       cross-compile the guest's /init (tests/guest/arm64-init.c)
#   arm64.sh image <out.cpio.gz>        pack /init and the arm64 modules with KUnit suites
#   arm64.sh boot <objtree> <initramfs> <outdir> <timeout> [kernel args]
#
# The kernel: KDIR_ARM64=<tree> (a configured and built arm64 tree), else
# scripts/kernel.sh with ARCH=arm64 (cached like the x86 one; KDIR, which
# names the x86 tree, is ignored here).
#
# Module builds write objects next to their sources (M=), and the x86 build
# of the same files lives in the checkout: the arm64 builds therefore run on
# copies of the module sources (build/arm64-src, build/arm64-kunit-src),
# refreshed on every call.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SRC=$VMSG_BUILD/arm64-src
KUNIT_SRC=$VMSG_BUILD/arm64-kunit-src

case "${1:-}" in
kernel)
	# KDIR names the x86 tree; an arm64 tree of one's own is KDIR_ARM64.
	if [ -n "${KDIR_ARM64:-}" ]; then
		grep -q '^CONFIG_ARM64=y' "$KDIR_ARM64/.config" 2>/dev/null ||
			die "KDIR_ARM64=$KDIR_ARM64 is not a configured arm64 kernel tree"
		KDIR=$KDIR_ARM64 exec "$VMSG_TOP/scripts/kernel.sh"
	fi
	unset KDIR
	ARCH=arm64 exec "$VMSG_TOP/scripts/kernel.sh"
	;;
modules)
	objtree=$2
	args=(-C "$objtree" -j"$(nproc)" ARCH=arm64 LLVM="$VMSG_LLVM" CLIPPY=1 KRUSTFLAGS=-Dwarnings)
	# As users load them, then with the KUnit options (drivers/Kconfig) for
	# the guest, which runs the suites.
	sync_module_sources "$SRC"
	make "${args[@]}" M="$SRC" modules
	sync_module_sources "$KUNIT_SRC"
	make "${args[@]}" M="$KUNIT_SRC" $VMSG_KUNIT_OPTIONS modules
	"$VMSG_TOP/scripts/kunit-sections.sh" "$SRC/drivers" "$KUNIT_SRC/drivers"
	;;
init)
	out=$VMSG_BUILD/arm64-init
	src=$VMSG_TOP/tests/guest/arm64-init.c
	if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
		"clang$VMSG_LLVM" --target=aarch64-linux-gnu -static -nostdlib -ffreestanding \
			-fno-stack-protector -fno-builtin -O2 -Wall -Wextra -Werror \
			-fuse-ld=lld -Wl,--build-id=none -o "$out.tmp" "$src"
		mv "$out.tmp" "$out"
	fi
	echo "$out"
	;;
image)
	out=$2
	init=$("$0" init)
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root"/{proc,sys,dev,tmp,vmsg/modules}
	cp "$init" "$root/init"
	# Load order: the transport first (every bus module needs its symbols).
	for m in virtio_msg virtio_msg_shm virtio_msg_ffa; do
		ko=$(find "$KUNIT_SRC/drivers" -name "$m.ko" | head -1)
		[ -n "$ko" ] || die "$m.ko not built for arm64 (run: arm64.sh modules)"
		cp "$ko" "$root/vmsg/modules/"
		echo "$m" >>"$root/vmsg/modules/load-order"
	done
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	;;
boot)
	objtree=$2 initrd=$3 outdir=$4 secs=$5 append=${6:-}
	mkdir -p "$outdir"
	run_guest() {
		rm -f "$outdir"/{console,tap}.log "$outdir/status"
		# One UART on `virt`: the guest's own KTAP goes to the console with a
		# VMSG-TAP prefix and is split out into tap.log below (devkmsg=on: the
		# kernel would otherwise rate-limit those lines).
		timeout --foreground -k 5 "$secs" qemu-system-aarch64 \
			-machine virt,gic-version=3 -cpu max -accel tcg -smp 2 -m 1G \
			-kernel "$objtree/arch/arm64/boot/Image" -initrd "$initrd" \
			-append "console=ttyAMA0 printk.devkmsg=on printk.time=0 panic=-1 oops=panic loglevel=7 $append" \
			-display none -monitor none -no-reboot -nodefaults \
			-serial "file:$outdir/console.log" </dev/null >"$outdir/qemu.log" 2>&1
		local rc=$?
		if [ $rc = 124 ] || [ $rc = 137 ]; then echo timeout >"$outdir/status"; else echo ok >"$outdir/status"; fi
		sed -n 's/^VMSG-TAP //p' "$outdir/console.log" >"$outdir/tap.log"
	}
	run_guest
	# As scripts/qemu.sh: a kernel report before /init is the base kernel under
	# emulation, not the project's code; boot once more and say so.
	early=$(python3 "$VMSG_TOP/scripts/results.py" early-boot "$outdir")
	if [ -n "$early" ]; then
		mv "$outdir/console.log" "$outdir/console.early-boot-report.log"
		log "guest $(basename "$outdir"): kernel report before /init, booting again: $(echo "$early" | head -1)"
		run_guest
	fi
	;;
*)
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
