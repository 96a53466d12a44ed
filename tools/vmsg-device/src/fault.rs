// SPDX-License-Identifier: GPL-2.0

//! Fault injection for testing the driver side: `--fault KIND[=N][:DEV]`.
//!
//! Without `:DEV` a fault applies to every message (bus messages included); with it, only
//! to transport messages of device `DEV`.
//!
//! | kind              | effect                                                        |
//! |-------------------|---------------------------------------------------------------|
//! | `no-answer`       | requests are dropped unanswered (and events ignored)          |
//! | `delay=MS`        | responses are held back MS milliseconds (default 2000)        |
//! | `bad-size`        | responses carry `msg_size` 4 bytes larger than the message    |
//! | `bad-id`          | responses carry another message id (`msg_id ^ 1`)             |
//! | `bad-token`       | responses carry another token (`token ^ 0x8000`)              |
//! | `flood=N`         | every response is followed by N EVENT_USED (default 1000)     |
//! | `vanish=N`        | after N messages nothing more is answered or processed (10)   |
//! | `corrupt-index=N` | after N messages sent, the to-driver producer index is made   |
//! |                   | inconsistent (`consumer + slot_count + 5`) (default 1)        |

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::bus::Outgoing;

/// Byte offset of `msg_id` in the header.
const MSG_ID: usize = 1;
/// Byte offset of `token` in the header.
const TOKEN: usize = 4;
/// Byte offset of `msg_size` in the header.
const MSG_SIZE: usize = 6;

/// One kind of misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Never answer.
    NoAnswer,
    /// Answer late.
    Delay(Duration),
    /// Answer with a wrong `msg_size`.
    BadSize,
    /// Answer with a wrong `msg_id`.
    BadId,
    /// Answer with a wrong token.
    BadToken,
    /// Follow each answer with this many events.
    Flood(u32),
    /// Stop answering after this many messages.
    Vanish(u32),
    /// Corrupt the to-driver ring after this many messages sent.
    CorruptIndex(u32),
}

/// A fault and the device it is limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Only this device's transport messages; `None`: every message.
    pub dev: Option<u16>,
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::NoAnswer => write!(f, "no-answer"),
            FaultKind::Delay(d) => write!(f, "delay={}", d.as_millis()),
            FaultKind::BadSize => write!(f, "bad-size"),
            FaultKind::BadId => write!(f, "bad-id"),
            FaultKind::BadToken => write!(f, "bad-token"),
            FaultKind::Flood(n) => write!(f, "flood={n}"),
            FaultKind::Vanish(n) => write!(f, "vanish={n}"),
            FaultKind::CorruptIndex(n) => write!(f, "corrupt-index={n}"),
        }?;
        match self.dev {
            Some(d) => write!(f, ":{d}"),
            None => Ok(()),
        }
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (body, dev) = match s.rsplit_once(':') {
            Some((body, dev)) => (
                body,
                Some(
                    dev.parse::<u16>()
                        .map_err(|_| format!("fault '{s}': '{dev}' is not a device number"))?,
                ),
            ),
            None => (s, None),
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (
                n,
                Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("fault '{s}': '{v}' is not a number"))?,
                ),
            ),
            None => (body, None),
        };
        let no_value = |kind| match value {
            None => Ok(kind),
            Some(_) => Err(format!("fault '{name}' takes no value")),
        };
        let kind = match name {
            "no-answer" => no_value(FaultKind::NoAnswer)?,
            "delay" => FaultKind::Delay(Duration::from_millis(u64::from(value.unwrap_or(2000)))),
            "bad-size" => no_value(FaultKind::BadSize)?,
            "bad-id" => no_value(FaultKind::BadId)?,
            "bad-token" => no_value(FaultKind::BadToken)?,
            "flood" => FaultKind::Flood(value.unwrap_or(1000)),
            "vanish" => FaultKind::Vanish(value.unwrap_or(10)),
            "corrupt-index" => FaultKind::CorruptIndex(value.unwrap_or(1)),
            other => {
                return Err(format!(
                    "unknown fault '{other}' (known: no-answer, delay=MS, bad-size, bad-id, \
                     bad-token, flood=N, vanish=N, corrupt-index=N)"
                ))
            }
        };
        if kind == FaultKind::CorruptIndex(0) {
            return Err("corrupt-index needs N >= 1".into());
        }
        if dev.is_some() && matches!(kind, FaultKind::CorruptIndex(_)) {
            return Err("corrupt-index concerns the ring, not a device: drop ':DEV'".into());
        }
        Ok(Self { kind, dev })
    }
}

