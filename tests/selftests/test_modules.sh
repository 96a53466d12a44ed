#!/bin/sh
# The project's modules are loaded and can be removed and loaded again. Bus
# modules use the transport's symbols: they go first and come back after it.
. ./ktap.sh
order=$(cat /vmsg/modules/load-order)
unload_all() {
	for m in $(echo "$order" | tac); do rmmod "$m" || return 1; done
}
load_all() {
	for m in $order; do insmod "/vmsg/modules/$m.ko" || return 1; done
}
ktap_plan 4
ktap_check "virtio_msg is loaded" grep -q '^virtio_msg ' /proc/modules
ktap_check "virtio_msg is loaded first" test "$(echo "$order" | head -n 1)" = virtio_msg
ktap_check "virtio_msg unloads (after its bus modules)" unload_all
ktap_check "virtio_msg loads again (before its bus modules)" load_all
ktap_finish
