# SPDX-License-Identifier: GPL-2.0
# Shared shell helpers for the project's scripts. Source it; do not run it.
# shellcheck shell=bash

VMSG_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMSG_CACHE=${VMSG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/virtio-msg-rs}
VMSG_BUILD=${VMSG_BUILD:-$VMSG_TOP/build}
VMSG_LLVM=${VMSG_LLVM:--19}
export PATH="$HOME/.cargo/bin:$PATH"
# One run (a make invocation, or the first script): scripts/accel.sh decides
# the accelerator once per run.
export VMSG_RUN_ID=${VMSG_RUN_ID:-$(date +%s.%N)-$$}

log() { printf '[vmsg] %s\n' "$*" >&2; }
die() { printf '[vmsg] error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root, through sudo when needed.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Host-side checks of a test run (scripts/e2e.sh, scripts/scenarios.sh), kept
# until host_tap_write turns them into KTAP; reset with host_results=().
host_results=()

# Records one check: host_result <log label> ok|fail|skip <name> [reason].
host_result() {
	host_results+=("$2|$3|${4:-}")
	[ "$2" = fail ] && log "$1: FAILED: $3${4:+ ($4)}"
	return 0
}

# Stops child process $2 with SIGTERM and records check $1 with the caller's
# result(): ok if it exits with status 0 within 10 s; fail if it had already
# exited, needed SIGKILL, or exited otherwise.
stop_and_check() {
	local name=$1 pid=$2 rc
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		result fail "$name" "it had already exited with status $? before the guest finished"
		return
	fi
	kill -TERM "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid"
		result fail "$name" "still running 10 s after SIGTERM"
		return
	fi
	wait "$pid"
	rc=$?
	if [ $rc = 0 ]; then result ok "$name"
	else result fail "$name" "exit status $rc"; fi
}

# Writes the recorded checks as KTAP, each named <prefix><name>:
# host_tap_write <prefix> <file>.
host_tap_write() {
	local prefix=$1 i=0 r status name reason
	{
		echo "KTAP version 1"
		echo "1..${#host_results[@]}"
		for r in "${host_results[@]}"; do
			i=$((i + 1))
			IFS='|' read -r status name reason <<<"$r"
			case $status in
			ok) echo "ok $i $prefix$name" ;;
			skip) echo "ok $i $prefix$name # SKIP $reason" ;;
			*) echo "not ok $i $prefix$name${reason:+ # $reason}" ;;
			esac
		done
	} >"$2"
}

# Copies the module sources (Kbuild files, Rust, C, headers) into $1 for a
# module build of the same sources other than the checkout's own (another
# architecture, other options), since Kbuild writes objects next to the
# sources. A file is copied only when its content differs, and then gets the
# time of the copy: unchanged files are not rebuilt, and a changed one always
# is, whatever its time in the checkout. Sources the checkout no longer has
# are deleted.
sync_module_sources() {
	local dest=$1 f list
	# The module sources under the current directory, sorted.
	module_sources() {
		find Kbuild drivers rust tests/harness -type f \
			\( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild \) -print | sort
	}
	mkdir -p "$dest"
	list=$(mktemp)
	(cd "$VMSG_TOP" && module_sources) >"$list"
	while IFS= read -r f; do
		cmp -s "$VMSG_TOP/$f" "$dest/$f" && continue
		mkdir -p "$dest/$(dirname "$f")"
		cp "$VMSG_TOP/$f" "$dest/$f"
	done <"$list"
	(cd "$dest" && module_sources) | comm -13 "$list" - | (cd "$dest" && xargs -r rm -f)
	rm -f "$list"
}

# The options a test kernel's Kconfig would set (drivers/Kconfig): the
# modules with their KUnit suites, for the guests that run them.
VMSG_KUNIT_OPTIONS="CONFIG_VIRTIO_MSG_KUNIT_TEST=y CONFIG_VIRTIO_MSG_SHM_KUNIT_TEST=y CONFIG_VIRTIO_MSG_FFA_KUNIT_TEST=y"

