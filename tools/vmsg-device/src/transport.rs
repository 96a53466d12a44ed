// SPDX-License-Identifier: GPL-2.0

//! The transport side of one device: device info, feature blocks, config space, device
//! status (with FEATURES_OK acceptance), virtqueue setup, shared memory regions and
//! notifications, answering the transport messages of revision 1.

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_msg_codec::chunk::config_data_capacity;
use virtio_msg_codec::transport::{
    max_feature_blocks, DeviceInfo, ShmRegion, TransportMessage, VqueueInfo, VqueueSetup,
    VQUEUE_INFO_ENABLED, VQUEUE_SET_DISABLE, VQUEUE_SET_ENABLE, VQUEUE_SET_ENABLE_MASK,
    VQUEUE_SET_IGNORE_DESC_ADDR, VQUEUE_SET_IGNORE_DEVICE_ADDR, VQUEUE_SET_IGNORE_DRIVER_ADDR,
    VQUEUE_SET_IGNORE_SIZE, VQUEUE_SET_KEEP,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use zerocopy::little_endian::U32;

use crate::devices::{DeviceError, GuestMemory, VirtioDevice, QUEUE_MAX_SIZE};
use crate::state::{SavedDevice, SavedQueue};

/// Vendor id reported in GET_DEVICE_INFO (the virtio PCI vendor).
pub const VENDOR_ID: u32 = 0x1af4;

/// Feature bits every device offers on top of its class bits.
pub const COMMON_FEATURES: u64 = (1 << VIRTIO_F_VERSION_1)
    | (1 << VIRTIO_F_RING_RESET)
    | (1 << VIRTIO_RING_F_EVENT_IDX)
    | (1 << VIRTIO_RING_F_INDIRECT_DESC);

/// Feature blocks every device reports (64 feature bits).
pub const FEATURE_BLOCKS: u32 = 2;

/// VIRTIO_F_ACCESS_PLATFORM (bit 33): offered, and required, by every device in window
/// mode, where the driver must give bus addresses of the window rather than guest
/// physical ones (`Documentation/shm-bus.rst`, "Window mode").
pub const ACCESS_PLATFORM: u64 = 1 << VIRTIO_F_ACCESS_PLATFORM;

/// What the bus instance lends to a transport message.
pub struct Ctx<'a> {
    /// Guest RAM, once mapped.
    pub mem: Option<&'a GuestMemory>,
    /// Negotiated maximum message size.
    pub max_msg_size: u16,
    /// Whether the strict config generation profile was negotiated.
    pub strict_generation: bool,
}

/// The transport state of one device.
pub struct TransportDevice {
    device: Box<dyn VirtioDevice>,
    status: u32,
    driver_features: Vec<u32>,
    negotiated: u64,
    generation: u32,
    queues: Vec<Queue>,
    /// Window mode: VIRTIO_F_ACCESS_PLATFORM is offered and must be accepted.
    access_platform: bool,
    /// The queues are not touched until the next reset: after a restart, the driver may
    /// have given them up (see [`TransportDevice::quiesce`]).
    quiesced: bool,
}

fn new_queues(count: usize) -> Result<Vec<Queue>, DeviceError> {
    (0..count)
        .map(|_| Queue::new(QUEUE_MAX_SIZE).map_err(DeviceError::from))
        .collect()
}

impl TransportDevice {
    /// Wraps `device` in a freshly reset transport.
    pub fn new(device: Box<dyn VirtioDevice>) -> Result<Self, DeviceError> {
        let queues = new_queues(device.num_queues())?;
        Ok(Self {
            device,
            status: 0,
            driver_features: Vec::new(),
            negotiated: 0,
            generation: 0,
            queues,
            access_platform: false,
            quiesced: false,
        })
    }

    /// Window mode: offers VIRTIO_F_ACCESS_PLATFORM on top of everything else, and refuses
    /// FEATURES_OK unless the driver accepts it.
    pub fn set_access_platform(&mut self, on: bool) {
        self.access_platform = on;
    }

    /// The device class.
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// Current device status.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Features the device offers.
    pub fn offered_features(&self) -> u64 {
        let platform = if self.access_platform {
            ACCESS_PLATFORM
        } else {
            0
        };
        ((self.device.device_features() | COMMON_FEATURES) & self.device.feature_mask()) | platform
    }

    /// Features accepted at FEATURES_OK.
    pub fn negotiated_features(&self) -> u64 {
        self.negotiated
    }

    /// The GET_DEVICE_INFO answer.
    pub fn info(&self) -> DeviceInfo {
        DeviceInfo {
            device_id: self.device.device_id(),
            vendor_id: VENDOR_ID,
            device_uuid: [0; 16],
            num_feature_blocks: FEATURE_BLOCKS,
            config_size: u32::try_from(self.device.config().len()).unwrap_or(u32::MAX),
            max_virtqueues: u32::try_from(self.queues.len()).unwrap_or(u32::MAX),
            admin_vq_start: 0,
            admin_vq_count: 0,
        }
    }

