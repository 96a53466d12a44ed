#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end scenarios: one guest boot per line of tests/e2e/scenarios, each
# against tools/vmsg-device configured differently (revisions, message size,
# hot add and remove, injected faults), each asserting a documented outcome.
#
# Usage: scenarios.sh <bzImage> <initramfs> <outdir> <selection>...
#            (what scripts/check.sh runs, with selection "check")
#        scenarios.sh <selection>...
#            (`make scenarios`, `make soak`: after `make modules`, builds the
#            guest image, runs, prints the verdict; kernel from $KBUILD or
#            build/kbuild-dir; results in build/scenarios-run/)
# A selection word is a tier (check, soak), "all", or a scenario name.
#
# Per scenario, in a fresh directory under /dev/shm: a guest RAM file, an
# 8 MiB disk image whose last 64 KiB are random (their SHA-256 goes to the
# guest; the disk hot-added for "add blk" uses it too); vmsg-device starts with the
# scenario's options and a control socket (with @split among them: in split
# mode, "vmsg-device ivshmem-server" for QEMU, and the device logic joining it
# with a state file, so that the guest can have it killed and restarted; with
# --window among them, window mode: vmsg-device gets no --guest-memory and
# QEMU shares no guest RAM, Documentation/shm-bus.rst "Window mode"); the
# guest (plan scenario,
# tests/guest/init) loads virtio_msg_shm with the scenario's parameters and
# runs its tests (tests/selftests/scenario/). While it runs, this script
# answers the guest's requests for control commands ("# vmsg-host add blk",
# "# vmsg-host remove blk" on its test serial line) and, in split mode, for
# "kill-device" (SIGKILL to the device logic), "stop-device" (SIGTERM: the
# device side going away), "start-device" (the device logic again),
# "restart-device MS" (SIGKILL, MS ms later the same command again) and "check-image BASE R,R,..." (the
# 4 KiB blocks from BASE on hold the writer pattern of tests/selftests/scenario/
# lib.sh for the rounds given: R, R1/R2 for either, 0 for zeros, - for any).
# Afterwards it checks the
# kernel's warnings and errors, which the guest prints last ("# vmsg-klog"),
# against the scenario's list, and that vmsg-device stops on SIGTERM.
#
# <outdir>/<name>/ gets what scripts/qemu.sh writes (console.log, tap.log,
# status), vmsg-device.log, control.log and host.tap (host-side checks as
# KTAP, named scenario-host:<name>:...). scripts/results.py counts the guest
# run as scenario-<name> and its tests as scenario:<name>:<test>.
#
# Environment: VMSG_SCENARIO_JOBS (guests at a time, default: one per CPU),
# VMSG_SCENARIO_TIMEOUT (guest time limit per scenario, s),
# VMSG_SCENARIO_TABLE (another table), VMSG_SOAK_SEED (what @seed in a
# scenario's vmsg-device options stands for; 1 unless scripts/soak.sh sets it).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"

TABLE=${VMSG_SCENARIO_TABLE:-tests/e2e/scenarios}
DISK_MIB=8      # The disk tests read and write a few 64 KiB blocks only.
GUEST_RAM=1G    # Must equal scripts/qemu.sh's -m.
TAIL=65536      # Bytes of host data at the end of the image.
# Kernel warnings and errors that say nothing about this project.
NOISE='taints kernel'

