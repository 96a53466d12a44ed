#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make soak`: the scenarios of tiers soak and check (tests/e2e/scenarios),
# pass after pass, until VMSG_SOAK_MINUTES have passed (default 0: one pass).
# Each pass exports VMSG_SOAK_SEED=<pass number>, which scenarios.sh puts
# where a scenario's options say @seed, so that the seeded-random fault
# scenarios cover a new sequence every pass.
#
# Results: build/soak/pass-<N>.tap per pass (and pass-<N>-run/, the guests'
# logs, for a pass that failed); build/soak/summary.txt; the last line printed
# is "soak: P passes in M min: N passed, F failed, S skipped".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMSG_TOP"

minutes=${VMSG_SOAK_MINUTES:-0}
tiers=${VMSG_SOAK_TIERS:-soak check}
out=$VMSG_BUILD/soak
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
pass=0 passed=0 failed=0 skipped=0
while :; do
	pass=$((pass + 1))
	log "soak: pass $pass (seed $pass), $(($(date +%s) - start)) s in"
	# shellcheck disable=SC2086 # Tier names are words.
	VMSG_SOAK_SEED=$pass scripts/scenarios.sh $tiers >"$out/pass-$pass.log" 2>&1
	cp "$VMSG_BUILD/scenarios-results.tap" "$out/pass-$pass.tap" 2>/dev/null
	verdict=$(tail -n 1 "$out/pass-$pass.log")
	log "soak: pass $pass: $verdict"
	if [[ "$verdict" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
		[ "${BASH_REMATCH[2]}" = 0 ] || cp -r "$VMSG_BUILD/scenarios-run" "$out/pass-$pass-run"
	else
		failed=$((failed + 1))
		cp -r "$VMSG_BUILD/scenarios-run" "$out/pass-$pass-run" 2>/dev/null
		log "soak: pass $pass did not finish with a verdict, see $out/pass-$pass.log"
	fi
	[ $(($(date +%s) - start)) -ge $((minutes * 60)) ] && break
done
elapsed=$((($(date +%s) - start + 30) / 60))
summary="soak: $pass passes in $elapsed min: $passed passed, $failed failed, $skipped skipped"
echo "$summary (tiers: $tiers; since $(date -u -d "@$start" +%FT%TZ); commit $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty))" >"$out/summary.txt"
echo "$summary"
[ "$failed" = 0 ]
