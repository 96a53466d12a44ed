#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: virtio-blk over virtio-msg against QEMU's own virtio-blk-pci
# and vhost-user-blk-pci (qemu-storage-daemon), plus a virtio-msg disk whose
# queues the same qemu-storage-daemon serves through vmsg-device's vhost-user
# bridge and a virtio-msg disk on a second bus instance in window mode (every
# buffer bounced through the shared region), all in one guest on the same
# backing file; also the message round trip of the transport and the
# throughput of the shared-memory rings on the host alone.
#
# Steps:
#  1. build vmsg-device and tools/vmsg-bench (release);
#  2. the rings on the host alone: vmsg-ring-bench (vmsg-device's ring code);
#  3. the guest image: the usual one with fio (Debian's, with its shared
#     libraries) plus tests/bench/guest.sh and vmsg-sysfs-rtt, appended as a
#     second cpio archive;
#  4. a 256 MiB image in /dev/shm, served five ways at once: vmsg-device
#     (virtio-msg over ivshmem-doorbell), QEMU's -drive + virtio-blk-pci,
#     qemu-storage-daemon's vhost-user-blk export + vhost-user-blk-pci, a
#     second export of the same qemu-storage-daemon node behind a second
#     vmsg-device device (--device vhost-user:..., the bridge: msgvu), and a
#     second vmsg-device on a second ivshmem-doorbell in window mode
#     (--window, no guest RAM: msgwin); every one does buffered I/O on the
#     same tmpfs file, one queue of 256;
#  5. boot the guest (plan bench); it runs every fio job on every transport,
#     back to back, for VMSG_BENCH_ROUNDS rounds (tests/bench/guest.sh);
#  6. scripts/bench-report.py turns the records into bench/results.md,
#     bench/results.json, bench/README-section.md and bench/results.png
#     (matplotlib from PyPI, in a venv under build/).
#
# Environment: VMSG_BENCH_ROUNDS (4), VMSG_BENCH_RUNTIME (4 s per fio job),
# VMSG_BENCH_RAMP (1 s), VMSG_BENCH_RTT_SECONDS (2 s per sysfs attribute),
# VMSG_BENCH_RING_SECONDS (1 s per ring scenario), VMSG_BENCH_TRANSPORTS
# (msg,msgthr,msgvu,msgwin,pci,vhost), VMSG_BENCH_JOBS (all; comma separated names of
# tests/bench/guest.sh), VMSG_BENCH_OUT (bench/), VMSG_ACCEL.
# Raw records stay in build/bench/.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"

rounds=${VMSG_BENCH_ROUNDS:-4}
runtime=${VMSG_BENCH_RUNTIME:-4}
ramp=${VMSG_BENCH_RAMP:-1}
rtt_seconds=${VMSG_BENCH_RTT_SECONDS:-2}
ring_seconds=${VMSG_BENCH_RING_SECONDS:-1}
transports=${VMSG_BENCH_TRANSPORTS:-msg,msgthr,msgvu,msgwin,pci,vhost}
jobs=${VMSG_BENCH_JOBS:-}
results=${VMSG_BENCH_OUT:-$VMSG_TOP/bench}
DISK_MIB=256
GUEST_RAM=1G # Must equal scripts/qemu.sh's -m.
VHOST_PCI=0000:00:0b.0
# msgwin: the second ivshmem-doorbell, served by a vmsg-device in window mode.
# Its window holds the vrings (7 KiB) and every request in flight, bounced.
# fio keeps at most 32 requests in flight (tests/bench/guest.sh), 2 MiB at
# most (16 x 128 KiB), whatever the block layer merges them into; 64 MiB also
# holds a full queue of 32 requests of the block layer's default largest
# (max_sectors_kb 1280 KiB: 40 MiB). The header and rings take the other half
# of the region, whose size QEMU wants a power of two (BAR2). A window that
# runs full shows in the report (full_refusals).
MSGWIN_PCI=0000:00:0d.0
MSGWIN_WINDOW=64M
MSGWIN_SHM=128M

kbuild=${KBUILD:-$(cat "$VMSG_BUILD/kbuild-dir" 2>/dev/null)} ||
	die "no kernel build directory: run make check once, or set KBUILD"