standalone=
if [ $# -ge 4 ] && [ -f "$1" ]; then
	kernel=$1 initrd=$2 outdir=$3
	shift 3
elif [ $# -ge 1 ]; then
	standalone=1
	kbuild=${KBUILD:-$(cat "$VMSG_BUILD/kbuild-dir" 2>/dev/null)} ||
		die "no kernel build directory: run make check once, or set KBUILD"
	kernel=$kbuild/arch/x86/boot/bzImage
	initrd=$VMSG_BUILD/guest-scenarios.cpio.gz
	outdir=$VMSG_BUILD/scenarios-run
	mapfile -t kos < <(find drivers -name '*.ko' | sort)
	install_modules "$kbuild" "$VMSG_BUILD/modroot" || die "make modules_install failed"
	VMSG_GUEST_MODROOT=$VMSG_BUILD/modroot scripts/guest-image.sh "$initrd" "${kos[@]}" ||
		die "building the guest image failed"
else
	die "usage: scenarios.sh [<bzImage> <initramfs> <outdir>] <check|soak|all|name>..."
fi
selection=" $* "

rm -rf "$outdir"
mkdir -p "$outdir"

trim() {
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# Host-side results of the current scenario.
result() { host_result "scenario $name" "$@"; }
write_host_tap() { host_tap_write "scenario-host:$name:" "$dir/host.tap"; }

tmp=
dev_pid=
srv_pid=
split=
watcher=
kill_split() {
	if [ -n "$tmp" ] && [ -s "$tmp/dev.pid" ] && kill -KILL "$(cat "$tmp/dev.pid")" 2>/dev/null; then
		# Its wrapper still writes dev.rc into $tmp.
		for _ in $(seq 40); do
			[ -e "$tmp/dev.rc" ] && break
			sleep 0.05
		done
	fi
	if [ -n "$srv_pid" ]; then
		kill -KILL "$srv_pid" 2>/dev/null
		wait "$srv_pid" 2>/dev/null
	fi
	srv_pid=
}
cleanup() {
	[ -n "$watcher" ] && kill "$watcher" 2>/dev/null
	[ -n "$dev_pid" ] && kill -KILL "$dev_pid" 2>/dev/null
	kill_split
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT

# Sends one line to vmsg-device's control socket and prints its answer line.
control() {
	python3 - "$ctl" "$1" <<'EOF' 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    data = s.recv(4096)
    if not data:
        break
    buf += data
print(buf.decode(errors="replace").strip())
EOF
}

# Split mode: starts the device logic ("${dev_cmd[@]}", its log appended to
# vmsg-device.log) and waits until its control socket answers. A wrapper
# writes its pid to $tmp/dev.pid and, when it exits, its status to
# $tmp/dev.rc: the request watcher restarts it from a subshell, so the main
# shell cannot wait for it.
start_device_logic() {
	rm -f "$tmp/dev.pid" "$tmp/dev.rc"
	(
		"${dev_cmd[@]}" >>"$dir/vmsg-device.log" 2>&1 &
		echo $! >"$tmp/dev.pid"
		wait $! 2>/dev/null
		echo $? >"$tmp/dev.rc"
	) &
	for _ in $(seq 200); do
		[ -e "$tmp/dev.rc" ] && return 1
		case $(control list 2>/dev/null) in ok*) return 0 ;; esac
		sleep 0.05
	done
	return 1
}

# Split mode: a signal (SIGKILL unless $1 names another) to the device logic,
# then waits for it to be gone.
kill_device_logic() {
	local pid sig=${1:-KILL}
	pid=$(cat "$tmp/dev.pid" 2>/dev/null) && kill -"$sig" "$pid" 2>/dev/null || {
		echo "error no device logic running"
		return
	}
	for _ in $(seq 200); do
		[ -e "$tmp/dev.rc" ] && { echo "ok stopped $pid by SIG$sig (status $(cat "$tmp/dev.rc"))"; return; }
		sleep 0.05
	done
	echo "error device logic $pid still running after SIG$sig"
}

# Compares the image with what the guest says it wrote: check_image BASE SPEC.
check_image() {
	python3 - "$disk" "$1" "$2" <<'EOF'
import sys
path, base, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
with open(path, "rb") as f:
    data = f.read()
def pattern(block, rnd):
    if rnd == 0:
        return bytes(4096)
    line = ("blk %06d round %04d vmsg\n" % (block, rnd)).encode()
    return (line * (4096 // len(line) + 1))[:4096]
bad = []
for i, want in enumerate(spec):
    block = base + i
    got = data[block * 4096:(block + 1) * 4096]
    if want == "-":
        continue
    if not any(got == pattern(block, int(r)) for r in want.split("/")):
        bad.append("block %d is not round %s: %r" % (block, want, got[:24]))
if bad:
    print("error %d block(s) differ, first: %s" % (len(bad), bad[0]))
else:
    print("ok %d block(s) as the guest wrote them" % len(spec))
EOF
}

# Runs in the background while the guest runs: answers each "# vmsg-host
# REQUEST" line of the guest's test output once, logging
# "request|command|answer" to control.log ("add blk" adds a disk on the
# scenario's image; "remove KIND" removes the device the last add added;
# "flood N MS" and "stall MS" are passed to vmsg-device's control socket
# as they are).
serve_guest_requests() {
	local handled=0 added= req cmd answer reqs
	while :; do
		mapfile -t reqs < <(tr -d '\r' 2>/dev/null <"$dir/tap.log" | sed -n 's/^ *# vmsg-host //p')
		while [ "$handled" -lt "${#reqs[@]}" ]; do
			req=${reqs[$handled]}
			handled=$((handled + 1))
			case $req in
			"add blk") cmd="add blk:path=$disk" ;;
			"add "*) cmd=$req ;;
			"flood "* | "stall "*) cmd=$req ;;
			"remove "*) cmd="remove $added" ;;
			kill-device | stop-device | start-device | "restart-device "* | "check-image "*)
				if [ -z "$split" ]; then
					answer="error not in split mode"
				elif [ "$req" = kill-device ]; then
					answer=$(kill_device_logic)
				elif [ "$req" = stop-device ]; then
					# SIGTERM: the device side going away (device_state 2).
					answer=$(kill_device_logic TERM)
				elif [ "$req" = start-device ]; then
					if start_device_logic; then answer="ok started"; else answer="error start failed, see vmsg-device.log"; fi
				elif [ "${req%% *}" = check-image ]; then
					read -r _ base spec <<<"$req"
					answer=$(check_image "$base" "$spec")
				else
					ms=${req#restart-device }
					answer=$(kill_device_logic)
					sleep "$(awk -v ms="$ms" 'BEGIN { print ms / 1000 }')"
					if [ "${answer%% *}" = ok ] && start_device_logic; then
						answer="ok restarted after $ms ms"
					else
						answer="error restart failed ($answer), see vmsg-device.log"
					fi
				fi
				# The block list would make an unwieldy test name.
				[ "${req%% *}" = check-image ] && req="check-image from block $base"
				echo "$req|host|$answer" >>"$dir/control.log"
				continue
				;;
			*)
				echo "$req|-|error: no such request" >>"$dir/control.log"
				continue
				;;
			esac
			answer=$(control "$cmd")
			echo "$req|$cmd|$answer" >>"$dir/control.log"
			case $answer in "ok "[0-9]*) added=${answer#ok } ;; esac
			if [ "${req%% *}" = add ]; then
				# The device list must show the new device as N:KIND.
				answer=$(control list)
				case " ${answer#ok } " in
				*" $added:${req#add } "*) ;;
				*) answer="error: no $added:${req#add } in '$answer'" ;;
				esac
				echo "list after $req|list|$answer" >>"$dir/control.log"
			fi
		done
		sleep 0.2
	done
}

