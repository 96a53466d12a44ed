// SPDX-License-Identifier: GPL-2.0

//! The event loop: ivshmem connections, doorbells, the two rings, delayed responses, the
//! control socket, console input, and shutdown on SIGTERM/SIGINT.
//!
//! Two ways to reach the driver side: as the ivshmem server QEMU connects to (one process
//! does everything), or as a peer of a long-lived `vmsg-device ivshmem-server` (split
//! mode), which lets this process be killed and restarted: it then resumes from the
//! region (ring indices), guest memory (virtqueue indices) and its state file (everything
//! else) if the driver side's attachment is still the one the state describes, and
//! starts fresh otherwise, see `Documentation/shm-bus.rst`, "Restarting the device side".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use virtio_msg_codec::bus::BusMessage;
use virtio_msg_codec::transport::id::EVENT_AVAIL;
use virtio_msg_codec::transport::TransportMessage;
use virtio_msg_codec::{Header, Message, TRANSPORT_F_STRICT_CONFIG_GENERATION};

use crate::bus::{Bus, BusConfig, Hold, Outgoing};
use crate::cli::{size_allows_negotiation, Config};
use crate::control::{Command, Control};
use crate::devices::{DeviceSpec, GuestMemory};
use crate::fault::{Actions, Faults, Read as FaultRead, Verdict};
use crate::guest_memory;
use crate::ivshmem::{IvshmemServer, PeerEvent};
use crate::ivshmem_peer::{IvshmemPeer, PeerChange};
use crate::region::{driver_state, hdr, DeviceState, Geometry, Popped, Region, RingError};
use crate::slot_rewrite::SlotRewriter;
use crate::state::{SavedState, StateFile, STATE_VERSION};
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
    IvshmemServer,
    Doorbell,
    Signal,
    ControlListener,
    ControlConn(u64),
    Input(u16),
}

/// How this process reaches the driver side.
enum Link {
    /// It is the ivshmem server QEMU connects to.
    Serve(IvshmemServer),
    /// It is a peer of `vmsg-device ivshmem-server` (split mode).
    Peer(IvshmemPeer),
}

impl Link {
    fn own_id(&self) -> u16 {
        match self {
            Self::Serve(s) => s.own_id(),
            Self::Peer(p) => p.own_id(),
        }
    }

    fn own_eventfds(&self) -> Vec<BorrowedFd<'_>> {
        match self {
            Self::Serve(s) => s.own_eventfds().collect(),
            Self::Peer(p) => p.own_eventfds().collect(),
        }
    }

    fn drain_own(&self) {
        match self {
            Self::Serve(s) => s.drain_own(),
            Self::Peer(p) => p.drain_own(),
        };
    }

    fn ring(&self, id: u16, vector: u32) {
        match self {
            Self::Serve(s) => s.ring(id, vector),
            Self::Peer(p) => p.ring(id, vector),
        };
    }
}

/// The device side of one bus instance.
pub struct Server {
    link: Link,
    region: Region,
    bus: Bus,
    faults: Faults,
    control: Option<Control>,
    signals: UnixStream,
    guest_memory: Option<PathBuf>,
    /// Window mode: the window, the devices' only memory.
    window: Option<Arc<GuestMemory>>,
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
    /// Next to-device index to read. The region's consumer index trails it until every
    /// response to the messages read is in the to-device ring, so that a process killed in
    /// between leaves them to its successor instead of losing them.
    rx_next: u32,
    /// Consumer index last published.
    rx_released: u32,
    state: Option<StateFile>,
    region_inode: u64,
    state_error_logged: bool,
    /// The ivshmem server of split mode closed the connection (no more peer news).
    server_gone: bool,
    /// Split mode: the driver side is attached to an instance this process could not
    /// resume; asked to go (device_state 2), it is not served until it detaches.
    stale_attachment: bool,
    /// Fault `stall` or control `stall MS`: the to-device ring is not read until then.
    stalled_until: Option<Instant>,
    /// `flood N MS` from the control socket: the device, until when, and how many messages
    /// it queued so far.
    flood: Option<(u16, Instant, u64)>,
    /// The `slot-rewrite` fault's thread.
    rewriter: Option<SlotRewriter>,
}

fn build_device(spec: &DeviceSpec) -> Result<TransportDevice, String> {
    let dev = spec.build().map_err(|e| e.to_string())?;
    TransportDevice::new(dev).map_err(|e| e.to_string())
}

/// The read end of a nonblocking pipe that SIGTERM and SIGINT write to, so the poll loop
/// sees them as one more source and shuts down between messages.
pub(crate) fn signal_pipe() -> Result<UnixStream, String> {
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
    Ok(signals)
}

