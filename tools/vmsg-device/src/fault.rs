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
//! | `short=N`         | responses are cut to N bytes, `msg_size` N (default 8: the    |
//! |                   | header alone); below 8, an 8-byte slot whose `msg_size` says N |
//! | `unknown-id`      | every response is preceded by a transport event (0x7f) and a  |
//! |                   | device-to-driver request (0x3f) no revision defines, and, for |
//! |                   | bus messages, a bus event 0xff                                |
//! | `unsolicited`     | every response is sent three times: first with a token nobody |
//! |                   | waits for (`token ^ 0x4000`), then as is, then again          |
//! | `config-size=N`   | GET_DEVICE_INFO announces N bytes of config (default 1 GiB)   |
//! | `config-range`    | GET_CONFIG responses name an offset past the config space     |
//! |                   | (bit 31 of the offset set)                                    |
//! | `queue-size=N`    | GET_VQUEUE responses report max size N (`huge`: 65535)        |
//! | `feature-blocks`  | GET_DEVICE_FEATURES responses carry two all-ones blocks more  |
//! |                   | than asked (or, if that does not fit, start past them)        |
//! | `fuzz=SEED[/PCT]` | PCT percent (default 10) of the messages to the driver are    |
//! |                   | mutated at random (`crate::fuzz`), from a PRNG seeded by SEED; |
//! |                   | a mutated event is followed by the intact one                 |
//! | `stall=MS[@N]`    | once, after N messages read from the driver (default 20), the |
//! |                   | to-device ring is not read for MS milliseconds (default 500), |
//! |                   | so that it fills up; then it is consumed as usual             |
//! | `generation-churn`| every GET_CONFIG response carries a config generation one     |
//! |                   | higher than the device's previous one (the first is the real) |
//! | `sticky-status`   | after a reset (SET_DEVICE_STATUS 0), GET_DEVICE_STATUS keeps  |
//! |                   | answering the last non-zero status, until the driver writes   |
//! |                   | another one                                                   |
//! | `device-event-    | once, after the first VERSION accepted: N EVENT_DEVICE        |
//! | flood=N`          | (default 100) alternately added and removed for a number no   |
//! |                   | device has (the lowest from 7 up), each followed by one for   |
//! |                   | the first device, alternately removed and added               |
//! | `corrupt-consumer | once, after N messages read from the driver (default 1) and   |
//! | =N`               | answered, the to-device consumer index is stored 5 ahead of   |
//! |                   | the producer; the device side then ignores that ring          |
//! | `header-rewrite=N`| once, after N messages read (default 20), the header says     |
//! |                   | magic 0, slot_count 3 and both ring offsets past the region;  |
//! |                   | the device side itself keeps the layout it made               |
//! | `doorbell-storm=N`| after each message read, the driver's doorbell is rung N      |
//! |                   | times (default 1000) with nothing published                   |
//! | `bad-used=HOW[@N]`| once, at the device's Nth EVENT_AVAIL (default 10), after its |
//! |                   | buffers are used: `id` adds a used entry with an id past the  |
//! |                   | queue, `len` makes the last entry's len 0xfffffff0, `idx`     |
//! |                   | moves the used index a queue size ahead; then EVENT_USED      |
//! | `config-storm=N`  | every response is followed by N EVENT_CONFIG (default 100)    |
//! |                   | for its device, its config unchanged (from GET_DEVICE_INFO on,|
//! |                   | so during its driver's probe too)                             |
//! | `duplicate-add`   | at the first transport message (the bring-up adding its first |
//! |                   | device), EVENT_DEVICE added, twice, for every device          |
//! | `late-add`        | the first GET_DEVICES answer leaves the device `:DEV` out;    |
//! |                   | EVENT_DEVICE added for it follows right after                 |
//! | `device-flap=N`   | from the first kick on, each of the next N messages read      |
//! |                   | (default 20) is followed by EVENT_DEVICE removed and added    |
//! |                   | for the device `:DEV` (which this side keeps serving)         |
//! | `remove-during-   | once, at the Nth message of device `:DEV` (default 1: its     |
//! | add=N`            | GET_DEVICE_INFO), the device is removed as the control        |
//! |                   | socket's `remove` does: EVENT_DEVICE removed, served until    |
//! |                   | its reset                                                     |
//! | `slot-rewrite=N`  | while a message to the driver waits in its slot, and its ring |
//! |                   | index is a multiple of N (default 4), a thread keeps flipping |
//! |                   | one random byte of it and writing it back microseconds later  |
//! |                   | (`crate::slot_rewrite`): the driver may copy it mid-change    |
//!
//! `corrupt-index`, `stall`, `device-event-flood`, `corrupt-consumer`, `header-rewrite`,
//! `doorbell-storm`, `duplicate-add` and `slot-rewrite` concern the whole instance and take no `:DEV`;
//! `bad-used`, `device-flap`, `remove-during-add` and `late-add` need one. `fuzz` mutates events too;
//! the others change responses only (`stall` delays everything), or add messages or
//! doorbells of their own.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::bus::Outgoing;
use crate::fuzz::{self, Fuzzer};