# Split mode: SIGTERM to the device logic (unless the scenario killed it for
# good), then to the ivshmem server; both must exit with status 0.
stop_split() {
	local pid rc
	pid=$(cat "$tmp/dev.pid" 2>/dev/null)
	if [ -e "$tmp/dev.rc" ]; then
		if grep -q '^kill-device|' "$dir/control.log" 2>/dev/null; then
			result skip vmsg-device-exits-cleanly-on-SIGTERM "the scenario killed it"
		else
			result fail vmsg-device-exits-cleanly-on-SIGTERM "it had already exited with status $(cat "$tmp/dev.rc")"
		fi
	else
		kill -TERM "$pid"
		for _ in $(seq 100); do
			[ -e "$tmp/dev.rc" ] && break
			sleep 0.1
		done
		rc=$(cat "$tmp/dev.rc" 2>/dev/null)
		if [ -z "$rc" ]; then
			kill -KILL "$pid"
			result fail vmsg-device-exits-cleanly-on-SIGTERM "still running 10 s after SIGTERM"
		elif [ "$rc" = 0 ]; then
			result ok vmsg-device-exits-cleanly-on-SIGTERM
		else
			result fail vmsg-device-exits-cleanly-on-SIGTERM "exit status $rc"
		fi
	fi
	kill -TERM "$srv_pid"
	for _ in $(seq 100); do
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$srv_pid" 2>/dev/null
	wait "$srv_pid"
	rc=$?
	if [ $rc = 0 ]; then result ok ivshmem-server-exits-cleanly-on-SIGTERM
	else result fail ivshmem-server-exits-cleanly-on-SIGTERM "exit status $rc"; fi
	srv_pid=
}

stop_device() {
	if [ -n "$split" ]; then
		stop_split
		return
	fi
	stop_and_check vmsg-device-exits-cleanly-on-SIGTERM "$dev_pid"
	dev_pid=
}

