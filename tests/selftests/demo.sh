#!/bin/sh
# What `make run` shows: the modules and the devices they bring up.
echo "VMSG-DEMO modules:" >/dev/kmsg
grep -E '^(virtio_msg|vmsg)' /proc/modules | while IFS= read -r l; do echo "VMSG-DEMO   $l" >/dev/kmsg; done
echo "VMSG-DEMO virtio devices:" >/dev/kmsg
for d in /sys/bus/virtio/devices/*; do
	[ -e "$d" ] || continue
	echo "VMSG-DEMO   $(basename "$d") device $(cat "$d/device") vendor $(cat "$d/vendor")" >/dev/kmsg
done
