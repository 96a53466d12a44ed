#!/bin/sh
# Runs every selftest of a directory as a KTAP subtest (kselftest style).
# Usage: run.sh [DIR [SUITE]]: the test_*.sh of DIR (default: this script's
# directory), in name order, reported as SUITE:test_name (default: selftests).
# With VMSG_TESTS set (words NAME or NAME:ARG), runs only test_NAME.sh of DIR,
# in that order, each with ARG as its argument, reported as SUITE:NAME[:ARG].
cd "${1:-$(dirname "$0")}" || exit 1
suite=${2:-selftests}
# A test that exits non-zero fails even when its KTAP did not say so.
set -o pipefail
if [ -n "${VMSG_TESTS:-}" ]; then
	tests=$VMSG_TESTS
else
	tests=$(ls test_*.sh 2>/dev/null)
fi
echo "KTAP version 1"
echo "1..$(($(echo $tests | wc -w)))"
n=0
for t in $tests; do
	n=$((n + 1))
	if [ -n "${VMSG_TESTS:-}" ]; then
		# Named in full (suite and argument): the same test may run with
		# several arguments, and its results are told apart by the name.
		name=$suite:$t arg=
		[ "${t%%:*}" != "$t" ] && arg=${t#*:}
		script=test_${t%%:*}.sh
		echo "    # Subtest: $name"
	else
		name=${t%.sh} arg= script=$t
		echo "    # Subtest: $name"
		name=$suite:$name
	fi
	if [ ! -f "./$script" ]; then
		echo "    # no $script in $(pwd)"
		echo "not ok $n $name"
	elif sh "./$script" $arg | sed 's/^/    /'; then
		echo "ok $n $name"
	else
		echo "not ok $n $name"
	fi
done
