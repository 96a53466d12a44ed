#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The guest side of `make bench` (scripts/bench.sh; plan `bench` of
# tests/guest/init). The guest has one virtio-blk disk per transport, all
# backed by the same file on the host:
#   msg    virtio-blk over virtio-msg (virtio_msg_shm + tools/vmsg-device),
#          serial "bench-msg";
#   msgthr the same disk with virtio_msg_shm's debugfs rx_budget set to 0 for
#          the run: the to-driver ring drained in the interrupt thread only
#          (how the driver worked before it drained in hard-IRQ context);
#   msgvu  a second virtio-msg disk whose queues qemu-storage-daemon serves
#          through vmsg-device's vhost-user bridge; its serial is the
#          backend's (GET_ID goes to qemu-storage-daemon), so it is the disk
#          that is none of the others;
#   msgwin virtio-blk over virtio-msg on a second bus instance (a second
#          ivshmem-doorbell, vmsg.bench_msgwin, served by a second vmsg-device
#          in window mode): vrings in the shared window and every buffer
#          bounced through it; serial "bench-msgwin"; its window's debugfs
#          counters are printed at the end ("window ...");
#   pci    QEMU's virtio-blk-pci, serial "bench-pci";
#   vhost  vhost-user-blk-pci served by qemu-storage-daemon, found by its PCI
#          address (vmsg.bench_vhost).
# Each round first times sysfs reads that cost one transport message
# (tools/vmsg-bench, vmsg-sysfs-rtt), then runs every fio job on every
# transport, the transports of one job back to back in an order that rotates
# from job to job and round to round, so that the ratios compare runs made
# side by side.
#
# Everything goes to standard output (the second serial line), as lines
# "# vmsg-bench ..." and base64 blocks of gzipped fio JSON; scripts/bench-report.py
# reads them.
#
# Parameters (kernel command line): vmsg.bench_transports (msg,msgthr,msgvu,msgwin,pci,vhost),
# vmsg.bench_rounds, vmsg.bench_runtime and vmsg.bench_ramp (seconds per fio
# job), vmsg.bench_rtt_seconds (per sysfs attribute), vmsg.bench_vhost and
# vmsg.bench_msgwin (PCI addresses), vmsg.bench_jobs (names from the list
# below, comma separated; default all).

# Interrupts taken so far (all CPUs) on the lines of /proc/interrupts that
# contain $1: the ivshmem vector of virtio_msg_shm (its PCI address, or
# "virtio_msg_shm" for all instances), or a disk's own virtio-pci vectors
# ("virtioN-").
irqs() {
	awk -v pat="$1" 'index($0, pat) { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; else break } END { print s + 0 }' /proc/interrupts
}

# The guest's CPU time so far, busy and idle (USER_HZ ticks), and its context
# switches: "busy idle ctxt".
cpu() { awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9; i = $5 + $6 } $1 == "ctxt" { c = $2 } END { print b, i, c }' /proc/stat; }

# Requests completed by disk $1 (reads + writes, from its stat file).
ios() { awk '{ print $1 + $5 }' "/sys/block/$1/stat"; }

# The virtio-msg counters of the $2-th virtio-blk device of the bus instance
# on PCI device $1 (msg: 1 on the first instance; msgvu: 2 there, the bridge,
# which vmsg-device lists second; msgwin: 1 on the second instance), and the
# byte counts of that instance's window if it has one, as "name=value ...".
msg_counters() {
	n=0
	for f in /sys/kernel/debug/virtio_msg/"$1"/dev*/stats; do
		[ -r "$f" ] || continue
		grep -q '^device_id: 2$' "$f" || continue
		n=$((n + 1))
		[ "$n" = "$2" ] || continue
		sed -n 's/^\(requests\|responses\|events_sent\|events_received\|timeouts\): \([0-9]*\)$/\1=\2/p' "$f" | tr '\n' ' '
		break
	done
	f=/sys/kernel/debug/virtio_msg/$1/window
	[ -r "$f" ] && sed -n 's/^\(full_refusals\|bounced_to_device\|bounced_from_device\): \([0-9]*\)$/\1=\2/p' "$f" | tr '\n' ' '
}

