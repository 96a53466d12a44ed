#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Without an ivshmem-doorbell device (the KUnit guest has none) the kselftest
# target drivers/virtio_msg has nothing to test: each of its tests ends with
# KSFT_SKIP, run_kselftest.sh reports it as "# SKIP", and the run passes.
. ./lib.sh
ktap_print_header
ktap_set_plan 3

out=/tmp/ksft-noshm.log
/vmsg/kselftest/run_kselftest.sh >"$out" 2>&1
rc=$?

no_ivshmem() {
	pci=$(ivshmem_pci) || return 0
	echo "# this guest has an ivshmem-doorbell device: $pci"
	return 1
}

# As many skipped results as the installation lists tests, and no other result.
each_test_skipped() {
	listed=$(grep -c . /vmsg/kselftest/kselftest-list.txt)
	skipped=$(grep -c '^ok [0-9]* selftests: drivers/virtio_msg: .* # SKIP *$' "$out")
	results=$(grep -Ec '^(not )?ok [0-9]+ ' "$out")
	[ "$listed" -gt 0 ] && [ "$skipped" = "$listed" ] && [ "$results" = "$listed" ] && return 0
	echo "# $listed tests listed, $skipped skipped, $results results:"
	sed 's/^/# /' "$out" | head -n 40
	return 1
}

check "this guest has no ivshmem-doorbell device" no_ivshmem
check "run_kselftest.sh exits with status 0" test "$rc" = 0
check "every test of drivers/virtio_msg reports SKIP" each_test_skipped
ktap_finished
