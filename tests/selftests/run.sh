#!/bin/sh
# Runs every selftest of a directory as a KTAP subtest (kselftest style).
# Usage: run.sh [DIR [SUITE]]: the test_*.sh of DIR (default: this script's
# directory), in name order, reported as SUITE:test_name (default: selftests).
cd "${1:-$(dirname "$0")}" || exit 1
suite=${2:-selftests}
# A test that exits non-zero fails even when its KTAP did not say so.
set -o pipefail
tests=$(ls test_*.sh 2>/dev/null)
echo "KTAP version 1"
echo "1..$(echo "$tests" | grep -c .)"
n=0
for t in $tests; do
	n=$((n + 1))
	name=${t%.sh}
	echo "    # Subtest: $name"
	if sh "./$t" | sed 's/^/    /'; then
		echo "ok $n $suite:$name"
	else
		echo "not ok $n $suite:$name"
	fi
done