# snap FILE IRQ-PATTERN DISK MSG(0, or PCI/N: msg_counters' arguments) pre|post: the counters of one fio run,
# taken by fio itself right before and after the job (exec_prerun and
# exec_postrun), so that fio's own start and report stay out of them. The CPU
# times are read last before the job and first after it.
if [ "${1:-}" = snap ]; then
	file=$2 pat=$3 disk=$4 msg=$5 when=$6
	[ "$when" = post ] && c=$(cpu)
	line="irqs=$(irqs "$pat") ios=$(ios "$disk") uptime=$(cut -d' ' -f1 /proc/uptime)"
	[ "$msg" != 0 ] && line="$line $(msg_counters "${msg%/*}" "${msg##*/}")"
	[ "$when" = pre ] && c=$(cpu)
	set -- $c
	echo "$line busy=$1 idle=$2 ctxt=$3" >"$file"
	exit 0
fi

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^vmsg\.$1=//p"; }
say() { echo "# vmsg-bench $*"; }

transports=$(arg bench_transports | tr , ' ')
rounds=$(arg bench_rounds)
runtime=$(arg bench_runtime)
ramp=$(arg bench_ramp)
rtt_seconds=$(arg bench_rtt_seconds)
vhost_pci=$(arg bench_vhost)
msgwin_pci=$(arg bench_msgwin)
only_jobs=$(arg bench_jobs | tr , ' ')
: "${transports:=msg pci}" "${rounds:=3}" "${runtime:=5}" "${ramp:=1}" "${rtt_seconds:=1}"

# name rw block-size iodepth
JOBS="randread-4k-qd1 randread 4k 1
randwrite-4k-qd1 randwrite 4k 1
randread-4k-qd32 randread 4k 32
randwrite-4k-qd32 randwrite 4k 32
read-128k-qd16 read 128k 16
write-128k-qd16 write 128k 16"

accel=TCG
dmesg | grep -q 'Hypervisor detected: KVM' && accel=KVM
say "start accel=$accel cpus=$(nproc) kernel=$(uname -r) clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource) rounds=$rounds runtime=$runtime ramp=$ramp"
dmesg | grep -E 'tsc:|clocksource: Switched' | sed 's/^/# vmsg-bench clock /'

