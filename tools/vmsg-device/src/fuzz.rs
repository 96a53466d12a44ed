// SPDX-License-Identifier: GPL-2.0

//! Seeded random mutation of the messages sent to the driver (`--fault fuzz=SEED[/PCT]`).
//!
//! Each message the fault applies to is mutated with probability PCT percent, in one of the
//! ways of [`Mutation`]; a mutated event is followed by the intact one. The draws come from one PRNG seeded with SEED, in message order, so
//! a seed replays the same mutations for the same message sequence (the guest's timing can
//! still change that sequence: PINGs, the order devices probe in). Everything else is
//! answered as usual, so the driver meets corrupt messages all the way through probing.

use std::fmt;

use crate::bus::Outgoing;

/// Mutated share when `fuzz=SEED` gives none, in percent.
pub const DEFAULT_PERCENT: u8 = 10;
/// The ring's smallest slot content: a header.
const HEADER: usize = 8;
/// Byte offsets in the header.
const TYPE: usize = 0;
const MSG_ID: usize = 1;
const DEV_NUM: usize = 2;
const TOKEN: usize = 4;
const MSG_SIZE: usize = 6;

/// One way of mutating a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// One to four bits flipped anywhere.
    FlipBits,
    /// Cut short, `msg_size` telling the new length.
    Truncate,
    /// Random bytes appended, `msg_size` telling the new length.
    Extend,
    /// `msg_size` lies (a random value).
    LieSize,
    /// The type byte replaced by a random one.
    Type,
    /// A random `msg_id`.
    MsgId,
    /// A random `dev_num` (a small one half of the time, to hit real devices).
    DevNum,
    /// A random token.
    Token,
    /// Sent twice.
    Duplicate,
    /// Preceded by a response with a random id and body, for the same device, with the same
    /// token half of the time.
    UnsolicitedResponse,
    /// Followed by an event (transport or bus) with a random body: EVENT_CONFIG, EVENT_USED
    /// or EVENT_DEVICE most of the time, any event id otherwise.
    UnsolicitedEvent,
    /// Replaced by random bytes of random length.
    Garbage,
}

impl Mutation {
    const ALL: [Mutation; 12] = [
        Mutation::FlipBits,
        Mutation::Truncate,
        Mutation::Extend,
        Mutation::LieSize,
        Mutation::Type,
        Mutation::MsgId,
        Mutation::DevNum,
        Mutation::Token,
        Mutation::Duplicate,
        Mutation::UnsolicitedResponse,
        Mutation::UnsolicitedEvent,
        Mutation::Garbage,
    ];
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The PRNG and counters of one `fuzz` fault.
#[derive(Debug)]
pub struct Fuzzer {
    rng: fastrand::Rng,
    seed: u64,
    percent: u8,
    /// Messages the fault applied to so far.
    seen: u64,
    /// Of those, mutated.
    mutated: u64,
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = b.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// Makes `b` publishable on the ring: at least a header (zero-padded: whatever `msg_size`
/// says stays), at most `limit` bytes.
fn fit(b: &mut Vec<u8>, limit: usize) {
    if b.len() < HEADER {
        b.resize(HEADER, 0);
    }
    b.truncate(limit.max(HEADER));
}

impl Fuzzer {
    /// A fuzzer mutating `percent` percent of the messages, seeded with `seed`.
    pub fn new(seed: u64, percent: u8) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            seed,
            percent: percent.min(100),
            seen: 0,
            mutated: 0,
        }
    }