# Compares the kernel's warnings and errors the guest printed with the
# scenario's expectations ($1: patterns separated by ' ;; ').
check_kernel_log() {
	local spec=$1 klog pat line ok i required=() allowed=() known=() known_reasons=()
	klog=$(tr -d '\r' <"$dir/tap.log" 2>/dev/null | sed -n 's/^# vmsg-klog <[0-9]>//p' | grep -v -e "$NOISE")
	local finished=
	grep -q VMSG-GUEST-DONE "$dir/console.log" 2>/dev/null && finished=1
	while [ -n "$spec" ]; do
		pat=$(trim "${spec%% ;; *}")
		[ "$spec" = "${spec#* ;; }" ] && spec= || spec=${spec#* ;; }
		[ -z "$pat" ] && continue
		case $pat in
		allow:*) allowed+=("${pat#allow:}") ;;
		known\(*\):*)
			pat=${pat#known(}
			known_reasons+=("${pat%%):*}")
			known+=("${pat#*):}")
			;;
		*) required+=("$pat") ;;
		esac
	done
	for pat in "${required[@]}"; do
		if [ -z "$finished" ]; then
			result fail "kernel-logged:$pat" "the guest did not get to print its kernel log"
		elif grep -qE -e "$pat" <<<"$klog"; then
			result ok "kernel-logged:$pat"
		else
			result fail "kernel-logged:$pat" "no such warning or error, see $dir/console.log"
		fi
	done
	if [ -z "$finished" ]; then
		result fail kernel-logged-no-other-warning-or-error "the guest did not get to print its kernel log"
		return
	fi
	# A known kernel problem is reported as skipped, naming it, while it shows.
	for i in "${!known[@]}"; do
		line=$(grep -m1 -E -e "${known[$i]}" <<<"$klog")
		if [ -n "$line" ]; then
			result skip "known-kernel-problem:${known_reasons[$i]}" "still seen: ${line//|/ }"
		else
			result ok "known-kernel-problem:${known_reasons[$i]}"
		fi
	done
	local unexpected=()
	while IFS= read -r line; do
		[ -z "$line" ] && continue
		ok=
		for pat in "${required[@]}" "${allowed[@]}" "${known[@]}"; do
			grep -qE -e "$pat" <<<"$line" && { ok=1; break; }
		done
		[ -z "$ok" ] && unexpected+=("$line")
	done <<<"$klog"
	if [ ${#unexpected[@]} = 0 ]; then
		result ok kernel-logged-no-other-warning-or-error
	else
		result fail kernel-logged-no-other-warning-or-error "${#unexpected[@]} line(s), first: ${unexpected[0]//|/ }"
		printf '%s\n' "${unexpected[@]}" >"$dir/unexpected-kernel-log"
	fi
}

run_scenario() {
	local devopts=$1 modargs=$2 tests=$3 expect=$4
	local words
	log "scenario $name: booting the guest"
	# Nothing of an earlier attempt may be read as this one's (the request
	# watcher reads tap.log before QEMU starts it afresh).
	rm -f "$dir"/{console,tap}.log "$dir/status" "$dir/control.log"
	tmp=$(mktemp -d /dev/shm/vmsg-scenario.XXXXXX) || die "cannot create a directory under /dev/shm"
	disk=$tmp/disk.img sock=$tmp/ivshmem.sock ctl=$tmp/control.sock ram=$tmp/guest-ram
	truncate -s "${DISK_MIB}M" "$disk"
	dd if=/dev/urandom of="$disk" bs=$TAIL count=1 seek=$((DISK_MIB * 1048576 / TAIL - 1)) conv=notrunc status=none
	local tail_sha
	tail_sha=$(tail -c $TAIL "$disk" | sha256sum | cut -d' ' -f1)
	truncate -s "$GUEST_RAM" "$ram"

	split=
	case " $devopts " in *" @split "*)
		split=1
		devopts=$(trim "${devopts//@split/}")
		;;
	esac
	# @foreign: a second ivshmem device (ivshmem-plain, after the bus's) whose
	# region is another user's: zeros, no virtio-msg header.
	local foreign=()
	case " $devopts " in *" @foreign "*)
		truncate -s 1M "$tmp/foreign"
		foreign=(-object "memory-backend-file,id=foreign,size=1M,mem-path=$tmp/foreign,share=on"
			-device ivshmem-plain,memdev=foreign)
		devopts=$(trim "${devopts//@foreign/}")
		;;
	esac
	# Guest RAM shared with vmsg-device, except in window mode, where the
	# device side sees none and QEMU shares none.
	local devmem=(--guest-memory "$ram")
	local qemumem=(-object "memory-backend-file,id=mem,size=$GUEST_RAM,mem-path=$ram,share=on"
		-machine memory-backend=mem)
	case " $devopts " in *" --window "*)
		devmem=() qemumem=()
		;;
	esac
	devopts=${devopts//@std/--device rng --device blk:path=$disk --device console:output=echo}
	devopts=${devopts//@disk/$disk}
	# A seeded-random fault's seed: fixed (1) unless make soak gives each pass its own.
	devopts=${devopts//@seed/${VMSG_SOAK_SEED:-1}}
	if [ -n "$split" ]; then
		local devsock=$tmp/device.sock srvopts=()
		# The server makes the region: its size is the server's option.
		if [[ " $devopts " =~ \ --shm-size\ ([^ ]+)\  ]]; then
			srvopts=(--shm-size "${BASH_REMATCH[1]}")
			devopts=$(trim "${devopts/--shm-size ${BASH_REMATCH[1]}/}")
		fi
		"$device" ivshmem-server --socket "$sock" --device-socket "$devsock" "${srvopts[@]}" \
			--log-level info >"$dir/ivshmem-server.log" 2>&1 &
		srv_pid=$!
		for _ in $(seq 100); do
			[ -S "$devsock" ] && break
			kill -0 "$srv_pid" 2>/dev/null || break
			sleep 0.1
		done
		# shellcheck disable=SC2206 # The options are words.
		dev_cmd=("$device" --connect "$devsock" --state "$tmp/state" "${devmem[@]}"
			--control "$ctl" --log-level info $devopts)
		: >"$dir/vmsg-device.log"
		if [ ! -S "$devsock" ] || ! start_device_logic; then
			result fail vmsg-device-listens "split mode did not start, see $dir/ivshmem-server.log and vmsg-device.log"
			kill_split
			return
		fi
	else
		# shellcheck disable=SC2086 # The options are words.
		"$device" --socket "$sock" "${devmem[@]}" --control "$ctl" --log-level info \
			$devopts >"$dir/vmsg-device.log" 2>&1 &
		dev_pid=$!
		for _ in $(seq 100); do
			[ -S "$sock" ] && [ -S "$ctl" ] && break
			kill -0 "$dev_pid" 2>/dev/null || break
			sleep 0.1
		done
		if [ ! -S "$sock" ] || [ ! -S "$ctl" ]; then
			result fail vmsg-device-listens "no sockets after 10 s, see $dir/vmsg-device.log"
			kill -KILL "$dev_pid" 2>/dev/null
			dev_pid=
			return
		fi
	fi
	result ok vmsg-device-listens

	read -ra words <<<"$tests"
	local append="vmsg.plan=scenario vmsg.scenario=$name kunit.filter_glob=none-in-e2e"
	append+=" vmsg.tests=$(IFS=+; echo "${words[*]}")"
	append+=" vmsg.blk_sectors=$((DISK_MIB * 2048)) vmsg.blk_tail_sha256=$tail_sha"
	if [ "$modargs" != - ] && [ -n "$modargs" ]; then
		read -ra words <<<"$modargs"
		append+=" vmsg.shm_args=$(IFS=,; echo "${words[*]}")"
	fi
	serve_guest_requests &
	watcher=$!
	# A guest that passes needs 50 to 150 s under TCG (ring-stall the most) on
	# the slowest machines seen; the limit only catches a hang, and costs
	# nothing while none happens.
	scripts/qemu.sh "$kernel" "$initrd" "$dir" "${VMSG_SCENARIO_TIMEOUT:-300}" "$append" -- \
		"${qemumem[@]}" \
		-chardev "socket,path=$sock,id=ivsh" \
		-device ivshmem-doorbell,chardev=ivsh,vectors=1 "${foreign[@]}"
	kill "$watcher" 2>/dev/null
	wait "$watcher" 2>/dev/null
	watcher=
	if [ -f "$dir/console.early-boot-report.log" ] && [ "$attempt" = 1 ]; then
		# scripts/qemu.sh booted a second time after a report of the base
		# kernel before /init, against the same vmsg-device, whose faults
		# may have fired already: run the whole scenario again instead.
		mv "$dir/console.early-boot-report.log" "$dir/console.early-boot-report.1.log"
		log "scenario $name: running it again from the start with a fresh vmsg-device"
		kill -KILL "$dev_pid" 2>/dev/null
		wait "$dev_pid" 2>/dev/null
		dev_pid=
		kill_split
		rm -rf "$tmp" "$dir/control.log"
		tmp=
		again=1
		return
	fi

	# The control commands the guest asked for must have been carried out.
	local req cmd answer
	if [ -f "$dir/control.log" ]; then
		while IFS='|' read -r req cmd answer; do
			case $answer in
			ok*) result ok "control:$req" ;;
			*) result fail "control:$req" "'$cmd' answered '$answer'" ;;
			esac
		done <"$dir/control.log"
	elif [[ " $tests " == *" hotadd"* ]]; then
		result fail control:hot-add "the guest asked for no control command"
	fi

	stop_device
	if [[ "$devopts" != *--fault* ]]; then
		local errors
		errors=$(cat "$dir/vmsg-device.log" "$dir/ivshmem-server.log" 2>/dev/null | grep -c ' ERROR ')
		if [ "$errors" = 0 ]; then result ok vmsg-device-logged-no-error
		else result fail vmsg-device-logged-no-error "$errors ERROR line(s) in $dir/vmsg-device.log"; fi
	fi
	check_kernel_log "$expect"
	rm -rf "$tmp"
	tmp=
}

