#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the records of a `make bench` run (scripts/bench.sh) into its report.

Reads, from --records (build/bench/): guest/tap.log (what tests/bench/guest.sh
printed: fio JSON as gzip+base64 blocks, sysfs round-trip timings, interrupt,
message and window counters), rings.jsonl (vmsg-ring-bench) and meta.json (machine,
accelerator, parameters). Writes to --out (bench/):

  results.md         every figure: per transport the median over the rounds
                     with its range, and the ratio virtio-msg / anchor (the
                     median of the per-round ratios, each from runs made back
                     to back, with their range);
  README-section.md  the section for README.md: the command and the main table;
  results.json       the numbers behind both;
  results.png        the plot (when matplotlib is importable).
"""

import argparse
import base64
import gzip
import json
import re
import statistics
import sys
from pathlib import Path

TRANSPORTS = ["msg", "msgthr", "msgvu", "msgwin", "pci", "vhost"]
NAMES = {
    "msg": "virtio-msg",
    "msgthr": "virtio-msg, rx_budget=0",
    "msgvu": "virtio-msg, vhost-user bridge",
    "msgwin": "virtio-msg, window",
    "pci": "virtio-blk-pci",
    "vhost": "vhost-user-blk",
}
# msgthr is the same virtio-msg disk with the to-driver ring drained in the interrupt
# thread only (rx_budget=0, the driver before the hard-IRQ receive path): msg / msgthr is
# that change's effect, measured side by side. msgvu is a virtio-msg disk whose queues
# qemu-storage-daemon serves through vmsg-device's vhost-user bridge: msgvu / vhost is the
# same backend reached through virtio-msg or through vhost-user-blk-pci. msgwin is a virtio-msg
# disk on a second bus instance in window mode (vrings in the shared window, every buffer
# bounced through it; the device side sees no guest RAM): msgwin / msg is the cost of the
# bounce buffers, the bus and the device program being the same otherwise.
# (numerator, denominator) of each ratio column.
ANCHORS = [("msg", "pci"), ("msg", "vhost"), ("msg", "msgthr"), ("msgvu", "vhost"), ("msgwin", "msg")]

# (job, label, kind) in table order; kind: iops, mibs.
THROUGHPUT = [
    ("randread-4k-qd1", "4 KiB random read, QD1", "iops"),
    ("randwrite-4k-qd1", "4 KiB random write, QD1", "iops"),
    ("randread-4k-qd32", "4 KiB random read, QD32", "iops"),
    ("randwrite-4k-qd32", "4 KiB random write, QD32", "iops"),
    ("read-128k-qd16", "128 KiB sequential read, QD16", "mibs"),
    ("write-128k-qd16", "128 KiB sequential write, QD16", "mibs"),
]
# (job, percentile key, label)
LATENCY = [
    ("randread-4k-qd1", "50", "4 KiB random read QD1, p50"),
    ("randread-4k-qd1", "99", "4 KiB random read QD1, p99"),
    ("randread-4k-qd1", "99.9", "4 KiB random read QD1, p99.9"),
    ("randwrite-4k-qd1", "50", "4 KiB random write QD1, p50"),
    ("randwrite-4k-qd1", "99", "4 KiB random write QD1, p99"),
    ("randwrite-4k-qd1", "99.9", "4 KiB random write QD1, p99.9"),
    ("randread-4k-qd32", "50", "4 KiB random read QD32, p50"),
    ("randread-4k-qd32", "99", "4 KiB random read QD32, p99"),
    ("randwrite-4k-qd32", "50", "4 KiB random write QD32, p50"),
    ("randwrite-4k-qd32", "99", "4 KiB random write QD32, p99"),
]
PCT_KEYS = {"50": "50.000000", "90": "90.000000", "99": "99.000000", "99.9": "99.900000"}

MARK = "# vmsg-bench "


def parse_records(tap_path):
    """Returns (info, disks, fio, counters, rtt, windows, errors, done) from the guest's ttyS1."""
    info, disks, fio, counters, rtt, windows, errors = {}, {}, {}, {}, [], {}, []
    done = False
    block = None
    text = tap_path.read_text(errors="replace") if tap_path.exists() else ""
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if block is not None:
            if line.startswith(MARK + "end"):
                key, chunks = block
                block = None
                try:
                    doc = gzip.decompress(base64.b64decode("".join(chunks))).decode()
                    # Anything fio logged before its JSON (exec_prerun notes) is skipped.
                    data = json.loads(doc[doc.index("{"):])
                    fio[key] = data
                except (ValueError, OSError, EOFError) as e:
                    errors.append(f"fio output of {key} unreadable: {e}")
            else:
                block[1].append(line.strip())
            continue
        if not line.startswith(MARK):
            continue
        rest = line[len(MARK):]
        word, _, rest = rest.partition(" ")
        if word == "start":
            info.update(dict(kv.split("=", 1) for kv in rest.split() if "=" in kv))
        elif word == "clock":
            info.setdefault("clock", []).append(rest)
        elif word == "disk":
            kv = dict(x.split("=", 1) for x in rest.split() if "=" in x)
            disks[kv["transport"]] = kv
        elif word == "rtt":
            m = re.match(r"round=(\d+) (\{.*\})$", rest)
            if m:
                d = json.loads(m.group(2))
                d["round"] = int(m.group(1))
                rtt.append(d)
        elif word == "counters":
            kv = dict(x.split("=", 1) for x in rest.split() if "=" in x)
            key = (int(kv.pop("round")), kv.pop("job"), kv.pop("transport"))
            counters[key] = {k: float(v) for k, v in kv.items()}
        elif word == "fio":
            kv = dict(x.split("=", 1) for x in rest.split())
            block = ((int(kv["round"]), kv["job"], kv["transport"]), [])
        elif word == "window":
            kv = dict(x.split("=", 1) for x in rest.split() if "=" in x)
            windows[kv.pop("transport")] = kv
        elif word == "error":
            errors.append(rest)
        elif word == "done":
            done = True
    return info, disks, fio, counters, rtt, windows, errors, done


