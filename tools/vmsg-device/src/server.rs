// SPDX-License-Identifier: GPL-2.0

//! The event loop: ivshmem connections, doorbells, the two rings, delayed responses, the
//! control socket, console input, and shutdown on SIGTERM/SIGINT.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use virtio_msg_codec::{Header, TRANSPORT_F_STRICT_CONFIG_GENERATION};

use crate::bus::{Bus, BusConfig, Outgoing};
use crate::cli::{size_allows_negotiation, Config};
use crate::control::{Command, Control};
use crate::devices::DeviceSpec;
use crate::fault::{Faults, Verdict};
use crate::guest_memory;
use crate::ivshmem::{IvshmemServer, PeerEvent};
use crate::region::{driver_state, DeviceState, Geometry, Popped, Region, RingError};
use crate::transport::TransportDevice;

/// Housekeeping period: driver_state and the to-device ring are checked at least this
/// often even without a doorbell.
const TICK: Duration = Duration::from_millis(50);
/// Retry period while the to-driver ring is full.
const FULL_RETRY: Duration = Duration::from_millis(1);
/// Interrupt vector of the driver side that the device side rings.
const DRIVER_VECTOR: u32 = 0;

/// A response held back by the delay fault.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delayed {
    at: Instant,
    seq: u64,
    bytes: Vec<u8>,
}

/// What became ready in one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Listener,
    Client(u16),
    Doorbell,
    Signal,
    ControlListener,
    ControlConn(u64),
    Input(u16),
}

/// The device side of one bus instance.
pub struct Server {
    ivshmem: IvshmemServer,
    region: Region,
    bus: Bus,
    faults: Faults,
    control: Option<Control>,
    signals: UnixStream,
    guest_memory: Option<PathBuf>,
    backlog: VecDeque<Vec<u8>>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
    client: Option<u16>,
    driver_attached: bool,
    to_device_corrupt: bool,
    to_driver_corrupt: bool,
    stop: bool,
    shutdown_timeout: Duration,
    mem_mapped: bool,
    last_map_attempt: Option<Instant>,
    rx: Vec<u8>,
}

fn build_device(spec: &DeviceSpec) -> Result<TransportDevice, String> {
    let dev = spec.build().map_err(|e| e.to_string())?;
    TransportDevice::new(dev).map_err(|e| e.to_string())
}

