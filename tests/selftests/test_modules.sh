#!/bin/sh
# The project's modules load, unload (bus before transport) and load again.
. ./ktap.sh
ktap_plan 6
ktap_check "virtio_msg is loaded" grep -q '^virtio_msg ' /proc/modules
ktap_check "virtio_msg_shm is loaded" grep -q '^virtio_msg_shm ' /proc/modules
ktap_check "virtio_msg_shm unloads" rmmod virtio_msg_shm
ktap_check "virtio_msg unloads" rmmod virtio_msg
# The KUnit suites ran at the first load; do not count them twice.
echo none-on-reload >/sys/module/kunit/parameters/filter_glob 2>/dev/null
ktap_check "virtio_msg loads again" insmod /vmsg/modules/virtio_msg.ko
ktap_check "virtio_msg_shm loads again" insmod /vmsg/modules/virtio_msg_shm.ko
ktap_finish
