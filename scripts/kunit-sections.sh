#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Checks that KUnit suites are only where the *_KUNIT_TEST options put them
# (drivers/Kconfig): no module under <production dir> has a .kunit_test_suites
# section, and each under <kunit dir> has one.
# Usage: kunit-sections.sh <production dir> <kunit dir>
set -euo pipefail
. "$(dirname "$0")/lib.sh"

has_suites() { readelf -SW "$1" | grep -q ' \.kunit_test_suites '; }

# Lists the modules under $1, failing when there is none.
modules_under() {
	local kos; kos=$(find "$1" -name '*.ko' 2>/dev/null | sort)
	[ -n "$kos" ] || die "no modules under $1"
	echo "$kos"
}

users=$(modules_under "$1") || exit 1
tests=$(modules_under "$2") || exit 1
bad=0
for ko in $users; do
	has_suites "$ko" && { echo "$ko: a module users load has KUnit suites" >&2; bad=1; }
done
for ko in $tests; do
	has_suites "$ko" || { echo "$ko: built with its KUnit option, has no suite" >&2; bad=1; }
done
exit $bad