/// What to do with an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it normally.
    Process,
    /// Drop it; the string says which fault.
    Drop(&'static str),
}

/// The active faults and their counters.
#[derive(Debug, Default)]
pub struct Faults {
    specs: Vec<FaultSpec>,
    seen: Vec<u32>,
    sent: u32,
    corrupted: bool,
}

impl Faults {
    /// Activates `specs`.
    pub fn new(specs: Vec<FaultSpec>) -> Self {
        let seen = vec![0; specs.len()];
        Self {
            specs,
            seen,
            sent: 0,
            corrupted: false,
        }
    }

    /// Whether any fault is active.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    fn applies(spec: &FaultSpec, dev: Option<u16>) -> bool {
        spec.dev.is_none() || spec.dev == dev
    }

    /// Judges a message from the driver for device `dev` (`None`: a bus message).
    pub fn incoming(&mut self, dev: Option<u16>) -> Verdict {
        let mut verdict = Verdict::Process;
        for (spec, seen) in self.specs.iter().zip(self.seen.iter_mut()) {
            if !Self::applies(spec, dev) {
                continue;
            }
            match spec.kind {
                FaultKind::NoAnswer => verdict = Verdict::Drop("no-answer"),
                FaultKind::Vanish(n) => {
                    *seen = seen.saturating_add(1);
                    if *seen > n {
                        verdict = Verdict::Drop("vanished");
                    }
                }
                _ => {}
            }
        }
        verdict
    }

    /// Alters an outgoing message; returns how long to hold it back.
    pub fn outgoing(&self, out: &mut Outgoing) -> Option<Duration> {
        if !out.response {
            return None;
        }
        let mut delay = None;
        for spec in self.specs.iter().filter(|s| Self::applies(s, out.dev)) {
            let b = &mut out.bytes;
            match spec.kind {
                FaultKind::Delay(d) => delay = Some(d),
                FaultKind::BadSize => {
                    let size = u16::from_le_bytes([b[MSG_SIZE], b[MSG_SIZE + 1]]).wrapping_add(4);
                    b[MSG_SIZE..MSG_SIZE + 2].copy_from_slice(&size.to_le_bytes());
                }
                FaultKind::BadId => b[MSG_ID] ^= 1,
                FaultKind::BadToken => {
                    let t = u16::from_le_bytes([b[TOKEN], b[TOKEN + 1]]) ^ 0x8000;
                    b[TOKEN..TOKEN + 2].copy_from_slice(&t.to_le_bytes());
                }
                _ => {}
            }
        }
        delay
    }

    /// Events to add after a response for `dev`: (device filter, count) per flood fault.
    pub fn floods(&self, dev: Option<u16>) -> Vec<(Option<u16>, u32)> {
        self.specs
            .iter()
            .filter(|s| Self::applies(s, dev))
            .filter_map(|s| match s.kind {
                FaultKind::Flood(n) => Some((s.dev, n)),
                _ => None,
            })
            .collect()
    }

    /// Counts a message published to the driver; returns true exactly once, when the
    /// ring should be corrupted.
    pub fn published(&mut self) -> bool {
        self.sent = self.sent.saturating_add(1);
        if self.corrupted {
            return false;
        }
        let due = self
            .specs
            .iter()
            .any(|s| matches!(s.kind, FaultKind::CorruptIndex(n) if self.sent >= n));
        self.corrupted = due;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> FaultSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_kinds_values_and_devices() {
        assert_eq!(
            parse("no-answer"),
            FaultSpec {
                kind: FaultKind::NoAnswer,
                dev: None
            }
        );
        assert_eq!(
            parse("delay=250:3"),
            FaultSpec {
                kind: FaultKind::Delay(Duration::from_millis(250)),
                dev: Some(3)
            }
        );
        assert_eq!(
            parse("delay").kind,
            FaultKind::Delay(Duration::from_secs(2))
        );
        assert_eq!(parse("vanish=4:0").kind, FaultKind::Vanish(4));
        assert_eq!(parse("flood").kind, FaultKind::Flood(1000));
        assert_eq!(parse("corrupt-index=3").kind, FaultKind::CorruptIndex(3));
        for s in ["delay=250:3", "bad-token:1", "vanish=4", "corrupt-index=2"] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_faults() {
        assert!("explode"
            .parse::<FaultSpec>()
            .unwrap_err()
            .contains("unknown fault"));
        assert!("delay=x".parse::<FaultSpec>().is_err());
        assert!("bad-id=3".parse::<FaultSpec>().is_err());
        assert!("no-answer:x".parse::<FaultSpec>().is_err());
        assert!("corrupt-index:1".parse::<FaultSpec>().is_err());
        assert!("corrupt-index=0".parse::<FaultSpec>().is_err());
    }

    fn response(dev: Option<u16>) -> Outgoing {
        Outgoing {
            dev,
            response: true,
            // GET_DEVICE_STATUS response, token 0x0102, size 12.
            bytes: vec![0x01, 0x07, 0, 0, 0x02, 0x01, 12, 0, 0, 0, 0, 0],
        }
    }

    #[test]
    fn response_mangling_is_limited_to_its_device() {
        let f = Faults::new(vec![
            parse("bad-size:1"),
            parse("bad-id:1"),
            parse("bad-token:1"),
        ]);
        let mut other = response(Some(0));
        assert_eq!(f.outgoing(&mut other), None);
        assert_eq!(other, response(Some(0)));
        let mut hit = response(Some(1));
        f.outgoing(&mut hit);
        assert_eq!(hit.bytes[1], 0x06, "msg_id changed");
        assert_eq!(&hit.bytes[4..6], &[0x02, 0x81], "token changed");
        assert_eq!(&hit.bytes[6..8], &[16, 0], "msg_size changed");
        // Events are never mangled.
        let mut event = response(Some(1));
        event.response = false;
        f.outgoing(&mut event);
        assert_eq!(event.bytes, response(Some(1)).bytes);
    }

    #[test]
    fn delay_applies_to_bus_messages_without_device() {
        let f = Faults::new(vec![parse("delay=5")]);
        assert_eq!(
            f.outgoing(&mut response(None)),
            Some(Duration::from_millis(5))
        );
        let f = Faults::new(vec![parse("delay=5:2")]);
        assert_eq!(f.outgoing(&mut response(None)), None);
    }

    #[test]
    fn vanish_after_n_and_no_answer() {
        let mut f = Faults::new(vec![parse("vanish=2:1")]);
        assert_eq!(f.incoming(Some(1)), Verdict::Process);
        assert_eq!(f.incoming(Some(0)), Verdict::Process);
        assert_eq!(f.incoming(None), Verdict::Process);
        assert_eq!(f.incoming(Some(1)), Verdict::Process);
        assert_eq!(f.incoming(Some(1)), Verdict::Drop("vanished"));
        assert_eq!(f.incoming(Some(0)), Verdict::Process);
        let mut f = Faults::new(vec![parse("no-answer")]);
        assert_eq!(f.incoming(None), Verdict::Drop("no-answer"));
    }

    #[test]
    fn corrupt_index_fires_once() {
        let mut f = Faults::new(vec![parse("corrupt-index=2")]);
        assert!(!f.published());
        assert!(f.published());
        assert!(!f.published());
    }

    #[test]
    fn floods_name_their_target() {
        let f = Faults::new(vec![parse("flood=3:2")]);
        assert_eq!(f.floods(Some(2)), vec![(Some(2), 3)]);
        assert!(f.floods(Some(1)).is_empty());
        assert!(f.floods(None).is_empty());
    }
}