    /// Device reset: status 0, features forgotten, every queue reset.
    pub fn reset(&mut self) {
        self.quiesced = false;
        self.status = 0;
        self.driver_features.clear();
        self.negotiated = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.device.reset();
    }

    /// The state a restarted process needs to resume this device (`removed` is the bus
    /// instance's to fill in).
    pub fn snapshot(&self, dev_num: u16) -> SavedDevice {
        SavedDevice {
            dev_num,
            kind: self.device.name().to_string(),
            status: self.status,
            driver_features: self.driver_features.clone(),
            negotiated: self.negotiated,
            generation: self.generation,
            queues: self
                .queues
                .iter()
                .map(|q| SavedQueue {
                    size: q.size(),
                    ready: q.ready(),
                    desc: q.desc_table(),
                    driver: q.avail_ring(),
                    device: q.used_ring(),
                })
                .collect(),
            removed: false,
        }
    }

    /// Takes over the state a previous process saved. Queues are set up but not resumed
    /// (that needs guest memory: [`TransportDevice::resume`]).
    pub fn restore(&mut self, saved: &SavedDevice) -> Result<(), String> {
        let name = self.device.name();
        if saved.kind != name {
            return Err(format!(
                "device {} was {} and is {name} now",
                saved.dev_num, saved.kind
            ));
        }
        if saved.queues.len() > self.queues.len() || saved.driver_features.len() > 64 {
            return Err(format!(
                "device {}: saved state does not fit",
                saved.dev_num
            ));
        }
        self.reset();
        self.status = saved.status;
        self.driver_features.clone_from(&saved.driver_features);
        self.negotiated = saved.negotiated;
        self.generation = saved.generation;
        let event_idx = self.negotiated & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        for (q, s) in self.queues.iter_mut().zip(&saved.queues) {
            q.try_set_size(s.size)
                .and_then(|()| q.try_set_desc_table_address(GuestAddress(s.desc)))
                .and_then(|()| q.try_set_avail_ring_address(GuestAddress(s.driver)))
                .and_then(|()| q.try_set_used_ring_address(GuestAddress(s.device)))
                .map_err(|e| format!("device {} queue setup: {e}", saved.dev_num))?;
            q.set_event_idx(event_idx);
            q.set_ready(s.ready);
        }
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.device.activate(self.negotiated);
        }
        Ok(())
    }

    /// After [`TransportDevice::restore`]: continues every enabled queue from the used
    /// index in guest memory, so that buffers the previous process took but did not
    /// complete are processed again (the devices complete buffers in order, and
    /// reading or writing a block twice gives the same result), then signals every
    /// enabled queue once in case the previous process died between completing a buffer
    /// and notifying the driver.
    pub fn resume<F: FnMut(TransportMessage<'_>)>(&mut self, mem: &GuestMemory, mut emit: F) {
        if !self.serving() {
            return;
        }
        let mut ready = Vec::new();
        let mut broken = None;
        for (i, q) in self.queues.iter_mut().enumerate() {
            if !q.ready() {
                continue;
            }
            if !q.is_valid(mem) {
                broken = Some(format!("queue {i} is not in guest memory"));
                break;
            }
            match q.used_idx(mem, std::sync::atomic::Ordering::Acquire) {
                Ok(used) => {
                    q.set_next_avail(used.0);
                    q.set_next_used(used.0);
                    ready.push(i);
                }
                Err(e) => {
                    broken = Some(format!("queue {i}: used index: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = broken {
            self.fail(why, &mut emit);
            return;
        }
        for &i in &ready {
            if let Err(e) = self.device.process_queue(i, &mut self.queues, mem) {
                self.fail(format!("queue {i}: {e}"), &mut emit);
                return;
            }
        }
        for i in ready {
            emit(TransportMessage::EventUsed { vq_index: i as u32 });
        }
    }

    /// From now until the next reset, the queues are not touched: no buffer is taken,
    /// completed or notified, neither for EVENT_AVAIL nor for host input. After a restart,
    /// for a device whose driver may have freed them meanwhile (it was announced removed,
    /// or its reset was waiting in the ring, so that its driver may have given up on it).
    /// Everything else (status, config, the reset) is answered as before.
    pub fn quiesce(&mut self) {
        self.quiesced = true;
    }

    /// Whether the queues are served: DRIVER_OK, no DEVICE_NEEDS_RESET, not quiesced.
    fn serving(&self) -> bool {
        self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && self.status & VIRTIO_CONFIG_S_NEEDS_RESET == 0
            && !self.quiesced
    }

    fn driver_features_u64(&self) -> u64 {
        let low = self.driver_features.first().copied().unwrap_or(0);
        let high = self.driver_features.get(1).copied().unwrap_or(0);
        u64::from(low) | (u64::from(high) << 32)
    }

    fn features_acceptable(&self) -> Result<(), String> {
        if self.driver_features.iter().skip(2).any(|b| *b != 0) {
            return Err("driver set feature bits past bit 63".into());
        }
        let wanted = self.driver_features_u64();
        let extra = wanted & !self.offered_features();
        if extra != 0 {
            return Err(format!("driver accepted features not offered: {extra:#x}"));
        }
        if wanted & (1 << VIRTIO_F_VERSION_1) == 0 {
            return Err("driver did not accept VIRTIO_F_VERSION_1".into());
        }
        if self.access_platform && wanted & ACCESS_PLATFORM == 0 {
            return Err(
                "driver did not accept VIRTIO_F_ACCESS_PLATFORM, which window mode requires \
                 (this device side sees no guest RAM, only the window's bus addresses)"
                    .into(),
            );
        }
        Ok(())
    }

    fn set_status(&mut self, new: u32, mem: Option<&GuestMemory>) -> u32 {
        if new == 0 {
            self.reset();
            return 0;
        }
        let old = self.status;
        let mut status = new;
        if old & !new & !VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            crate::limited!(
                Warn,
                "{}: driver cleared status bits {:#x}",
                self.device.name(),
                old & !new
            );
        }
        if status & VIRTIO_CONFIG_S_FEATURES_OK != 0 && old & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            match self.features_acceptable() {
                Ok(()) => {
                    self.negotiated = self.driver_features_u64();
                    log::debug!(
                        "{}: features {:#x} accepted",
                        self.device.name(),
                        self.negotiated
                    );
                }
                Err(why) => {
                    crate::limited!(Warn, "{}: FEATURES_OK refused: {why}", self.device.name());
                    status &= !VIRTIO_CONFIG_S_FEATURES_OK;
                }
            }
        }
        if status & VIRTIO_CONFIG_S_DRIVER_OK != 0 && old & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            if status & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
                crate::limited!(
                    Warn,
                    "{}: DRIVER_OK without FEATURES_OK",
                    self.device.name()
                );
            }
            if let Err(e) = self.device.start(self.negotiated, &self.queues, mem) {
                crate::limited!(Error, "{}: {e}; device needs reset", self.device.name());
                status |= VIRTIO_CONFIG_S_NEEDS_RESET;
            }
        }
        status |= old & VIRTIO_CONFIG_S_NEEDS_RESET;
        self.status = status;
        status
    }

    fn set_driver_features(&mut self, block_index: u32, blocks: &[U32]) {
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            crate::limited!(
                Warn,
                "{}: SET_DRIVER_FEATURES after FEATURES_OK ignored",
                self.device.name()
            );
            return;
        }
        let Some(end) = usize::try_from(block_index)
            .ok()
            .and_then(|start| start.checked_add(blocks.len()))
            .filter(|end| *end <= 64)
        else {
            crate::limited!(Warn, "{}: feature blocks out of range", self.device.name());
            return;
        };
        if self.driver_features.len() < end {
            self.driver_features.resize(end, 0);
        }
        for (i, b) in blocks.iter().enumerate() {
            self.driver_features[block_index as usize + i] = b.get();
        }
    }

    fn device_feature_blocks(
        &self,
        block_index: u32,
        num_blocks: u32,
        max_msg_size: u16,
    ) -> Vec<U32> {
        let offered = self.offered_features();
        let n = num_blocks.min(max_feature_blocks(max_msg_size));
        (0..n)
            .map(|i| {
                let word = match block_index.checked_add(i) {
                    Some(0) => offered as u32,
                    Some(1) => (offered >> 32) as u32,
                    _ => 0,
                };
                U32::new(word)
            })
            .collect()
    }

    fn vqueue_info(&self, index: u32) -> VqueueInfo {
        match self.queues.get(index as usize) {
            Some(q) => VqueueInfo {
                index,
                max_size: u32::from(q.max_size()),
                cur_size: u32::from(q.size()),
                flags: if q.ready() { VQUEUE_INFO_ENABLED } else { 0 },
                desc_addr: q.desc_table(),
                driver_addr: q.avail_ring(),
                device_addr: q.used_ring(),
            },
            None => VqueueInfo {
                index,
                ..VqueueInfo::default()
            },
        }
    }

    fn set_vqueue(&mut self, s: &VqueueSetup, mem: Option<&GuestMemory>) {
        let name = self.device.name();
        let event_idx = self.negotiated & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let Some(q) = self.queues.get_mut(s.index as usize) else {
            crate::limited!(Warn, "{name}: SET_VQUEUE for missing queue {}", s.index);
            return;
        };
        if s.flags & VQUEUE_SET_IGNORE_SIZE == 0 {
            let result = u16::try_from(s.size)
                .map_err(|_| virtio_queue::Error::InvalidSize)
                .and_then(|size| q.try_set_size(size));
            if let Err(e) = result {
                crate::limited!(Warn, "{name}: queue {} size {}: {e}", s.index, s.size);
            }
        }
        let results = [
            (VQUEUE_SET_IGNORE_DESC_ADDR, "descriptor area", s.desc_addr),
            (VQUEUE_SET_IGNORE_DRIVER_ADDR, "driver area", s.driver_addr),
            (VQUEUE_SET_IGNORE_DEVICE_ADDR, "device area", s.device_addr),
        ];
        for (ignore, what, addr) in results {
            if s.flags & ignore != 0 {
                continue;
            }
            let r = match ignore {
                VQUEUE_SET_IGNORE_DESC_ADDR => q.try_set_desc_table_address(GuestAddress(addr)),
                VQUEUE_SET_IGNORE_DRIVER_ADDR => q.try_set_avail_ring_address(GuestAddress(addr)),
                _ => q.try_set_used_ring_address(GuestAddress(addr)),
            };
            if let Err(e) = r {
                crate::limited!(Warn, "{name}: queue {} {what} {addr:#x}: {e}", s.index);
            }
        }
        match s.flags & VQUEUE_SET_ENABLE_MASK {
            VQUEUE_SET_DISABLE => q.set_ready(false),
            VQUEUE_SET_ENABLE => {
                q.set_event_idx(event_idx);
                q.set_ready(true);
                if let Some(mem) = mem {
                    if !q.is_valid(mem) {
                        crate::limited!(
                            Warn,
                            "{name}: queue {} is not in guest memory; not enabled",
                            s.index
                        );
                        q.set_ready(false);
                    }
                }
            }
            VQUEUE_SET_KEEP => {}
            other => crate::limited!(Warn, "{name}: SET_VQUEUE enable action {other} is reserved"),
        }
    }

    /// Fault injection (`config-storm`): the EVENT_CONFIG of a config change that changed
    /// nothing, with the device's status and generation.
    pub fn config_event(&self) -> TransportMessage<'static> {
        TransportMessage::EventConfig {
            device_status: self.status,
            generation: self.generation,
            offset: 0,
            data: &[],
        }
    }

    /// Fault injection (`bad-used`): writes what `how` says into queue `index`'s used
    /// ring, after the buffers the device used, and moves this side's used index along.
    pub fn corrupt_used(
        &mut self,
        index: usize,
        mem: &GuestMemory,
        how: crate::fault::UsedFault,
    ) -> Result<String, String> {
        use crate::fault::UsedFault;
        use std::sync::atomic::Ordering;
        use vm_memory::Bytes;
        let q = self
            .queues
            .get_mut(index)
            .filter(|q| q.ready())
            .ok_or_else(|| format!("queue {index} is not set up"))?;
        let (size, used) = (q.size(), q.next_used());
        let ring = GuestAddress(q.used_ring());
        // Layout of a split used ring: flags, idx, then {id, len} per entry.
        let entry = |i: u16| ring.0 + 4 + 8 * u64::from(i % size);
        let write = |addr: u64, value: u32| {
            mem.store(value, GuestAddress(addr), Ordering::Release)
                .map_err(|e| format!("used ring at {addr:#x}: {e}"))
        };
        let idx = |value: u16| {
            mem.store(value, GuestAddress(ring.0 + 2), Ordering::Release)
                .map_err(|e| format!("used index: {e}"))
        };
        let what = match how {
            UsedFault::Id => {
                let id = u32::from(size) + 7;
                write(entry(used), id)?;
                write(entry(used) + 4, 0)?;
                let next = used.wrapping_add(1);
                idx(next)?;
                q.set_next_used(next);
                format!("used entry {used} with id {id}")
            }
            UsedFault::Len => {
                let last = used.wrapping_sub(1);
                write(entry(last) + 4, 0xffff_fff0)?;
                format!("used entry {last} with len 0xfffffff0")
            }
            UsedFault::Idx => {
                let next = used.wrapping_add(size);
                idx(next)?;
                q.set_next_used(next);
                format!("used index {used} -> {next}")
            }
        };
        Ok(what)
    }

    /// The device cannot go on (a queue it cannot use, guest memory missing): sets
    /// DEVICE_NEEDS_RESET and announces it (EVENT_CONFIG), once: from then on no queue is
    /// touched until the driver resets the device, so the log says it once too.
    fn fail<F: FnMut(TransportMessage<'_>)>(&mut self, why: impl std::fmt::Display, emit: &mut F) {
        if self.status & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            return;
        }
        log::error!(
            "{}: {why}; device needs reset, its queues stop until the driver resets it",
            self.device.name()
        );
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        emit(TransportMessage::EventConfig {
            device_status: self.status,
            generation: self.generation,
            offset: 0,
            data: &[],
        });
    }

    fn notify<F: FnMut(TransportMessage<'_>)>(
        &mut self,
        used: &[usize],
        mem: &GuestMemory,
        emit: &mut F,
    ) {
        let external = self.device.external_queues();
        for &index in used {
            let Some(q) = self.queues.get_mut(index) else {
                continue;
            };
            if external {
                // The backend already applied the driver's suppression (it signals only
                // when a notification is needed); this copy of the queue knows nothing.
                emit(TransportMessage::EventUsed {
                    vq_index: index as u32,
                });
                continue;
            }
            match q.needs_notification(mem) {
                Ok(true) => emit(TransportMessage::EventUsed {
                    vq_index: index as u32,
                }),
                Ok(false) => {}
                Err(e) => {
                    self.fail(format!("queue {index}: {e}"), emit);
                    return;
                }
            }
        }
    }

    fn process(&mut self, index: u32, ctx: &Ctx<'_>, emit: &mut impl FnMut(TransportMessage<'_>)) {
        let name = self.device.name();
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            crate::limited!(
                Warn,
                "{name}: EVENT_AVAIL for queue {index} before DRIVER_OK ignored"
            );
            return;
        }
        if !self.serving() {
            return;
        }
        let Some(mem) = ctx.mem else {
            self.fail("guest memory is not mapped (--guest-memory)", emit);
            return;
        };
        let i = index as usize;
        match self.queues.get(i) {
            None => {
                crate::limited!(Warn, "{name}: EVENT_AVAIL for missing queue {index}");
                return;
            }
            Some(q) if !q.ready() => {
                crate::limited!(Warn, "{name}: EVENT_AVAIL for disabled queue {index}");
                return;
            }
            Some(_) => {}
        }
        match self.device.process_queue(i, &mut self.queues, mem) {
            Ok(used) => self.notify(&used, mem, emit),
            Err(e) => self.fail(format!("queue {index}: {e}"), emit),
        }
    }

    /// Injects host data into the device (console input). The queues are left alone
    /// unless they are served ([`TransportDevice::serving`]): the data then waits in the
    /// device. A queue that cannot be used makes the device need a reset.
    pub fn inject<F: FnMut(TransportMessage<'_>)>(
        &mut self,
        data: &[u8],
        ctx: &Ctx<'_>,
        mut emit: F,
    ) -> Result<(), DeviceError> {
        let mem = if self.serving() { ctx.mem } else { None };
        let used = match self.device.inject(data, &mut self.queues, mem) {
            Ok(used) => used,
            Err(e @ DeviceError::Queue(_)) => {
                self.fail(&e, &mut emit);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(mem) = mem {
            self.notify(&used, mem, &mut emit);
        }
        Ok(())
    }

    /// Reads the device's host input (if its input fd is readable) and feeds it in.
    /// Returns false once the input has ended.
    pub fn poll_input<F: FnMut(TransportMessage<'_>)>(&mut self, ctx: &Ctx<'_>, emit: F) -> bool {
        match self.device.read_input() {
            Some(data) => {
                if !data.is_empty() {
                    if let Err(e) = self.inject(&data, ctx, emit) {
                        log::warn!("{}: input: {e}", self.device.name());
                    }
                }
                true
            }
            None => false,
        }
    }

    /// The device's host input fd, for polling.
    pub fn input_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.device.input_fd()
    }

    /// Handles one transport message addressed to this device; `emit` receives the
    /// response (if the message has one) and any events it causes.
    pub fn handle<F: FnMut(TransportMessage<'_>)>(
        &mut self,
        msg: &TransportMessage<'_>,
        ctx: &Ctx<'_>,
        mut emit: F,
    ) {
        use TransportMessage as M;
        match *msg {
            M::GetDeviceInfoRequest => emit(M::GetDeviceInfoResponse(self.info())),
            M::GetDeviceFeaturesRequest {
                block_index,
                num_blocks,
            } => {
                let blocks = self.device_feature_blocks(block_index, num_blocks, ctx.max_msg_size);
                emit(M::GetDeviceFeaturesResponse {
                    block_index,
                    features: &blocks,
                });
            }
            M::SetDriverFeaturesRequest {
                block_index,
                features,
            } => {
                self.set_driver_features(block_index, features);
                emit(M::SetDriverFeaturesResponse);
            }
            M::GetConfigRequest { offset, length } => {
                let config = self.device.config();
                let start = (offset as usize).min(config.len());
                let cap = config_data_capacity(ctx.max_msg_size);
                let end = start
                    .saturating_add(length as usize)
                    .min(config.len())
                    .min(start + cap);
                if end - start < length as usize {
                    log::debug!(
                        "{}: GET_CONFIG {offset}+{length} answered with {} byte(s)",
                        self.device.name(),
                        end - start
                    );
                }
                emit(M::GetConfigResponse {
                    generation: self.generation,
                    offset,
                    data: &config[start..end],
                });
            }
            M::SetConfigRequest {
                generation,
                offset,
                data,
            } => {
                let config_len = self.device.config().len();
                let in_range = (offset as usize)
                    .checked_add(data.len())
                    .is_some_and(|end| end <= config_len);
                let stale = ctx.strict_generation && generation != self.generation;
                let applied = !data.is_empty()
                    && in_range
                    && !stale
                    && self.device.write_config(offset, data);
                if !applied {
                    log::debug!(
                        "{}: SET_CONFIG {offset}+{} not applied",
                        self.device.name(),
                        data.len()
                    );
                }
                emit(M::SetConfigResponse {
                    generation: self.generation,
                    offset,
                    length: if applied { data.len() as u32 } else { 0 },
                });
            }
            M::GetDeviceStatusRequest => emit(M::GetDeviceStatusResponse {
                status: self.status,
            }),
            M::SetDeviceStatusRequest { status } => {
                let status = self.set_status(status, ctx.mem);
                emit(M::SetDeviceStatusResponse { status });
            }
            M::GetVqueueRequest { index } => emit(M::GetVqueueResponse(self.vqueue_info(index))),
            M::SetVqueueRequest(ref setup) => {
                self.set_vqueue(setup, ctx.mem);
                emit(M::SetVqueueResponse);
            }
            M::ResetVqueueRequest { index } => {
                if self.negotiated & (1 << VIRTIO_F_RING_RESET) == 0 {
                    crate::limited!(
                        Warn,
                        "{}: RESET_VQUEUE without VIRTIO_F_RING_RESET",
                        self.device.name()
                    );
                }
                match self.queues.get_mut(index as usize) {
                    Some(q) => q.reset(),
                    None => crate::limited!(
                        Warn,
                        "{}: RESET_VQUEUE for missing queue {index}",
                        self.device.name()
                    ),
                }
                emit(M::ResetVqueueResponse);
            }
            M::GetShmRequest { shmid } => emit(M::GetShmResponse(ShmRegion {
                shmid,
                length: 0,
                address: 0,
            })),
            M::EventAvail { vq_index, .. } => self.process(vq_index, ctx, &mut emit),
            ref other => crate::limited!(
                Warn,
                "{}: unexpected transport message {:#04x} from the driver dropped",
                self.device.name(),
                other.msg_id()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::rng::Rng;
    use virtio_bindings::virtio_config::{VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER};
    use virtio_msg_codec::transport::DeviceInfo;

    fn ctx() -> Ctx<'static> {
        Ctx {
            mem: None,
            max_msg_size: 264,
            strict_generation: false,
        }
    }

    fn rng() -> TransportDevice {
        TransportDevice::new(Box::new(Rng::new(None).unwrap())).unwrap()
    }

    /// Runs one request and returns a debug rendering of every emitted message.
    fn run(dev: &mut TransportDevice, msg: TransportMessage<'_>, ctx: &Ctx<'_>) -> Vec<String> {
        let mut out = Vec::new();
        dev.handle(&msg, ctx, |m| out.push(format!("{m:?}")));
        out
    }

    #[test]
    fn device_info_of_rng() {
        let dev = rng();
        assert_eq!(
            dev.info(),
            DeviceInfo {
                device_id: 4,
                vendor_id: VENDOR_ID,
                device_uuid: [0; 16],
                num_feature_blocks: 2,
                config_size: 0,
                max_virtqueues: 1,
                admin_vq_start: 0,
                admin_vq_count: 0,
            }
        );
    }

    #[test]
    fn feature_blocks_past_the_device_are_zero() {
        let dev = rng();
        let blocks = dev.device_feature_blocks(0, 4, 264);
        let words: Vec<u32> = blocks.iter().map(|b| b.get()).collect();
        assert_eq!(
            words,
            vec![COMMON_FEATURES as u32, (COMMON_FEATURES >> 32) as u32, 0, 0]
        );
        // A message of 24 bytes holds two blocks only.
        assert_eq!(dev.device_feature_blocks(0, 4, 24).len(), 2);
        let high = dev.device_feature_blocks(1, 1, 264);
        assert_eq!(high[0].get(), 1 | (1 << (VIRTIO_F_RING_RESET - 32)));
    }

    fn negotiate(dev: &mut TransportDevice, features: u64) -> u32 {
        let blocks = [U32::new(features as u32), U32::new((features >> 32) as u32)];
        run(
            dev,
            TransportMessage::SetDriverFeaturesRequest {
                block_index: 0,
                features: &blocks,
            },
            &ctx(),
        );
        dev.set_status(
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
            None,
        )
    }

    #[test]
    fn features_ok_accepts_a_subset_with_version_1() {
        let mut dev = rng();
        let status = negotiate(
            &mut dev,
            1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX,
        );
        assert_ne!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert_eq!(
            dev.negotiated_features(),
            1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX
        );
    }

    #[test]
    fn features_ok_refused_for_unoffered_bits_or_legacy() {
        let mut dev = rng();
        let status = negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1 | 1 << 5);
        assert_eq!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert_eq!(dev.status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        dev.reset();
        let status = negotiate(&mut dev, 1 << VIRTIO_RING_F_EVENT_IDX);
        assert_eq!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    }

    fn offered_blocks(dev: &TransportDevice) -> u64 {
        let out = dev.device_feature_blocks(0, 2, 264);
        u64::from(out[0].get()) | u64::from(out[1].get()) << 32
    }

    #[test]
    fn access_platform_is_offered_in_window_mode_only() {
        let mut dev = rng();
        assert_eq!(dev.offered_features() & ACCESS_PLATFORM, 0);
        assert_eq!(offered_blocks(&dev) & ACCESS_PLATFORM, 0);
        dev.set_access_platform(true);
        assert_eq!(ACCESS_PLATFORM, 1 << 33);
        assert_eq!(dev.offered_features(), COMMON_FEATURES | 1 << 33);
        // Block 1 of GET_DEVICE_FEATURES carries it as bit 1.
        assert_eq!(offered_blocks(&dev), COMMON_FEATURES | 1 << 33);
        let high = dev.device_feature_blocks(1, 1, 264);
        assert_eq!(high[0].get() & 0b10, 0b10);
        // Also where the device masks the transport's common bits (vhost-user).
        let mut ext = TransportDevice::new(Box::new(External {
            external: true,
            start_fails: false,
        }))
        .unwrap();
        assert_eq!(ext.offered_features() & ACCESS_PLATFORM, 0);
        ext.set_access_platform(true);
        assert_eq!(
            ext.offered_features(),
            1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX | 1 << 33
        );
    }

    #[test]
    fn window_mode_refuses_features_ok_without_access_platform() {
        let mut dev = rng();
        dev.set_access_platform(true);
        let status = negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1);
        assert_eq!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert_eq!(dev.status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert_eq!(dev.negotiated_features(), 0);
        // With bit 33 it is accepted.
        dev.reset();
        let status = negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1 | ACCESS_PLATFORM);
        assert_ne!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        assert_eq!(
            dev.negotiated_features(),
            1 << VIRTIO_F_VERSION_1 | ACCESS_PLATFORM
        );
        // Outside window mode bit 33 is not offered, so accepting it is refused, and
        // leaving it out is fine.
        let mut dev = rng();
        let status = negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1 | ACCESS_PLATFORM);
        assert_eq!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        dev.reset();
        let status = negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1);
        assert_ne!(status & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    }

    #[test]
    fn status_zero_resets_everything() {
        let mut dev = rng();
        negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1);
        let setup = VqueueSetup {
            index: 0,
            flags: VQUEUE_SET_ENABLE,
            size: 64,
            desc_addr: 0x1000,
            driver_addr: 0x2000,
            device_addr: 0x3000,
        };
        run(&mut dev, TransportMessage::SetVqueueRequest(setup), &ctx());
        let info = dev.vqueue_info(0);
        assert_eq!(
            (info.cur_size, info.flags, info.desc_addr),
            (64, VQUEUE_INFO_ENABLED, 0x1000)
        );
        let out = run(
            &mut dev,
            TransportMessage::SetDeviceStatusRequest { status: 0 },
            &ctx(),
        );
        assert_eq!(
            out,
            vec!["SetDeviceStatusResponse { status: 0 }".to_string()]
        );
        let info = dev.vqueue_info(0);
        assert_eq!((info.cur_size, info.flags), (256, 0));
        assert_eq!(dev.negotiated_features(), 0);
    }

    #[test]
    fn get_vqueue_of_a_missing_queue_has_max_size_zero() {
        let dev = rng();
        let info = dev.vqueue_info(3);
        assert_eq!((info.index, info.max_size), (3, 0));
        assert_eq!(dev.vqueue_info(0).max_size, 256);
    }

    #[test]
    fn set_vqueue_rejects_bad_size_and_alignment() {
        let mut dev = rng();
        let setup = VqueueSetup {
            index: 0,
            flags: VQUEUE_SET_KEEP,
            size: 100,
            desc_addr: 0x1001,
            driver_addr: 0x2000,
            device_addr: 0x3000,
        };
        run(&mut dev, TransportMessage::SetVqueueRequest(setup), &ctx());
        let info = dev.vqueue_info(0);
        assert_eq!(info.cur_size, 256, "non power of two refused");
        assert_ne!(info.desc_addr, 0x1001, "misaligned descriptor area refused");
        assert_eq!(info.driver_addr, 0x2000);
        assert_eq!(info.flags, 0);
    }

    #[test]
    fn event_avail_without_guest_memory_needs_reset() {
        let mut dev = rng();
        negotiate(&mut dev, 1 << VIRTIO_F_VERSION_1);
        dev.set_status(
            VIRTIO_CONFIG_S_ACKNOWLEDGE
                | VIRTIO_CONFIG_S_DRIVER
                | VIRTIO_CONFIG_S_FEATURES_OK
                | VIRTIO_CONFIG_S_DRIVER_OK,
            None,
        );
        let setup = VqueueSetup {
            index: 0,
            flags: VQUEUE_SET_ENABLE,
            size: 64,
            desc_addr: 0x1000,
            driver_addr: 0x2000,
            device_addr: 0x3000,
        };
        run(&mut dev, TransportMessage::SetVqueueRequest(setup), &ctx());
        let out = run(
            &mut dev,
            TransportMessage::EventAvail {
                vq_index: 0,
                next_offset: 0,
            },
            &ctx(),
        );
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with("EventConfig { device_status: 79"),
            "{}",
            out[0]
        );
        assert_ne!(dev.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }

    #[test]
    fn get_config_is_clamped_to_the_space_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.img");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let blk = crate::devices::blk::Blk::open(&path, false, None).unwrap();
        let mut dev = TransportDevice::new(Box::new(blk)).unwrap();
        let mut lens = Vec::new();
        let small = Ctx {
            max_msg_size: 52,
            ..ctx()
        };
        for (offset, length, c) in [
            (0, 8, ctx()),
            (56, 16, ctx()),
            (100, 4, ctx()),
            (0, 60, small),
        ] {
            dev.handle(
                &TransportMessage::GetConfigRequest { offset, length },
                &c,
                |m| {
                    if let TransportMessage::GetConfigResponse { data, .. } = m {
                        lens.push(data.len());
                        if offset == 0 && length == 8 {
                            assert_eq!(u64::from_le_bytes(data.try_into().unwrap()), 8);
                        }
                    }
                },
            );
        }
        assert_eq!(lens, vec![8, 4, 0, 32]);
    }

    /// A device whose queues run elsewhere, as the vhost-user bridge's are.
    struct External {
        external: bool,
        start_fails: bool,
    }

    impl VirtioDevice for External {
        fn name(&self) -> &'static str {
            "external"
        }
        fn device_id(&self) -> u32 {
            2
        }
        fn device_features(&self) -> u64 {
            1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX
        }
        fn feature_mask(&self) -> u64 {
            self.device_features()
        }
        fn config(&self) -> Vec<u8> {
            Vec::new()
        }
        fn num_queues(&self) -> usize {
            1
        }
        fn external_queues(&self) -> bool {
            self.external
        }
        fn start(
            &mut self,
            _: u64,
            _: &[Queue],
            _: Option<&GuestMemory>,
        ) -> Result<(), DeviceError> {
            if self.start_fails {
                return Err(DeviceError::Io("backend gone".into()));
            }
            Ok(())
        }
        fn process_queue(
            &mut self,
            _: usize,
            _: &mut [Queue],
            _: &GuestMemory,
        ) -> Result<Vec<usize>, DeviceError> {
            Ok(Vec::new())
        }
        fn inject(
            &mut self,
            _: &[u8],
            _: &mut [Queue],
            _: Option<&GuestMemory>,
        ) -> Result<Vec<usize>, DeviceError> {
            Ok(vec![0])
        }
    }

    /// Brings `dev` to DRIVER_OK with EVENT_IDX and queue 0 in `mem`; returns the status.
    fn bring_up(dev: &mut TransportDevice, ctx: &Ctx<'_>) -> u32 {
        negotiate(dev, 1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX);
        let setup = VqueueSetup {
            index: 0,
            flags: VQUEUE_SET_ENABLE,
            size: 16,
            desc_addr: 0x1000,
            driver_addr: 0x2000,
            device_addr: 0x3000,
        };
        run(dev, TransportMessage::SetVqueueRequest(setup), ctx);
        dev.set_status(
            VIRTIO_CONFIG_S_ACKNOWLEDGE
                | VIRTIO_CONFIG_S_DRIVER
                | VIRTIO_CONFIG_S_FEATURES_OK
                | VIRTIO_CONFIG_S_DRIVER_OK,
            ctx.mem,
        )
    }

    #[test]
    fn external_queues_signal_without_local_ring_state() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let ctx = Ctx {
            mem: Some(&mem),
            ..ctx()
        };
        let mut emitted = Vec::new();
        for external in [false, true] {
            let dev = External {
                external,
                start_fails: false,
            };
            let mut dev = TransportDevice::new(Box::new(dev)).unwrap();
            // The transport's RING_RESET and INDIRECT_DESC are masked off.
            assert_eq!(
                dev.offered_features(),
                1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX
            );
            assert_eq!(bring_up(&mut dev, &ctx) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
            let mut out = Vec::new();
            dev.inject(b"x", &ctx, |m| out.push(format!("{m:?}")))
                .unwrap();
            emitted.push(out);
        }
        // With EVENT_IDX and nothing used locally, the local queue suppresses the
        // notification; an external device's signal is passed on as it is.
        assert!(emitted[0].is_empty(), "{:?}", emitted[0]);
        assert_eq!(emitted[1], vec!["EventUsed { vq_index: 0 }".to_string()]);
    }

    #[test]
    fn failed_start_needs_reset() {
        let dev = External {
            external: true,
            start_fails: true,
        };
        let mut dev = TransportDevice::new(Box::new(dev)).unwrap();
        let status = bring_up(&mut dev, &ctx());
        assert_ne!(status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
        assert_ne!(dev.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }
}
