// SPDX-License-Identifier: GPL-2.0

//! The shared-memory rings on the host alone: how many messages per second
//! `vmsg_device::region::Ring` moves, and what one request/response round trip costs, with
//! and without the doorbell protocol of `Documentation/shm-bus.rst` (a consumer that finds
//! its ring empty asks for a doorbell, rechecks, and sleeps on an eventfd; a producer rings
//! only when asked).
//!
//! Both rings of one region are used exactly as on the bus: the "driver" thread produces
//! into the to-device ring and consumes the to-driver ring, the "device" thread the other
//! way round. Eventfds stand in for the ivshmem doorbells. No guest, QEMU or kernel module
//! is involved, so the numbers are the floor that the guest-side measurements sit on.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use vmsg_device::region::{Geometry, Region, Ring, RingError};

/// Byte offset of `msg_size` in a message header.
const MSG_SIZE_OFFSET: usize = 6;
/// Region size, as vmsg-device's default `--shm-size`.
pub const REGION_SIZE: usize = 1 << 20;
/// Slot size, as vmsg-device's default `--max-msg-size`.
pub const SLOT_SIZE: u32 = 264;
/// Spins before a waiting thread yields its core (the machine may have fewer cores than
/// busy threads).
const SPINS_BEFORE_YIELD: u32 = 100;
/// How long a sleeping consumer waits before it looks at the stop flag again.
const SLEEP_SLICE_MS: u16 = 20;

/// What a scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One thread: push one message, pop it, repeat (the code path alone, no sharing).
    PushPop,
    /// One thread: fill the ring, then empty it.
    Batch,
    /// Two threads streaming one way; the consumer spins on the producer index.
    StreamSpin,
    /// Two threads streaming one way; the consumer sleeps on an eventfd when the ring is
    /// empty and the producer rings it only when asked (`consumer_wants_doorbell`).
    StreamDoorbell,
    /// Request on the to-device ring, response on the to-driver ring; both sides spin.
    PingPongSpin,
    /// Request and response as above; both sides sleep and ring doorbells per the contract.
    PingPongDoorbell,
}

impl Scenario {
    /// Every scenario, in the order the report lists them.
    pub const ALL: [Scenario; 6] = [
        Scenario::PushPop,
        Scenario::Batch,
        Scenario::StreamSpin,
        Scenario::StreamDoorbell,
        Scenario::PingPongSpin,
        Scenario::PingPongDoorbell,
    ];

    /// Short name used in the output.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PushPop => "push-pop-1-thread",
            Scenario::Batch => "fill-drain-1-thread",
            Scenario::StreamSpin => "stream-2-threads-spin",
            Scenario::StreamDoorbell => "stream-2-threads-doorbell",
            Scenario::PingPongSpin => "round-trip-spin",
            Scenario::PingPongDoorbell => "round-trip-doorbell",
        }
    }

    /// Whether a unit of work is a request/response round trip (else one message).
    pub fn is_round_trip(self) -> bool {
        matches!(self, Scenario::PingPongSpin | Scenario::PingPongDoorbell)
    }
}

/// What one run of a scenario did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Messages consumed (round trips completed for the round-trip scenarios).
    pub ops: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Doorbells rung (eventfd writes).
    pub doorbells: u64,
    /// Times a consumer went to sleep.
    pub sleeps: u64,
}

impl Outcome {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.seconds * 1e9 / self.ops as f64
    }

    /// Doorbells per operation.
    pub fn doorbells_per_op(&self) -> f64 {
        self.doorbells as f64 / self.ops as f64
    }
}

/// A message of `size` bytes (8..=264) with a valid `msg_size` field.
pub fn message(size: usize) -> Vec<u8> {
    let mut m = vec![0x5a; size];
    let len = u16::try_from(size).unwrap_or(u16::MAX);
    m[MSG_SIZE_OFFSET..MSG_SIZE_OFFSET + 2].copy_from_slice(&len.to_le_bytes());
    m
}

/// A fresh region laid out as vmsg-device lays out its default one.
pub fn new_region() -> Result<Region, String> {
    let g = Geometry::new(REGION_SIZE, SLOT_SIZE, None).map_err(|e| e.to_string())?;
    let r = Region::create(g).map_err(|e| e.to_string())?;
    r.initialise(0);
    Ok(r)
}

fn eventfd() -> Result<EventFd, String> {
    EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
        .map_err(|e| format!("eventfd: {e}"))
}