kernel=$kbuild/arch/x86/boot/bzImage
[ -f "$kernel" ] || die "no kernel at $kernel"
out=$VMSG_BUILD/bench
rm -rf "$out"
mkdir -p "$out" "$results"

command -v fio >/dev/null || die "fio is not installed (scripts/setup.sh installs it)"
# Removes transport $1 from the list.
drop_transport() { transports=$(echo ",$transports," | sed "s/,$1,/,/; s/^,//; s/,$//"); }
has_transport() { [[ ",$transports," == *,$1,* ]]; }
if { has_transport vhost || has_transport msgvu; } && ! command -v qemu-storage-daemon >/dev/null; then
	log "bench: qemu-storage-daemon not found: measuring without vhost-user-blk and msgvu"
	drop_transport vhost
	drop_transport msgvu
fi

log "bench: building vmsg-device and vmsg-bench"
cargo build --release --quiet --manifest-path tools/Cargo.toml -p vmsg-device -p vmsg-bench \
	>"$out/cargo-build.log" 2>&1 || die "cargo build failed, see $out/cargo-build.log"
device=tools/target/release/vmsg-device
ring_bench=tools/target/release/vmsg-ring-bench
sysfs_rtt=tools/target/release/vmsg-sysfs-rtt

# The guest kernel cannot calibrate its TSC under TCG (no PIT reference, no
# HPET without ACPI) and would keep time with jiffies (4 ms): fio's latencies
# would be meaningless. A TCG guest's TSC runs at the host's rate, so the
# guest gets that rate on its command line. (Under KVM the guest TSC runs at
# the host's rate too unless QEMU is told otherwise.)
tsc_khz=$("$ring_bench" --tsc-khz) || die "cannot measure the host's TSC rate"
clock_args="tsc_early_khz=$tsc_khz tsc=reliable clocksource=tsc"

# The rings first, while no guest runs.
log "bench: shared-memory rings on the host ($ring_seconds s x $rounds per scenario)"
"$ring_bench" --seconds "$ring_seconds" --reps "$rounds" >"$out/rings.jsonl" 2>"$out/rings.txt" ||
	die "vmsg-ring-bench failed, see $out/rings.txt"