/// Byte offset of the type bits in the header.
const TYPE: usize = 0;
/// Byte offset of `msg_id` in the header.
const MSG_ID: usize = 1;
/// Byte offset of `token` in the header.
const TOKEN: usize = 4;
/// Byte offset of `msg_size` in the header.
const MSG_SIZE: usize = 6;
/// Header size.
const HEADER: usize = 8;
/// Type bit: a response.
const TYPE_RESPONSE: u8 = 1;
/// Type bit: a bus message.
const TYPE_BUS: u8 = 2;
/// Transport message ids whose responses the structured faults rewrite.
const GET_DEVICE_INFO: u8 = 0x02;
const GET_DEVICE_FEATURES: u8 = 0x03;
const GET_CONFIG: u8 = 0x05;
const GET_DEVICE_STATUS: u8 = 0x07;
const SET_DEVICE_STATUS: u8 = 0x08;
const GET_VQUEUE: u8 = 0x09;
/// Message ids no revision defines (`unknown-id`).
const UNKNOWN_EVENT: u8 = 0x7f;
const UNKNOWN_REQUEST: u8 = 0x3f;
const UNKNOWN_BUS_EVENT: u8 = 0xff;
/// Where GET_CONFIG's `generation` is.
const CONFIG_GENERATION: usize = HEADER;
/// Where GET_DEVICE_STATUS' and SET_DEVICE_STATUS' `status` is.
const STATUS: usize = HEADER;
/// Where GET_DEVICE_INFO's `config_size` is: header plus 28.
const INFO_CONFIG_SIZE: usize = HEADER + 28;
/// Where GET_CONFIG's `offset` and GET_VQUEUE's `max_size` are: header plus 4.
const PAYLOAD_4: usize = HEADER + 4;
/// Where GET_DEVICE_FEATURES' `block_index` is.
const FEATURES_INDEX: usize = HEADER;
/// The `queue-size=huge` value: above split rings' 32768, at the field's 16-bit edge.
const HUGE_QUEUE: u32 = 65535;

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
    /// Cut responses to this many bytes.
    Short(u16),
    /// Send messages with undefined ids before each response.
    UnknownId,
    /// Send each response with a stray token first and once more after.
    Unsolicited,
    /// Announce this config size in GET_DEVICE_INFO.
    ConfigSize(u32),
    /// Answer GET_CONFIG for an offset out of range.
    ConfigRange,
    /// Report this queue max size in GET_VQUEUE.
    QueueSize(u32),
    /// Answer GET_DEVICE_FEATURES with blocks nobody asked for.
    FeatureBlocks,
    /// Mutate messages at random.
    Fuzz {
        /// PRNG seed.
        seed: u64,
        /// Percentage of messages mutated.
        percent: u8,
    },
    /// Answer GET_CONFIG with a generation that never settles.
    GenerationChurn,
    /// Answer GET_DEVICE_STATUS after a reset with the status from before it.
    StickyStatus,
    /// Announce this many bogus device additions and removals, once.
    DeviceEventFlood(u32),
    /// Stop reading the to-device ring for a while, once.
    Stall {
        /// How long.
        pause: Duration,
        /// After how many messages read.
        after: u32,
    },
    /// Store an impossible to-device consumer index after this many messages read, once.
    CorruptConsumer(u32),
    /// Rewrite the region header after this many messages read, once.
    HeaderRewrite(u32),
    /// Ring the driver's doorbell this many times after each message read.
    DoorbellStorm(u32),
    /// Write one bad used-ring entry or index at the device's Nth kick, once.
    BadUsed {
        /// What is written.
        how: UsedFault,
        /// At which kick of the device.
        at: u32,
    },
    /// Follow each response with this many EVENT_CONFIG for its device.
    ConfigStorm(u32),
    /// Announce every device added twice more after the first GET_DEVICES answer.
    DuplicateAdd,
    /// Announce the device removed and added after each of this many messages, from the
    /// first kick on.
    DeviceFlap(u32),
    /// Remove the device at its Nth message, once.
    RemoveDuringAdd(u32),
    /// Leave the device out of the first GET_DEVICES answer and announce it added right
    /// after.
    LateAdd,
    /// Keep rewriting waiting messages whose ring index is a multiple of this.
    SlotRewrite(u32),
}

/// What `bad-used` writes into a used ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedFault {
    /// One more used entry, whose id is past the queue.
    Id,
    /// The last used entry's len, huge.
    Len,
    /// The used index, a queue size ahead.
    Idx,
}

impl UsedFault {
    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Len => "len",
            Self::Idx => "idx",
        }
    }
}

impl FaultKind {
    /// Whether the fault concerns the bus instance as a whole, so that `:DEV` means nothing.
    fn is_instance_wide(self) -> bool {
        matches!(
            self,
            Self::CorruptIndex(_)
                | Self::Stall { .. }
                | Self::DeviceEventFlood(_)
                | Self::CorruptConsumer(_)
                | Self::HeaderRewrite(_)
                | Self::DoorbellStorm(_)
                | Self::DuplicateAdd
                | Self::SlotRewrite(_)
        )
    }

    /// Whether the fault acts on one device it must be told (`:DEV`).
    fn needs_device(self) -> bool {
        matches!(
            self,
            Self::BadUsed { .. } | Self::DeviceFlap(_) | Self::RemoveDuringAdd(_) | Self::LateAdd
        )
    }
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
            FaultKind::Short(n) => write!(f, "short={n}"),
            FaultKind::UnknownId => write!(f, "unknown-id"),
            FaultKind::Unsolicited => write!(f, "unsolicited"),
            FaultKind::ConfigSize(n) => write!(f, "config-size={n}"),
            FaultKind::ConfigRange => write!(f, "config-range"),
            FaultKind::QueueSize(n) => write!(f, "queue-size={n}"),
            FaultKind::FeatureBlocks => write!(f, "feature-blocks"),
            FaultKind::Fuzz { seed, percent } => write!(f, "fuzz={seed}/{percent}"),
            FaultKind::Stall { pause, after } => write!(f, "stall={}@{after}", pause.as_millis()),
            FaultKind::GenerationChurn => write!(f, "generation-churn"),
            FaultKind::StickyStatus => write!(f, "sticky-status"),
            FaultKind::DeviceEventFlood(n) => write!(f, "device-event-flood={n}"),
            FaultKind::CorruptConsumer(n) => write!(f, "corrupt-consumer={n}"),
            FaultKind::HeaderRewrite(n) => write!(f, "header-rewrite={n}"),
            FaultKind::DoorbellStorm(n) => write!(f, "doorbell-storm={n}"),
            FaultKind::BadUsed { how, at } => write!(f, "bad-used={}@{at}", how.name()),
            FaultKind::ConfigStorm(n) => write!(f, "config-storm={n}"),
            FaultKind::DuplicateAdd => write!(f, "duplicate-add"),
            FaultKind::DeviceFlap(n) => write!(f, "device-flap={n}"),
            FaultKind::RemoveDuringAdd(n) => write!(f, "remove-during-add={n}"),
            FaultKind::LateAdd => write!(f, "late-add"),
            FaultKind::SlotRewrite(n) => write!(f, "slot-rewrite={n}"),
        }?;
        match self.dev {
            Some(d) => write!(f, ":{d}"),
            None => Ok(()),
        }
    }
}