impl Server {
    /// Opens every device, lays out and initialises the region, and binds the sockets.
    pub fn new(config: &Config) -> Result<Self, String> {
        let mut bus = Bus::new(BusConfig {
            accepted_revisions: config.accept_revisions.clone(),
            max_msg_size: config.max_msg_size,
            transport_features: TRANSPORT_F_STRICT_CONFIG_GENERATION,
        });
        let mut ignored = Vec::new();
        for spec in &config.devices {
            bus.add_device(build_device(spec)?, &mut ignored);
        }
        if config.devices.is_empty() {
            log::warn!(
                "no --device given: the bus has no devices (use the control socket to add some)"
            );
        }
        if config.accept_revisions.is_empty() {
            log::warn!("no revision accepted: every VERSION will be refused");
        }
        if !size_allows_negotiation(config.max_msg_size) {
            log::warn!(
                "max message size {} is below 52: every VERSION will be refused",
                config.max_msg_size
            );
        }
        if let Some(path) = &config.guest_memory {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if size > 0 {
                // Fail early on a file that exists but cannot be mapped.
                guest_memory::map(path)?;
            } else {
                log::info!(
                    "guest memory {} is missing or empty for now; it is mapped when the driver side starts talking",
                    path.display()
                );
            }
        } else {
            log::warn!("no --guest-memory: virtqueues cannot be served");
        }
        let geometry = Geometry::new(config.shm_size, config.slot_size, config.slot_count)
            .map_err(|e| e.to_string())?;
        let region = Region::create(geometry).map_err(|e| e.to_string())?;
        region.initialise(u32::from(config.peer_id));
        let shm = region
            .file()
            .try_clone()
            .map_err(|e| format!("shared memory: {e}"))?;
        let ivshmem = IvshmemServer::bind(&config.socket, shm, config.vectors, config.peer_id, 1)
            .map_err(|e| e.to_string())?;
        let control = match &config.control {
            Some(p) => Some(Control::bind(p).map_err(|e| format!("control socket: {e}"))?),
            None => None,
        };
        let (signals, sig_write) = UnixStream::pair().map_err(|e| format!("signal pipe: {e}"))?;
        signals
            .set_nonblocking(true)
            .map_err(|e| format!("signal pipe: {e}"))?;
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let w = sig_write
                .try_clone()
                .map_err(|e| format!("signal pipe: {e}"))?;
            signal_hook::low_level::pipe::register(sig, w)
                .map_err(|e| format!("installing the signal handler: {e}"))?;
        }
        for f in &config.faults {
            log::warn!("fault injection active: {f}");
        }
        log::info!(
            "listening on {} (shm {} bytes, {} slots of {} bytes per ring, device peer id {}, {} device(s))",
            config.socket.display(),
            geometry.region_size,
            geometry.slot_count,
            geometry.slot_size,
            config.peer_id,
            bus.device_numbers().len()
        );
        Ok(Self {
            ivshmem,
            region,
            bus,
            faults: Faults::new(config.faults.clone()),
            control,
            signals,
            guest_memory: config.guest_memory.clone(),
            backlog: VecDeque::new(),
            delayed: BinaryHeap::new(),
            seq: 0,
            client: None,
            driver_attached: false,
            to_device_corrupt: false,
            to_driver_corrupt: false,
            stop: false,
            shutdown_timeout: config.shutdown_timeout,
            mem_mapped: false,
            last_map_attempt: None,
            rx: Vec::new(),
        })
    }

    /// Serves until SIGTERM or SIGINT, then announces removal and returns.
    pub fn run(&mut self) -> Result<(), String> {
        while !self.stop {
            let timeout = self.timeout();
            for source in self.wait(timeout)? {
                self.dispatch(source);
            }
            if self.client.is_some() {
                self.check_driver_state();
                self.consume();
            }
            self.flush();
        }
        self.shutdown();
        Ok(())
    }

    fn timeout(&self) -> Duration {
        let now = Instant::now();
        let mut t = TICK;
        if let Some(Reverse(d)) = self.delayed.peek() {
            t = t.min(d.at.saturating_duration_since(now));
        }
        if !self.backlog.is_empty() && self.client.is_some() {
            t = t.min(FULL_RETRY);
        }
        t
    }

    fn wait(&self, timeout: Duration) -> Result<Vec<Source>, String> {
        let mut sources: Vec<(Source, BorrowedFd<'_>)> = vec![
            (Source::Listener, self.ivshmem.listener()),
            (Source::Signal, self.signals.as_fd()),
        ];
        for peer in self.ivshmem.peers() {
            sources.push((Source::Client(peer.id), peer.stream().as_fd()));
        }
        for fd in self.ivshmem.own_eventfds() {
            sources.push((Source::Doorbell, fd));
        }
        if let Some(c) = &self.control {
            sources.push((Source::ControlListener, c.listener()));
            for (id, fd) in c.conns() {
                sources.push((Source::ControlConn(id), fd));
            }
        }
        for (dev, fd) in self.bus.input_fds() {
            sources.push((Source::Input(dev), fd));
        }
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(format!("poll: {e}")),
        }
        let mut ready = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents().is_some_and(|r| !r.is_empty()) && !ready.contains(&sources[i].0) {
                ready.push(sources[i].0);
            }
        }
        Ok(ready)
    }

    fn dispatch(&mut self, source: Source) {
        match source {
            Source::Listener => self.accept(),
            Source::Client(id) => {
                if let PeerEvent::Left(id) = self.ivshmem.handle_readable(id) {
                    self.client_left(id);
                }
            }
            Source::Doorbell => {
                self.ivshmem.drain_own();
            }
            Source::Signal => {
                let mut buf = [0u8; 16];
                // Any byte means SIGTERM or SIGINT arrived.
                let _ = self.signals.read(&mut buf);
                log::info!("signal received");
                self.stop = true;
            }
            Source::ControlListener => {
                if let Some(c) = self.control.as_mut() {
                    c.accept();
                }
            }
            Source::ControlConn(id) => self.control_input(id),
            Source::Input(dev) => {
                let mut out = Vec::new();
                self.bus.poll_input(dev, &mut out);
                self.enqueue_all(out);
            }
        }
    }

    fn accept(&mut self) {
        let id = match self.ivshmem.accept() {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                log::error!("{e}");
                return;
            }
        };
        // A new driver side: a fresh instance and fresh guest RAM. The region was
        // initialised before the client could see it (at start or when the previous
        // client left); doing it now would race with the client's first messages.
        self.reset_instance();
        self.driver_attached = false;
        self.client = Some(id);
        // QEMU connects its chardev before it creates (and sizes) the RAM backend, so
        // guest RAM is mapped when the first message arrives, not now.
        self.bus.set_guest_memory(None);
        self.mem_mapped = false;
        self.last_map_attempt = None;
    }

    /// Maps guest RAM if it is configured and not mapped yet (at most once a second).
    fn map_guest_memory(&mut self) {
        let Some(path) = &self.guest_memory else {
            return;
        };
        if self.mem_mapped
            || self
                .last_map_attempt
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_map_attempt = Some(Instant::now());
        match guest_memory::map(path) {
            Ok(m) => {
                self.bus.set_guest_memory(Some(Arc::new(m)));
                self.mem_mapped = true;
            }
            Err(e) => log::error!("{e}; virtqueues cannot be served yet"),
        }
    }

    fn client_left(&mut self, id: u16) {
        if self.client == Some(id) {
            self.client = None;
            self.driver_attached = false;
            self.reset_instance();
            self.bus.set_guest_memory(None);
            self.mem_mapped = false;
            self.region.initialise(u32::from(self.ivshmem.own_id()));
        }
    }

    /// Forgets negotiation, resets devices, drops queued messages and corruption marks.
    fn reset_instance(&mut self) {
        self.bus.reset();
        self.backlog.clear();
        self.delayed.clear();
        self.to_device_corrupt = false;
        self.to_driver_corrupt = false;
    }

    fn ring_driver(&self) {
        if let Some(id) = self.client {
            self.ivshmem.ring(id, DRIVER_VECTOR);
        }
    }

    fn check_driver_state(&mut self) {
        let state = self.region.driver_state();
        match (self.driver_attached, state) {
            (false, driver_state::ATTACHED) => {
                self.driver_attached = true;
                if self.region.device_state() == DeviceState::NotReady as u32 {
                    self.region.set_device_state(DeviceState::Ready);
                    self.ring_driver();
                }
                log::info!("driver side attached");
            }
            (true, driver_state::DETACHED) => {
                self.driver_attached = false;
                log::info!("driver side detached: resetting the instance and both rings");
                self.region.set_device_state(DeviceState::NotReady);
                self.reset_instance();
                self.region.reset_rings();
                self.ring_driver();
            }
            _ => {}
        }
    }

    /// Drains the driver-to-device ring, then asks for a doorbell and rechecks.
    fn consume(&mut self) {
        if self.to_device_corrupt {
            return;
        }
        let ring = self.region.to_device();
        ring.set_wants_doorbell(false);
        let mut rx = std::mem::take(&mut self.rx);
        let result = loop {
            match ring.pop(&mut rx) {
                Ok(Some(Popped::Message)) => self.handle_message(&rx),
                Ok(Some(Popped::BadSize(size))) => {
                    log::warn!(
                        "dropped slot with msg_size {size} (allowed 8..={})",
                        ring.slot_size()
                    );
                }
                Ok(None) => match ring.prepare_sleep() {
                    Ok(0) => break Ok(()),
                    Ok(_) => ring.set_wants_doorbell(false),
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            }
        };
        self.rx = rx;
        if let Err(e) = result {
            log::error!("driver-to-device {e}; ignoring the ring until the driver side detaches");
            self.to_device_corrupt = true;
        }
    }

    fn handle_message(&mut self, bytes: &[u8]) {
        let dev = match Header::peek(bytes) {
            Ok(h) if !h.is_bus() => Some(h.dev_num.get()),
            _ => None,
        };
        self.map_guest_memory();
        if let Verdict::Drop(why) = self.faults.incoming(dev) {
            log::debug!("fault {why}: message for {dev:?} dropped");
            return;
        }
        let mut out = Vec::new();
        self.bus.handle(bytes, &mut out);
        if out.iter().any(|o| o.response) {
            for (target, count) in self.faults.floods(dev) {
                self.bus.flood(target, count, &mut out);
            }
        }
        self.enqueue_all(out);
    }

    fn enqueue_all(&mut self, out: Vec<Outgoing>) {
        let limit = usize::from(self.bus.codec().max_msg_size);
        let out = if self.faults.is_empty() {
            out
        } else {
            self.faults.expand(out, limit)
        };
        for mut o in out {
            match self.faults.outgoing(&mut o, limit) {
                Some(delay) => {
                    self.seq += 1;
                    self.delayed.push(Reverse(Delayed {
                        at: Instant::now() + delay,
                        seq: self.seq,
                        bytes: o.bytes,
                    }));
                }
                None => self.backlog.push_back(o.bytes),
            }
        }
    }

    /// Publishes what can be published and rings the driver if it asked for it.
    fn flush(&mut self) {
        let now = Instant::now();
        while self.delayed.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = self.delayed.pop() {
                self.backlog.push_back(d.bytes);
            }
        }
        if self.client.is_none() {
            self.backlog.clear();
            return;
        }
        if self.to_driver_corrupt {
            return;
        }
        let ring = self.region.to_driver();
        let mut pushed = false;
        let mut corrupted = false;
        while let Some(msg) = self.backlog.front() {
            match ring.push(msg) {
                Ok(()) => {
                    self.backlog.pop_front();
                    pushed = true;
                    if self.faults.published() {
                        log::warn!(
                            "fault corrupt-index: corrupting the device-to-driver producer index"
                        );
                        ring.corrupt_producer();
                        corrupted = true;
                        break;
                    }
                }
                Err(RingError::Full) => break,
                Err(RingError::BadLength(n)) => {
                    log::error!("message of {n} bytes does not fit a slot; dropped");
                    self.backlog.pop_front();
                }
                Err(e @ RingError::Corrupt { .. }) => {
                    log::error!(
                        "device-to-driver {e}; holding messages until the driver side detaches"
                    );
                    self.to_driver_corrupt = true;
                    break;
                }
            }
        }
        if corrupted || (pushed && ring.should_ring()) {
            self.ring_driver();
        }
    }

    fn control_input(&mut self, id: u64) {
        let lines = match self.control.as_mut() {
            Some(c) => c.read(id),
            None => return,
        };
        for line in lines {
            let answer = match line.parse::<Command>() {
                Ok(cmd) => self.execute(cmd),
                Err(e) => format!("error {e}"),
            };
            if let Some(c) = self.control.as_mut() {
                c.reply(id, &answer);
            }
        }
    }

    fn execute(&mut self, cmd: Command) -> String {
        let mut out = Vec::new();
        let answer = match cmd {
            Command::Add(spec) => match build_device(&spec) {
                Ok(dev) => match self.bus.add_device(dev, &mut out) {
                    Some(n) => format!("ok {n}"),
                    None => "error no free device number".into(),
                },
                Err(e) => format!("error {e}"),
            },
            Command::Remove(n) => {
                if self.bus.remove_device(n, &mut out) {
                    "ok".into()
                } else {
                    format!("error no device {n}")
                }
            }
            Command::Inject(n, data) => match self.bus.inject(n, &data, &mut out) {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            },
            Command::List => {
                let list: Vec<String> = self
                    .bus
                    .device_numbers()
                    .into_iter()
                    .filter_map(|n| {
                        self.bus
                            .device(n)
                            .map(|d| format!("{n}:{}", d.device().name()))
                    })
                    .collect();
                format!("ok {}", list.join(" "))
            }
        };
        self.enqueue_all(out);
        answer
    }

    /// Announces the removal of every device and `device_state = 2`, and waits (bounded)
    /// for the driver side to read the announcements.
    fn shutdown(&mut self) {
        log::info!("shutting down");
        for (seed, seen, mutated) in self.faults.fuzz_counts() {
            log::warn!("fuzz seed {seed}: {mutated} of {seen} messages mutated");
        }
        self.delayed.clear();
        let mut out = Vec::new();
        self.bus.announce_removal(&mut out);
        self.backlog.extend(out.into_iter().map(|o| o.bytes));
        self.flush();
        self.region.set_device_state(DeviceState::GoingAway);
        self.ring_driver();
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.client.is_some() && Instant::now() < deadline {
            self.flush();
            let drained = self.backlog.is_empty() && self.region.to_driver().pending() == Ok(0);
            if drained {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
