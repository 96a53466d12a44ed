// SPDX-License-Identifier: GPL-2.0

//! Percentiles of samples, medians of repetitions, and one-line JSON objects.

use std::fmt::Write as _;

/// Summary of a set of samples (nanoseconds or any other unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// The `q`-quantile (0..=1) of sorted `v`, nearest rank; 0 for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises `samples` (sorted in place).
pub fn summarise(samples: &mut [f64]) -> Summary {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let mean = if n == 0 {
        0.0
    } else {
        samples.iter().sum::<f64>() / n as f64
    };
    Summary {
        n,
        min: samples.first().copied().unwrap_or(0.0),
        mean,
        p50: quantile(samples, 0.5),
        p90: quantile(samples, 0.9),
        p99: quantile(samples, 0.99),
        max: samples.last().copied().unwrap_or(0.0),
    }
}

/// Median of `values` (the lower middle for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// A value of a one-line JSON object.
pub enum Json<'a> {
    /// A string (escaped on output).
    Str(&'a str),
    /// A number (non-finite values become `null`).
    Num(f64),
    /// A list of numbers.
    Nums(&'a [f64]),
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_num(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str("null");
    }
}

/// Formats `fields` as one JSON object on one line.
pub fn json_line(fields: &[(&str, Json<'_>)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str(&mut out, k);
        out.push_str(": ");
        match v {
            Json::Str(s) => push_str(&mut out, s),
            Json::Num(n) => push_num(&mut out, *n),
            Json::Nums(ns) => {
                out.push('[');
                for (j, n) in ns.iter().enumerate() {
                    if j > 0 {
                        out.push_str(", ");
                    }
                    push_num(&mut out, *n);
                }
                out.push(']');
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarise(&mut v);
        assert_eq!(s.n, 100);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.p50, 50.0);
        assert_eq!(s.p90, 90.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(s.mean, 50.5);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn median_of_unsorted_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn json_line_escapes_and_nulls() {
        let line = json_line(&[
            ("name", Json::Str("a\"b\\c\n")),
            ("x", Json::Num(1.5)),
            ("bad", Json::Num(f64::NAN)),
            ("v", Json::Nums(&[1.0, 2.0])),
        ]);
        assert_eq!(
            line,
            r#"{"name": "a\"b\\c\u000a", "x": 1.5, "bad": null, "v": [1, 2]}"#
        );
    }
}
