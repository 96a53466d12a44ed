#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# virtio-rng over virtio-msg: hw_random uses it and /dev/hwrng gives random
# bytes that vmsg-device read from the host's /dev/urandom.
. ./lib.sh
require_ivshmem
ktap_print_header
ktap_set_plan 7

find_sysfs() { sys=$(hwrng_sysfs); }

rng_is_virtio() {
	cur=$(cat "$sys/rng_current")
	case "$cur" in virtio_rng*) return 0 ;; esac
	echo "# rng_current is '$cur', rng_available '$(cat "$sys/rng_available")'"
	return 1
}

# read_hwrng FILE BYTES [dd flags]: one dd block of BYTES from /dev/hwrng.
read_hwrng() {
	timeout 60 dd if=/dev/hwrng of="$1" bs="$2" count=1 $3 2>/dev/null
	has_size "$1" "$2"
}

chain "virtio-rng (id 4) is bound to virtio_rng" wait_bound 4 virtio_rng
chain "hw_random has a sysfs directory" find_sysfs
chain "rng_available lists a virtio rng" grep -q virtio_rng "$sys/rng_available"
chain "rng_current is the virtio rng" rng_is_virtio
chain "dd bs=64 count=1 from /dev/hwrng gives 64 bytes" read_hwrng /tmp/rng.1 64
chain "the 64 bytes are not all equal" distinct_bytes /tmp/rng.1 2
chain "4 KiB from /dev/hwrng hold at least 200 of the 256 byte values" \
	eval 'read_hwrng /tmp/rng.2 4096 iflag=fullblock && distinct_bytes /tmp/rng.2 200'
ktap_finished