const KNOWN: &str = "no-answer, delay=MS, bad-size, bad-id, bad-token, flood=N, vanish=N, \
                     corrupt-index=N, short=N, unknown-id, unsolicited, config-size=N, \
                     config-range, queue-size=N|huge, feature-blocks, fuzz=SEED[/PCT], \
                     stall=MS[@N], generation-churn, sticky-status, device-event-flood=N, \
                     corrupt-consumer=N, header-rewrite=N, doorbell-storm=N, \
                     bad-used=id|len|idx[@N], config-storm=N, duplicate-add, device-flap=N, \
                     remove-during-add=N, late-add, slot-rewrite=N";

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
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let not_number = |v: &str| format!("fault '{s}': '{v}' is not a number");
        let number = |v: Option<&str>, default: u32| match v {
            None => Ok(default),
            Some(v) => v.parse::<u32>().map_err(|_| not_number(v)),
        };
        let num = |default: u32| number(value, default);
        let no_value = |kind| match value {
            None => Ok(kind),
            Some(_) => Err(format!("fault '{name}' takes no value")),
        };
        let kind = match name {
            "no-answer" => no_value(FaultKind::NoAnswer)?,
            "delay" => FaultKind::Delay(Duration::from_millis(u64::from(num(2000)?))),
            "bad-size" => no_value(FaultKind::BadSize)?,
            "bad-id" => no_value(FaultKind::BadId)?,
            "bad-token" => no_value(FaultKind::BadToken)?,
            "flood" => FaultKind::Flood(num(1000)?),
            "vanish" => FaultKind::Vanish(num(10)?),
            "corrupt-index" => FaultKind::CorruptIndex(num(1)?),
            "short" => FaultKind::Short(
                u16::try_from(num(8)?).map_err(|_| format!("fault '{s}': N is at most 65535"))?,
            ),
            "unknown-id" => no_value(FaultKind::UnknownId)?,
            "unsolicited" => no_value(FaultKind::Unsolicited)?,
            "config-size" => FaultKind::ConfigSize(num(1 << 30)?),
            "config-range" => no_value(FaultKind::ConfigRange)?,
            "queue-size" => match value {
                Some("huge") => FaultKind::QueueSize(HUGE_QUEUE),
                Some(_) => FaultKind::QueueSize(num(0)?),
                None => return Err("queue-size needs a value: N or huge".into()),
            },
            "feature-blocks" => no_value(FaultKind::FeatureBlocks)?,
            "fuzz" => {
                let v = value.ok_or("fuzz needs a seed: fuzz=SEED[/PCT]")?;
                let (seed, percent) = match v.split_once('/') {
                    Some((seed, pct)) => (seed, pct.parse::<u8>().map_err(|_| not_number(pct))?),
                    None => (v, fuzz::DEFAULT_PERCENT),
                };
                if percent > 100 {
                    return Err(format!("fault '{s}': PCT is at most 100"));
                }
                FaultKind::Fuzz {
                    seed: seed.parse::<u64>().map_err(|_| not_number(seed))?,
                    percent,
                }
            }
            "stall" => {
                let (pause, after) = match value.map(|v| v.split_once('@')) {
                    Some(Some((pause, after))) => (Some(pause), Some(after)),
                    Some(None) => (value, None),
                    None => (None, None),
                };
                FaultKind::Stall {
                    pause: Duration::from_millis(u64::from(number(pause, 500)?)),
                    after: number(after, 20)?,
                }
            }
            "generation-churn" => no_value(FaultKind::GenerationChurn)?,
            "sticky-status" => no_value(FaultKind::StickyStatus)?,
            "device-event-flood" => FaultKind::DeviceEventFlood(num(100)?),
            "corrupt-consumer" => FaultKind::CorruptConsumer(num(1)?),
            "header-rewrite" => FaultKind::HeaderRewrite(num(20)?),
            "doorbell-storm" => FaultKind::DoorbellStorm(num(1000)?),
            "bad-used" => {
                let v = value.ok_or("bad-used needs a value: id, len or idx, then [@N]")?;
                let (how, at) = match v.split_once('@') {
                    Some((how, at)) => (how, Some(at)),
                    None => (v, None),
                };
                let how = match how {
                    "id" => UsedFault::Id,
                    "len" => UsedFault::Len,
                    "idx" => UsedFault::Idx,
                    other => return Err(format!("fault '{s}': '{other}' is not id, len or idx")),
                };
                FaultKind::BadUsed {
                    how,
                    at: number(at, 10)?,
                }
            }
            "config-storm" => FaultKind::ConfigStorm(num(100)?),
            "duplicate-add" => no_value(FaultKind::DuplicateAdd)?,
            "device-flap" => FaultKind::DeviceFlap(num(20)?),
            "remove-during-add" => FaultKind::RemoveDuringAdd(num(1)?),
            "late-add" => no_value(FaultKind::LateAdd)?,
            "slot-rewrite" => FaultKind::SlotRewrite(num(4)?),
            other => return Err(format!("unknown fault '{other}' (known: {KNOWN})")),
        };
        if matches!(
            kind,
            FaultKind::CorruptIndex(0)
                | FaultKind::Stall { after: 0, .. }
                | FaultKind::CorruptConsumer(0)
                | FaultKind::HeaderRewrite(0)
                | FaultKind::BadUsed { at: 0, .. }
                | FaultKind::RemoveDuringAdd(0)
                | FaultKind::SlotRewrite(0)
        ) {
            return Err(format!("{name} needs N >= 1"));
        }
        if dev.is_some() && kind.is_instance_wide() {
            return Err(format!(
                "{name} concerns the bus instance, not one device: drop ':DEV'"
            ));
        }
        if dev.is_none() && kind.needs_device() {
            return Err(format!("{name} acts on one device: add ':DEV'"));
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

/// A message read from the driver, as the faults that act of their own accord see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Read {
    /// Its device (`None`: a bus message).
    pub dev: Option<u16>,
    /// The queue it notifies, if it is an EVENT_AVAIL once a VERSION was accepted.
    pub kick: Option<u32>,
    /// Whether it is a GET_DEVICES request.
    pub get_devices: bool,
}

