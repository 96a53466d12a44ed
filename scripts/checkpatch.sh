#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The kernel's checkpatch.pl --strict on the project's C glue and headers,
# with the few findings that stay, each for a reason given here:
#   rust/bus/virtio_msg_bus.h, rust/glue/glue.h, rust/ffa/ffa_glue.h
#     PREFER_KERNEL_TYPES  the uintN_t typedefs of u8..u64 for bindgen and
#                          host builds, outside __KERNEL__
#   rust/ffa/ffa_glue.h
#     BIT_MACRO            bindgen turns (1U << n) into constants, not BIT(n)
#   drivers/virtio_msg/exports.c
#     EXPORT_SYMBOL        the exported functions are defined in Rust
#   rust/glue/sync.c
#     IN_ATOMIC            the transport must know whether a config read may
#                          sleep; the file explains, and requires PREEMPT_COUNT
# Usage: checkpatch.sh <kernel build or source dir>
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"

checkpatch=$(kernel_source_of "$1")/scripts/checkpatch.pl
[ -f "$checkpatch" ] || die "no scripts/checkpatch.pl in $1 or its source tree"

ignores_for() {
	case $1 in
	rust/bus/virtio_msg_bus.h | rust/glue/glue.h) echo PREFER_KERNEL_TYPES ;;
	rust/ffa/ffa_glue.h) echo PREFER_KERNEL_TYPES,BIT_MACRO ;;
	drivers/virtio_msg/exports.c) echo EXPORT_SYMBOL ;;
	rust/glue/sync.c) echo IN_ATOMIC ;;
	esac
}

bad=0
for f in $(git ls-files 'drivers/*.[ch]' 'rust/*.[ch]'); do
	ignores=$(ignores_for "$f")
	if ! out=$(perl "$checkpatch" --no-tree --strict --quiet --show-types \
		${ignores:+--ignore "$ignores"} -f "$f" 2>&1); then
		echo "$out" >&2
		bad=1
	fi
done
exit $bad