fn corrupt(e: RingError) -> String {
    format!("ring error during the benchmark: {e}")
}

/// How a consumer waits for an empty ring to fill.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Spin,
    Doorbell,
}

/// One side's view: the ring it consumes and the doorbell it sleeps on; the ring it
/// produces into and the doorbell of its peer.
struct Side {
    rx: Ring,
    rx_bell: Arc<EventFd>,
    tx: Ring,
    tx_bell: Arc<EventFd>,
    wait: Wait,
    doorbells: u64,
    sleeps: u64,
    spins: u32,
}

impl Side {
    /// Publishes `msg`, ringing the peer if it asked for it (doorbell mode). Returns
    /// false on a full ring.
    fn send(&mut self, msg: &[u8]) -> Result<bool, String> {
        match self.tx.push(msg) {
            Ok(()) => {
                if self.wait == Wait::Doorbell && self.tx.should_ring() {
                    self.tx_bell
                        .write(1)
                        .map_err(|e| format!("eventfd write: {e}"))?;
                    self.doorbells += 1;
                }
                Ok(true)
            }
            Err(RingError::Full) => Ok(false),
            Err(e) => Err(corrupt(e)),
        }
    }

    fn idle(&mut self) {
        self.spins += 1;
        if self.spins >= SPINS_BEFORE_YIELD {
            self.spins = 0;
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }

    /// Takes the next message into `buf`, waiting while the ring is empty; false once
    /// `stop` is set and the ring is empty.
    fn recv(&mut self, buf: &mut Vec<u8>, stop: &AtomicBool) -> Result<bool, String> {
        loop {
            if self.rx.pop(buf).map_err(corrupt)?.is_some() {
                return Ok(true);
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            match self.wait {
                Wait::Spin => self.idle(),
                Wait::Doorbell => {
                    // The contract's sleep: ask for a doorbell, full barrier, look again.
                    if self.rx.prepare_sleep().map_err(corrupt)? == 0 {
                        self.sleeps += 1;
                        let mut fds = [PollFd::new(self.rx_bell.as_fd(), PollFlags::POLLIN)];
                        poll(&mut fds, PollTimeout::from(SLEEP_SLICE_MS))
                            .map_err(|e| format!("poll: {e}"))?;
                        // Non-blocking: EAGAIN when the slice ran out without a doorbell.
                        let _ = self.rx_bell.read();
                    }
                    self.rx.set_wants_doorbell(false);
                }
            }
        }
    }
}

/// The two sides of one region: (driver, device).
fn sides(region: &Region, wait: Wait) -> Result<(Side, Side), String> {
    let to_device_bell = Arc::new(eventfd()?);
    let to_driver_bell = Arc::new(eventfd()?);
    let driver = Side {
        rx: region.to_driver(),
        rx_bell: Arc::clone(&to_driver_bell),
        tx: region.to_device(),
        tx_bell: Arc::clone(&to_device_bell),
        wait,
        doorbells: 0,
        sleeps: 0,
        spins: 0,
    };
    let device = Side {
        rx: region.to_device(),
        rx_bell: to_device_bell,
        tx: region.to_driver(),
        tx_bell: to_driver_bell,
        wait,
        doorbells: 0,
        sleeps: 0,
        spins: 0,
    };
    Ok((driver, device))
}

/// Runs `scenario` with `msg_size`-byte messages for about `duration`.
pub fn run(scenario: Scenario, msg_size: usize, duration: Duration) -> Result<Outcome, String> {
    let region = new_region()?;
    let msg = message(msg_size);
    match scenario {
        Scenario::PushPop => single_thread(&region, &msg, duration, 1),
        Scenario::Batch => single_thread(&region, &msg, duration, region.geometry().slot_count),
        Scenario::StreamSpin => stream(&region, &msg, duration, Wait::Spin),
        Scenario::StreamDoorbell => stream(&region, &msg, duration, Wait::Doorbell),
        Scenario::PingPongSpin => ping_pong(&region, &msg, duration, Wait::Spin),
        Scenario::PingPongDoorbell => ping_pong(&region, &msg, duration, Wait::Doorbell),
    }
}

fn single_thread(
    region: &Region,
    msg: &[u8],
    duration: Duration,
    batch: u32,
) -> Result<Outcome, String> {
    let ring = region.to_device();
    let mut buf = Vec::with_capacity(SLOT_SIZE as usize);
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            for _ in 0..batch {
                ring.push(msg).map_err(corrupt)?;
            }
            for _ in 0..batch {
                if ring.pop(&mut buf).map_err(corrupt)?.is_none() {
                    return Err("a pushed message was not there to pop".into());
                }
            }
            ops += u64::from(batch);
        }
    }
    Ok(Outcome {
        ops,
        seconds: start.elapsed().as_secs_f64(),
        ..Outcome::default()
    })
}

