#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Collects the results of a `make check` run and decides whether it passed.

Inputs are the records the run leaves behind:
  * guest runs (directories written by scripts/qemu.sh): the kernel console
    with KUnit's KTAP and everything the kernel reported, the selftests' KTAP
    from the second serial line, and whether the guest finished in time;
  * host `cargo test` logs;
  * the harness self-test TAP written by scripts/check.sh.

`report` writes the combined TAP, prints every problem with its reason and
ends with the line `N passed, M failed[, K skipped]`; it exits 1 on any
failure. `verdict` prints the problems of one guest run, one per line, as
`<kind>: <detail>`, for the harness self-tests.
"""

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

END_MARKER = "VMSG-GUEST-DONE"

# Console lines that mean the kernel found a bug, whatever the tests said.
KERNEL_PROBLEMS = [
    ("oops", re.compile(r"^(Oops|general protection fault|Kernel panic)")),
    ("bug", re.compile(r"^BUG: ")),  # Also KASAN, sleeping in atomic, soft lockups.
    ("warning", re.compile(r"^WARNING: ")),  # WARN_ON and lockdep splats.
    ("warning", re.compile(r"^-+\[ cut here \]-+$")),
    ("lockdep", re.compile(r"(possible circular locking|possible recursive locking|inconsistent lock state)")),
    ("kasan", re.compile(r"^BUG: KASAN")),
    ("ubsan", re.compile(r"^UBSAN: ")),
    ("rust-panic", re.compile(r"panicked at ")),
    ("hung-task", re.compile(r"^INFO: task .* blocked for more than")),
    ("rcu-stall", re.compile(r"rcu: INFO: .* detected stalls")),
    ("kmemleak", re.compile(r"^VMSG-KMEMLEAK ")),
    ("guest-error", re.compile(r"^VMSG-GUEST-ERROR ")),
]

RESULT = re.compile(r"^(?P<indent> *)(?P<not>not )?ok (?P<num>\d+)(?: -)? ?(?P<name>[^#]*?)\s*(?:#\s*(?P<directive>\S+).*)?$")
PLAN = re.compile(r"^(?P<indent> *)1\.\.(?P<count>\d+)\s*$")
SUBTEST = re.compile(r"^(?P<indent> *)# Subtest: (?P<name>\S+)")
KSELFTEST_TEST = re.compile(r"^(?P<indent> *)# selftests: (?P<dir>\S+): (?P<test>\S+)$")


def kselftest_nesting(lines):
    """Rewrites the output of kselftest's runner (run_kselftest.sh) as nested KTAP.

    The runner prints "# selftests: DIR: TEST", then the test's own KTAP with
    each line prefixed by "# ", then one result for the test. The prefix
    becomes four spaces under a "# Subtest: kselftest:DIR:TEST" line, and the
    result is renamed to match, so that each check of a test counts and the
    runner's result summarises them (a timeout or a bad exit status with no
    failed check still fails).
    """
    out = []
    inside = None  # (indentation, runner's name, our name) of the test running.
    for raw in lines:
        line = raw.rstrip("\r\n")
        if inside is None:
            m = KSELFTEST_TEST.match(line)
            if m:
                name = f"kselftest:{m['dir']}:{m['test']}"
                inside = (m["indent"], f"selftests: {m['dir']}: {m['test']}", name)
                out.append(f"{m['indent']}    # Subtest: {name}")
                continue
        else:
            indent, runner_name, name = inside
            if line.startswith(indent + "# ") or line == indent + "#":
                out.append(indent + "    " + line[len(indent) + 2:])
                continue
            inside = None
            if RESULT.match(line):
                line = line.replace(runner_name, name, 1)
        out.append(line)
    return out


@dataclass
class Results:
    """Leaf test results and the problems found while reading the records."""

    tests: list = field(default_factory=list)  # (status, name), status in pass/fail/skip.
    problems: list = field(default_factory=list)  # (kind, detail).

    def extend(self, other):
        self.tests += other.tests
        self.problems += other.problems


def parse_ktap(lines, prefix):
    """Parses (possibly nested) KTAP and returns its leaf results.

    A result line directly after results of deeper indentation summarises
    them and is not counted again, unless it reports a failure none of its
    children reported (a suite that failed to initialise, say). A plan that
    the results do not meet is a problem: a test that stopped half way.
    """
    res = Results()
    lines = kselftest_nesting(lines)
    names = {}  # indent -> name of the subtest whose children sit at that indent.
    plans = {}  # indent -> [planned, seen].
    last_indent = None
    child_failed = {}

    def close_deeper(indent):
        for d in sorted([d for d in plans if d > indent]):
            planned, seen = plans.pop(d)
            if planned != seen:
                res.problems.append(("plan", f"{names.get(d, prefix)}: planned {planned} tests, {seen} reported"))
        for d in [d for d in child_failed if d > indent]:
            child_failed.pop(d)

    for raw in lines:
        line = raw.rstrip("\r\n").expandtabs()
        m = SUBTEST.match(line)
        if m:
            names[len(m["indent"])] = m["name"]
            continue
        m = PLAN.match(line)
        if m:
            d = len(m["indent"])
            if d in plans and plans[d][0] != plans[d][1]:
                res.problems.append(("plan", f"{names.get(d, prefix)}: planned {plans[d][0]} tests, {plans[d][1]} reported"))
            plans[d] = [int(m["count"]), 0]
            continue
        m = RESULT.match(line)
        if not m:
            continue
        d = len(m["indent"])
        name = m["name"].strip() or f"test{m['num']}"
        parent = names.get(d)
        full = f"{prefix}{parent}.{name}" if parent and d > 0 else f"{prefix}{name}"
        failed = m["not"] is not None
        skipped = (m["directive"] or "").upper() == "SKIP"
        is_summary = last_indent is not None and last_indent > d
        if d in plans:
            plans[d][1] += 1
        if is_summary:
            deeper_failed = any(v for k, v in child_failed.items() if k > d)
            close_deeper(d)
            if failed and not deeper_failed:
                res.tests.append(("fail", full))
        else:
            res.tests.append(("skip" if skipped and not failed else "fail" if failed else "pass", full))
        if failed:
            child_failed[d] = True
        last_indent = d
    close_deeper(-1)
    return res


INIT_STARTED = re.compile(r"^Run /init as init process")


def early_boot_reports(console):
    """Returns the kernel reports made before the kernel started /init.

    None of the project's code has run by then: such a report belongs to the
    base kernel under emulation (seen: an early interrupt while the boot CPU
    is identified, on a loaded host), and the guest is booted again.
    """
    found = []
    for line in console:
        stripped = line.strip()
        if INIT_STARTED.match(stripped):
            break
        if any(p.search(stripped) for _, p in KERNEL_PROBLEMS):
            found.append(stripped)
    return found


def read_lines(path):
    p = Path(path)
    return p.read_text(errors="replace").splitlines() if p.exists() else []


def parse_guest(outdir, label):
    """Reads one guest run: KUnit from the console, selftests from tap.log."""
    out = Path(outdir)
    console = read_lines(out / "console.log")
    res = Results()
    status = (out / "status").read_text().strip() if (out / "status").exists() else "missing"
    if status == "timeout":
        res.problems.append(("timeout", f"{label}: guest did not finish within its time limit (hang?), console: {out / 'console.log'}"))
    elif not any(END_MARKER in line for line in console):
        res.problems.append(("crash", f"{label}: guest stopped before the end of its test plan (panic or reboot?), console: {out / 'console.log'}"))
    for line in console:
        stripped = line.strip()
        for kind, pattern in KERNEL_PROBLEMS:
            if pattern.search(stripped):
                res.problems.append((kind, f"{label}: kernel reported: {stripped}"))
                break
    # The run itself is two tests: it finished, and the kernel reported nothing.
    kinds = {kind for kind, _ in res.problems}
    res.tests.append(("fail" if kinds & {"timeout", "crash"} else "pass", f"guest:{label}:finished"))
    res.tests.append(("fail" if kinds - {"timeout", "crash"} else "pass", f"guest:{label}:kernel-log-clean"))
    res.extend(parse_ktap(console, "kunit:"))
    res.extend(parse_ktap(read_lines(out / "tap.log"), ""))
    for status_, name in res.tests:
        if status_ == "fail" and not name.startswith("guest:"):
            res.problems.append(("test-failure", f"{label}: {name}"))
    return res


CARGO_TEST = re.compile(r"^test (?P<name>\S+) \.\.\. (?P<result>ok|FAILED|ignored)")


def parse_cargo(log):
    """Reads `cargo test` output; a failed run without test lines is a problem too."""
    res = Results()
    lines = read_lines(log)
    for line in lines:
        m = CARGO_TEST.match(line)
        if m:
            status = {"ok": "pass", "FAILED": "fail", "ignored": "skip"}[m["result"]]
            res.tests.append((status, f"host:{m['name']}"))
            if status == "fail":
                res.problems.append(("test-failure", f"host: {m['name']}"))
    rc_file = Path(str(log) + ".rc")
    rc = rc_file.read_text().strip() if rc_file.exists() else "missing"
    if rc != "0" and not any(s == "fail" for s, _ in res.tests):
        res.problems.append(("host-build", f"cargo test exited with {rc}, log: {log}"))
        res.tests.append(("fail", f"host:cargo-test({Path(log).name})"))
    return res


def write_tap(path, tests):
    with open(path, "w") as f:
        f.write("KTAP version 1\n")
        f.write(f"1..{len(tests)}\n")
        for i, (status, name) in enumerate(tests, 1):
            if status == "pass":
                f.write(f"ok {i} {name}\n")
            elif status == "skip":
                f.write(f"ok {i} {name} # SKIP\n")
            else:
                f.write(f"not ok {i} {name}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rep = sub.add_parser("report", help="combine all results, print the summary line")
    rep.add_argument("--guest", action="append", default=[], metavar="LABEL=DIR")
    rep.add_argument("--cargo", action="append", default=[], metavar="LOG")
    rep.add_argument("--tap", action="append", default=[], metavar="FILE", help="extra KTAP (harness self-tests)")
    rep.add_argument("--out", required=True)
    ver = sub.add_parser("verdict", help="print the problems of one guest run")
    ver.add_argument("dir")
    early = sub.add_parser("early-boot", help="print kernel reports made before /init started")
    early.add_argument("dir")
    args = ap.parse_args()

    if args.cmd == "early-boot":
        for line in early_boot_reports(read_lines(Path(args.dir) / "console.log")):
            print(line)
        return 0

    if args.cmd == "verdict":
        for kind, detail in parse_guest(args.dir, "guest").problems:
            print(f"{kind}: {detail}")
        return 0

    res = Results()
    for spec in args.guest:
        label, _, d = spec.partition("=")
        res.extend(parse_guest(d, label))
    for log in args.cargo:
        res.extend(parse_cargo(log))
    for tap in args.tap:
        part = parse_ktap(read_lines(tap), "")
        res.extend(part)
        res.problems += [("test-failure", name) for s, name in part.tests if s == "fail"]
    if not res.tests:
        res.problems.append(("no-tests", "no test result was found at all"))
        res.tests.append(("fail", "results-found"))
    write_tap(args.out, res.tests)

    for kind, detail in res.problems:
        print(f"FAIL [{kind}] {detail}")
    passed = sum(1 for s, _ in res.tests if s == "pass")
    failed = sum(1 for s, _ in res.tests if s == "fail")
    skipped = sum(1 for s, _ in res.tests if s == "skip")
    summary = f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    print(summary)
    return 1 if res.problems else 0


if __name__ == "__main__":
    sys.exit(main())
