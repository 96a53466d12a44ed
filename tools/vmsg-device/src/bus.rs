// SPDX-License-Identifier: GPL-2.0

//! The bus instance: VERSION and RESET (this bus's messages), GET_DEVICES, PING and
//! EVENT_DEVICE (generic bus messages), and routing of transport messages to devices by
//! `dev_num`.
//!
//! A device removed while a driver is negotiated is announced (EVENT_DEVICE removed) but
//! still served until the driver resets it (SET_DEVICE_STATUS 0), the instance is reset,
//! or the grace period ends: the driver's removal of a device needs the device, for the
//! I/O in flight and for the reset itself (Documentation/shm-bus.rst, "Hot removal").

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_msg_codec::bus::{BusMessage, DeviceState};
use virtio_msg_codec::shm::{ShmBusMessage, VersionStatus, VersionTerms};
use virtio_msg_codec::transport::{DeviceInfo, TransportMessage};
use virtio_msg_codec::{
    negotiate_max_msg_size, BusKind, Codec, Frame, Layout, Message, HEADER_SIZE,
    TRANSPORT_F_STRICT_CONFIG_GENERATION,
};

use crate::devices::GuestMemory;
use crate::ratelimit::RateLimiter;
use crate::state::{SavedDevice, SavedTerms};
use crate::transport::{Ctx, TransportDevice};

/// The lowest device number `device-event-flood` announces for a device that is not there.
const PHANTOM_DEVICE: u16 = 7;
/// Bytes of a GET_DEVICES response before its bitmap.
const GET_DEVICES_FIXED: usize = HEADER_SIZE + 6;

/// How the bus instance negotiates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Revisions VERSION accepts.
    pub accepted_revisions: Vec<u32>,
    /// This side's maximum message size.
    pub max_msg_size: u16,
    /// Transport feature bits this side supports.
    pub transport_features: u64,
    /// Window mode: every device offers and requires VIRTIO_F_ACCESS_PLATFORM.
    pub access_platform: bool,
    /// How long a removed device is served at most while its driver does not reset it.
    pub removal_grace: Duration,
}

/// Terms in force after VERSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Transport revision.
    pub revision: u32,
    /// Agreed maximum message size.
    pub max_msg_size: u16,
    /// Accepted transport features.
    pub features: u64,
}

/// An encoded message for the driver side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Device it concerns (`None` for bus messages).
    pub dev: Option<u16>,
    /// Whether it answers a request (as opposed to an event).
    pub response: bool,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Encodes `frame` with `codec`; logs and returns `None` if it cannot be.
pub fn encode(codec: &Codec, frame: &Frame<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; usize::from(codec.max_msg_size)];
    match codec.encode(frame, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(e) => {
            log::error!("cannot encode {:?}: {e:?}", frame.message);
            None
        }
    }
}

/// Devices whose queues a resumed process leaves alone: see [`Bus::pending_resets`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Every device (a bus RESET is pending, or the pending messages cannot be read).
    pub all: bool,
    /// These devices.
    pub devices: Vec<u16>,
}

impl Hold {
    /// Whether device `dev_num` is held.
    pub fn holds(&self, dev_num: u16) -> bool {
        self.all || self.devices.contains(&dev_num)
    }
}

/// The bus instance and its devices.
pub struct Bus {
    config: BusConfig,
    negotiated: Option<Negotiated>,
    devices: BTreeMap<u16, TransportDevice>,
    /// Devices announced removed but still served, with the time they are forgotten at
    /// the latest. Their numbers stay taken until then.
    removed: BTreeMap<u16, Instant>,
    mem: Option<Arc<GuestMemory>>,
    bad_input: RateLimiter,
}

impl Bus {
    /// An instance with no devices and nothing negotiated.
    pub fn new(config: BusConfig) -> Self {
        Self {
            config,
            negotiated: None,
            devices: BTreeMap::new(),
            removed: BTreeMap::new(),
            mem: None,
            bad_input: RateLimiter::new(Duration::from_secs(5), 10),
        }
    }

    /// The terms in force, if VERSION was accepted.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    /// The codec for the current state: the agreed size after VERSION, this side's limit
    /// before it.
    pub fn codec(&self) -> Codec {
        Codec {
            bus: BusKind::SharedMemory,
            layout: Layout::Revision1,
            max_msg_size: self
                .negotiated
                .map_or(self.config.max_msg_size, |n| n.max_msg_size),
        }
    }

    /// Sets or clears the guest RAM mapping.
    pub fn set_guest_memory(&mut self, mem: Option<Arc<GuestMemory>>) {
        self.mem = mem;
    }

    /// Device numbers in use (removed ones still served included), in order.
    pub fn device_numbers(&self) -> Vec<u16> {
        self.devices.keys().copied().collect()
    }

    /// Whether device `dev_num` was removed and is served only until its driver resets it.
    pub fn is_removed(&self, dev_num: u16) -> bool {
        self.removed.contains_key(&dev_num)
    }