fn stream(region: &Region, msg: &[u8], duration: Duration, wait: Wait) -> Result<Outcome, String> {
    let (mut producer, mut consumer) = sides(region, wait)?;
    // The driver side produces into the to-device ring, which the device side consumes.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer_stop = Arc::clone(&stop);
    let consumer_thread = thread::spawn(move || -> Result<(u64, Side), String> {
        let mut buf = Vec::with_capacity(SLOT_SIZE as usize);
        let mut n = 0u64;
        while consumer.recv(&mut buf, &consumer_stop)? {
            n += 1;
        }
        Ok((n, consumer))
    });
    let start = Instant::now();
    let mut result = Ok(());
    'outer: while start.elapsed() < duration {
        for _ in 0..256 {
            match producer.send(msg) {
                Ok(true) => {}
                Ok(false) => producer.idle(),
                Err(e) => {
                    result = Err(e);
                    break 'outer;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer.tx_bell.write(1);
    let joined = consumer_thread
        .join()
        .map_err(|_| "the consumer thread panicked".to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    result?;
    let (ops, consumer) = joined?;
    Ok(Outcome {
        ops,
        seconds,
        doorbells: producer.doorbells,
        sleeps: consumer.sleeps,
    })
}

fn ping_pong(
    region: &Region,
    msg: &[u8],
    duration: Duration,
    wait: Wait,
) -> Result<Outcome, String> {
    let (mut driver, mut device) = sides(region, wait)?;
    let stop = Arc::new(AtomicBool::new(false));
    let device_stop = Arc::clone(&stop);
    let gone = Arc::new(AtomicBool::new(false));
    let device_gone = Arc::clone(&gone);
    // The device side answers every request with a response of the same size.
    let device_thread = thread::spawn(move || -> Result<Side, String> {
        let mut buf = Vec::with_capacity(SLOT_SIZE as usize);
        let served = (|| {
            while device.recv(&mut buf, &device_stop)? {
                while !device.send(&buf)? {
                    device.idle();
                }
            }
            Ok(())
        })();
        device_gone.store(true, Ordering::Relaxed);
        served.map(|()| device)
    });
    let mut buf = Vec::with_capacity(SLOT_SIZE as usize);
    let start = Instant::now();
    let mut ops = 0u64;
    let mut result = Ok(());
    while start.elapsed() < duration {
        let step = driver.send(msg).and_then(|sent| {
            if !sent {
                return Err("to-device ring full with one request in flight".into());
            }
            match driver.recv(&mut buf, &gone)? {
                true => Ok(()),
                false => Err("the device thread stopped answering".into()),
            }
        });
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        ops += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = driver.tx_bell.write(1);
    let device = device_thread
        .join()
        .map_err(|_| "the device thread panicked".to_string())?;
    result?;
    let device = device?;
    Ok(Outcome {
        ops,
        seconds,
        doorbells: driver.doorbells + device.doorbells,
        sleeps: driver.sleeps + device.sleeps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_size() {
        let m = message(16);
        assert_eq!(m.len(), 16);
        assert_eq!(u16::from_le_bytes([m[6], m[7]]), 16);
    }

    #[test]
    fn every_scenario_moves_messages() {
        for s in Scenario::ALL {
            for size in [16, 264] {
                let o = run(s, size, Duration::from_millis(20)).unwrap();
                assert!(o.ops > 0, "{} with {size} bytes did nothing", s.name());
                assert!(o.rate() > 0.0 && o.ns_per_op() > 0.0);
            }
        }
    }

    #[test]
    fn doorbell_round_trips_ring_at_most_twice_each() {
        let o = run(Scenario::PingPongDoorbell, 16, Duration::from_millis(50)).unwrap();
        assert!(o.ops > 0);
        // One request and one response per round trip; each rings at most once.
        assert!(o.doorbells <= 2 * o.ops, "{o:?}");
    }

    #[test]
    fn spinning_rings_no_doorbell() {
        let o = run(Scenario::PingPongSpin, 16, Duration::from_millis(20)).unwrap();
        assert_eq!(o.doorbells, 0);
        assert_eq!(o.sleeps, 0);
    }
}
