#!/bin/sh
# The project's modules are loaded and can be removed and loaded again.
. ./ktap.sh
ktap_plan 3
ktap_check "virtio_msg is loaded" grep -q '^virtio_msg ' /proc/modules
ktap_check "virtio_msg unloads" rmmod virtio_msg
ktap_check "virtio_msg loads again" insmod /vmsg/modules/virtio_msg.ko
ktap_finish
