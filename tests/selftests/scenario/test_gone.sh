#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The device kind $1 (rng, blk or console) was removed by the device side on
# its own (vmsg-device's remove-during-add fault): within 60 s it is off the
# virtio bus and its removal has completed (no debugfs stats), and the other
# devices are still bound.
. ./lib.sh
ktap_print_header
ktap_set_plan 3
id=$(kind_id "$1") || exit 1
before=$(ls /sys/bus/virtio/devices | wc -l)

chain "virtio-$1 leaves the virtio bus" wait_for 60 off_the_bus "$id"
chain "its removal completes (its debugfs stats go)" wait_for 60 removed "$id"
leaf "the devices that stay are bound" wait_for 30 all_bound_but "$id"
ktap_finished
