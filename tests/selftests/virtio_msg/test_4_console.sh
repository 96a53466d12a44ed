#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# virtio-console over virtio-msg: vmsg-device runs it in echo mode, so what
# the guest writes to /dev/hvc0 (transmit queue) must come back unchanged on
# the receive queue.
. ./lib.sh
require_ivshmem
ktap_print_header
ktap_set_plan 4

line() {
	printf 'vmsg-e2e %s\n' "$(od -An -v -tx1 -N16 /dev/urandom | tr -d ' \n')" >/tmp/hvc.line
	console_roundtrip /tmp/hvc.line
}

binary() {
	quiet dd if=/dev/urandom of=/tmp/hvc.bin bs=4096 count=16 && console_roundtrip /tmp/hvc.bin
}

chain "virtio-console (id 3) is bound to virtio_console" wait_bound 3 virtio_console
chain "/dev/hvc0 is a character device" test -c /dev/hvc0
chain "a line written to /dev/hvc0 comes back" line
chain "64 KiB of random binary data come back unchanged" binary
ktap_finished