/// What the faults have the device side do after a message read, besides answering it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// Doorbells to ring with nothing published (`doorbell-storm`).
    pub doorbells: u32,
    /// Rewrite the region header (`header-rewrite`).
    pub rewrite_header: bool,
    /// Device, queue and what to write into its used ring (`bad-used`).
    pub bad_used: Option<(u16, u32, UsedFault)>,
    /// Announce every device added twice more (`duplicate-add`).
    pub duplicate_adds: bool,
    /// Devices to announce removed and added (`device-flap`).
    pub flap: Vec<u16>,
    /// Devices to remove (`remove-during-add`).
    pub remove: Vec<u16>,
}

/// The active faults and their counters.
#[derive(Debug, Default)]
pub struct Faults {
    specs: Vec<FaultSpec>,
    /// Per spec: the messages it counted, and whether its one-time action started.
    seen: Vec<u32>,
    done: Vec<bool>,
    /// `corrupt-consumer` fired and waits for the answers to be published.
    consumer_corruption: bool,
    sent: u32,
    corrupted: bool,
    /// Messages read from the driver, and whether the `stall` fault has fired.
    received: u32,
    stalled: bool,
    /// `generation-churn`: per device, the generation its last GET_CONFIG answer carried.
    config_generations: BTreeMap<u16, u32>,
    /// `sticky-status`: per device, what its status answers said.
    statuses: BTreeMap<u16, StatusMemory>,
    /// Whether `device-event-flood` has fired.
    device_events_flooded: bool,
    /// One PRNG per `fuzz` fault, with its device filter.
    fuzzers: Vec<(Option<u16>, Fuzzer)>,
}

fn get_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = b.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = b.get_mut(at..at + 4) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// A transport response with message id `id` (header checked, payload not).
fn is_transport_response(b: &[u8], id: u8) -> bool {
    b.len() >= HEADER && b[TYPE] & (TYPE_RESPONSE | TYPE_BUS) == TYPE_RESPONSE && b[MSG_ID] == id
}

/// A message with a header like `like`'s but type `ty`, id `id`, token 0 and a zeroed
/// payload of `payload` bytes.
fn stray(like: &[u8], ty: u8, id: u8, payload: usize) -> Vec<u8> {
    let mut m = vec![0u8; HEADER + payload];
    m[TYPE] = ty;
    m[MSG_ID] = id;
    if let Some(dev) = get_u16(like, 2) {
        put_u16(&mut m, 2, dev);
    }
    put_u16(&mut m, MSG_SIZE, (HEADER + payload) as u16);
    m
}

/// Cuts `b` to `n` bytes with a `msg_size` that says so; below a header, an 8-byte slot (the
/// ring's smallest) whose `msg_size` says `n`.
fn cut(b: &mut Vec<u8>, n: u16) {
    let n_us = usize::from(n);
    if n_us >= b.len() {
        return;
    }
    b.truncate(n_us);
    b.resize(n_us.max(HEADER), 0);
    put_u16(b, MSG_SIZE, n);
}