    /// The seed it started from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Messages seen and mutated so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.seen, self.mutated)
    }

    /// Mutates the messages of `batch` for device `dev` (every message if `None`); every
    /// message of the result is between a header and `limit` bytes long.
    pub fn mutate_batch(
        &mut self,
        batch: Vec<Outgoing>,
        dev: Option<u16>,
        limit: usize,
    ) -> Vec<Outgoing> {
        let mut out = Vec::with_capacity(batch.len());
        for o in batch {
            if dev.is_some() && o.dev != dev {
                out.push(o);
                continue;
            }
            self.seen += 1;
            if self.rng.u8(0..100) >= self.percent {
                out.push(o);
                continue;
            }
            self.mutated += 1;
            let m = Mutation::ALL[self.rng.usize(0..Mutation::ALL.len())];
            let head: Vec<u8> = o.bytes.iter().take(HEADER).copied().collect();
            log::info!(
                "fuzz: message {} ({} bytes, header {head:02x?}): {m}",
                self.seen,
                o.bytes.len()
            );
            let first = out.len();
            // An event also goes out intact after its mutant: a lost EVENT_USED would leave
            // a virtio-blk request waiting forever (virtio_blk has no timeout), which says
            // nothing about the transport. A lost response costs a timeout, as designed.
            let intact = (!o.response).then(|| o.clone());
            self.mutate(m, o, limit, &mut out);
            for msg in &mut out[first..] {
                fit(&mut msg.bytes, limit);
            }
            if let Some(mut e) = intact {
                fit(&mut e.bytes, limit);
                out.push(e);
            }
        }
        out
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        std::iter::repeat_with(|| self.rng.u8(..)).take(n).collect()
    }

    /// A message with header fields `ty`, `id`, `dev_num`, `token`, a random body of up to
    /// `limit - 8` bytes and a `msg_size` that tells its length.
    fn random_message(
        &mut self,
        ty: u8,
        id: u8,
        dev_num: u16,
        token: u16,
        limit: usize,
    ) -> Vec<u8> {
        let body = self.rng.usize(0..=limit.saturating_sub(HEADER));
        let mut m = vec![ty, id, 0, 0, 0, 0, 0, 0];
        put_u16(&mut m, DEV_NUM, dev_num);
        put_u16(&mut m, TOKEN, token);
        put_u16(
            &mut m,
            MSG_SIZE,
            (HEADER + body).min(usize::from(u16::MAX)) as u16,
        );
        m.extend(self.random_bytes(body));
        m
    }

    fn mutate(&mut self, m: Mutation, mut o: Outgoing, limit: usize, out: &mut Vec<Outgoing>) {
        let len = o.bytes.len();
        let dev_num = o
            .bytes
            .get(DEV_NUM..DEV_NUM + 2)
            .map_or(0, |d| u16::from_le_bytes([d[0], d[1]]));
        let token = o
            .bytes
            .get(TOKEN..TOKEN + 2)
            .map_or(0, |t| u16::from_le_bytes([t[0], t[1]]));
        let b = &mut o.bytes;
        match m {
            Mutation::FlipBits => {
                if len > 0 {
                    for _ in 0..self.rng.usize(1..=4) {
                        let bit = self.rng.usize(0..len * 8);
                        b[bit / 8] ^= 1 << (bit % 8);
                    }
                }
            }
            Mutation::Truncate => {
                let n = self.rng.usize(0..len.max(1));
                b.truncate(n);
                // Below a header the slot is padded: its msg_size still says n.
                b.resize(n.max(HEADER), 0);
                put_u16(b, MSG_SIZE, n as u16);
            }
            Mutation::Extend => {
                let room = limit.saturating_sub(len).max(1);
                let more = self.rng.usize(1..=room);
                let extra = self.random_bytes(more);
                b.extend(extra);
                let size = b.len().min(usize::from(u16::MAX)) as u16;
                put_u16(b, MSG_SIZE, size);
            }
            Mutation::LieSize => {
                let size = self.rng.u16(..);
                fit(b, limit);
                put_u16(b, MSG_SIZE, size);
            }
            Mutation::Type => {
                fit(b, limit);
                b[TYPE] = self.rng.u8(..);
            }
            Mutation::MsgId => {
                fit(b, limit);
                b[MSG_ID] = self.rng.u8(..);
            }
            Mutation::DevNum => {
                let d = if self.rng.bool() {
                    self.rng.u16(0..8)
                } else {
                    self.rng.u16(..)
                };
                fit(b, limit);
                put_u16(b, DEV_NUM, d);
            }
            Mutation::Token => {
                let t = self.rng.u16(..);
                fit(b, limit);
                put_u16(b, TOKEN, t);
            }
            Mutation::Duplicate => out.push(o.clone()),
            Mutation::UnsolicitedResponse => {
                let ty = 1 | (self.rng.u8(0..2) << 1);
                let id = self.rng.u8(..);
                let t = if self.rng.bool() {
                    token
                } else {
                    self.rng.u16(..)
                };
                let bytes = self.random_message(ty, id, dev_num, t, limit);
                out.push(Outgoing {
                    dev: o.dev,
                    response: true,
                    bytes,
                });
            }
            Mutation::UnsolicitedEvent => {
                // Mostly events the driver acts on; bus events carry dev_num 0.
                let (ty, id) = match self.rng.u8(0..4) {
                    0 => (0, 0x40),
                    1 => (0, 0x42),
                    2 => (2, 0x40),
                    _ => {
                        let bus = self.rng.u8(0..2) << 1;
                        (
                            bus,
                            if bus == 0 {
                                self.rng.u8(0x40..0x80)
                            } else {
                                self.rng.u8(0xc0..)
                            },
                        )
                    }
                };
                let d = if ty & 2 != 0 { 0 } else { dev_num };
                let event = self.random_message(ty, id, d, 0, limit);
                out.push(o);
                out.push(Outgoing {
                    dev: Some(d).filter(|_| ty & 2 == 0),
                    response: false,
                    bytes: event,
                });
                return;
            }
            Mutation::Garbage => {
                let n = self.rng.usize(HEADER..=limit.max(HEADER));
                *b = self.random_bytes(n);
            }
        }
        out.push(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GET_DEVICE_STATUS response for device 1 with token `token`.
    fn response(token: u16) -> Outgoing {
        let t = token.to_le_bytes();
        Outgoing {
            dev: Some(1),
            response: true,
            bytes: vec![0x01, 0x07, 1, 0, t[0], t[1], 12, 0, 0x0f, 0, 0, 0],
        }
    }

    fn run(seed: u64, percent: u8, n: u16) -> Vec<Vec<Outgoing>> {
        let mut f = Fuzzer::new(seed, percent);
        (0..n)
            .map(|i| f.mutate_batch(vec![response(i)], None, 264))
            .collect()
    }

    #[test]
    fn same_seed_same_mutations() {
        assert_eq!(run(42, 30, 500), run(42, 30, 500));
        assert_ne!(run(42, 30, 500), run(43, 30, 500));
    }

    #[test]
    fn mutates_about_the_requested_share() {
        for (percent, low, high) in [
            (0, 0, 0),
            (10, 800, 1200),
            (50, 4600, 5400),
            (100, 9900, 10000),
        ] {
            let changed = run(7, percent, 10000)
                .iter()
                .enumerate()
                .filter(|(i, got)| **got != vec![response(*i as u16)])
                .count();
            assert!(
                (low..=high).contains(&changed),
                "{percent}%: {changed} of 10000 changed"
            );
        }
        let mut f = Fuzzer::new(1, 25);
        for i in 0..400 {
            f.mutate_batch(vec![response(i)], None, 264);
        }
        let (seen, mutated) = f.counts();
        assert_eq!(seen, 400);
        assert!((60..=140).contains(&mutated), "{mutated}");
    }

    #[test]
    fn every_kind_shows_up() {
        let mut f = Fuzzer::new(3, 100);
        let mut added = 0;
        for i in 0..2000 {
            let got = f.mutate_batch(vec![response(i)], None, 264);
            added += got.len() - 1;
        }
        // Duplicates and unsolicited messages: about 3 in 12.
        assert!((300..=700).contains(&added), "{added}");
    }

    #[test]
    fn no_panic_and_publishable_for_any_length() {
        let mut f = Fuzzer::new(99, 100);
        for limit in [8, 52, 264, 4096] {
            for len in 0..=300 {
                for _ in 0..20 {
                    let o = Outgoing {
                        dev: Some(0),
                        response: len % 2 == 0,
                        bytes: vec![0xa5; len],
                    };
                    for m in f.mutate_batch(vec![o], None, limit) {
                        assert!(
                            (HEADER..=limit.max(HEADER)).contains(&m.bytes.len()),
                            "len {len} limit {limit}: {} bytes",
                            m.bytes.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn events_also_go_out_intact() {
        let mut f = Fuzzer::new(11, 100);
        for i in 0..200 {
            let event = Outgoing {
                response: false,
                ..response(i)
            };
            let got = f.mutate_batch(vec![event.clone()], None, 264);
            assert!(got.len() >= 2);
            assert_eq!(got.last(), Some(&event));
        }
    }

    #[test]
    fn device_filter() {
        let mut f = Fuzzer::new(5, 100);
        let other = Outgoing {
            dev: Some(2),
            ..response(9)
        };
        let bus = Outgoing {
            dev: None,
            ..response(9)
        };
        assert_eq!(
            f.mutate_batch(vec![other.clone(), bus.clone()], Some(1), 264),
            vec![other, bus]
        );
        assert_eq!(f.counts(), (0, 0));
        assert_ne!(
            f.mutate_batch(vec![response(9)], Some(1), 264),
            vec![response(9)]
        );
    }
}
