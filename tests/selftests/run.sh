#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The project's own guest tests (scenarios, the module checks of the KUnit
# guest): runs test_*.sh of a directory as nested KTAP subtests. The kselftest
# target (virtio_msg/) runs through kselftest's run_kselftest.sh instead; the
# scenarios need this runner because one test may run several times in a boot,
# with a different argument each time, which kselftest's runner cannot do.
#
# Usage: run.sh DIR SUITE: the test_*.sh of DIR, in name order, each reported
# as SUITE:test_name. With VMSG_TESTS set (words NAME or NAME:ARG), runs only
# test_NAME.sh of DIR, in that order, each with ARG as its argument, reported
# as SUITE:NAME[:ARG].
cd "$1" || exit 1
suite=$2
rc_file=/tmp/vmsg-run.rc
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
	else
		name=$suite:${t%.sh} arg= script=$t
	fi
	if [ ! -f "./$script" ]; then
		echo "    # no $script in $(pwd)"
		echo "not ok $n $name"
		continue
	fi
	# Indented as a subtest, its "# Subtest:" line after its version line
	# (KTAP's order, which kunit.py's parser insists on). The test's exit
	# status counts too: a test that stops early fails, whatever it printed.
	echo 1 >"$rc_file"
	{ sh "./$script" $arg; echo $? >"$rc_file"; } |
		awk -v name="$name" '{ print "    " $0 } NR == 1 && /^K?TAP version/ { print "    # Subtest: " name }'
	case $(cat "$rc_file") in
	0) echo "ok $n $name" ;;
	4) echo "ok $n $name # SKIP" ;; # kselftest's KSFT_SKIP: nothing to test
	*) echo "not ok $n $name" ;;
	esac
done
