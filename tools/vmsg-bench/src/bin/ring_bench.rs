// SPDX-License-Identifier: GPL-2.0

//! `vmsg-ring-bench`: throughput and round trips of the shared-memory rings on the host
//! alone, through vmsg-device's ring code (see `vmsg_bench::rings`).
//!
//! Prints one JSON object per scenario and message size on standard output and a table on
//! standard error. With `--tsc-khz`, prints the host's TSC frequency in kHz instead: a TCG
//! guest's TSC runs at the host's rate, and `scripts/bench.sh` hands it to the guest kernel
//! (`tsc_early_khz=`), which cannot calibrate its TSC under TCG and would otherwise keep
//! time with jiffies.

#![deny(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use vmsg_bench::rings::{run, Scenario};
use vmsg_bench::stats::{json_line, median, Json};

const USAGE: &str = "usage: vmsg-ring-bench [--seconds S] [--reps N] [--sizes A,B,...]
       vmsg-ring-bench --tsc-khz

Runs every scenario of the shared-memory rings (Documentation/shm-bus.rst) for S seconds
(default 1), N times (default 3), with messages of each size in bytes (default 16,264;
8..=264), and prints one JSON object per scenario and size on standard output.";

struct Args {
    tsc_khz: bool,
    seconds: f64,
    reps: usize,
    sizes: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        tsc_khz: false,
        seconds: 1.0,
        reps: 3,
        sizes: vec![16, 264],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--reps" => args.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("--sizes: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--tsc-khz" => args.tsc_khz = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.seconds.is_nan() || args.seconds <= 0.0 || args.reps == 0 {
        return Err("--seconds and --reps must be positive".into());
    }
    if let Some(s) = args.sizes.iter().find(|&&s| !(8..=264).contains(&s)) {
        return Err(format!("message size {s} is outside 8..=264"));
    }
    Ok(args)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter; every x86-64 CPU has it.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// The TSC's rate against the monotonic clock: the median of three 200 ms windows.
#[cfg(target_arch = "x86_64")]
fn tsc_khz() -> Result<f64, String> {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let (t0, c0) = (std::time::Instant::now(), rdtsc());
        std::thread::sleep(Duration::from_millis(200));
        let (c1, t1) = (rdtsc(), std::time::Instant::now());
        rates.push(c1.wrapping_sub(c0) as f64 / (t1 - t0).as_secs_f64() / 1e3);
    }
    Ok(median(&rates))
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc_khz() -> Result<f64, String> {
    Err("--tsc-khz needs an x86-64 host".into())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vmsg-ring-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.tsc_khz {
        return match tsc_khz() {
            Ok(khz) => {
                println!("{khz:.0}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vmsg-ring-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let duration = Duration::from_secs_f64(args.seconds);
    eprintln!(
        "{:<28} {:>6} {:>14} {:>12} {:>10}",
        "scenario", "bytes", "ops/s", "ns/op", "bells/op"
    );
    for scenario in Scenario::ALL {
        for &size in &args.sizes {
            let mut rates = Vec::new();
            let mut ns = Vec::new();
            let mut bells = Vec::new();
            for _ in 0..args.reps {
                match run(scenario, size, duration) {
                    Ok(o) => {
                        rates.push(o.rate());
                        ns.push(o.ns_per_op());
                        bells.push(o.doorbells_per_op());
                    }
                    Err(e) => {
                        eprintln!("vmsg-ring-bench: {}: {e}", scenario.name());
                        return ExitCode::FAILURE;
                    }
                }
            }
            let unit = if scenario.is_round_trip() {
                "round trip"
            } else {
                "message"
            };
            println!(
                "{}",
                json_line(&[
                    ("scenario", Json::Str(scenario.name())),
                    ("msg_bytes", Json::Num(size as f64)),
                    ("unit", Json::Str(unit)),
                    ("seconds_per_rep", Json::Num(args.seconds)),
                    ("ops_per_s", Json::Nums(&rates)),
                    ("ns_per_op", Json::Nums(&ns)),
                    ("doorbells_per_op", Json::Nums(&bells)),
                    ("median_ops_per_s", Json::Num(median(&rates))),
                    ("median_ns_per_op", Json::Num(median(&ns))),
                ])
            );
            eprintln!(
                "{:<28} {:>6} {:>14.0} {:>12.1} {:>10.3}",
                scenario.name(),
                size,
                median(&rates),
                median(&ns),
                median(&bells)
            );
        }
    }
    ExitCode::SUCCESS
}