impl Faults {
    /// Activates `specs`.
    pub fn new(specs: Vec<FaultSpec>) -> Self {
        let seen = vec![0; specs.len()];
        let fuzzers = specs
            .iter()
            .filter_map(|s| match s.kind {
                FaultKind::Fuzz { seed, percent } => Some((s.dev, Fuzzer::new(seed, percent))),
                _ => None,
            })
            .collect();
        Self {
            done: vec![false; specs.len()],
            specs,
            seen,
            consumer_corruption: false,
            sent: 0,
            corrupted: false,
            received: 0,
            stalled: false,
            config_generations: BTreeMap::new(),
            statuses: BTreeMap::new(),
            device_events_flooded: false,
            fuzzers,
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

    /// Applies the faults that add or mutate messages to a batch for the driver; each
    /// message of the result is at least a header and at most `limit` bytes long.
    pub fn expand(&mut self, batch: Vec<Outgoing>, limit: usize) -> Vec<Outgoing> {
        let mut out = Vec::with_capacity(batch.len());
        for o in batch {
            let (dev, response) = (o.dev, o.response);
            let mut group = vec![o];
            if response {
                for spec in self.specs.iter().filter(|s| Self::applies(s, dev)) {
                    match spec.kind {
                        FaultKind::UnknownId => {
                            let like = group[group.len() - 1].bytes.clone();
                            let mut strays = vec![
                                stray(&like, 0, UNKNOWN_EVENT, 4),
                                stray(&like, 0, UNKNOWN_REQUEST, 0),
                            ];
                            if dev.is_none() {
                                strays.push(stray(&[], TYPE_BUS, UNKNOWN_BUS_EVENT, 4));
                            }
                            let mut g: Vec<Outgoing> = strays
                                .into_iter()
                                .map(|bytes| Outgoing {
                                    dev,
                                    response: false,
                                    bytes,
                                })
                                .collect();
                            g.append(&mut group);
                            group = g;
                        }
                        FaultKind::Unsolicited => {
                            // The real response is the last of the group.
                            let real = group[group.len() - 1].clone();
                            let mut early = real.clone();
                            let token = get_u16(&early.bytes, TOKEN).unwrap_or(0) ^ 0x4000;
                            put_u16(&mut early.bytes, TOKEN, token);
                            group.insert(group.len() - 1, early);
                            group.push(real);
                        }
                        _ => {}
                    }
                }
            }
            out.extend(group);
        }
        for (dev, fuzzer) in &mut self.fuzzers {
            out = fuzzer.mutate_batch(out, *dev, limit);
        }
        out
    }

    /// Alters an outgoing message (to at most `limit` bytes); returns how long to hold it
    /// back.
    pub fn outgoing(&mut self, out: &mut Outgoing, limit: usize) -> Option<Duration> {
        if !out.response {
            return None;
        }
        let mut delay = None;
        for spec in self.specs.iter().filter(|s| Self::applies(s, out.dev)) {
            let b = &mut out.bytes;
            if b.len() < HEADER {
                break;
            }
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
                FaultKind::Short(n) => cut(b, n),
                FaultKind::ConfigSize(n) if is_transport_response(b, GET_DEVICE_INFO) => {
                    put_u32(b, INFO_CONFIG_SIZE, n)
                }
                FaultKind::ConfigRange if is_transport_response(b, GET_CONFIG) => {
                    if let Some(off) = get_u32(b, PAYLOAD_4) {
                        put_u32(b, PAYLOAD_4, off | 0x8000_0000);
                    }
                }
                FaultKind::QueueSize(n) if is_transport_response(b, GET_VQUEUE) => {
                    put_u32(b, PAYLOAD_4, n)
                }
                FaultKind::FeatureBlocks if is_transport_response(b, GET_DEVICE_FEATURES) => {
                    extra_feature_blocks(b, limit)
                }
                FaultKind::GenerationChurn if is_transport_response(b, GET_CONFIG) => {
                    if let (Some(dev), Some(real)) = (out.dev, get_u32(b, CONFIG_GENERATION)) {
                        let generation = self
                            .config_generations
                            .get(&dev)
                            .map_or(real, |previous| previous.wrapping_add(1));
                        self.config_generations.insert(dev, generation);
                        put_u32(b, CONFIG_GENERATION, generation);
                    }
                }
                FaultKind::StickyStatus => {
                    if let Some(dev) = out.dev {
                        stick_status(self.statuses.entry(dev).or_default(), b);
                    }
                }
                _ => {}
            }
        }
        delay
    }

    /// `slot-rewrite`: every how many ring indices a waiting message is rewritten.
    pub fn slot_rewrite(&self) -> Option<u32> {
        self.specs.iter().find_map(|s| match s.kind {
            FaultKind::SlotRewrite(every) => Some(every),
            _ => None,
        })
    }

    /// Per `fuzz` fault: its seed, the messages it applied to and how many it mutated.
    pub fn fuzz_counts(&self) -> Vec<(u64, u64, u64)> {
        self.fuzzers
            .iter()
            .map(|(_, f)| {
                let (seen, mutated) = f.counts();
                (f.seed(), seen, mutated)
            })
            .collect()
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

    /// EVENT_CONFIG to add after a response of device `dev` (`config-storm`); none for a
    /// bus response.
    pub fn config_storm(&self, dev: Option<u16>) -> u32 {
        if dev.is_none() {
            return 0;
        }
        self.specs
            .iter()
            .filter(|s| Self::applies(s, dev))
            .map(|s| match s.kind {
                FaultKind::ConfigStorm(n) => n,
                _ => 0,
            })
            .fold(0, u32::saturating_add)
    }

    /// Counts a message read from the driver (and not dropped by a fault) for the faults
    /// that act of their own accord, and says what they do now.
    pub fn after_read(&mut self, read: Read) -> Actions {
        let mut act = Actions::default();
        let counters = self.seen.iter_mut().zip(self.done.iter_mut());
        for (spec, (seen, done)) in self.specs.iter().zip(counters) {
            let mine = read.dev.is_some() && read.dev == spec.dev;
            match spec.kind {
                FaultKind::DoorbellStorm(n) => act.doorbells = act.doorbells.saturating_add(n),
                FaultKind::HeaderRewrite(n) | FaultKind::CorruptConsumer(n) if !*done => {
                    *seen = seen.saturating_add(1);
                    if *seen >= n {
                        *done = true;
                        if matches!(spec.kind, FaultKind::HeaderRewrite(_)) {
                            act.rewrite_header = true;
                        } else {
                            self.consumer_corruption = true;
                        }
                    }
                }
                FaultKind::BadUsed { how, at } if mine && !*done => {
                    if let (Some(vq), Some(dev)) = (read.kick, read.dev) {
                        *seen = seen.saturating_add(1);
                        if *seen >= at {
                            *done = true;
                            act.bad_used = Some((dev, vq, how));
                        }
                    }
                }
                FaultKind::DuplicateAdd if read.dev.is_some() && !*done => {
                    *done = true;
                    act.duplicate_adds = true;
                }
                FaultKind::DeviceFlap(n) => {
                    *done |= read.kick.is_some();
                    if let (true, Some(dev)) = (*done && *seen < n, spec.dev) {
                        *seen += 1;
                        act.flap.push(dev);
                    }
                }
                FaultKind::RemoveDuringAdd(n) if mine && !*done => {
                    *seen = seen.saturating_add(1);
                    if let (true, Some(dev)) = (*seen >= n, spec.dev) {
                        *done = true;
                        act.remove.push(dev);
                    }
                }
                _ => {}
            }
        }
        act
    }

    /// Before a message read is handled: the device to leave out of the first GET_DEVICES
    /// answer and announce added after it (`late-add`), once.
    pub fn late_add(&mut self, read: Read) -> Option<u16> {
        if !read.get_devices {
            return None;
        }
        let (spec, done) = self
            .specs
            .iter()
            .zip(self.done.iter_mut())
            .find(|(s, done)| s.kind == FaultKind::LateAdd && !**done)?;
        *done = true;
        spec.dev
    }

    /// Returns true exactly once, when `corrupt-consumer` has fired and the device side
    /// should store the impossible consumer index (once its answers are published).
    pub fn consumer_corruption_due(&mut self) -> bool {
        std::mem::take(&mut self.consumer_corruption)
    }

    /// Counts a message read from the driver; returns, exactly once, how long to stop
    /// reading the ring (`stall`).
    pub fn received(&mut self) -> Option<Duration> {
        self.received = self.received.saturating_add(1);
        if self.stalled {
            return None;
        }
        let pause = self.specs.iter().find_map(|s| match s.kind {
            FaultKind::Stall { pause, after } if self.received >= after => Some(pause),
            _ => None,
        });
        self.stalled = pause.is_some();
        pause
    }

    /// Called when a VERSION was accepted; returns, exactly once, how many bogus
    /// EVENT_DEVICE to send (`device-event-flood`).
    pub fn device_event_flood(&mut self) -> Option<u32> {
        if self.device_events_flooded {
            return None;
        }
        let count = self.specs.iter().find_map(|s| match s.kind {
            FaultKind::DeviceEventFlood(n) => Some(n),
            _ => None,
        })?;
        self.device_events_flooded = true;
        Some(count)
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

/// One device's status as its answers said it (`sticky-status`).
#[derive(Debug, Default)]
struct StatusMemory {
    /// The last non-zero status answered.
    last: u32,
    /// Since a reset: what GET_DEVICE_STATUS answers instead of the real status.
    stuck: Option<u32>,
}

/// `sticky-status` for one response: a SET_DEVICE_STATUS answered 0 (a reset) makes
/// GET_DEVICE_STATUS answer the last non-zero status until the next SET_DEVICE_STATUS.
fn stick_status(memory: &mut StatusMemory, b: &mut [u8]) {
    let Some(status) = get_u32(b, STATUS) else {
        return;
    };
    if is_transport_response(b, SET_DEVICE_STATUS) {
        if status == 0 {
            memory.stuck = Some(memory.last).filter(|last| *last != 0);
        } else {
            memory.stuck = None;
            memory.last = status;
        }
    } else if is_transport_response(b, GET_DEVICE_STATUS) {
        match memory.stuck {
            Some(stuck) => put_u32(b, STATUS, stuck),
            None if status != 0 => memory.last = status,
            None => {}
        }
    }
}

/// Adds two all-ones blocks to a GET_DEVICE_FEATURES response. A response too large for that
/// (the driver fills its messages) moves its `block_index` past the asked blocks instead.
fn extra_feature_blocks(b: &mut Vec<u8>, limit: usize) {
    const EXTRA: usize = 2;
    let (Some(index), Some(num), Some(size)) = (
        get_u32(b, FEATURES_INDEX),
        get_u32(b, FEATURES_INDEX + 4),
        get_u16(b, MSG_SIZE),
    ) else {
        return;
    };
    match size.checked_add((EXTRA * 4) as u16) {
        Some(bigger) if usize::from(bigger) <= limit => {
            b.extend_from_slice(&[0xff; EXTRA * 4]);
            put_u32(b, FEATURES_INDEX + 4, num.wrapping_add(EXTRA as u32));
            put_u16(b, MSG_SIZE, bigger);
        }
        _ => put_u32(b, FEATURES_INDEX, index.wrapping_add(num)),
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
        assert_eq!(parse("short").kind, FaultKind::Short(8));
        assert_eq!(parse("config-size").kind, FaultKind::ConfigSize(1 << 30));
        assert_eq!(parse("queue-size=huge:1").kind, FaultKind::QueueSize(65535));
        assert_eq!(
            parse("stall").kind,
            FaultKind::Stall {
                pause: Duration::from_millis(500),
                after: 20
            }
        );
        assert_eq!(
            parse("stall=100").kind,
            FaultKind::Stall {
                pause: Duration::from_millis(100),
                after: 20
            }
        );
        assert_eq!(
            parse("device-event-flood").kind,
            FaultKind::DeviceEventFlood(100)
        );
        assert_eq!(
            parse("fuzz=12").kind,
            FaultKind::Fuzz {
                seed: 12,
                percent: 10
            }
        );
        for s in [
            "delay=250:3",
            "bad-token:1",
            "vanish=4",
            "corrupt-index=2",
            "short=3:1",
            "unknown-id:1",
            "unsolicited",
            "config-size=70000:1",
            "config-range:1",
            "queue-size=0:1",
            "feature-blocks:1",
            "fuzz=18446744073709551615/100",
            "fuzz=7/5:2",
            "stall=800@3",
            "generation-churn:1",
            "sticky-status",
            "device-event-flood=3",
        ] {
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
        for bad in [
            "short=70000",
            "queue-size",
            "queue-size=big",
            "fuzz",
            "fuzz=x",
            "fuzz=1/101",
            "fuzz=1/",
            "unknown-id=1",
            "stall=x",
            "stall=100@",
            "stall=100@0",
            "stall=100@2:1",
            "generation-churn=2",
            "sticky-status=1",
            "device-event-flood=2:1",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_the_device_side_initiative_faults() {
        assert_eq!(
            parse("corrupt-consumer").kind,
            FaultKind::CorruptConsumer(1)
        );
        assert_eq!(parse("header-rewrite").kind, FaultKind::HeaderRewrite(20));
        assert_eq!(parse("doorbell-storm").kind, FaultKind::DoorbellStorm(1000));
        assert_eq!(
            parse("bad-used=id:1").kind,
            FaultKind::BadUsed {
                how: UsedFault::Id,
                at: 10
            }
        );
        assert_eq!(
            parse("bad-used=idx@3:0").kind,
            FaultKind::BadUsed {
                how: UsedFault::Idx,
                at: 3
            }
        );
        assert_eq!(parse("config-storm").kind, FaultKind::ConfigStorm(100));
        assert_eq!(parse("device-flap:1").kind, FaultKind::DeviceFlap(20));
        assert_eq!(
            parse("remove-during-add:1").kind,
            FaultKind::RemoveDuringAdd(1)
        );
        assert_eq!(parse("slot-rewrite").kind, FaultKind::SlotRewrite(4));
        for s in [
            "corrupt-consumer=80",
            "header-rewrite=7",
            "doorbell-storm=5",
            "bad-used=len@4:1",
            "config-storm=3",
            "config-storm=1:2",
            "duplicate-add",
            "device-flap=6:1",
            "remove-during-add=9:1",
            "late-add:2",
            "slot-rewrite=1",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
        for bad in [
            "corrupt-consumer=0",
            "corrupt-consumer:1",
            "header-rewrite=x",
            "header-rewrite:1",
            "doorbell-storm:1",
            "bad-used:1",
            "bad-used=desc:1",
            "bad-used=id@0:1",
            "bad-used=id@x:1",
            "bad-used=id",
            "config-storm=x",
            "duplicate-add=2",
            "slot-rewrite=0",
            "slot-rewrite:1",
            "duplicate-add:1",
            "device-flap=3",
            "remove-during-add",
            "remove-during-add=0:1",
            "late-add",
            "late-add=1:2",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    const KICK: Read = Read {
        dev: Some(1),
        kick: Some(0),
        get_devices: false,
    };
    const GET_DEVICES_READ: Read = Read {
        dev: None,
        kick: None,
        get_devices: true,
    };

    /// A message of device `dev` that is not a kick.
    fn message_of(dev: u16) -> Read {
        Read {
            dev: Some(dev),
            ..Read::default()
        }
    }

    fn faults(specs: &[&str]) -> Faults {
        Faults::new(specs.iter().map(|s| parse(s)).collect())
    }

    #[test]
    fn one_time_actions_fire_once_at_their_count() {
        let mut f = faults(&[
            "header-rewrite=2",
            "corrupt-consumer=3",
            "bad-used=id@2:1",
            "remove-during-add=1:2",
        ]);
        let other = message_of(2);
        assert_eq!(f.after_read(KICK), Actions::default());
        let second = f.after_read(other);
        assert!(second.rewrite_header);
        assert_eq!(second.remove, vec![2]);
        assert!(!f.consumer_corruption_due());
        let third = f.after_read(KICK);
        assert_eq!(third.bad_used, Some((1, 0, UsedFault::Id)));
        assert!(!third.rewrite_header);
        assert!(f.consumer_corruption_due());
        assert!(!f.consumer_corruption_due());
        assert_eq!(f.after_read(KICK), Actions::default());
        assert_eq!(f.after_read(other), Actions::default());
    }

    #[test]
    fn late_add_hides_once_at_get_devices() {
        let mut f = faults(&["late-add:2"]);
        assert_eq!(f.late_add(KICK), None);
        assert_eq!(f.late_add(GET_DEVICES_READ), Some(2));
        assert_eq!(f.late_add(GET_DEVICES_READ), None);
    }

    #[test]
    fn storms_and_device_events() {
        let mut f = faults(&[
            "doorbell-storm=4",
            "duplicate-add",
            "device-flap=2:1",
            "config-storm=3:1",
        ]);
        let info = message_of(0);
        let first = f.after_read(GET_DEVICES_READ);
        assert_eq!((first.doorbells, first.duplicate_adds), (4, false));
        assert!(f.after_read(info).duplicate_adds);
        assert!(first.flap.is_empty(), "no flapping before the first kick");
        assert!(!f.after_read(info).duplicate_adds);
        assert_eq!(f.after_read(KICK).flap, vec![1]);
        assert_eq!(f.after_read(Read::default()).flap, vec![1]);
        assert!(f.after_read(KICK).flap.is_empty());
        assert_eq!(f.config_storm(Some(1)), 3);
        assert_eq!(f.config_storm(Some(0)), 0);
        assert_eq!(f.config_storm(None), 0);
        assert_eq!(
            Faults::new(vec![parse("config-storm=2")]).config_storm(Some(5)),
            2
        );
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
        let mut f = Faults::new(vec![
            parse("bad-size:1"),
            parse("bad-id:1"),
            parse("bad-token:1"),
        ]);
        let mut other = response(Some(0));
        assert_eq!(f.outgoing(&mut other, 264), None);
        assert_eq!(other, response(Some(0)));
        let mut hit = response(Some(1));
        f.outgoing(&mut hit, 264);
        assert_eq!(hit.bytes[1], 0x06, "msg_id changed");
        assert_eq!(&hit.bytes[4..6], &[0x02, 0x81], "token changed");
        assert_eq!(&hit.bytes[6..8], &[16, 0], "msg_size changed");
        // Events are never mangled.
        let mut event = response(Some(1));
        event.response = false;
        f.outgoing(&mut event, 264);
        assert_eq!(event.bytes, response(Some(1)).bytes);
    }

    #[test]
    fn delay_applies_to_bus_messages_without_device() {
        let mut f = Faults::new(vec![parse("delay=5")]);
        assert_eq!(
            f.outgoing(&mut response(None), 264),
            Some(Duration::from_millis(5))
        );
        let mut f = Faults::new(vec![parse("delay=5:2")]);
        assert_eq!(f.outgoing(&mut response(None), 264), None);
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
    fn generation_churn_counts_up_per_device() {
        let mut f = Faults::new(vec![parse("generation-churn")]);
        let mut answer = |dev| {
            let mut config = transport_response(GET_CONFIG, &[5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            config.dev = Some(dev);
            f.outgoing(&mut config, 264);
            u32_at(&config.bytes, 8)
        };
        assert_eq!([answer(1), answer(1), answer(2), answer(1)], [5, 6, 5, 7]);
    }

    #[test]
    fn sticky_status_holds_from_a_reset_to_the_next_write() {
        let mut f = Faults::new(vec![parse("sticky-status:1")]);
        let mut answer = |id, status: u32| {
            let mut o = transport_response(id, &status.to_le_bytes());
            f.outgoing(&mut o, 264);
            u32_at(&o.bytes, 8)
        };
        assert_eq!(answer(SET_DEVICE_STATUS, 3), 3);
        assert_eq!(answer(GET_DEVICE_STATUS, 3), 3);
        assert_eq!(
            answer(SET_DEVICE_STATUS, 0),
            0,
            "the reset is answered as is"
        );
        assert_eq!(answer(GET_DEVICE_STATUS, 0), 3);
        assert_eq!(answer(GET_DEVICE_STATUS, 0), 3);
        assert_eq!(answer(SET_DEVICE_STATUS, 1), 1);
        assert_eq!(answer(GET_DEVICE_STATUS, 1), 1);
    }

    #[test]
    fn stall_fires_once_after_n_messages() {
        let mut f = Faults::new(vec![parse("stall=70@2")]);
        assert_eq!(f.received(), None);
        assert_eq!(f.received(), Some(Duration::from_millis(70)));
        assert_eq!(f.received(), None);
    }

    #[test]
    fn device_event_flood_fires_once() {
        let mut f = Faults::new(vec![parse("device-event-flood=4")]);
        assert_eq!(f.device_event_flood(), Some(4));
        assert_eq!(f.device_event_flood(), None);
        assert_eq!(Faults::new(Vec::new()).device_event_flood(), None);
    }

    #[test]
    fn floods_name_their_target() {
        let f = Faults::new(vec![parse("flood=3:2")]);
        assert_eq!(f.floods(Some(2)), vec![(Some(2), 3)]);
        assert!(f.floods(Some(1)).is_empty());
        assert!(f.floods(None).is_empty());
    }

    fn transport_response(id: u8, payload: &[u8]) -> Outgoing {
        let mut bytes = vec![0x01, id, 1, 0, 0x34, 0x12, 0, 0];
        bytes.extend_from_slice(payload);
        let size = bytes.len() as u16;
        bytes[6..8].copy_from_slice(&size.to_le_bytes());
        Outgoing {
            dev: Some(1),
            response: true,
            bytes,
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn short_cuts_and_pads() {
        let mut f = Faults::new(vec![parse("short:1")]);
        let mut o = response(Some(1));
        f.outgoing(&mut o, 264);
        assert_eq!(o.bytes, vec![0x01, 0x07, 0, 0, 0x02, 0x01, 8, 0]);
        let mut f = Faults::new(vec![parse("short=3:1")]);
        let mut o = response(Some(1));
        f.outgoing(&mut o, 264);
        assert_eq!(
            o.bytes,
            vec![0x01, 0x07, 0, 0, 0, 0, 3, 0],
            "a slot that says 3 bytes"
        );
        // Longer than the message: unchanged.
        let mut f = Faults::new(vec![parse("short=100:1")]);
        let mut o = response(Some(1));
        f.outgoing(&mut o, 264);
        assert_eq!(o, response(Some(1)));
    }

    #[test]
    fn structured_faults_touch_their_response_only() {
        let mut f = Faults::new(vec![
            parse("config-size=70000:1"),
            parse("config-range:1"),
            parse("queue-size=0:1"),
            parse("feature-blocks:1"),
        ]);
        let mut info = transport_response(GET_DEVICE_INFO, &[0; 44]);
        f.outgoing(&mut info, 264);
        assert_eq!(u32_at(&info.bytes, 8 + 28), 70000);
        assert_eq!(info.bytes.len(), 52);

        let mut config = transport_response(
            GET_CONFIG,
            &[1, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 9, 9, 9, 9],
        );
        f.outgoing(&mut config, 264);
        assert_eq!(u32_at(&config.bytes, 12), 0x8000_0008);

        let mut vq = transport_response(GET_VQUEUE, &[0; 40]);
        vq.bytes[12] = 0x00;
        vq.bytes[13] = 0x01;
        f.outgoing(&mut vq, 264);
        assert_eq!(u32_at(&vq.bytes, 12), 0);

        let mut feat = transport_response(
            GET_DEVICE_FEATURES,
            &[0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        );
        f.outgoing(&mut feat, 264);
        assert_eq!(u32_at(&feat.bytes, 12), 4, "two blocks more");
        assert_eq!(feat.bytes.len(), 32);
        assert_eq!(u16::from_le_bytes([feat.bytes[6], feat.bytes[7]]), 32);
        assert_eq!(&feat.bytes[24..], &[0xff; 8]);
        // No room for more blocks: the index moves past the asked ones.
        let mut feat = transport_response(
            GET_DEVICE_FEATURES,
            &[0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        );
        f.outgoing(&mut feat, 24);
        assert_eq!((u32_at(&feat.bytes, 8), u32_at(&feat.bytes, 12)), (2, 2));

        // Other messages and other devices are left alone.
        let status = response(Some(1));
        let mut o = status.clone();
        f.outgoing(&mut o, 264);
        assert_eq!(o, status);
        let mut other = transport_response(GET_DEVICE_INFO, &[0; 44]);
        other.dev = Some(0);
        let before = other.clone();
        f.outgoing(&mut other, 264);
        assert_eq!(other, before);
    }

    #[test]
    fn unknown_ids_come_before_the_response() {
        let mut f = Faults::new(vec![parse("unknown-id:1")]);
        let out = f.expand(vec![response(Some(1)), response(Some(0))], 264);
        let ids: Vec<(u8, u8)> = out.iter().map(|o| (o.bytes[0], o.bytes[1])).collect();
        assert_eq!(ids, vec![(0, 0x7f), (0, 0x3f), (1, 0x07), (1, 0x07)]);
        assert_eq!(out[0].bytes.len(), 12);
        assert_eq!(&out[0].bytes[2..4], &[0, 0], "dev_num copied");
        let mut f = Faults::new(vec![parse("unknown-id")]);
        let out = f.expand(vec![response(None)], 264);
        assert_eq!(out.len(), 4);
        assert_eq!((out[2].bytes[0], out[2].bytes[1]), (2, 0xff));
        // Events get none.
        let mut event = response(Some(1));
        event.response = false;
        assert_eq!(f.expand(vec![event.clone()], 264), vec![event]);
    }

    #[test]
    fn unsolicited_wraps_the_response() {
        let mut f = Faults::new(vec![parse("unsolicited:1")]);
        let out = f.expand(vec![response(Some(1))], 264);
        let tokens: Vec<&[u8]> = out.iter().map(|o| &o.bytes[4..6]).collect();
        assert_eq!(
            tokens,
            vec![&[0x02, 0x41][..], &[0x02, 0x01], &[0x02, 0x01]]
        );
        assert_eq!(f.expand(vec![response(Some(2))], 264).len(), 1);
    }

    #[test]
    fn fuzz_is_wired_and_keeps_messages_publishable() {
        let mut f = Faults::new(vec![parse("fuzz=5/100:1")]);
        let out = f.expand(vec![response(Some(0)), response(Some(1))], 16);
        assert_eq!(out[0], response(Some(0)));
        assert!(out[1..] != [response(Some(1))]);
        assert!(out.iter().all(|o| (8..=16).contains(&o.bytes.len())));
    }
}