    /// Numbers of the devices present, i.e. not removed, in order.
    fn present(&self) -> impl Iterator<Item = u16> + '_ {
        self.devices
            .keys()
            .copied()
            .filter(|n| !self.removed.contains_key(n))
    }

    /// A device by number.
    pub fn device(&self, dev_num: u16) -> Option<&TransportDevice> {
        self.devices.get(&dev_num)
    }

    /// Forgets the negotiated terms and the removed devices, and resets every other device
    /// (RESET, or the driver left).
    pub fn reset(&mut self) {
        if self.negotiated.take().is_some() {
            log::info!("bus instance reset");
        }
        let removed: Vec<u16> = self.removed.keys().copied().collect();
        for n in removed {
            self.forget(n, "the bus instance was reset");
        }
        for dev in self.devices.values_mut() {
            dev.reset();
        }
    }

    /// The negotiated terms and every device's transport state, for the state file.
    pub fn snapshot(&self) -> (Option<SavedTerms>, Vec<SavedDevice>) {
        let terms = self.negotiated.map(|n| SavedTerms {
            revision: n.revision,
            max_msg_size: n.max_msg_size,
            features: n.features,
        });
        let devices = self
            .devices
            .iter()
            .map(|(n, d)| SavedDevice {
                removed: self.is_removed(*n),
                ..d.snapshot(*n)
            })
            .collect();
        (terms, devices)
    }

    /// Takes over what a previous process saved. A device that cannot be restored (not
    /// configured any more, or of another class) is logged and left reset. A device that
    /// was announced removed stays removed, with a new grace period, and its queues are
    /// never touched again ([`TransportDevice::quiesce`]): while no process served it,
    /// its driver may have finished the removal and freed them.
    pub fn restore(&mut self, terms: Option<SavedTerms>, devices: &[SavedDevice]) {
        self.negotiated = terms.and_then(|t| {
            let ok = self.config.accepted_revisions.contains(&t.revision)
                && t.max_msg_size <= self.config.max_msg_size;
            if !ok {
                log::error!("saved terms {t:?} are not acceptable with this configuration");
            }
            ok.then_some(Negotiated {
                revision: t.revision,
                max_msg_size: t.max_msg_size,
                features: t.features & self.config.transport_features,
            })
        });
        for saved in devices {
            match self.devices.get_mut(&saved.dev_num) {
                Some(dev) => {
                    if let Err(e) = dev.restore(saved) {
                        log::error!("not resuming device {}: {e}", saved.dev_num);
                        dev.reset();
                    }
                    if saved.removed {
                        log::info!(
                            "device {}: removed before the restart; served until the driver resets it, its queues no longer",
                            saved.dev_num
                        );
                        dev.quiesce();
                        self.removed
                            .insert(saved.dev_num, Instant::now() + self.config.removal_grace);
                    }
                }
                None => log::error!(
                    "saved device {} ({}) is not configured; the driver will find it broken",
                    saved.dev_num,
                    saved.kind
                ),
            }
        }
    }

    /// After [`Bus::restore`], with guest memory mapped: resumes every device's queues,
    /// except those of the devices `hold` names, which are quiesced instead (their reset
    /// waits in the to-device ring: their driver may have given them up).
    pub fn resume_queues(&mut self, hold: &Hold, out: &mut Vec<Outgoing>) {
        let Some(mem) = self.mem.clone() else {
            log::warn!("guest memory is not mapped: virtqueues are not resumed");
            return;
        };
        let codec = self.codec();
        for (&n, dev) in self.devices.iter_mut() {
            if hold.holds(n) {
                log::info!("device {n}: its reset is pending; its queues are not resumed");
                dev.quiesce();
                continue;
            }
            dev.resume(&mem, |m| push_transport(&codec, n, 0, m, out));
        }
    }

    /// Which devices the messages waiting in the to-device ring reset (`pending` yields
    /// them in order): SET_DEVICE_STATUS 0 for a device, RESET for all of them.
    pub fn pending_resets<'a>(&self, pending: impl IntoIterator<Item = &'a [u8]>) -> Hold {
        let codec = self.codec();
        let mut hold = Hold::default();
        for bytes in pending {
            match codec.decode(bytes).map(|f| (f.dev_num, f.message)) {
                Ok((_, Message::Shm(ShmBusMessage::ResetRequest))) => hold.all = true,
                Ok((
                    n,
                    Message::Transport(TransportMessage::SetDeviceStatusRequest { status: 0 }),
                )) => {
                    hold.devices.push(n);
                }
                _ => {}
            }
        }
        hold
    }

    fn event(&self, message: Message<'_>, out: &mut Vec<Outgoing>) {
        if let Some(bytes) = encode(&self.codec(), &Frame::bus(0, message)) {
            out.push(Outgoing {
                dev: None,
                response: false,
                bytes,
            });
        }
    }

    fn device_event(&self, dev_num: u16, state: DeviceState, out: &mut Vec<Outgoing>) {
        self.event(
            Message::Bus(BusMessage::EventDevice { dev_num, state }),
            out,
        );
    }

    /// Adds a device at the lowest free number, announcing it if a driver negotiated.
    pub fn add_device(&mut self, mut dev: TransportDevice, out: &mut Vec<Outgoing>) -> Option<u16> {
        let n = (0..=u16::MAX).find(|n| !self.devices.contains_key(n))?;
        dev.set_access_platform(self.config.access_platform);
        log::info!("device {n}: {} added", dev.device().name());
        self.devices.insert(n, dev);
        if self.negotiated.is_some() {
            self.device_event(n, DeviceState::Added, out);
        }
        Some(n)
    }

    /// Removes device `dev_num`. Without a negotiated driver it is forgotten at once;
    /// otherwise it is announced removed and served until its driver resets it, the
    /// instance is reset, or the grace period has passed ([`Bus::forget_expired`]).
    pub fn remove_device(&mut self, dev_num: u16, out: &mut Vec<Outgoing>) -> Result<(), String> {
        let Some(dev) = self.devices.get(&dev_num) else {
            return Err(format!("no device {dev_num}"));
        };
        if self.is_removed(dev_num) {
            return Err(format!(
                "device {dev_num} is already removed (served until the driver resets it)"
            ));
        }
        if self.negotiated.is_none() {
            log::info!("device {dev_num}: {} removed", dev.device().name());
            self.devices.remove(&dev_num);
            return Ok(());
        }
        log::info!(
            "device {dev_num}: {} removed; served until the driver resets it, at most {} ms",
            dev.device().name(),
            self.config.removal_grace.as_millis()
        );
        self.removed
            .insert(dev_num, Instant::now() + self.config.removal_grace);
        self.device_event(dev_num, DeviceState::Removed, out);
        Ok(())
    }

    /// Forgets removed device `dev_num`: its number is free again.
    fn forget(&mut self, dev_num: u16, why: &str) {
        self.removed.remove(&dev_num);
        if let Some(dev) = self.devices.remove(&dev_num) {
            log::info!(
                "device {dev_num}: removed {} forgotten: {why}",
                dev.device().name()
            );
        }
    }

    /// Forgets the removed devices whose grace period ended by `now`; returns whether there
    /// were any.
    pub fn forget_expired(&mut self, now: Instant) -> bool {
        let expired: Vec<u16> = self
            .removed
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        for &n in &expired {
            self.forget(n, "the driver did not reset it within the grace period");
        }
        !expired.is_empty()
    }

    /// When the next removed device is forgotten unless its driver resets it first.
    pub fn next_removal_deadline(&self) -> Option<Instant> {
        self.removed.values().min().copied()
    }

    /// Announces the removal of every device not announced yet (shutdown), if a driver
    /// negotiated.
    pub fn announce_removal(&self, out: &mut Vec<Outgoing>) {
        if self.negotiated.is_none() {
            return;
        }
        for n in self.present() {
            self.device_event(n, DeviceState::Removed, out);
        }
    }

    /// Fault injection: `count` EVENT_USED for queue 0 of `dev` (every device if `None`).
    pub fn flood(&self, dev: Option<u16>, count: u32, out: &mut Vec<Outgoing>) {
        let codec = self.codec();
        for (&n, _) in self
            .devices
            .iter()
            .filter(|(n, _)| dev.is_none_or(|d| d == **n))
        {
            let frame = Frame::transport(n, TransportMessage::EventUsed { vq_index: 0 });
            if let Some(bytes) = encode(&codec, &frame) {
                for _ in 0..count {
                    out.push(Outgoing {
                        dev: Some(n),
                        response: false,
                        bytes: bytes.clone(),
                    });
                }
            }
        }
    }

    /// Fault injection: `count` EVENT_DEVICE alternately added and removed for a number no
    /// device has (the lowest from [`PHANTOM_DEVICE`] up), each followed by one for the first
    /// device present, alternately removed and added. Nothing changes on this side.
    pub fn device_event_flood(&self, count: u32, out: &mut Vec<Outgoing>) {
        let phantom = (PHANTOM_DEVICE..=u16::MAX).find(|n| !self.devices.contains_key(n));
        let first = self.present().next();
        for i in 0..count {
            let (phantom_state, first_state) = if i % 2 == 0 {
                (DeviceState::Added, DeviceState::Removed)
            } else {
                (DeviceState::Removed, DeviceState::Added)
            };
            for (dev_num, state) in [(phantom, phantom_state), (first, first_state)] {
                if let Some(n) = dev_num {
                    self.device_event(n, state, out);
                }
            }
        }
    }

    /// Fault injection: EVENT_DEVICE added for `only`, or for every device present.
    pub fn announce_added(&self, only: Option<u16>, out: &mut Vec<Outgoing>) {
        for n in self.present().filter(|n| only.is_none_or(|o| o == *n)) {
            self.device_event(n, DeviceState::Added, out);
        }
    }

    /// Fault injection (`late-add`): handles `msg` as if device `hidden` were not there
    /// (a GET_DEVICES answer leaves it out); afterwards it is there as before.
    pub fn handle_without(&mut self, hidden: u16, msg: &[u8], out: &mut Vec<Outgoing>) {
        let far = Instant::now() + Duration::from_secs(3600);
        let was = self.removed.insert(hidden, far);
        self.handle(msg, out);
        match was {
            Some(deadline) => self.removed.insert(hidden, deadline),
            None => self.removed.remove(&hidden),
        };
    }

    /// Fault injection: EVENT_DEVICE removed, then added, for `dev_num`; nothing changes on
    /// this side.
    pub fn flap(&self, dev_num: u16, out: &mut Vec<Outgoing>) {
        self.device_event(dev_num, DeviceState::Removed, out);
        self.device_event(dev_num, DeviceState::Added, out);
    }

    /// Fault injection: `count` EVENT_CONFIG for `dev_num`, its config unchanged.
    pub fn config_storm(&self, dev_num: u16, count: u32, out: &mut Vec<Outgoing>) {
        let Some(dev) = self.devices.get(&dev_num) else {
            return;
        };
        let frame = Frame::transport(dev_num, dev.config_event());
        if let Some(bytes) = encode(&self.codec(), &frame) {
            for _ in 0..count {
                out.push(Outgoing {
                    dev: Some(dev_num),
                    response: false,
                    bytes: bytes.clone(),
                });
            }
        }
    }

    /// Fault injection: corrupts queue `vq` of `dev_num`'s used ring (see
    /// [`TransportDevice::corrupt_used`]) and signals the queue; returns what was written.
    pub fn corrupt_used(
        &mut self,
        dev_num: u16,
        vq: u32,
        how: crate::fault::UsedFault,
        out: &mut Vec<Outgoing>,
    ) -> Result<String, String> {
        let mem = self.mem.clone().ok_or("no guest memory mapped")?;
        let dev = self
            .devices
            .get_mut(&dev_num)
            .ok_or_else(|| format!("no device {dev_num}"))?;
        let what = dev.corrupt_used(vq as usize, &mem, how)?;
        let frame = Frame::transport(dev_num, TransportMessage::EventUsed { vq_index: vq });
        if let Some(bytes) = encode(&self.codec(), &frame) {
            out.push(Outgoing {
                dev: Some(dev_num),
                response: false,
                bytes,
            });
        }
        Ok(what)
    }

    fn ctx(mem: Option<&Arc<GuestMemory>>, negotiated: Option<Negotiated>, max: u16) -> Ctx<'_> {
        Ctx {
            mem: mem.map(|m| m.as_ref()),
            max_msg_size: negotiated.map_or(max, |n| n.max_msg_size),
            strict_generation: negotiated
                .is_some_and(|n| n.features & TRANSPORT_F_STRICT_CONFIG_GENERATION != 0),
        }
    }

    /// Injects host data into device `dev_num`.
    pub fn inject(
        &mut self,
        dev_num: u16,
        data: &[u8],
        out: &mut Vec<Outgoing>,
    ) -> Result<(), String> {
        let codec = self.codec();
        let ctx = Self::ctx(self.mem.as_ref(), self.negotiated, self.config.max_msg_size);
        let dev = self
            .devices
            .get_mut(&dev_num)
            .ok_or_else(|| format!("no device {dev_num}"))?;
        dev.inject(data, &ctx, |m| push_transport(&codec, dev_num, 0, m, out))
            .map_err(|e| e.to_string())
    }

    /// A spurious EVENT_USED (queue 0) for device `dev_num`: harmless to a driver, which finds
    /// nothing new in the used ring. `None` if there is no such device.
    pub fn spurious_event_used(&self, dev_num: u16) -> Option<Outgoing> {
        self.devices.get(&dev_num)?;
        let mut out = Vec::new();
        push_transport(
            &self.codec(),
            dev_num,
            0,
            TransportMessage::EventUsed { vq_index: 0 },
            &mut out,
        );
        out.pop()
    }

    /// Host input fds of the devices that have one.
    pub fn input_fds(&self) -> Vec<(u16, BorrowedFd<'_>)> {
        self.devices
            .iter()
            .filter_map(|(n, d)| d.input_fd().map(|fd| (*n, fd)))
            .collect()
    }

    /// Reads device `dev_num`'s host input; returns false once it has ended.
    pub fn poll_input(&mut self, dev_num: u16, out: &mut Vec<Outgoing>) -> bool {
        let codec = self.codec();
        let ctx = Self::ctx(self.mem.as_ref(), self.negotiated, self.config.max_msg_size);
        match self.devices.get_mut(&dev_num) {
            Some(dev) => dev.poll_input(&ctx, |m| push_transport(&codec, dev_num, 0, m, out)),
            None => false,
        }
    }

    fn drop_bad(&mut self, why: std::fmt::Arguments<'_>) {
        self.bad_input
            .log(log::Level::Warn, format_args!("dropped message: {why}"));
    }

    fn respond(&self, token: u16, message: Message<'_>, out: &mut Vec<Outgoing>) {
        if let Some(bytes) = encode(&self.codec(), &Frame::bus(token, message)) {
            out.push(Outgoing {
                dev: None,
                response: true,
                bytes,
            });
        }
    }

    fn version(&mut self, proposal: VersionTerms, token: u16, out: &mut Vec<Outgoing>) {
        let ours = u32::from(self.config.max_msg_size);
        let (terms, status) = if let Some(n) = self.negotiated {
            (
                VersionTerms {
                    revision: n.revision,
                    max_msg_size: u32::from(n.max_msg_size),
                    features: n.features,
                },
                VersionStatus::AlreadyNegotiated,
            )
        } else if !self.config.accepted_revisions.contains(&proposal.revision) {
            (
                VersionTerms {
                    revision: proposal.revision,
                    max_msg_size: ours,
                    features: 0,
                },
                VersionStatus::RevisionUnsupported,
            )
        } else {
            match negotiate_max_msg_size(proposal.revision, ours, proposal.max_msg_size) {
                None => (
                    VersionTerms {
                        revision: proposal.revision,
                        max_msg_size: ours.min(proposal.max_msg_size),
                        features: 0,
                    },
                    VersionStatus::SizeUnsupported,
                ),
                Some(size) => {
                    let n = Negotiated {
                        revision: proposal.revision,
                        max_msg_size: size,
                        features: proposal.features & self.config.transport_features,
                    };
                    log::info!(
                        "negotiated revision {}, max message size {}, features {:#x}",
                        n.revision,
                        n.max_msg_size,
                        n.features
                    );
                    // The response already uses the agreed size, which is at least the
                    // 28 bytes it needs.
                    self.negotiated = Some(n);
                    (
                        VersionTerms {
                            revision: n.revision,
                            max_msg_size: u32::from(n.max_msg_size),
                            features: n.features,
                        },
                        VersionStatus::Accepted,
                    )
                }
            }
        };
        if status != VersionStatus::Accepted {
            log::warn!(
                "VERSION revision {} max {} refused: {status:?}",
                proposal.revision,
                proposal.max_msg_size
            );
        }
        self.respond(
            token,
            Message::Shm(ShmBusMessage::VersionResponse { terms, status }),
            out,
        );
    }

    fn get_devices(&self, offset: u16, count: u16, token: u16, out: &mut Vec<Outgoing>) {
        let room = usize::from(self.codec().max_msg_size).saturating_sub(GET_DEVICES_FIXED);
        let count = u32::from(count).min(u32::try_from(room * 8).unwrap_or(u32::MAX)) & !7;
        let mut bitmap = vec![0u8; (count / 8) as usize];
        for n in self.present() {
            let Some(rel) = u32::from(n).checked_sub(u32::from(offset)) else {
                continue;
            };
            if rel >= count {
                break;
            }
            bitmap[(rel / 8) as usize] |= 1 << (rel % 8);
        }
        let end = u32::from(offset) + count;
        let next_offset = match u16::try_from(end) {
            Ok(end) if count > 0 && self.present().any(|n| n >= end) => end,
            _ => 0,
        };
        self.respond(
            token,
            Message::Bus(BusMessage::GetDevicesResponse {
                offset,
                next_offset,
                bitmap: &bitmap,
            }),
            out,
        );
    }

    /// Handles one message from the driver side, appending responses and events to `out`.
    pub fn handle(&mut self, msg: &[u8], out: &mut Vec<Outgoing>) {
        let codec = self.codec();
        let frame = match codec.decode(msg) {
            Ok(f) => f,
            Err(e) => {
                let head: Vec<u8> = msg.iter().take(8).copied().collect();
                self.drop_bad(format_args!("{e:?} (header {head:02x?})"));
                return;
            }
        };
        if frame.message.is_response() {
            self.drop_bad(format_args!(
                "response {:#04x} from the driver side",
                frame.message.msg_id()
            ));
            return;
        }
        let token = frame.token;
        match frame.message {
            Message::Shm(ShmBusMessage::VersionRequest(terms)) => self.version(terms, token, out),
            Message::Shm(ShmBusMessage::ResetRequest) => {
                self.reset();
                self.respond(
                    token,
                    Message::Shm(ShmBusMessage::ResetResponse { status: 0 }),
                    out,
                );
            }
            Message::Bus(BusMessage::GetDevicesRequest { offset, count }) => {
                self.get_devices(offset, count, token, out)
            }
            Message::Bus(BusMessage::PingRequest { data }) => {
                self.respond(token, Message::Bus(BusMessage::PingResponse { data }), out)
            }
            Message::Transport(m) => self.transport(frame.dev_num, token, &m, out),
            other => self.drop_bad(format_args!(
                "unexpected bus message {:#04x}",
                other.msg_id()
            )),
        }
    }

    fn transport(
        &mut self,
        dev_num: u16,
        token: u16,
        m: &TransportMessage<'_>,
        out: &mut Vec<Outgoing>,
    ) {
        if self.negotiated.is_none() {
            self.drop_bad(format_args!(
                "transport message {:#04x} for device {dev_num} before VERSION",
                m.msg_id()
            ));
            return;
        }
        let codec = self.codec();
        let ctx = Self::ctx(self.mem.as_ref(), self.negotiated, self.config.max_msg_size);
        match self.devices.get_mut(&dev_num) {
            Some(dev) => {
                dev.handle(m, &ctx, |reply| {
                    push_transport(&codec, dev_num, token, reply, out)
                });
                let reset = matches!(m, TransportMessage::SetDeviceStatusRequest { status: 0 });
                if reset && self.is_removed(dev_num) {
                    self.forget(dev_num, "the driver reset it");
                }
            }
            None if matches!(m, TransportMessage::GetDeviceInfoRequest) => {
                // Device id 0 says "no device here".
                let reply = TransportMessage::GetDeviceInfoResponse(DeviceInfo::default());
                push_transport(&codec, dev_num, token, reply, out);
            }
            None => self.drop_bad(format_args!(
                "transport message {:#04x} for missing device {dev_num}",
                m.msg_id()
            )),
        }
    }
}