log "bench: building the guest image (with fio)"
mapfile -t kos < <(find drivers -name '*.ko' | sort)
[ ${#kos[@]} -gt 0 ] || die "no modules under drivers/: run make modules"
VMSG_GUEST_PROGRAMS="fio" scripts/guest-image.sh "$out/base.cpio.gz" "${kos[@]}" ||
	die "building the guest image failed"
extra=$(mktemp -d)
tmp=$(mktemp -d /dev/shm/vmsg-bench.XXXXXX) || die "cannot create a directory under /dev/shm"
dev_pid= win_pid= qsd_pid=
cleanup() {
	[ -n "$dev_pid" ] && kill -KILL "$dev_pid" 2>/dev/null
	[ -n "$win_pid" ] && kill -KILL "$win_pid" 2>/dev/null
	[ -n "$qsd_pid" ] && kill -KILL "$qsd_pid" 2>/dev/null
	rm -rf "$tmp" "$extra"
}
trap cleanup EXIT
mkdir -p "$extra/vmsg/bench"
cp tests/bench/guest.sh "$sysfs_rtt" "$extra/vmsg/bench/"
# fio wants System V shared memory, which the test kernel lacks: a preloaded shim.
clang-19 -O2 -Wall -Werror -shared -fPIC -o "$extra/vmsg/bench/noshm.so" tests/bench/noshm.c ||
	die "building tests/bench/noshm.c failed"
for lib in $(ldd "$sysfs_rtt" | grep -o '/[^ ]*'); do
	mkdir -p "$extra$(dirname "$lib")"
	cp -Ln "$lib" "$extra$lib"
done
(cd "$extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/extra.cpio.gz"
# The kernel unpacks concatenated archives in order.
cat "$out/base.cpio.gz" "$out/extra.cpio.gz" >"$out/guest.cpio.gz"

# One image, zero-filled (allocated, not sparse) so that no transport reads holes.
disk=$tmp/disk.img sock=$tmp/ivshmem.sock vsock=$tmp/vhost.sock vusock=$tmp/msgvu.sock ram=$tmp/guest-ram
wsock=$tmp/msgwin.sock
dd if=/dev/zero of="$disk" bs=1M count=$DISK_MIB status=none || die "cannot write $disk"
truncate -s "$GUEST_RAM" "$ram"

wait_socket() { # path pid what
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# qemu-storage-daemon first: vmsg-device connects to it when it starts. One
# block node, one vhost-user-blk export per frontend (a vhost-user socket
# takes one): vhost.sock for QEMU's vhost-user-blk-pci, msgvu.sock for
# vmsg-device's bridge.
if has_transport vhost || has_transport msgvu; then
	log "bench: starting qemu-storage-daemon (vhost-user-blk)"
	exports=()
	has_transport vhost && exports+=(--export "type=vhost-user-blk,id=vub0,node-name=file0,addr.type=unix,addr.path=$vsock,writable=on,num-queues=1")
	has_transport msgvu && exports+=(--export "type=vhost-user-blk,id=vub1,node-name=file0,addr.type=unix,addr.path=$vusock,writable=on,num-queues=1")
	qemu-storage-daemon \
		--blockdev "driver=file,node-name=file0,filename=$disk,cache.direct=off,aio=threads,locking=off" \
		"${exports[@]}" >"$out/qemu-storage-daemon.log" 2>&1 &
	qsd_pid=$!
	for t in vhost msgvu; do
		has_transport $t || continue
		s=$vsock
		[ $t = msgvu ] && s=$vusock
		wait_socket "$s" "$qsd_pid" && continue
		log "bench: qemu-storage-daemon did not start (see $out/qemu-storage-daemon.log): measuring without $t"
		drop_transport $t
	done
fi

log "bench: starting vmsg-device"
device_args=(--device "blk:path=$disk,serial=bench-msg")
# Second on the bus, after the blk device: tests/bench/guest.sh counts on that order.
has_transport msgvu && device_args+=(--device "vhost-user:socket=$vusock,type=blk")
"$device" --socket "$sock" --guest-memory "$ram" "${device_args[@]}" \
	--log-level warn >"$out/vmsg-device.log" 2>&1 &
dev_pid=$!
wait_socket "$sock" "$dev_pid" || die "vmsg-device did not start, see $out/vmsg-device.log"

# msgwin: a second vmsg-device, for a second bus instance, in window mode: no
# --guest-memory (the guest RAM file stays shared with the first one only).
if has_transport msgwin; then
	log "bench: starting vmsg-device in window mode ($MSGWIN_WINDOW window in $MSGWIN_SHM)"
	"$device" --socket "$wsock" --shm-size "$MSGWIN_SHM" --window "$MSGWIN_WINDOW" \
		--device "blk:path=$disk,serial=bench-msgwin" \
		--log-level warn >"$out/vmsg-device-msgwin.log" 2>&1 &
	win_pid=$!
	if ! wait_socket "$wsock" "$win_pid"; then
		log "bench: vmsg-device in window mode did not start (see $out/vmsg-device-msgwin.log): measuring without msgwin"
		drop_transport msgwin
	fi
fi

qemu_args=(
	-object "memory-backend-file,id=mem,size=$GUEST_RAM,mem-path=$ram,share=on"
	-machine memory-backend=mem
	-chardev "socket,path=$sock,id=ivsh"
	-device ivshmem-doorbell,chardev=ivsh,vectors=1,addr=0x0c
)
if has_transport msgwin; then
	# A second PCI function, at MSGWIN_PCI: virtio_msg_shm binds both, one
	# bus instance each.
	qemu_args+=(
		-chardev "socket,path=$wsock,id=ivshwin"
		-device ivshmem-doorbell,chardev=ivshwin,vectors=1,addr=0x0d
	)
fi
if has_transport pci; then
	# Buffered host I/O like vmsg-device's; the image is opened several times.
	qemu_args+=(
		-drive "file=$disk,if=none,id=d0,format=raw,cache=writeback,aio=threads,file.locking=off"
		-device virtio-blk-pci,drive=d0,serial=bench-pci,num-queues=1,queue-size=256,addr=0x0a
	)
fi
if has_transport vhost; then
	qemu_args+=(
		-chardev "socket,id=vu0,path=$vsock"
		-device vhost-user-blk-pci,chardev=vu0,num-queues=1,queue-size=256,addr=0x0b
	)
fi

ntrans=$(echo "$transports" | tr , '\n' | grep -c .)
njobs=6
[ -n "$jobs" ] && njobs=$(echo "$jobs" | tr , '\n' | grep -c .)
# fio's start under TCG takes a few seconds: count 6 s per run on top.
budget=$((rounds * (ntrans * njobs * (runtime + ramp + 6) + 2 * ntrans * rtt_seconds + 10) + 240))
log "bench: booting the guest: $rounds round(s) of $njobs fio job(s) x $ntrans transport(s) ($transports), ${runtime}+${ramp} s each; at most $budget s"
start=$(date +%s)
scripts/qemu.sh "$kernel" "$out/guest.cpio.gz" "$out/guest" "$budget" \
	"$clock_args vmsg.plan=bench kunit.filter_glob=none-in-bench vmsg.bench_transports=$transports vmsg.bench_rounds=$rounds vmsg.bench_runtime=$runtime vmsg.bench_ramp=$ramp vmsg.bench_rtt_seconds=$rtt_seconds vmsg.bench_vhost=$VHOST_PCI vmsg.bench_msgwin=$MSGWIN_PCI${jobs:+ vmsg.bench_jobs=$jobs}" \
	-- "${qemu_args[@]}"
elapsed=$(($(date +%s) - start))
log "bench: guest finished after $elapsed s ($(cat "$out/guest/status" 2>/dev/null))"

for pid_var in dev_pid win_pid qsd_pid; do
	pid=${!pid_var}
	[ -n "$pid" ] || continue
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	printf -v "$pid_var" ''
done

# What the run was made on.
# What the guest ran under, as scripts/qemu.sh chose it (a KVM boot probe).
accel_probe=$(tr a-z A-Z <"$out/guest/accel" 2>/dev/null || echo '?')
debug=$(grep -E '^CONFIG_(KASAN|PROVE_LOCKING|DEBUG_KMEMLEAK|LOCKDEP)=y' "$kbuild/.config" 2>/dev/null |
	sed 's/^CONFIG_//; s/=y$//' | tr '\n' ' ')
python3 - "$out/meta.json" <<EOF
import json, sys
json.dump({
    "nproc": "$(nproc)",
    "cpu": """$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')""",
    "host_kernel": "$(uname -r)",
    "qemu": """$(qemu-system-x86_64 --version | head -1)""",
    "fio": "$(fio --version)",
    "accel_probe": "$accel_probe",
    "tsc_khz": $tsc_khz,
    "load_before": "$(cut -d' ' -f1-3 /proc/loadavg)",
    "guest_debug": "$debug".split(),
    "modules": {l.split()[1].split("/")[-1]: l.split()[0][:12] for l in """$(sha256sum "${kos[@]}")""".splitlines()},
    "rounds": $rounds, "runtime": $runtime, "ramp": $ramp,
    "rtt_seconds": $rtt_seconds, "ring_seconds": $ring_seconds,
    "transports": "$transports".split(","),
    "guest_seconds": $elapsed,
    "guest_status": "$(cat "$out/guest/status" 2>/dev/null)",
    "commit": "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty')",
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
}, open(sys.argv[1], "w"), indent=1)
EOF

problems=$(python3 scripts/results.py verdict "$out/guest")
[ -n "$problems" ] && echo "$problems" | sed 's/^/[vmsg] bench: guest problem: /' >&2

log "bench: writing the report"
venv=$VMSG_BUILD/bench-venv
py=python3
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
	py=$venv/bin/python
else
	log "bench: installing matplotlib (PyPI) into $venv"
	if python3 -m venv "$venv" >"$out/venv.log" 2>&1 &&
		"$venv/bin/pip" install --quiet matplotlib >>"$out/venv.log" 2>&1; then
		py=$venv/bin/python
	else
		log "bench: no matplotlib (see $out/venv.log): no plot"
	fi
fi
"$py" scripts/bench-report.py --records "$out" --out "$results" || die "the report failed"
log "bench: $results/results.md, $results/results.png, $results/README-section.md (raw records: $out)"
[ -z "$problems" ]
