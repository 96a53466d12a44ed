#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The project's modules load, unload (bus before transport) and load again.
. ./lib.sh
ktap_print_header
ktap_set_plan 6
check "virtio_msg is loaded" grep -q '^virtio_msg ' /proc/modules
check "virtio_msg_shm is loaded" grep -q '^virtio_msg_shm ' /proc/modules
check "virtio_msg_shm unloads" rmmod virtio_msg_shm
check "virtio_msg unloads" rmmod virtio_msg
# The KUnit suites ran at the first load; do not count them twice.
echo none-on-reload >/sys/module/kunit/parameters/filter_glob 2>/dev/null
check "virtio_msg loads again" insmod /vmsg/modules/virtio_msg.ko
check "virtio_msg_shm loads again" insmod /vmsg/modules/virtio_msg_shm.ko
ktap_finished
