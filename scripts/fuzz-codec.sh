#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fuzzes the virtio-msg codec's decoder with libFuzzer through cargo-fuzz.
#
#   scripts/fuzz-codec.sh [SECONDS]     (default 600)
#
# Installs cargo-fuzz if it is missing. Only stable rustc exists here, so the sanitizer
# flags cargo-fuzz passes (-Zsanitizer=address) are unlocked with RUSTC_BOOTSTRAP=1.
# Crashing inputs are written to tools/virtio-msg-codec/fuzz/regressions/, which every
# run replays first and which the host crate's `cargo test` decodes too; commit them.
# The growing corpus stays in fuzz/corpus/decode (not committed).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

secs=${1:-600}
case $secs in '' | *[!0-9]*) die "usage: $0 [SECONDS]" ;; esac

if ! cargo fuzz --version >/dev/null 2>&1; then
	log "installing cargo-fuzz"
	cargo install cargo-fuzz --locked
fi

crate=$VMSG_TOP/tools/virtio-msg-codec
corpus=$crate/fuzz/corpus/decode
regressions=$crate/fuzz/regressions
mkdir -p "$corpus" "$regressions"
run_log=$(mktemp)
trap 'rm -f "$run_log"' EXIT

log "fuzzing decode for ${secs}s"
cd "$crate"
status=0
# -max_len covers the largest message (65535 bytes) plus the selector byte.
RUSTC_BOOTSTRAP=1 cargo fuzz run decode "$corpus" "$regressions" -- \
	-max_total_time="$secs" -max_len=65536 -print_final_stats=1 \
	-artifact_prefix="$regressions/" 2>&1 | tee "$run_log" || status=$?

runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 executions in \2 s/p' "$run_log" | tail -1)
if [ "$status" -ne 0 ]; then
	log "fuzzer failed (exit $status); crashing inputs kept in $regressions:"
	ls -1 "$regressions" | grep -v '^README$' >&2 || true
	exit "$status"
fi
log "no crash: ${runs:-unknown number of executions}"
