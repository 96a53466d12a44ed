#!/bin/sh
# Runs every selftest of the guest image as a KTAP subtest (kselftest style).
cd "$(dirname "$0")" || exit 1
tests=$(ls test_*.sh 2>/dev/null)
echo "KTAP version 1"
echo "1..$(echo "$tests" | grep -c .)"
n=0
for t in $tests; do
	n=$((n + 1))
	name=${t%.sh}
	echo "    # Subtest: $name"
	if sh "./$t" | sed 's/^/    /'; then
		echo "ok $n selftests:$name"
	else
		echo "not ok $n selftests:$name"
	fi
done