def fio_side(data, job):
    j = data["jobs"][0]
    return j["write"] if "write" in job else j["read"]


def collect(fio, counters, rtt):
    """Per-round values: values[metric][transport][round] = number."""
    values = {}

    def put(metric, t, r, v):
        values.setdefault(metric, {}).setdefault(t, {})[r] = v

    for (r, job, t), data in fio.items():
        side = fio_side(data, job)
        put(f"{job}:iops", t, r, side["iops"])
        put(f"{job}:mibs", t, r, side["bw_bytes"] / 2**20)
        lat = side.get("lat_ns", {})
        put(f"{job}:lat_mean_us", t, r, lat.get("mean", 0) / 1e3)
        for short, key in PCT_KEYS.items():
            pct = lat.get("percentile", {})
            if key in pct:
                put(f"{job}:lat_p{short}_us", t, r, pct[key] / 1e3)
    for (r, job, t), c in counters.items():
        n = c.get("ios", 0)
        if n <= 0:
            continue
        put(f"{job}:irqs_per_io", t, r, c["irqs"] / n)
        put(f"{job}:ctxt_per_io", t, r, c["ctxt"] / n)
        # /proc/stat counts in USER_HZ (100) ticks.
        put(f"{job}:busy_us_per_io", t, r, c["busy"] * 1e4 / n)
        put(f"{job}:idle_us_per_io", t, r, c["idle"] * 1e4 / n)
        for k in ("requests", "events_sent", "events_received", "bounced_to_device",
                  "bounced_from_device"):
            if k in c:
                put(f"{job}:{k}_per_io", t, r, c[k] / n)
    for d in rtt:
        t, kind = d["label"].split("-", 1)
        put(f"sysfs-{kind}:us", t, d["round"], d["wall_ns_per_read"] / 1e3)
        put(f"sysfs-{kind}:p50_us", t, d["round"], d["p50"] / 1e3)
        put(f"sysfs-{kind}:p99_us", t, d["round"], d["p99"] / 1e3)
    # Net price of asking the device: the median status read minus the median
    # cached read of the same round (medians: a loaded host preempts the guest
    # now and then, which the means would count).
    for t in TRANSPORTS:
        st = values.get("sysfs-status:p50_us", {}).get(t, {})
        ca = values.get("sysfs-cached:p50_us", {}).get(t, {})
        for r in st:
            if r in ca:
                put("sysfs-net:us", t, r, st[r] - ca[r])
    return values


