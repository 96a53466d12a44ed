#!/bin/sh
# Minimal KTAP helpers for the guest selftests (kselftest conventions).
ktap_n=0
ktap_failed=0
ktap_plan() { echo "KTAP version 1"; echo "1..$1"; }
ktap_ok() { ktap_n=$((ktap_n + 1)); echo "ok $ktap_n $*"; }
ktap_fail() { ktap_n=$((ktap_n + 1)); ktap_failed=1; echo "not ok $ktap_n $*"; }
ktap_skip() { ktap_n=$((ktap_n + 1)); echo "ok $ktap_n $1 # SKIP ${2:-}"; }
# Reports one check: ktap_check "description" command [args...]
ktap_check() {
	desc=$1; shift
	if "$@"; then ktap_ok "$desc"; else ktap_fail "$desc"; fi
}
ktap_finish() { exit $ktap_failed; }