# The disk of transport $1: its block device name, found by serial or PCI address.
disk_of() {
	for b in /sys/block/vd*; do
		[ -e "$b" ] || continue
		case $1 in
		msg | msgthr) [ "$(cat "$b/serial" 2>/dev/null)" = bench-msg ] && { basename "$b"; return 0; } ;;
		pci) [ "$(cat "$b/serial" 2>/dev/null)" = "bench-$1" ] && { basename "$b"; return 0; } ;;
		msgwin)
			[ "$(cat "$b/serial" 2>/dev/null)" = bench-msgwin ] || continue
			# Under the second ivshmem device (vmsg.bench_msgwin), when named.
			[ -z "$msgwin_pci" ] || case "$(readlink -f "$b")" in */"$msgwin_pci"/*) ;; *) continue ;; esac
			basename "$b"
			return 0
			;;
		vhost) case "$(readlink -f "$b")" in */"$vhost_pci"/*) basename "$b"; return 0 ;; esac ;;
		msgvu)
			case "$(cat "$b/serial" 2>/dev/null)" in bench-msg | bench-pci | bench-msgwin) continue ;; esac
			case "$(readlink -f "$b")" in */"$vhost_pci"/*) continue ;; esac
			basename "$b"
			return 0
			;;
		esac
	done
	return 1
}

# Devices appear asynchronously (virtio-msg ones after the bus module has
# negotiated): wait up to 60 s for all of them.
i=0
while :; do
	missing=
	for t in $transports; do disk_of "$t" >/dev/null || missing="$missing $t"; done
	[ -z "$missing" ] && break
	i=$((i + 1))
	if [ $i -ge 600 ]; then
		say "error no disk for:$missing"
		for b in /sys/block/vd*; do say "error   $(basename "$b") serial '$(cat "$b/serial" 2>/dev/null)' at $(readlink -f "$b")"; done
		transports=$(for t in $transports; do case " $missing " in *" $t "*) ;; *) echo "$t" ;; esac; done)
		[ -n "$transports" ] || exit 1
		break
	fi
	usleep 100000
done

for t in $transports; do
	d=$(disk_of "$t")
	eval "disk_$t=$d"
	# The same (no) I/O scheduler for every disk.
	echo none >"/sys/block/$d/queue/scheduler" 2>/dev/null
	vdev=$(basename "$(readlink -f "/sys/block/$d/device")")
	eval "vdev_$t=$vdev"
	# The device's parent: the PCI device of its bus instance (virtio-msg) or
	# the virtio-pci function.
	parent=$(basename "$(dirname "$(readlink -f "/sys/block/$d/device")")")
	eval "parent_$t=$parent"
	# The lines of /proc/interrupts to count: a virtio-pci disk's own vectors;
	# for virtio-msg the ivshmem vector of its bus instance, on the line that
	# names its PCI device, else (a kernel that does not name it) every
	# virtio_msg_shm line.
	case $t in
	msg*)
		ipat=virtio_msg_shm
		grep virtio_msg_shm /proc/interrupts | grep -qF "$parent" && ipat=$parent
		;;
	*) ipat=$vdev- ;;
	esac
	eval "irqpat_$t=\$ipat"
	say "disk transport=$t dev=$d virtio=$vdev irqs=$ipat sectors=$(cat "/sys/block/$d/size") scheduler=$(cat "/sys/block/$d/queue/scheduler") nr_requests=$(cat "/sys/block/$d/queue/nr_requests") max_sectors_kb=$(cat "/sys/block/$d/queue/max_sectors_kb") path=$(readlink -f "/sys/block/$d")"
done

# virtio_msg_shm's rx_budget as loaded (its default), read once; use_transport
# sets the budget the transport about to be measured needs (msgthr: 0).
budget_files=$(ls /sys/kernel/debug/virtio_msg_shm/*/rx_budget 2>/dev/null)
default_budget=$(cat $budget_files 2>/dev/null | head -n 1)
use_transport() {
	case $1 in
	msg | msgvu | msgwin) b=$default_budget ;;
	msgthr) b=0 ;;
	*) return 0 ;;
	esac
	for f in $budget_files; do
		echo "$b" >"$f" || say "error cannot set $f to $b"
	done
}
case " $transports " in
*" msgthr "*)
	[ -n "$budget_files" ] && [ -n "$default_budget" ] || {
		say "error no rx_budget in debugfs or sysfs: not measuring msgthr"
		transports=$(for t in $transports; do [ "$t" = msgthr ] || echo "$t"; done)
	}
	;;
esac
say "rx_budget default=$default_budget files=$(echo $budget_files)"

# Prints the first list rotated left by $1 places.
rotate() {
	k=$1; shift
	n=$#
	[ "$n" -gt 0 ] || return 0
	k=$((k % n))
	j=0
	for x in "$@"; do [ $j -ge $k ] && printf '%s ' "$x"; j=$((j + 1)); done
	j=0
	for x in "$@"; do [ $j -lt $k ] && printf '%s ' "$x"; j=$((j + 1)); done
}

rtt_round() {
	r=$1
	say "uptime $(cut -d' ' -f1 /proc/uptime) round=$r"
	# msg and msgthr share a device: each gets a run of its own with its budget.
	for group in $(rotate "$r" $transports); do
		case $group in msg | msgthr) ;; *) continue ;; esac
		use_transport "$group"
		rtt_run "$r" "$group"
	done
	use_transport msg
	rtt_run "$r" $(for t in $(rotate "$r" $transports); do case $t in msg | msgthr) ;; *) echo "$t" ;; esac; done)
}