def summary(per_round):
    v = sorted(per_round.values())
    if not v:
        return None
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def ratio(values, metric, pair):
    """Median (and range) of numerator/denominator over rounds where both ran."""
    m = values.get(metric, {})
    a, b = m.get(pair[0], {}), m.get(pair[1], {})
    rs = [a[r] / b[r] for r in a if r in b and b[r]]
    if not rs:
        return None
    rs.sort()
    return {"median": statistics.median(rs), "min": rs[0], "max": rs[-1], "n": len(rs)}


def fmt_num(x):
    if x is None:
        return "–"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_cell(s):
    if not s:
        return "–"
    if s["n"] == 1:
        return fmt_num(s["median"])
    return f"{fmt_num(s['median'])} ({fmt_num(s['min'])}–{fmt_num(s['max'])})"


def fmt_ratio(r):
    if not r:
        return "–"
    if r["n"] == 1:
        return f"**{r['median']:.2f}**"
    return f"**{r['median']:.2f}** ({r['min']:.2f}–{r['max']:.2f})"


def table(values, rows, transports, anchors):
    """rows: (metric, label, unit). Markdown lines."""
    head = ["metric", "unit"] + [NAMES[t] for t in transports]
    head += [f"{n} / {d}" for n, d in anchors]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric, label, unit, *flags in rows:
        if metric not in values:
            continue
        cells = [label, unit]
        cells += [fmt_cell(summary(values[metric].get(t, {}))) for t in transports]
        if "no-ratio" in flags:
            cells += ["–" for _ in anchors]
        else:
            cells += [fmt_ratio(ratio(values, metric, a)) for a in anchors]
        out.append("| " + " | ".join(cells) + " |")
    return out


def main_rows():
    rows = []
    for job, label, kind in THROUGHPUT:
        rows.append((f"{job}:{kind}", label, "IOPS" if kind == "iops" else "MiB/s"))
    for job, pct, label in LATENCY:
        rows.append((f"{job}:lat_p{pct}_us", label + " latency", "µs"))
    rows.append(("sysfs-status:p50_us", "read of virtio `status` (sysfs), p50", "µs"))
    rows.append(("sysfs-net:us", "… minus a cached attribute's p50: one device access "
                 "(a message round trip on virtio-msg; a register read, near 0, on PCI)", "µs", "no-ratio"))
    return rows


def count_rows():
    rows = []
    for job, label, _ in THROUGHPUT:
        rows.append((f"{job}:busy_us_per_io", f"{label}: guest CPU busy per request", "µs"))
        rows.append((f"{job}:idle_us_per_io", f"{label}: guest CPU idle per request", "µs"))
    for job, label, _ in THROUGHPUT:
        rows.append((f"{job}:ctxt_per_io", f"{label}: context switches per request", "/req"))
    for job, label, _ in THROUGHPUT:
        rows.append((f"{job}:irqs_per_io", f"{label}: interrupts per request", "/req"))
    for job, label, _ in THROUGHPUT:
        rows.append((f"{job}:events_sent_per_io", f"{label}: EVENT_AVAIL sent per request", "/req"))
        rows.append((f"{job}:events_received_per_io", f"{label}: EVENT_USED received per request", "/req"))
    for job, label, _ in THROUGHPUT:
        rows.append((f"{job}:bounced_to_device_per_io", f"{label}: bytes bounced into the window per request",
                     "B/req", "no-ratio"))
        rows.append((f"{job}:bounced_from_device_per_io", f"{label}: bytes bounced out of the window per request",
                     "B/req", "no-ratio"))
    return rows


def window_lines(windows):
    """The end-of-run window counters (msgwin), as Markdown lines."""
    out = []
    for t, w in sorted(windows.items()):
        def mib(k):
            try:
                n = int(w[k])
            except (KeyError, ValueError):
                return "?"
            return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"
        out.append(
            f"- {NAMES.get(t, t)} (bus instance {w.get('instance', '?')}): window {mib('size')}, "
            f"peak use {mib('peak')}, in use at the end {mib('in_use')}, "
            f"bounced to the device {mib('bounced_to_device')}, back {mib('bounced_from_device')}, "
            f"mappings refused for lack of space (full_refusals): **{w.get('full_refusals', '?')}**"
        )
    return out