/// Encodes a transport message for `dev_num`: responses carry `token`, events 0.
fn push_transport(
    codec: &Codec,
    dev_num: u16,
    token: u16,
    m: TransportMessage<'_>,
    out: &mut Vec<Outgoing>,
) {
    let response = m.is_response();
    let frame = Frame {
        dev_num,
        token: if response { token } else { 0 },
        message: Message::Transport(m),
    };
    if let Some(bytes) = encode(codec, &frame) {
        out.push(Outgoing {
            dev: Some(dev_num),
            response,
            bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::rng::Rng;
    use virtio_msg_codec::bus::present_devices;

    fn bus(devices: usize) -> Bus {
        let mut b = Bus::new(BusConfig {
            accepted_revisions: vec![1],
            max_msg_size: 264,
            transport_features: TRANSPORT_F_STRICT_CONFIG_GENERATION,
            access_platform: false,
            removal_grace: Duration::from_secs(30),
        });
        let mut out = Vec::new();
        for _ in 0..devices {
            let dev = TransportDevice::new(Box::new(Rng::new(None).unwrap())).unwrap();
            b.add_device(dev, &mut out);
        }
        assert!(out.is_empty(), "no events before VERSION");
        b
    }

    fn request(token: u16, dev_num: u16, message: Message<'_>) -> Vec<u8> {
        encode(
            &Codec::new(BusKind::SharedMemory),
            &Frame {
                dev_num,
                token,
                message,
            },
        )
        .unwrap()
    }

    fn version(revision: u32, max: u32, features: u64) -> Vec<u8> {
        request(
            7,
            0,
            Message::Shm(ShmBusMessage::VersionRequest(VersionTerms {
                revision,
                max_msg_size: max,
                features,
            })),
        )
    }

    /// Runs `msg` and decodes every output message with a permissive codec.
    fn exchange(b: &mut Bus, msg: &[u8]) -> Vec<(u16, u16, String)> {
        let mut out = Vec::new();
        b.handle(msg, &mut out);
        let codec = Codec::new(BusKind::SharedMemory);
        out.iter()
            .map(|o| {
                let f = codec.decode(&o.bytes).unwrap();
                (f.dev_num, f.token, format!("{:?}", f.message))
            })
            .collect()
    }

    fn version_status(b: &mut Bus, msg: &[u8]) -> (VersionTerms, VersionStatus) {
        let mut out = Vec::new();
        b.handle(msg, &mut out);
        assert_eq!(out.len(), 1);
        match Codec::new(BusKind::SharedMemory)
            .decode(&out[0].bytes)
            .unwrap()
        {
            Frame {
                token: 7,
                message: Message::Shm(ShmBusMessage::VersionResponse { terms, status }),
                ..
            } => (terms, status),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_accepts_and_takes_the_smaller_size() {
        let mut b = bus(0);
        let (terms, status) = version_status(&mut b, &version(1, 1000, 0b11));
        assert_eq!(status, VersionStatus::Accepted);
        assert_eq!(
            terms,
            VersionTerms {
                revision: 1,
                max_msg_size: 264,
                features: 1
            }
        );
        assert_eq!(b.codec().max_msg_size, 264);
        let mut b = bus(0);
        let (terms, _) = version_status(&mut b, &version(1, 100, 0));
        assert_eq!(terms.max_msg_size, 100);
        assert_eq!(b.negotiated().unwrap().max_msg_size, 100);
    }

    #[test]
    fn version_refusals() {
        let mut b = bus(0);
        assert_eq!(
            version_status(&mut b, &version(2, 264, 0)).1,
            VersionStatus::RevisionUnsupported
        );
        assert_eq!(
            version_status(&mut b, &version(1, 51, 0)).1,
            VersionStatus::SizeUnsupported
        );
        assert!(b.negotiated().is_none());
        assert_eq!(
            version_status(&mut b, &version(1, 52, 0)).1,
            VersionStatus::Accepted
        );
        let (terms, status) = version_status(&mut b, &version(1, 264, 0));
        assert_eq!(status, VersionStatus::AlreadyNegotiated);
        assert_eq!(terms.max_msg_size, 52, "the terms in force are reported");
        // RESET lets a new proposal through.
        let out = exchange(
            &mut b,
            &request(9, 0, Message::Shm(ShmBusMessage::ResetRequest)),
        );
        assert_eq!(
            out,
            vec![(0, 9, "Shm(ResetResponse { status: 0 })".to_string())]
        );
        assert_eq!(
            version_status(&mut b, &version(1, 264, 0)).1,
            VersionStatus::Accepted
        );
    }

    #[test]
    fn configured_revisions_only() {
        let mut b = bus(0);
        b.config.accepted_revisions.clear();
        assert_eq!(
            version_status(&mut b, &version(1, 264, 0)).1,
            VersionStatus::RevisionUnsupported
        );
    }

    #[test]
    fn late_add_hides_a_device_from_one_get_devices_only() {
        let mut b = bus(3);
        let get = request(
            3,
            0,
            Message::Bus(BusMessage::GetDevicesRequest {
                offset: 0,
                count: 8,
            }),
        );
        let codec = Codec::new(BusKind::SharedMemory);
        let bitmap = |out: &[Outgoing]| match codec.decode(&out[0].bytes).unwrap().message {
            Message::Bus(BusMessage::GetDevicesResponse { bitmap, .. }) => bitmap.to_vec(),
            other => panic!("{other:?}"),
        };
        let mut out = Vec::new();
        b.handle_without(1, &get, &mut out);
        assert_eq!(bitmap(&out), vec![0b101]);
        let mut out = Vec::new();
        b.handle(&get, &mut out);
        assert_eq!(bitmap(&out), vec![0b111]);
        assert!(!b.is_removed(1));
    }

    #[test]
    fn get_devices_bitmap_and_continuation() {
        let mut b = bus(3);
        let mut out = Vec::new();
        assert_eq!(b.remove_device(1, &mut out), Ok(()));
        assert!(out.is_empty());
        let get = |offset, count| {
            request(
                3,
                0,
                Message::Bus(BusMessage::GetDevicesRequest { offset, count }),
            )
        };
        let mut out = Vec::new();
        b.handle(&get(0, 8), &mut out);
        let codec = Codec::new(BusKind::SharedMemory);
        match codec.decode(&out[0].bytes).unwrap().message {
            Message::Bus(BusMessage::GetDevicesResponse {
                offset,
                next_offset,
                bitmap,
            }) => {
                assert_eq!((offset, next_offset), (0, 0));
                assert_eq!(bitmap, &[0b101]);
                assert_eq!(
                    present_devices(offset, bitmap).collect::<Vec<_>>(),
                    vec![0, 2]
                );
            }
            other => panic!("{other:?}"),
        }
        // Add devices up to number 9: a window of 8 must point past itself.
        let mut out = Vec::new();
        for _ in 0..8 {
            let dev = TransportDevice::new(Box::new(Rng::new(None).unwrap())).unwrap();
            b.add_device(dev, &mut out);
        }
        assert_eq!(b.device_numbers(), (0..=9).collect::<Vec<u16>>());
        let mut out = Vec::new();
        b.handle(&get(0, 8), &mut out);
        match codec.decode(&out[0].bytes).unwrap().message {
            Message::Bus(BusMessage::GetDevicesResponse {
                next_offset,
                bitmap,
                ..
            }) => {
                assert_eq!(next_offset, 8);
                assert_eq!(bitmap, &[0xff]);
            }
            other => panic!("{other:?}"),
        }
        let mut out = Vec::new();
        b.handle(&get(8, 16), &mut out);
        match codec.decode(&out[0].bytes).unwrap().message {
            Message::Bus(BusMessage::GetDevicesResponse {
                offset,
                next_offset,
                bitmap,
            }) => {
                assert_eq!((offset, next_offset), (8, 0));
                assert_eq!(bitmap, &[0b11, 0]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ping_echoes_with_token() {
        let mut b = bus(0);
        let out = exchange(
            &mut b,
            &request(
                0x1234,
                0,
                Message::Bus(BusMessage::PingRequest { data: 0xdead_beef }),
            ),
        );
        assert_eq!(
            out,
            vec![(
                0,
                0x1234,
                "Bus(PingResponse { data: 3735928559 })".to_string()
            )]
        );
    }

    #[test]
    fn transport_needs_version_first_and_copies_tokens() {
        let mut b = bus(1);
        let info = request(
            0x4242,
            0,
            Message::Transport(TransportMessage::GetDeviceInfoRequest),
        );
        assert!(exchange(&mut b, &info).is_empty(), "dropped before VERSION");
        version_status(&mut b, &version(1, 264, 0));
        let out = exchange(&mut b, &info);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].1), (0, 0x4242));
        assert!(out[0].2.contains("device_id: 4"), "{}", out[0].2);
        // A missing device answers GET_DEVICE_INFO with device id 0 and nothing else.
        let info5 = request(
            5,
            5,
            Message::Transport(TransportMessage::GetDeviceInfoRequest),
        );
        let out = exchange(&mut b, &info5);
        assert_eq!((out[0].0, out[0].1), (5, 5));
        assert!(out[0].2.contains("device_id: 0"), "{}", out[0].2);
        let status5 = request(
            6,
            5,
            Message::Transport(TransportMessage::GetDeviceStatusRequest),
        );
        assert!(exchange(&mut b, &status5).is_empty());
    }

    #[test]
    fn hot_plug_events_after_version() {
        let mut b = bus(1);
        version_status(&mut b, &version(1, 264, 0));
        let mut out = Vec::new();
        let dev = TransportDevice::new(Box::new(Rng::new(None).unwrap())).unwrap();
        assert_eq!(b.add_device(dev, &mut out), Some(1));
        assert_eq!(b.remove_device(0, &mut out), Ok(()));
        assert!(b.remove_device(0, &mut out).is_err());
        b.announce_removal(&mut out);
        let codec = Codec::new(BusKind::SharedMemory);
        let events: Vec<String> = out
            .iter()
            .map(|o| format!("{:?}", codec.decode(&o.bytes).unwrap().message))
            .collect();
        assert_eq!(
            events,
            vec![
                "Bus(EventDevice { dev_num: 1, state: Added })",
                "Bus(EventDevice { dev_num: 0, state: Removed })",
                "Bus(EventDevice { dev_num: 1, state: Removed })",
            ]
        );
    }

    #[test]
    fn removed_devices_are_served_until_reset_or_the_grace_period_ends() {
        let mut b = bus(2);
        version_status(&mut b, &version(1, 264, 0));
        let mut out = Vec::new();
        assert_eq!(b.remove_device(0, &mut out), Ok(()));
        assert_eq!(b.remove_device(1, &mut out), Ok(()));
        assert_eq!(out.len(), 2, "both announced");
        let status = request(
            1,
            0,
            Message::Transport(TransportMessage::GetDeviceStatusRequest),
        );
        assert_eq!(exchange(&mut b, &status).len(), 1, "still served");
        assert!(!b.forget_expired(Instant::now()));
        let reset = request(
            2,
            0,
            Message::Transport(TransportMessage::SetDeviceStatusRequest { status: 0 }),
        );
        assert_eq!(exchange(&mut b, &reset).len(), 1, "the reset is answered");
        assert!(b.device(0).is_none(), "then forgotten");
        assert!(exchange(&mut b, &status).is_empty());
        let deadline = b.next_removal_deadline().unwrap();
        assert!(b.device(1).is_some());
        assert!(b.forget_expired(deadline));
        assert!(b.device(1).is_none());
        assert_eq!(b.next_removal_deadline(), None);
    }

    #[test]
    fn pending_resets_are_found_among_waiting_messages() {
        let b = bus(3);
        let status = |dev, status| {
            request(
                1,
                dev,
                Message::Transport(TransportMessage::SetDeviceStatusRequest { status }),
            )
        };
        let kick = request(
            0,
            0,
            Message::Transport(TransportMessage::EventAvail {
                vq_index: 0,
                next_offset: 0,
            }),
        );
        let waiting = [kick.clone(), status(1, 0), status(2, 7), vec![0xff; 8]];
        let hold = b.pending_resets(waiting.iter().map(Vec::as_slice));
        assert_eq!(
            hold,
            Hold {
                all: false,
                devices: vec![1]
            }
        );
        assert!(hold.holds(1) && !hold.holds(0) && !hold.holds(2));
        let reset = request(2, 0, Message::Shm(ShmBusMessage::ResetRequest));
        let hold = b.pending_resets([kick.as_slice(), reset.as_slice()]);
        assert!(hold.all && hold.holds(0) && hold.holds(2));
    }

    #[test]
    fn window_mode_devices_offer_access_platform() {
        use crate::transport::ACCESS_PLATFORM;
        let offers = |b: &Bus, n| b.device(n).unwrap().offered_features() & ACCESS_PLATFORM != 0;
        let plain = bus(1);
        assert!(!offers(&plain, 0));
        let mut window = Bus::new(BusConfig {
            access_platform: true,
            ..plain.config.clone()
        });
        let mut out = Vec::new();
        for _ in 0..2 {
            let dev = TransportDevice::new(Box::new(Rng::new(None).unwrap())).unwrap();
            window.add_device(dev, &mut out);
        }
        assert!(offers(&window, 0) && offers(&window, 1));
        // A device hot-added once a driver negotiated gets it too.
        version_status(&mut window, &version(1, 264, 0));
        let dev = TransportDevice::new(Box::new(Rng::new(None).unwrap())).unwrap();
        assert_eq!(window.add_device(dev, &mut out), Some(2));
        assert!(offers(&window, 2));
    }

    #[test]
    fn garbage_is_dropped_silently() {
        let mut b = bus(1);
        let mut out = Vec::new();
        b.handle(&[0xff; 8], &mut out);
        b.handle(&[0, 2, 0, 0, 0, 0, 9, 0], &mut out);
        let mut response = version(1, 264, 0);
        response[0] |= 1;
        b.handle(&response, &mut out);
        assert!(out.is_empty());
        assert!(b.negotiated().is_none());
    }
}