# rtt_run ROUND TRANSPORT...: one vmsg-sysfs-rtt run over the transports given.
rtt_run() {
	r=$1; shift
	[ $# -gt 0 ] || return 0
	args=
	for t in "$@"; do
		eval "v=\$vdev_$t"
		# The device's status costs a message (msg) or a register read (pci,
		# vhost); its device id is cached: the same system calls, no device.
		args="$args $t-status=/sys/bus/virtio/devices/$v/status $t-cached=/sys/bus/virtio/devices/$v/device"
	done
	/vmsg/bench/vmsg-sysfs-rtt --seconds "$rtt_seconds" $args | while IFS= read -r line; do
		say "rtt round=$r $line"
	done
}

# Prints "name=after-before ..." for the numeric fields of two snap files.
delta() {
	awk 'NR == FNR { for (i = 1; i <= NF; i++) { split($i, kv, "="); a[kv[1]] = kv[2] }; next }
		{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] in a) printf "%s=%s ", kv[1], kv[2] - a[kv[1]] } }' "$1" "$2"
}

fio_run() {
	r=$1 t=$2 job=$3 rw=$4 bs=$5 qd=$6
	eval "d=\$disk_$t"
	eval "p=\$parent_$t pat=\$irqpat_$t"
	case $t in
	msg | msgthr | msgwin) msg=$p/1 ;;
	msgvu) msg=$p/2 ;;
	*) msg=0 ;;
	esac
	use_transport "$t"
	rm -f /tmp/snap.pre /tmp/snap.post
	cd /tmp || return # fio saves the output of exec_prerun/postrun here.
	snap="sh /vmsg/bench/guest.sh snap"
	# The kernel has no System V shared memory, which fio needs: noshm.so.
	LD_PRELOAD=/vmsg/bench/noshm.so /usr/bin/fio --name="$job" --filename="/dev/$d" --thread --direct=1 --ioengine=libaio \
		--rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs=1 \
		--time_based --runtime="$runtime" --ramp_time="$ramp" \
		--norandommap --randrepeat=0 --lat_percentiles=1 --clat_percentiles=0 \
		--percentile_list=50:90:99:99.9 \
		--exec_prerun="$snap /tmp/snap.pre $pat $d $msg pre" \
		--exec_postrun="$snap /tmp/snap.post $pat $d $msg post" \
		--output-format=json --output=/tmp/fio.json </dev/null >/tmp/fio.err 2>&1
	rc=$?
	if [ $rc != 0 ]; then
		say "error fio round=$r job=$job transport=$t exit=$rc: $(tail -n 3 /tmp/fio.err | tr '\n' ' ')"
		return
	fi
	if [ -s /tmp/snap.pre ] && [ -s /tmp/snap.post ]; then
		say "counters round=$r job=$job transport=$t $(delta /tmp/snap.pre /tmp/snap.post)"
	else
		say "error no counters for round=$r job=$job transport=$t"
	fi
	say "fio round=$r job=$job transport=$t"
	# fio writes a line per exec_prerun/postrun before its JSON.
	sed -n '/^{/,$p' /tmp/fio.json | gzip -c | base64
	say "end"
}

r=1
while [ $r -le "$rounds" ]; do
	rtt_round "$r"
	k=$r
	echo "$JOBS" | while read -r job rw bs qd; do
		if [ -n "$only_jobs" ]; then
			case " $only_jobs " in *" $job "*) ;; *) continue ;; esac
		fi
		for t in $(rotate "$k" $transports); do
			fio_run "$r" "$t" "$job" "$rw" "$bs" "$qd"
		done
		k=$((k + 1))
	done
	r=$((r + 1))
done
# The window of msgwin's bus instance after all its runs: full_refusals must
# be 0 (a refused mapping is an I/O error or a retry, not a measurement).
case " $transports " in
*" msgwin "*)
	f=/sys/kernel/debug/virtio_msg/$parent_msgwin/window
	if [ -r "$f" ]; then
		say "window transport=msgwin instance=$parent_msgwin $(sed -n 's/^\([a-z_]*\): \([0-9a-fx]*\)$/\1=\2/p' "$f" | tr '\n' ' ')"
	else
		say "error no window for msgwin: $f"
	fi
	;;
esac
say "done uptime=$(cut -d' ' -f1 /proc/uptime)"
