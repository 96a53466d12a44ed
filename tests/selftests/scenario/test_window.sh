#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The bus instance has a window and every buffer went through it: bytes were
# bounced both ways, nothing was refused for lack of space, and the vrings
# (and the console's posted receive buffers) are what remains reserved.
. ./lib.sh
ktap_print_header
ktap_set_plan 4
file=$(ls /sys/kernel/debug/virtio_msg/*/window 2>/dev/null | head -1)
field() { sed -n "s/^$1: //p" "$file"; }

check "the instance has a debugfs window file" test -n "$file"
check "bytes were bounced to the device side" test "$(field bounced_to_device)" -gt 0
check "bytes were bounced back to the driver" test "$(field bounced_from_device)" -gt 0
check "no mapping was refused for lack of space" test "$(field full_refusals)" = 0
[ -n "$file" ] && sed 's/^/# /' "$file"
ktap_finished
