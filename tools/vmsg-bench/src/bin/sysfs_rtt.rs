// SPDX-License-Identifier: GPL-2.0

//! `vmsg-sysfs-rtt`: runs in the guest of `make bench` and times open + read + close of
//! sysfs attributes, one sample per read.
//!
//! Reading `/sys/bus/virtio/devices/virtioN/status` calls the transport's `get_status`
//! every time: on virtio-msg that is one GET_DEVICE_STATUS request and its response (one
//! transport message round trip: ring, doorbell, device side, ring, interrupt); on
//! virtio-pci it is one read of the common configuration register. Reading the same
//! device's `device` attribute costs the same system calls but touches no device (the id
//! is cached), so the difference between the two is the price of asking the device.
//!
//! Usage: vmsg-sysfs-rtt [--seconds S] [--warmup N] LABEL=PATH...
//! Prints one JSON object per path (nanoseconds) on standard output.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vmsg_bench::stats::{json_line, summarise, Json};

fn read_once(path: &str, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut f = File::open(path)?;
    f.read(buf)
}

fn measure(label: &str, path: &str, seconds: f64, warmup: u32) -> Result<String, String> {
    let mut buf = [0u8; 256];
    let mut first = String::new();
    for i in 0..warmup.max(1) {
        let n = read_once(path, &mut buf).map_err(|e| format!("{path}: {e}"))?;
        if i == 0 {
            first = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        }
    }
    let limit = Duration::from_secs_f64(seconds);
    let mut samples = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    while start.elapsed() < limit {
        let t = Instant::now();
        read_once(path, &mut buf).map_err(|e| format!("{path}: {e}"))?;
        samples.push(t.elapsed().as_nanos() as f64);
    }
    let wall = start.elapsed().as_secs_f64();
    let n = samples.len();
    let s = summarise(&mut samples);
    Ok(json_line(&[
        ("label", Json::Str(label)),
        ("path", Json::Str(path)),
        ("value", Json::Str(&first)),
        ("n", Json::Num(n as f64)),
        ("wall_ns_per_read", Json::Num(wall * 1e9 / n as f64)),
        ("min", Json::Num(s.min)),
        ("mean", Json::Num(s.mean)),
        ("p50", Json::Num(s.p50)),
        ("p90", Json::Num(s.p90)),
        ("p99", Json::Num(s.p99)),
        ("max", Json::Num(s.max)),
    ]))
}

fn main() -> ExitCode {
    let mut seconds = 2.0;
    let mut warmup = 50;
    let mut targets = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) => seconds = v,
                None => {
                    eprintln!("vmsg-sysfs-rtt: --seconds needs a number");
                    return ExitCode::from(2);
                }
            },
            "--warmup" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) => warmup = v,
                None => {
                    eprintln!("vmsg-sysfs-rtt: --warmup needs a number");
                    return ExitCode::from(2);
                }
            },
            t => match t.split_once('=') {
                Some((label, path)) => targets.push((label.to_string(), path.to_string())),
                None => {
                    eprintln!("usage: vmsg-sysfs-rtt [--seconds S] [--warmup N] LABEL=PATH...");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let mut ok = true;
    for (label, path) in &targets {
        match measure(label, path, seconds, warmup) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("vmsg-sysfs-rtt: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