def window_problems(windows, transports):
    """Refused mappings, or a msgwin run without its window counters."""
    out = []
    for t, w in sorted(windows.items()):
        if w.get("full_refusals", "0") != "0":
            out.append(f"the window of {t} refused {w.get('full_refusals')} mapping(s) for lack of space "
                       f"(full_refusals; peak {w.get('peak', '?')} of {w.get('size', '?')} bytes): its "
                       "figures include waits or failed requests")
    if "msgwin" in transports and "msgwin" not in windows:
        out.append("no window counters for msgwin at the end of the run")
    return out


def sysfs_rows():
    return [
        ("sysfs-status:us", "`status` read, mean (wall time / reads)", "µs"),
        ("sysfs-status:p50_us", "`status` read, p50", "µs"),
        ("sysfs-status:p99_us", "`status` read, p99", "µs"),
        ("sysfs-cached:us", "`device` read (cached, no device access), mean", "µs"),
        ("sysfs-cached:p50_us", "`device` read (cached, no device access), p50", "µs"),
        ("sysfs-net:us", "difference of the p50s: the device access", "µs", "no-ratio"),
    ]


def ring_table(rings):
    out = [
        "| scenario | message bytes | messages or round trips / s | ns each | doorbells each |",
        "|---|---|---|---|---|",
    ]
    for r in rings:
        bells = statistics.median(r["doorbells_per_op"])
        rng_ns = f"{min(r['ns_per_op']):.0f}–{max(r['ns_per_op']):.0f}"
        out.append(
            f"| {r['scenario']} | {r['msg_bytes']:.0f} | {r['median_ops_per_s']:,.0f} | "
            f"{r['median_ns_per_op']:.0f} ({rng_ns}) | {bells:.2f} |"
        )
    return out


def machine_lines(meta, info):
    accel = info.get("accel", meta.get("accel_probe", "?"))
    return [
        f"- machine: {meta.get('nproc', '?')} host CPUs, {meta.get('cpu', '?')}, "
        f"Linux {meta.get('host_kernel', '?')}; load average before the run {meta.get('load_before', '?')} "
        "(other QEMU guests share the machine: compare ratios, not absolute numbers)",
        f"- accelerator: **{accel}** ({meta.get('qemu', '?')}); guest: {info.get('cpus', '?')} vCPU, "
        f"1 GiB, Linux {info.get('kernel', '?')} with {', '.join(meta.get('guest_debug', [])) or 'no debug options'}, "
        f"clocksource {info.get('clocksource', '?')}",
        f"- repetitions: **{meta.get('rounds', '?')} rounds**; each fio job {meta.get('runtime', '?')} s "
        f"after {meta.get('ramp', '?')} s ramp, the transports of one job back to back in rotating order; "
        f"sysfs reads {meta.get('rtt_seconds', '?')} s per attribute per round; ring scenarios "
        f"{meta.get('ring_seconds', '?')} s × {meta.get('rounds', '?')}",
        f"- {meta.get('fio', 'fio')}, libaio, O_DIRECT, one job; every disk: the same 256 MiB "
        "file in /dev/shm, buffered host I/O, one queue of 256, no guest I/O scheduler",
        f"- run: {meta.get('date', '?')}, commit {meta.get('commit', '?')}, guest time "
        f"{meta.get('guest_seconds', '?')} s"
        + (", modules " + ", ".join(f"{k} {v}" for k, v in sorted(meta["modules"].items())) + " (sha256)"
           if meta.get("modules") else ""),
    ]