log "scenarios: building vmsg-device"
device=tools/target/release/vmsg-device
build_ok=1
cargo build --release --quiet --manifest-path tools/Cargo.toml -p vmsg-device >"$outdir/vmsg-device-build.log" 2>&1 || build_ok=

# The table's lines the selection names, in the table's order.
selected=() ran=()
while IFS= read -r line; do
	case $(trim "$line") in '' | '#'*) continue ;; esac
	IFS='|' read -r name tier _ <<<"$line"
	name=$(trim "$name") tier=$(trim "$tier")
	group=${tier%% *}
	[[ "$selection" == *" $name "* || "$selection" == *" $group "* || "$selection" == *" all "* ]] || continue
	selected+=("$line")
	ran+=("$name")
done <"$TABLE"
[ ${#selected[@]} -gt 0 ] || die "no scenario matches '$*' in $TABLE"

# Runs the scenario of table line $1 (twice at most: see `again`).
run_line() {
	IFS='|' read -r name tier devopts modargs tests expect <<<"$1"
	name=$(trim "$name") tier=$(trim "$tier") devopts=$(trim "$devopts")
	modargs=$(trim "$modargs") tests=$(trim "$tests") expect=$(trim "$expect")
	skip=
	[[ "$tier" == *skip:* ]] && skip=$(trim "${tier#*skip:}")
	dir=$outdir/$name
	mkdir -p "$dir"
	host_results=()
	if [ -n "$skip" ] && [[ "$selection" != *" $name "* ]]; then
		log "scenario $name: skipped: $skip"
		result skip scenario "$skip"
	elif [ -z "$build_ok" ]; then
		result fail vmsg-device-builds "see $outdir/vmsg-device-build.log"
	else
		for attempt in 1 2; do
			again=
			host_results=()
			run_scenario "$devopts" "$modargs" "$tests" "$expect"
			[ -n "$again" ] || break
		done
	fi
	write_host_tap
}

# VMSG_SCENARIO_JOBS guests at a time (default: one per CPU): each worker
# takes the next scenario not yet taken. A guest under TCG keeps about one
# host CPU busy (a make check of 66 min used 66 min of CPU time on two), so
# two workers on two CPUs take about half the time of one.
jobs=${VMSG_SCENARIO_JOBS:-$(nproc)}
if [ "$jobs" -le 1 ]; then
	for line in "${selected[@]}"; do run_line "$line"; done
else
	echo 0 >"$outdir/.next"
	worker() {
		trap cleanup EXIT
		local i
		while :; do
			i=$(flock "$outdir/.next" sh -c 'read -r n <"$1"; echo $((n + 1)) >"$1"; echo "$n"' _ "$outdir/.next")
			[ "$i" -lt ${#selected[@]} ] || break
			run_line "${selected[$i]}"
		done
	}
	workers=()
	for _ in $(seq "$jobs"); do
		worker &
		workers+=($!)
	done
	wait "${workers[@]}"
fi

[ -n "$standalone" ] || exit 0
args=(--out "$VMSG_BUILD/scenarios-results.tap")
for name in "${ran[@]}"; do
	[ -f "$outdir/$name/status" ] && args+=(--guest "scenario-$name=$outdir/$name")
	args+=(--tap "$outdir/$name/host.tap")
done
python3 scripts/results.py report "${args[@]}"