/// What a device logic that finds its own layout in the region does with the instance a
/// previous process served (`Documentation/shm-bus.rst`, "Restarting the device side").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takeover {
    /// The driver side is still attached as it was when the state was saved: resume it.
    Resume,
    /// The driver side is detached. `acknowledge`: it detached from a process that did
    /// not answer (or went away): empty the rings and answer now.
    Detached {
        /// Whether the detach is answered now.
        acknowledge: bool,
    },
    /// The driver side attached after the state was saved, and no process took note of
    /// it yet: nothing was negotiated on it, serve it afresh.
    Unseen,
    /// The driver side is attached to an instance this process does not have: ask it to
    /// go (device_state 2) and serve nothing until it has detached.
    Stale,
}

/// Decides the [`Takeover`] from the region's `driver_state`, `device_state` and
/// `attach_epoch` and the saved state (if there is one for this region).
///
/// Resuming is only right while the attachment the state describes is still in place:
/// the driver side attached (driver_state 1, device_state 1), the state saved while
/// attached, and no attachment since, which the attach epoch tells. Every process counts
/// each attachment it takes note of in the region (before it answers anything on it, and
/// before it persists), the region keeps the count across a re-layout for another driver
/// side, and a state records it: another epoch in the region means another attachment
/// (seen by a process without this state file, or one killed before it persisted).
/// Ring indices cannot tell: after a detach they start from 0 again, where a state saved
/// early in the previous attachment also had them.
fn takeover(driver: u32, device: u32, epoch: u32, saved: Option<&SavedState>) -> Takeover {
    let ready = DeviceState::Ready as u32;
    let attached_then = saved.is_some_and(|s| s.driver_attached);
    match driver {
        driver_state::DETACHED => Takeover::Detached {
            // A region laid out for a driver side that has not attached yet has nothing to
            // answer; a driver side that detached from a live or killed process waits for
            // device_state to leave 1, one that went away for it to be 1 again.
            acknowledge: device != ready || attached_then,
        },
        driver_state::ATTACHED if device == DeviceState::NotReady as u32 => {
            // An attach after an answered detach: the rings are empty, nothing negotiated.
            Takeover::Unseen
        }
        driver_state::ATTACHED if device == ready => match saved {
            Some(s) if s.attach_epoch == epoch && s.driver_attached => Takeover::Resume,
            Some(s) if s.attach_epoch == epoch => Takeover::Unseen,
            _ => Takeover::Stale,
        },
        _ => Takeover::Stale,
    }
}