def plot(path, values, transports, anchors, rings, meta, info):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"msg": "#d95f02", "msgthr": "#fdb863", "msgvu": "#e7298a", "msgwin": "#a6761d",
              "pci": "#1b9e77", "vhost": "#7570b3"}
    fig, axes = plt.subplots(4, 2, figsize=(14, 20))
    accel = info.get("accel", meta.get("accel_probe", "?"))
    fig.suptitle(
        f"virtio-blk: virtio-msg (own device, vhost-user bridge, window) vs virtio-blk-pci vs vhost-user-blk — {accel}, "
        f"{meta.get('nproc', '?')} × {meta.get('cpu', '?')}, {meta.get('rounds', '?')} rounds "
        "(bars: median; whiskers: min–max; labels: ratio to the anchor named)",
        fontsize=11,
    )

    def bars(ax, metrics, labels, ylabel, title, log=False, no_ratio=(), rotate=0):
        kept = [(m, l) for m, l in zip(metrics, labels) if m in values]
        if not kept:
            ax.axis("off")
            return
        metrics, labels = [m for m, _ in kept], [l for _, l in kept]
        n = len(transports)
        width = 0.8 / n
        for i, t in enumerate(transports):
            meds, lo, hi = [], [], []
            for m in metrics:
                s = summary(values.get(m, {}).get(t, {}))
                meds.append(s["median"] if s else 0)
                lo.append(s["median"] - s["min"] if s else 0)
                hi.append(s["max"] - s["median"] if s else 0)
            xs = [k + (i - (n - 1) / 2) * width for k in range(len(metrics))]
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=2, label=NAMES[t], color=colors[t])
            mine = [a for a in anchors if a[0] == t]
            if mine:
                for x, m, y in zip(xs, metrics, meds):
                    if m in no_ratio:
                        continue
                    parts = []
                    for a in mine:
                        r = ratio(values, m, a)
                        if r:
                            parts.append(f"{r['median']:.2f}× {a[1]}")
                    if parts:
                        ax.annotate("\n".join(parts), (x, y), textcoords="offset points",
                                    xytext=(0, 3), ha="center", fontsize=7)
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels(labels, fontsize=7 if rotate else 8, rotation=rotate,
                           ha="right" if rotate else "center")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    iops = [(f"{j}:iops", l.replace(", ", "\n")) for j, l, k in THROUGHPUT if k == "iops"]
    bars(axes[0][0], [m for m, _ in iops], [l for _, l in iops], "IOPS", "4 KiB random I/O (higher is better)")
    mibs = [(f"{j}:mibs", l.replace(", ", "\n")) for j, l, k in THROUGHPUT if k == "mibs"]
    bars(axes[0][1], [m for m, _ in mibs], [l for _, l in mibs], "MiB/s", "128 KiB sequential I/O (higher is better)")
    lat = [(f"{j}:lat_p{p}_us", l.replace("4 KiB random ", "")) for j, p, l in LATENCY]
    bars(axes[1][0], [m for m, _ in lat], [l for _, l in lat], "µs",
         "4 KiB request latency, fio total (lower is better)", log=True, rotate=30)
    bars(axes[1][1], ["sysfs-status:p50_us", "sysfs-cached:p50_us", "sysfs-net:us"],
         ["status read\n(asks the device)", "device read\n(cached)", "difference:\none device access"],
         "µs per read (p50)", "one transport round trip: sysfs reads in the guest (lower is better)",
         no_ratio=("sysfs-net:us",))
    jobs = [(j, l) for j, l, _ in THROUGHPUT]
    bars(axes[2][1], [f"{j}:ctxt_per_io" for j, _ in jobs], [l for _, l in jobs], "per request",
         "guest context switches per request", rotate=30)
    ax = axes[3][0]
    present = [(j, l) for j, l in jobs if f"{j}:busy_us_per_io" in values]
    if present:
        n = len(transports)
        width = 0.8 / n
        for i, t in enumerate(transports):
            busy, idle = [], []
            for j, _ in present:
                b = summary(values.get(f"{j}:busy_us_per_io", {}).get(t, {}))
                d = summary(values.get(f"{j}:idle_us_per_io", {}).get(t, {}))
                busy.append(b["median"] if b else 0)
                idle.append(d["median"] if d else 0)
            xs = [k + (i - (n - 1) / 2) * width for k in range(len(present))]
            ax.bar(xs, busy, width, color=colors[t], label=f"{NAMES[t]}: busy")
            ax.bar(xs, idle, width, bottom=busy, color=colors[t], alpha=0.35, hatch="//",
                   label=f"{NAMES[t]}: idle (waiting for the host)")
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([l for _, l in present], fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("µs per request (median)")
        ax.set_title("guest CPU per request: busy (solid) and idle (hatched)", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    else:
        ax.axis("off")
    ax = axes[2][0]
    if rings:
        labels = [f"{r['scenario']}\n{r['msg_bytes']:.0f} B" for r in rings]
        ax.barh(range(len(rings)), [r["median_ns_per_op"] for r in rings], color="#666666")
        for k, r in enumerate(rings):
            ax.annotate(f"{r['median_ops_per_s'] / 1e6:.2f} M/s", (r["median_ns_per_op"], k),
                        textcoords="offset points", xytext=(3, -3), fontsize=7)
        ax.set_yticks(range(len(rings)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("ns per message (per round trip for round-trip-*)")
        ax.set_title("shared-memory rings on the host alone (vmsg-device's ring code)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    ax = axes[3][1]
    ax.axis("off")
    ax.text(0, 1, "\n".join(l.lstrip("- ").replace("**", "") for l in machine_lines(meta, info)),
            va="top", ha="left", fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    meta = json.loads((args.records / "meta.json").read_text())
    info, disks, fio, counters, rtt, windows, errors, done = parse_records(args.records / "guest" / "tap.log")
    rings = []
    rp = args.records / "rings.jsonl"
    if rp.exists():
        rings = [json.loads(l) for l in rp.read_text().splitlines() if l.strip()]
    values = collect(fio, counters, rtt)
    transports = [t for t in TRANSPORTS if any(t in v for v in values.values())]
    anchors = [a for a in ANCHORS if a[0] in transports and a[1] in transports]
    errors += window_problems(windows, transports)
    if "msg" not in transports or not anchors:
        print("bench-report: no virtio-msg results, or no anchor to compare them with", file=sys.stderr)
        for e in errors:
            print(f"bench-report: guest: {e}", file=sys.stderr)
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    main_table = table(values, main_rows(), transports, anchors)
    md = ["# `make bench` results", ""]
    md += machine_lines(meta, info)
    md += [
        "",
        "Cells: median over the rounds (min–max). **msg / anchor**: the median of the per-round "
        "ratios virtio-msg ÷ anchor (likewise msgvu ÷ vhost and msgwin ÷ msg), each from runs made back to back (min–max). For IOPS and "
        "MiB/s below 1 means virtio-msg is slower; for latencies and round trips above 1 means "
        "virtio-msg is slower. Latency is fio's total latency (submission to completion).",
        "",
        "**virtio-msg, rx_budget=0** is the same virtio-msg disk with `virtio_msg_shm` draining "
        "the device-to-driver ring only in its interrupt thread (the driver before the hard-IRQ "
        "receive path; set per run through debugfs `rx_budget`), so **msg / msgthr** is that "
        "change's effect measured side by side.",
        "",
        "**virtio-msg, vhost-user bridge** (msgvu) is a second virtio-msg disk whose virtqueues "
        "are served by qemu-storage-daemon through vmsg-device's vhost-user bridge "
        "(Documentation/vhost-user-bridge.rst): vmsg-device only turns EVENT_AVAIL into the "
        "backend's kick and its call into EVENT_USED. **msgvu / vhost** compares the same "
        "backend reached through virtio-msg and through vhost-user-blk-pci.",
        "",
        "**virtio-msg, window** (msgwin) is a virtio-msg disk on a second bus instance (a second "
        "ivshmem-doorbell served by a second vmsg-device) in window mode "
        "(Documentation/shm-bus.rst, *Window mode*): the device side sees no guest RAM, the "
        "vrings live in a window of the shared region and every buffer is bounced (copied) "
        "through it by the transport's mapping functions. **msgwin / msg** is the cost of the "
        "bounce buffers, the bus and the device program being the same otherwise.",
        "",
        "## virtio-blk",
        "",
    ]
    md += main_table
    md += ["", "## Where the time goes, per request", "",
           "Counted by fio's exec_prerun/exec_postrun around each job (ramp included) and divided "
           "by the requests the disk completed. Guest CPU busy/idle: /proc/stat of the one-vCPU "
           "guest; busy is the guest's own path (fio, block layer, driver, transport), idle is "
           "time it waited for the host (device side, QEMU, doorbells, interrupt delivery). "
           "Context switches: the guest's. Interrupts: the ivshmem vector of virtio_msg_shm "
           "(virtio-msg) or the disk's own MSI-X vectors (PCI). EVENT_AVAIL/EVENT_USED: the "
           "virtio-msg device's debugfs counters. Bytes bounced: the window's debugfs counters "
           "(msgwin only).", ""]
    md += table(values, count_rows(), transports, anchors)
    if windows:
        md += ["", "## The window (msgwin)", "",
               "Debugfs `window` of msgwin's bus instance after all its runs (ramps and all rounds "
               "included); full_refusals must be 0, or some requests waited for or failed to get "
               "window space.", ""]
        md += window_lines(windows)
    md += ["", "## One transport message round trip", "",
           "`vmsg-sysfs-rtt` in the guest times open+read+close of "
           "`/sys/bus/virtio/devices/virtioN/status`, which calls the transport's `get_status`: "
           "one GET_DEVICE_STATUS request and response on virtio-msg, one register read (an MMIO "
           "exit handled in QEMU's vCPU thread) on virtio-pci. The same device's `device` "
           "attribute costs the same system calls without touching the device; the difference "
           "is the device access.", ""]
    md += table(values, sysfs_rows(), transports, anchors)
    if rings:
        md += ["", "## Shared-memory rings on the host alone", "",
               "`vmsg-ring-bench` (tools/vmsg-bench) drives vmsg-device's own ring code "
               "(`vmsg_device::region::Ring`) in one 1 MiB region of 264-byte slots; eventfds stand "
               "in for the ivshmem doorbells. Median over the repetitions (ns range).", ""]
        md += ring_table(rings)
    if errors or not done:
        md += ["", "## Problems", ""]
        if not done:
            md.append("- the guest did not finish its plan (time limit or crash): figures are partial")
        md += [f"- {e}" for e in errors]
    md += ["", "![plot](results.png)", ""]
    (args.out / "results.md").write_text("\n".join(md))

    sec = ["## Benchmarks", "",
           "    make bench    # about 25 minutes; not part of make check",
           "",
           "`scripts/bench.sh` boots one guest with five virtio-blk disks on the same backing file: "
           "virtio-msg (virtio_msg_shm, tools/vmsg-device, ivshmem-doorbell), QEMU's virtio-blk-pci, "
           "vhost-user-blk-pci served by qemu-storage-daemon, a virtio-msg disk whose queues "
           "the same qemu-storage-daemon serves through vmsg-device's vhost-user bridge "
           "(msgvu / vhost: the same backend through both paths), and a virtio-msg disk on a second "
           "bus instance in window mode, every buffer bounced through the shared region (msgwin / msg: "
           "the cost of the bounce buffers); the first virtio-msg disk is measured "
           "twice, with the ring drained in the hard interrupt handler (default) and only in the "
           "interrupt thread (rx_budget=0, as before). fio runs each job on each disk back "
           "to back, round after round; the report is the median of each figure and of the per-round "
           "ratio to each anchor. It also times a sysfs read that costs one transport message round "
           "trip, and the shared-memory rings on the host alone. Full results: "
           "[bench/results.md](bench/results.md), plot: [bench/results.png](bench/results.png).",
           "", "Latest run:", ""]
    sec += machine_lines(meta, info)
    sec += ["", "Median (min–max) over the rounds; ratio = virtio-msg ÷ anchor (msgvu ÷ vhost for the bridge, msgwin ÷ msg "
            "for the window), per round (below 1: "
            "virtio-msg slower for IOPS and MiB/s; above 1: slower for latencies). Under TCG with the "
            "test kernel's debug options the one-vCPU guest is CPU-bound, so the ratios mostly compare "
            "the guest CPU time each transport spends per request; results.md breaks it down (guest "
            "CPU busy and idle, context switches, interrupts and messages per request). Runs on this "
            "shared machine differ from one another by more than the rounds of one run do.", ""]
    sec += main_table
    sec.append("")
    (args.out / "README-section.md").write_text("\n".join(sec))

    dump = {
        "meta": meta, "guest": info, "disks": disks, "windows": windows, "errors": errors, "complete": done,
        "figures": {m: {t: {"per_round": {str(r): v for r, v in sorted(tv.items())}, "summary": summary(tv)}
                        for t, tv in per_t.items()} for m, per_t in sorted(values.items())},
        # Keyed by the anchor for virtio-msg ratios, "num/den" for the others.
        "ratios": {m: {(a[1] if a[0] == "msg" else f"{a[0]}/{a[1]}"): ratio(values, m, a) for a in anchors}
                   for m in sorted(values)},
        "rings": rings,
    }
    (args.out / "results.json").write_text(json.dumps(dump, indent=1) + "\n")

    try:
        plot(args.out / "results.png", values, transports, anchors, rings, meta, info)
    except ImportError:
        print("bench-report: matplotlib not available: no plot", file=sys.stderr)
    for e in errors:
        print(f"bench-report: guest: {e}", file=sys.stderr)
    if not done:
        print("bench-report: the guest did not finish its plan", file=sys.stderr)
    print("\n".join(main_table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