# Installs the checkout's modules (built with `make modules`) as users do,
# with `make modules_install` (and its depmod) into $2/lib/modules/<version>,
# for kernel build $1. The kernel's own lists of modules are left empty: the
# image has no other module.
install_modules() {
	local kbuild=$1 root=$2 version
	version=$(cat "$kbuild/include/config/kernel.release") || return 1
	rm -rf "$root"
	mkdir -p "$root/lib/modules/$version"
	touch "$root/lib/modules/$version"/modules.{order,builtin,builtin.modinfo}
	make -C "$kbuild" M="$VMSG_TOP" LLVM="$VMSG_LLVM" INSTALL_MOD_PATH="$root" modules_install >/dev/null
}

# Installs the kselftest target drivers/virtio_msg (tests/selftests/virtio_msg)
# into $2 the kernel's way: the patch series of scripts/intree-patch.py applied
# to a hard-linked copy of kernel source $1 ($VMSG_BUILD/linux-patched), then
# `make -C tools/testing/selftests TARGETS=drivers/virtio_msg install`, which
# gives run_kselftest.sh, kselftest/ and drivers/virtio_msg/.
kselftest_install() {
	local ksrc=$1 dest=$2 tree=$VMSG_BUILD/linux-patched log=$VMSG_BUILD/kselftest-install.log
	mkdir -p "$VMSG_BUILD"
	{
		python3 "$VMSG_TOP/scripts/intree-patch.py" "$ksrc" "$VMSG_BUILD/intree" --tree "$tree" &&
			rm -rf "$dest" &&
			make -C "$tree/tools/testing/selftests" TARGETS=drivers/virtio_msg \
				KSFT_INSTALL_PATH="$dest" install
	} >"$log" 2>&1 || { tail -n 20 "$log" >&2; log "kselftest installation failed, see $log"; return 1; }
}

# The source tree of kernel build directory $1: itself, or the tree whose
# Makefile an O= build directory's Makefile includes.
kernel_source_of() {
	if [ -f "$1/scripts/checkpatch.pl" ]; then
		echo "$1"
	else
		sed -n 's|^include \(.*\)/Makefile$|\1|p' "$1/Makefile" 2>/dev/null | head -n 1
	fi
}

# Parses KTAP file $1 with the kernel's own parser, tools/testing/kunit/kunit.py
# of kernel source $2: succeeds when it found results and reported no parse
# error (a missing or misplaced line, a plan not met: "[ERROR]", "CRASHED");
# with $3 = all-pass, also only when every test passed. kunit.py reads one
# KTAP document: a console that carries several (the kernel's own at boot,
# then one per module whose suites ran at load) is cut into one file per
# document, $1.doc.N, each parsed on its own (an empty one, "1..0", is
# skipped). Its output goes to $1.doc.N.kunit.
kunit_py_parse() {
	local file ksrc=$2 doc rc status=0 parsed=0
	file=$(realpath "$1") # kunit.py changes directory
	rm -f "$file".doc.*
	awk -v out="$file.doc." '{ sub(/\r$/, "") } /^(K)?TAP version [0-9]+/ { n++ } n { print > (out n) }' "$file"
	for doc in "$file".doc.*; do
		[ -f "$doc" ] || continue
		case $doc in *.kunit) continue ;; esac
		grep -qx '1\.\.0' "$doc" && [ "$(grep -c '^ *\(not \)\?ok ' "$doc")" = 0 ] && continue
		python3 "$ksrc/tools/testing/kunit/kunit.py" parse "$doc" >"$doc.kunit" 2>&1
		rc=$?
		sed -i 's/\x1b\[[0-9;]*m//g' "$doc.kunit"
		if grep -E '\[ERROR\]|CRASHED|[Cc]ould not find any KTAP' "$doc.kunit" >&2 ||
			! grep -q 'Testing complete\. Ran [1-9]' "$doc.kunit"; then
			log "kunit.py parse $doc: parse errors or no results, see $doc.kunit"
			status=1
		elif [ "${3:-}" = all-pass ] && [ $rc != 0 ]; then
			log "kunit.py parse $doc: not every test passed, see $doc.kunit"
			status=1
		fi
		parsed=$((parsed + 1))
	done
	[ $parsed -gt 0 ] || { log "kunit.py parse $file: no KTAP document with results"; return 1; }
	return $status
}