impl Server {
    /// Opens every device, lays out and initialises the region, and binds the sockets.
    pub fn new(config: &Config) -> Result<Self, String> {
        let mut bus = Bus::new(BusConfig {
            accepted_revisions: config.accept_revisions.clone(),
            max_msg_size: config.max_msg_size,
            transport_features: TRANSPORT_F_STRICT_CONFIG_GENERATION,
            access_platform: config.window.is_some(),
            removal_grace: config.removal_grace,
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
        } else if config.window.is_none() {
            log::warn!("no --guest-memory: virtqueues cannot be served");
        }
        let (link, region, resumed) = if config.connect {
            if config.state.is_none() {
                log::warn!(
                    "no --state: a restarted process could not resume this one's driver side"
                );
            }
            Self::join(config)?
        } else {
            let geometry = Geometry::with_window(
                config.shm_size,
                config.slot_size,
                config.slot_count,
                config.window.unwrap_or(0),
            )
            .map_err(|e| e.to_string())?;
            let region = Region::create(geometry).map_err(|e| e.to_string())?;
            region.initialise(u32::from(config.peer_id));
            let shm = region
                .file()
                .try_clone()
                .map_err(|e| format!("shared memory: {e}"))?;
            let ivshmem =
                IvshmemServer::bind(&config.socket, shm, config.vectors, config.peer_id, 1)
                    .map_err(|e| e.to_string())?;
            (Link::Serve(ivshmem), region, false)
        };
        let geometry = region.geometry();
        // Window mode: the window is the only memory the devices see, mapped once.
        let window = if geometry.has_window() {
            Some(Arc::new(guest_memory::map_window(&region)?))
        } else {
            None
        };
        let region_inode = region
            .file()
            .metadata()
            .map(|m| m.ino())
            .map_err(|e| format!("shared memory: {e}"))?;
        let control = match &config.control {
            Some(p) => Some(Control::bind(p).map_err(|e| format!("control socket: {e}"))?),
            None => None,
        };
        let signals = signal_pipe()?;
        for f in &config.faults {
            log::warn!("fault injection active: {f}");
        }
        log::info!(
            "{} {} (shm {} bytes, {} slots of {} bytes per ring, {}device peer id {}, {} device(s))",
            if config.connect {
                "joined"
            } else {
                "listening on"
            },
            config.socket.display(),
            geometry.region_size,
            geometry.slot_count,
            geometry.slot_size,
            if geometry.has_window() {
                format!(
                    "window of {} bytes at {:#x}, ",
                    geometry.window_size, geometry.window_offset
                )
            } else {
                String::new()
            },
            link.own_id(),
            bus.device_numbers().len()
        );
        let client = match &link {
            Link::Peer(p) => p.peers().first().copied(),
            Link::Serve(_) => None,
        };
        let mut server = Self {
            link,
            region,
            bus,
            faults: Faults::new(config.faults.clone()),
            control,
            signals,
            guest_memory: config.guest_memory.clone(),
            window,
            backlog: VecDeque::new(),
            delayed: BinaryHeap::new(),
            seq: 0,
            client,
            driver_attached: false,
            to_device_corrupt: false,
            to_driver_corrupt: false,
            stop: false,
            shutdown_timeout: config.shutdown_timeout,
            mem_mapped: false,
            last_map_attempt: None,
            rx: Vec::new(),
            rx_next: 0,
            rx_released: 0,
            state: config.state.as_deref().map(StateFile::new),
            region_inode,
            state_error_logged: false,
            server_gone: false,
            stale_attachment: false,
            stalled_until: None,
            flood: None,
            rewriter: None,
        };
        if let Some(every) = server.faults.slot_rewrite() {
            let ring = server.region.to_driver();
            server.rewriter = Some(SlotRewriter::start(ring, every, u64::from(every))?);
        }
        if resumed {
            server.take_over();
        } else {
            server.persist();
        }
        Ok(server)
    }

    /// Split mode: joins the ivshmem server and maps its region. Returns whether the
    /// region already carries this geometry's header, i.e. a previous process of the
    /// device side served it and this one must resume rather than initialise.
    fn join(config: &Config) -> Result<(Link, Region, bool), String> {
        let peer = IvshmemPeer::connect(&config.socket, config.vectors)
            .map_err(|e| format!("joining the ivshmem server: {e}"))?;
        let shm = peer
            .shm()
            .try_clone()
            .map_err(|e| format!("shared memory: {e}"))?;
        let size = shm
            .metadata()
            .map_err(|e| format!("shared memory: {e}"))?
            .len();
        let size = usize::try_from(size).map_err(|_| format!("shared memory of {size} bytes"))?;
        let geometry = Geometry::with_window(
            size,
            config.slot_size,
            config.slot_count,
            config.window.unwrap_or(0),
        )
        .map_err(|e| e.to_string())?;
        let region = Region::from_file(shm, geometry).map_err(|e| e.to_string())?;
        let own = u32::from(peer.own_id());
        let resumed = region.has_header(own);
        if !resumed {
            if region.has_magic() {
                // Laying it out anew would pull the rings from under the driver side.
                return Err("the region in use has another layout (slot size, slot count, window or peer id): start with the options of the previous process".into());
            }
            region.initialise(own);
        }
        Ok((Link::Peer(peer), region, resumed))
    }

    /// Reads the state file, if it is one for this region.
    fn load_state(&mut self) -> Result<SavedState, String> {
        match self.state.as_mut().map(StateFile::load) {
            None => Err("no --state file".to_string()),
            Some(Ok(None)) => Err(
                "no state file (the previous process shut down cleanly, or kept none)".to_string(),
            ),
            Some(Ok(Some(s))) if s.region_inode != self.region_inode => {
                Err("the state file belongs to another region".to_string())
            }
            Some(Ok(Some(s))) => Ok(s),
            Some(Err(e)) => Err(e),
        }
    }

    /// Takes over a region a previous process served: resumes its instance if the driver
    /// side is still attached as it was when the state was saved, and otherwise starts
    /// afresh without pulling the rings from under the driver side (see [`takeover`]).
    fn take_over(&mut self) {
        if self.client.is_none() {
            // No driver side has the region. The ivshmem server hands it to the next one
            // only at device_state 1: lay it out again unless it is so (then a driver side
            // may be connecting just now).
            if self.region.device_state() != DeviceState::Ready as u32 {
                log::info!("no driver side connected: laying the region out again");
                self.region.initialise(u32::from(self.link.own_id()));
            }
            self.persist();
            return;
        }
        let ring = self.region.to_device();
        self.rx_next = ring.consumer();
        self.rx_released = self.rx_next;
        let loaded = self.load_state();
        let (driver, device, epoch) = (
            self.region.driver_state(),
            self.region.device_state(),
            self.region.attach_epoch(),
        );
        let decision = takeover(driver, device, epoch, loaded.as_ref().ok());
        log::info!(
            "taking over the region: driver_state {driver}, device_state {device}, attach epoch {epoch}; saved state: {}",
            match &loaded {
                Ok(s) => format!(
                    "driver side {}, attach epoch {}",
                    if s.driver_attached { "attached" } else { "detached" },
                    s.attach_epoch
                ),
                Err(e) => e.clone(),
            }
        );
        let loaded = match (decision, loaded) {
            (Takeover::Resume, Ok(saved)) => {
                self.resume(saved);
                return;
            }
            (_, loaded) => loaded,
        };
        let why = match (&loaded, decision) {
            (Err(e), _) => e.clone(),
            (Ok(_), Takeover::Detached { .. }) => "the driver side is detached".into(),
            (Ok(_), Takeover::Resume | Takeover::Unseen) => {
                "the driver side attached after the state was saved".into()
            }
            (Ok(_), Takeover::Stale) if device == DeviceState::GoingAway as u32 => {
                "the previous process went away".into()
            }
            (Ok(s), Takeover::Stale) if s.attach_epoch != epoch => format!(
                "the state is of an earlier attachment (attach epoch {}, the region's is {epoch})",
                s.attach_epoch
            ),
            (Ok(_), Takeover::Stale) => "the region's states do not match the saved one".into(),
        };
        match decision {
            Takeover::Detached { acknowledge } => {
                log::warn!("not resuming: {why}; starting fresh");
                self.driver_attached = false;
                if acknowledge {
                    self.acknowledge_detach();
                }
            }
            // (Resume comes with a saved state, handled above.)
            Takeover::Resume | Takeover::Unseen => {
                log::warn!("not resuming: {why}; starting fresh, nothing was negotiated yet");
                self.driver_attached = false;
            }
            Takeover::Stale => {
                // Attached to an instance nobody has now: its requests would be dropped, its
                // PINGs answered, and it would never recover. Going away makes it remove
                // its devices and detach; then this process starts afresh.
                log::warn!(
                    "not resuming: {why}; starting fresh once the driver side has detached (device_state 2 until then)"
                );
                self.region.set_device_state(DeviceState::GoingAway);
                self.driver_attached = true;
                self.stale_attachment = true;
                self.ring_driver();
            }
        }
        self.link.drain_own();
        self.persist();
    }

    /// Resumes the instance the saved state describes: negotiated terms and devices, and
    /// the virtqueues (but not those of devices whose reset is waiting in the to-device
    /// ring: their driver may have freed them after giving up on the reset).
    fn resume(&mut self, saved: SavedState) {
        self.bus.restore(saved.terms, &saved.devices);
        self.driver_attached = saved.driver_attached;
        self.map_guest_memory();
        let hold = self.pending_resets();
        let mut out = Vec::new();
        self.bus.resume_queues(&hold, &mut out);
        log::info!(
            "resumed: driver side {} ({}), {} device(s) restored, to-device ring at {}, {} message(s) waiting, {} queue notification(s)",
            if self.driver_attached { "attached" } else { "detached" },
            self.client.map_or("not connected".to_string(), |c| format!("peer {c}")),
            saved.devices.len(),
            self.rx_next,
            self.region.to_device().pending_from(self.rx_next).unwrap_or(0),
            out.len()
        );
        self.enqueue_all(out);
        // Doorbells rung while no process listened are in the eventfds' counters.
        self.link.drain_own();
        self.persist();
    }

    /// The resets waiting in the to-device ring (every device if it cannot be read).
    fn pending_resets(&self) -> Hold {
        let ring = self.region.to_device();
        let Ok(n) = ring.pending_from(self.rx_next) else {
            return Hold {
                all: true,
                devices: Vec::new(),
            };
        };
        let mut messages = Vec::new();
        for i in 0..n {
            let mut buf = Vec::new();
            if let Ok(Some(Popped::Message)) = ring.peek_at(self.rx_next.wrapping_add(i), &mut buf)
            {
                messages.push(buf);
            }
        }
        self.bus.pending_resets(messages.iter().map(Vec::as_slice))
    }

    /// Writes the state file if the state changed.
    fn persist(&mut self) {
        let Some(file) = self.state.as_mut() else {
            return;
        };
        let (terms, devices) = self.bus.snapshot();
        let state = SavedState {
            version: STATE_VERSION,
            region_inode: self.region_inode,
            driver_attached: self.driver_attached,
            attach_epoch: self.region.attach_epoch(),
            terms,
            devices,
        };
        match file.save(&state) {
            Ok(()) => self.state_error_logged = false,
            Err(e) if !self.state_error_logged => {
                log::error!("{e}; a restarted process could not resume");
                self.state_error_logged = true;
            }
            Err(_) => {}
        }
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
                self.top_up_flood();
            }
            if self.bus.forget_expired(Instant::now()) {
                self.persist();
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
        for at in [self.bus.next_removal_deadline(), self.stalled_until]
            .into_iter()
            .flatten()
        {
            t = t.min(at.saturating_duration_since(now));
        }
        if !self.backlog.is_empty() && self.client.is_some() {
            t = t.min(FULL_RETRY);
        }
        if self.flood.is_some() {
            // Refill as soon as the driver side took anything: the ring stays full.
            t = Duration::ZERO;
        }
        t
    }

    /// Keeps the backlog at a ring's worth of spurious events while a flood lasts, so that the
    /// ring is full again as soon as the driver side took something.
    fn top_up_flood(&mut self) {
        let Some((dev, until, mut queued)) = self.flood else {
            return;
        };
        if Instant::now() >= until {
            log::info!("flood for device {dev} over: {queued} EVENT_USED queued");
            self.flood = None;
            return;
        }
        let slots = self.region.geometry().slot_count as usize;
        while self.backlog.len() < slots {
            match self.bus.spurious_event_used(dev) {
                Some(o) => self.backlog.push_back(o.bytes),
                None => {
                    self.flood = None;
                    return;
                }
            }
            queued += 1;
        }
        self.flood = Some((dev, until, queued));
    }

    fn wait(&self, timeout: Duration) -> Result<Vec<Source>, String> {
        let mut sources: Vec<(Source, BorrowedFd<'_>)> =
            vec![(Source::Signal, self.signals.as_fd())];
        match &self.link {
            Link::Serve(s) => {
                sources.push((Source::Listener, s.listener()));
                for peer in s.peers() {
                    sources.push((Source::Client(peer.id), peer.stream().as_fd()));
                }
            }
            Link::Peer(p) if !self.server_gone => {
                sources.push((Source::IvshmemServer, p.stream().as_fd()));
            }
            Link::Peer(_) => {}
        }
        for fd in self.link.own_eventfds() {
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
        let ms = if timeout.is_zero() {
            0
        } else {
            u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX)
        };
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
                let left = match &mut self.link {
                    Link::Serve(s) => s.handle_readable(id),
                    Link::Peer(_) => PeerEvent::Quiet,
                };
                if let PeerEvent::Left(id) = left {
                    self.client_left(id);
                }
            }
            Source::IvshmemServer => {
                let changes = match &mut self.link {
                    Link::Peer(p) => p.handle_readable(),
                    Link::Serve(_) => Vec::new(),
                };
                for change in changes {
                    match change {
                        PeerChange::Joined(id) if self.client.is_none() => self.client_joined(id),
                        PeerChange::Joined(id) => {
                            log::warn!(
                                "peer {id} joined while peer {:?} is the driver side; ignored",
                                self.client
                            );
                        }
                        PeerChange::Left(id) => self.client_left(id),
                        PeerChange::ServerGone => {
                            // The region and every eventfd are still ours: serving on beats
                            // taking the driver side's devices away.
                            log::error!("the ivshmem server went away; serving on, but a restart of this process will not be possible");
                            self.server_gone = true;
                        }
                    }
                }
            }
            Source::Doorbell => {
                self.link.drain_own();
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
        let Link::Serve(ivshmem) = &mut self.link else {
            return;
        };
        match ivshmem.accept() {
            Ok(Some(id)) => self.client_joined(id),
            Ok(None) => {}
            Err(e) => log::error!("{e}"),
        }
    }

    fn client_joined(&mut self, id: u16) {
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
        self.persist();
    }

    /// Maps guest RAM if it is configured and not mapped yet (at most once a second); in
    /// window mode, hands the devices the window instead.
    fn map_guest_memory(&mut self) {
        if let Some(window) = &self.window {
            if !self.mem_mapped {
                self.bus.set_guest_memory(Some(Arc::clone(window)));
                self.mem_mapped = true;
            }
            return;
        }
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
            self.region.initialise(u32::from(self.link.own_id()));
            self.rx_next = 0;
            self.rx_released = 0;
            self.persist();
        }
    }

    /// Forgets negotiation, resets devices, drops queued messages and corruption marks; ends
    /// a flood (it was for the driver side that was attached).
    fn reset_instance(&mut self) {
        self.bus.reset();
        self.backlog.clear();
        if let Some((dev, _, queued)) = self.flood.take() {
            log::info!("flood for device {dev} ended by the bus reset: {queued} EVENT_USED queued");
        }
        self.delayed.clear();
        self.to_device_corrupt = false;
        self.to_driver_corrupt = false;
        self.stale_attachment = false;
    }

    fn ring_driver(&self) {
        if let Some(id) = self.client {
            self.link.ring(id, DRIVER_VECTOR);
        }
    }

    fn check_driver_state(&mut self) {
        let state = self.region.driver_state();
        match (self.driver_attached, state) {
            (false, driver_state::ATTACHED) => {
                self.driver_attached = true;
                // A new attachment: a state saved before it is not this one's.
                let epoch = self.region.next_attach_epoch();
                log::info!("driver side attached (attach epoch {epoch})");
                self.persist();
                if self.region.device_state() == DeviceState::NotReady as u32 {
                    self.region.set_device_state(DeviceState::Ready);
                    self.ring_driver();
                }
            }
            (true, driver_state::DETACHED) => {
                self.driver_attached = false;
                log::info!("driver side detached: resetting the instance and both rings");
                self.reset_instance();
                self.acknowledge_detach();
                self.persist();
            }
            _ => {}
        }
    }

    /// Answers a detach: empties both rings, then stores device_state 0, or 1 if the
    /// driver side detached from a device side going away (device_state 2): such a driver
    /// side waits for device_state 1 before it attaches again.
    fn acknowledge_detach(&mut self) {
        let away = self.region.device_state() == DeviceState::GoingAway as u32;
        // Rings first: a driver side that sees device_state leave 1 may attach at once and
        // take the indices as it finds them.
        self.region.reset_rings();
        self.rx_next = 0;
        self.rx_released = 0;
        self.region.set_device_state(if away {
            DeviceState::Ready
        } else {
            DeviceState::NotReady
        });
        self.ring_driver();
    }

    /// Whether the `stall` fault holds the to-device ring; ends the stall once it is over.
    fn stalled(&mut self) -> bool {
        match self.stalled_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                log::warn!("fault stall: reading the to-device ring again");
                self.stalled_until = None;
                false
            }
            None => false,
        }
    }

    /// Drains the driver-to-device ring, then asks for a doorbell and rechecks.
    fn consume(&mut self) {
        if self.to_device_corrupt || self.stale_attachment || self.stalled() {
            return;
        }
        let ring = self.region.to_device();
        ring.set_wants_doorbell(false);
        let mut rx = std::mem::take(&mut self.rx);
        let result = loop {
            match ring.peek_at(self.rx_next, &mut rx) {
                Ok(Some(Popped::Message)) => {
                    self.rx_next = self.rx_next.wrapping_add(1);
                    self.handle_message(&rx);
                    if let Some(pause) = self.faults.received() {
                        // Busy, as far as the driver can tell: consumer_wants_doorbell
                        // stays 0 and the consumer index stops here.
                        log::warn!(
                            "fault stall: not reading the to-device ring for {} ms",
                            pause.as_millis()
                        );
                        self.stalled_until = Some(Instant::now() + pause);
                        break Ok(());
                    }
                }
                Ok(Some(Popped::BadSize(size))) => {
                    self.rx_next = self.rx_next.wrapping_add(1);
                    crate::limited!(
                        Warn,
                        "dropped slot with msg_size {size} (allowed 8..={})",
                        ring.slot_size()
                    );
                }
                Ok(None) => match ring.prepare_sleep_from(self.rx_next) {
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
        let (dev, notification) = match Header::peek(bytes) {
            Ok(h) if !h.is_bus() => (Some(h.dev_num.get()), h.msg_id == EVENT_AVAIL),
            _ => (None, false),
        };
        self.map_guest_memory();
        if let Verdict::Drop(why) = self.faults.incoming(dev) {
            log::debug!("fault {why}: message for {dev:?} dropped");
            return;
        }
        let mut out = Vec::new();
        let read =
            (!self.faults.is_empty()).then(|| self.read_for_faults(bytes, dev, notification));
        let hidden = read.and_then(|r| self.faults.late_add(r));
        match hidden {
            Some(d) => self.bus.handle_without(d, bytes, &mut out),
            None => self.bus.handle(bytes, &mut out),
        }
        if let Some(d) = hidden {
            log::warn!("fault late-add: device {d} left out of GET_DEVICES, announced added now");
            self.bus.announce_added(Some(d), &mut out);
        }
        // At the first kick: the driver side has devices up by then, so that the flood
        // reaches its device add/remove path rather than a bus still coming up.
        if notification && self.bus.negotiated().is_some() {
            if let Some(count) = self.faults.device_event_flood() {
                log::warn!("fault device-event-flood: {count} bogus EVENT_DEVICE pairs");
                self.bus.device_event_flood(count, &mut out);
            }
        }
        if let Some(read) = read {
            let actions = self.faults.after_read(read);
            self.act(actions, &mut out);
        }
        // Before the response is published: a successor must not see the answer without
        // the state change behind it. Notifications change nothing that is saved.
        if !notification {
            self.persist();
        }
        if out.iter().any(|o| o.response) {
            for (target, count) in self.faults.floods(dev) {
                self.bus.flood(target, count, &mut out);
            }
            if let (Some(d), count @ 1..) = (dev, self.faults.config_storm(dev)) {
                self.bus.config_storm(d, count, &mut out);
            }
        }
        self.enqueue_all(out);
    }

    /// What the faults that act of their own accord need to know of a message read.
    fn read_for_faults(&self, bytes: &[u8], dev: Option<u16>, notification: bool) -> FaultRead {
        let codec = self.bus.codec();
        let decoded = codec.decode(bytes).ok().map(|f| f.message);
        let kick = match decoded {
            Some(Message::Transport(TransportMessage::EventAvail { vq_index, .. }))
                if notification && self.bus.negotiated().is_some() =>
            {
                Some(vq_index)
            }
            _ => None,
        };
        let get_devices = matches!(
            decoded,
            Some(Message::Bus(BusMessage::GetDevicesRequest { .. }))
        );
        FaultRead {
            dev,
            kick,
            get_devices,
        }
    }

    /// Does what the faults say besides answering (`crate::fault::Actions`).
    fn act(&mut self, actions: Actions, out: &mut Vec<Outgoing>) {
        for _ in 0..actions.doorbells {
            self.ring_driver();
        }
        if actions.rewrite_header {
            log::warn!("fault header-rewrite: magic 0, slot_count 3, ring offsets past the region");
            self.rewrite_header();
        }
        if let Some((d, vq, how)) = actions.bad_used {
            match self.bus.corrupt_used(d, vq, how, out) {
                Ok(what) => log::warn!("fault bad-used: device {d} queue {vq}: {what}"),
                Err(e) => log::warn!("fault bad-used: device {d} queue {vq}: not done: {e}"),
            }
        }
        if actions.duplicate_adds {
            log::warn!("fault duplicate-add: every device announced added twice more");
            self.bus.announce_added(None, out);
            self.bus.announce_added(None, out);
        }
        for d in actions.flap {
            self.bus.flap(d, out);
        }
        for d in actions.remove {
            log::warn!("fault remove-during-add: removing device {d}");
            if let Err(e) = self.bus.remove_device(d, out) {
                log::warn!("fault remove-during-add: {e}");
            }
        }
    }

    /// `header-rewrite`: header fields the driver side checked at probe, made impossible
    /// (written through the file: the region's own accessors keep its layout).
    fn rewrite_header(&self) {
        use std::os::unix::fs::FileExt;
        let past = u32::try_from(self.region.geometry().region_size)
            .unwrap_or(u32::MAX)
            .saturating_add(0x1000);
        for (offset, value) in [
            (hdr::MAGIC, 0),
            (hdr::SLOT_COUNT, 3),
            (hdr::TO_DEVICE_OFFSET, past),
            (hdr::TO_DRIVER_OFFSET, past),
        ] {
            if let Err(e) = self
                .region
                .file()
                .write_all_at(&value.to_le_bytes(), offset as u64)
            {
                log::error!("fault header-rewrite: header at {offset:#x}: {e}");
            }
        }
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
        // Every response to the messages read so far is published: their slots can go.
        if self.backlog.is_empty() && self.rx_released != self.rx_next {
            self.region.to_device().release_to(self.rx_next);
            self.rx_released = self.rx_next;
        }
        if self.backlog.is_empty() && self.faults.consumer_corruption_due() {
            // Ahead of the producer: a count no correct producer accepts. This side stops
            // reading the ring, as it would for a corrupt one, until the driver detaches.
            let ring = self.region.to_device();
            let bad = ring.producer().wrapping_add(5);
            log::warn!(
                "fault corrupt-consumer: to-device consumer index {bad}, 5 past the producer"
            );
            ring.release_to(bad);
            self.to_device_corrupt = true;
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
            Command::Remove(n) => match self.bus.remove_device(n, &mut out) {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            },
            Command::Inject(n, data) => match self.bus.inject(n, &data, &mut out) {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            },
            Command::Flood(n, how_long) => match self.bus.device(n) {
                Some(_) => {
                    log::info!(
                        "flooding the driver side with EVENT_USED for device {n} for {} ms",
                        how_long.as_millis()
                    );
                    self.flood = Some((n, Instant::now() + how_long, 0));
                    "ok".into()
                }
                None => format!("error no device {n}"),
            },
            Command::Stall(how_long) => {
                log::warn!(
                    "stall (control): not reading the to-device ring for {} ms",
                    how_long.as_millis()
                );
                self.stalled_until = Some(Instant::now() + how_long);
                "ok".into()
            }
            Command::List => {
                let list: Vec<String> = self
                    .bus
                    .device_numbers()
                    .into_iter()
                    .filter_map(|n| {
                        let removed = if self.bus.is_removed(n) {
                            "(removed)"
                        } else {
                            ""
                        };
                        self.bus
                            .device(n)
                            .map(|d| format!("{n}:{}{removed}", d.device().name()))
                    })
                    .collect();
                format!("ok {}", list.join(" "))
            }
        };
        self.enqueue_all(out);
        self.persist();
        answer
    }

    /// Announces the removal of every device and `device_state = 2`, and waits (bounded)
    /// for the driver side to read the announcements.
    fn shutdown(&mut self) {
        log::info!("shutting down");
        // Going away ends the instance: a successor must not resume it (the driver side
        // removes its devices, frees their queues and detaches). First, so that a process
        // killed while it shuts down leaves nothing to resume either.
        if let Some(mut file) = self.state.take() {
            match file.invalidate() {
                Ok(()) => log::info!(
                    "state file {} removed: a successor starts fresh",
                    file.path().display()
                ),
                Err(e) => log::error!("{e}; a successor may try to resume a gone instance"),
            }
        }
        for (seed, seen, mutated) in self.faults.fuzz_counts() {
            log::warn!("fuzz seed {seed}: {mutated} of {seen} messages mutated");
        }
        if let Some(mut rewriter) = self.rewriter.take() {
            let flips = rewriter.stop();
            log::warn!("fault slot-rewrite: {flips} byte(s) flipped while their message waited");
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_READY: u32 = DeviceState::NotReady as u32;
    const READY: u32 = DeviceState::Ready as u32;
    const AWAY: u32 = DeviceState::GoingAway as u32;

    fn saved(driver_attached: bool, attach_epoch: u32) -> SavedState {
        SavedState {
            version: STATE_VERSION,
            driver_attached,
            attach_epoch,
            ..SavedState::default()
        }
    }

    #[test]
    fn only_the_attachment_the_state_describes_is_resumed() {
        let attached = saved(true, 4);
        assert_eq!(takeover(1, READY, 4, Some(&attached)), Takeover::Resume);
        // Attached anew since (another process took note of it), or the state lost.
        assert_eq!(takeover(1, READY, 5, Some(&attached)), Takeover::Stale);
        assert_eq!(takeover(1, READY, 4, None), Takeover::Stale);
        // The previous process went away, or driver_state makes no sense.
        assert_eq!(takeover(1, AWAY, 4, Some(&attached)), Takeover::Stale);
        assert_eq!(takeover(7, READY, 4, Some(&attached)), Takeover::Stale);
        // An attach nobody took note of yet, or one waiting for its answer.
        assert_eq!(
            takeover(1, READY, 4, Some(&saved(false, 4))),
            Takeover::Unseen
        );
        assert_eq!(takeover(1, NOT_READY, 4, Some(&attached)), Takeover::Unseen);
    }

    #[test]
    fn a_detached_driver_side_is_answered_unless_it_never_attached() {
        let ack = Takeover::Detached { acknowledge: true };
        let quiet = Takeover::Detached { acknowledge: false };
        for state in [None, Some(saved(true, 1)), Some(saved(false, 1))] {
            assert_eq!(takeover(0, AWAY, 1, state.as_ref()), ack, "{state:?}");
            assert_eq!(takeover(0, NOT_READY, 1, state.as_ref()), ack, "{state:?}");
        }
        assert_eq!(takeover(0, READY, 1, Some(&saved(true, 1))), ack);
        assert_eq!(takeover(0, READY, 1, Some(&saved(false, 1))), quiet);
        assert_eq!(takeover(0, READY, 1, None), quiet);
    }
}
