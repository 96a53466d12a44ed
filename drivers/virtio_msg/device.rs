// SPDX-License-Identifier: GPL-2.0

//! One virtio-msg device: every virtio config operation becomes transport messages.

use crate::{
    link::{self, BusLink, BusTerms},
    stats::Stats,
    vmsg::{
        codec::{
            chunk::config_chunks,
            transport::{self, DeviceInfo, TransportMessage, VqueueSetup},
            Frame, Message,
        },
        sync::IrqSpinLock,
        virtio::{self, Device, Features, QueueAddrs, Transport, FEATURE_WORDS},
    },
};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::{
    device::Device as BusDevice,
    prelude::*,
    sync::{aref::ARef, Arc},
    time::{delay::udelay, Delta, Instant, Monotonic},
};
use zerocopy::little_endian::U32;

/// The status bit a driver sets when its device is ready (include/uapi/linux/virtio_config.h).
const VIRTIO_CONFIG_S_DRIVER_OK: u32 = 4;

/// Largest config space the transport accepts from a device (module parameter).
fn max_config_size() -> u32 {
    *crate::module_parameters::max_config_size.value()
}
/// Largest number of virtqueues the transport accepts from a device.
pub(crate) const MAX_VIRTQUEUES: u32 = 1024;
/// Largest virtqueue size (split rings allow 32768).
const MAX_QUEUE_SIZE: u32 = 32768;
/// Feature blocks of 32 bits the virtio core can use.
const CORE_FEATURE_BLOCKS: u32 = (FEATURE_WORDS * 2) as u32;
/// Times a config read is tried when the generation changes between its chunks (module
/// parameter, at least 1).
fn config_read_tries() -> u32 {
    (*crate::module_parameters::config_read_tries.value()).max(1)
}
/// How long a reset may take (module parameter), and the pause between status polls.
fn reset_polls() -> u32 {
    *crate::module_parameters::reset_timeout_ms.value() / RESET_POLL_MS as u32
}
const RESET_POLL_MS: i64 = 10;
/// The pause between tries of a kick waiting for room with interrupts disabled.
const KICK_POLL_US: i64 = 10;

pub(crate) use crate::vmsg::errno::eproto;

/// A virtio-msg device on a bus instance, as the virtio core's transport.
#[pin_data]
pub(crate) struct MsgDevice<B: BusLink> {
    link: Arc<B>,
    /// The bus device, which log lines name.
    parent: Option<ARef<BusDevice>>,
    terms: BusTerms,
    dev_num: u16,
    info: DeviceInfo,
    /// Set once the device misbehaved, timed out or was removed: requests fail fast from then on.
    broken: AtomicBool,
    /// Set when the device side removed the device: the driver's reset is its last word to
    /// the device side, which forgets the device then (the virtio core still reads and writes
    /// the status after the driver's removal, and the driver disables its queues).
    removing: AtomicBool,
    /// Set while the driver's last status change was a reset: a device that breaks then (its
    /// status read after the reset fails, say) still reads 0, as the virtio core expects.
    reset_done: AtomicBool,
    /// Set while the driver's last status change included DRIVER_OK: its probe is over and
    /// its I/O may be in flight.
    driver_ok: AtomicBool,
    /// The last config bytes and generation seen, for callers that cannot sleep.
    #[pin]
    cache: IrqSpinLock<KVec<u8>>,
    cache_generation: AtomicU32,
    /// The generation `generation()` returned last, and how many calls in a row returned one
    /// different from the call before: the virtio core re-reads config until two calls agree,
    /// so a device that changes it on every read would keep a driver looping for ever.
    last_generation: AtomicU32,
    generation_changes: AtomicU32,
    /// Kicks the bus had no room for, by queue (the notification data to send), and whether
    /// any is kept; sent again when the bus resumes events.
    #[pin]
    kicks: IrqSpinLock<KVec<Option<u32>>>,
    kicks_kept: AtomicBool,
    pub(crate) stats: Stats,
}

impl<B: BusLink> MsgDevice<B> {
    /// Asks the device side about device `dev_num`; `None` if there is no device there.
    pub(crate) fn probe(
        link: Arc<B>,
        parent: Option<&BusDevice>,
        dev_num: u16,
    ) -> Result<Option<Arc<Self>>> {
        let terms = link.terms();
        let parent = parent.map(ARef::from);
        let probe = Self::build(link, parent, terms, dev_num, DeviceInfo::default())?;
        let info = probe.call(None, TransportMessage::GetDeviceInfoRequest, |m| match m {
            TransportMessage::GetDeviceInfoResponse(info) => Ok(info),
            _ => Err(eproto()),
        })?;
        if info.device_id == 0 {
            return Ok(None);
        }
        if info.config_size > max_config_size() || info.max_virtqueues > MAX_VIRTQUEUES {
            crate::bus_err!(
                probe.parent.as_deref(),
                "device {dev_num}: config size {} or {} virtqueues out of range\n",
                info.config_size,
                info.max_virtqueues
            );
            return Err(eproto());
        }
        Ok(Some(Self::build(
            probe.link.clone(),
            probe.parent.clone(),
            terms,
            dev_num,
            info,
        )?))
    }

    fn build(
        link: Arc<B>,
        parent: Option<ARef<BusDevice>>,
        terms: BusTerms,
        dev_num: u16,
        info: DeviceInfo,
    ) -> Result<Arc<Self>> {
        let cache = KVec::from_elem(0u8, info.config_size as usize, GFP_KERNEL)?;
        let kicks = KVec::from_elem(None, info.max_virtqueues as usize, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                link,
                parent,
                terms,
                dev_num,
                info,
                broken: AtomicBool::new(false),
                removing: AtomicBool::new(false),
                driver_ok: AtomicBool::new(false),
                reset_done: AtomicBool::new(false),
                cache <- crate::new_irq_spinlock!(cache, c"virtio_msg_config_cache"),
                cache_generation: AtomicU32::new(0),
                last_generation: AtomicU32::new(0),
                generation_changes: AtomicU32::new(0),
                kicks <- crate::new_irq_spinlock!(kicks, c"virtio_msg_kicks"),
                kicks_kept: AtomicBool::new(false),
                stats: Stats::default(),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns what GET_DEVICE_INFO reported.
    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Returns the terms of the device's bus instance.
    pub(crate) fn terms(&self) -> &BusTerms {
        &self.terms
    }

    /// Returns the device number on its bus instance.
    pub(crate) fn dev_num(&self) -> u16 {
        self.dev_num
    }

    /// Returns whether the device was marked broken.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Marks the device broken, once, with the reason in the log.
    pub(crate) fn fail(&self, dev: Option<&Device>, why: &str) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            crate::bus_err!(
                self.parent.as_deref(),
                "device {}: {why}; marking it broken\n",
                self.dev_num
            );
            if let Some(dev) = dev {
                dev.mark_broken();
            }
        }
    }

    /// Marks the device broken, once, as `fail` does but as information: the device side
    /// said it is leaving, which is not an error.
    pub(crate) fn retire(&self, dev: &Device, why: &str) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            crate::bus_info!(
                self.parent.as_deref(),
                "device {}: {why}; marking it broken\n",
                self.dev_num
            );
            dev.mark_broken();
        }
    }

    /// The bus instance is going away (bus-contract.rst, `vmsg_bus_remove_all`): a device
    /// whose driver has not reached DRIVER_OK is retired now, so that a probe under way ends
    /// at its next request instead of running its course against a device side that is
    /// about to be detached (its driver's removal waits for the probe). A driver past
    /// DRIVER_OK keeps the device: its I/O in flight must still complete. Returns whether the
    /// device was retired.
    pub(crate) fn retire_if_probing(&self, dev: &Device) -> bool {
        if self.driver_ok.load(Ordering::Acquire) || self.broken.swap(true, Ordering::AcqRel) {
            return false;
        }
        crate::bus_info!(
            self.parent.as_deref(),
            "device {}: bus instance going away before its driver is ready; marking it broken\n",
            self.dev_num
        );
        dev.mark_broken();
        true
    }

    /// Notes that the device side removed the device: it is served until its driver resets
    /// it, and is then retired (broken without an error) so that nothing more is sent.
    pub(crate) fn set_removing(&self) {
        self.removing.store(true, Ordering::Release);
    }

    /// Sends request `req` and hands the matching response to `take`.
    ///
    /// Every response is checked: it must decode, name this device, and answer `req`. Anything
    /// else, or a timeout, marks the device broken.
    fn call<R>(
        &self,
        dev: Option<&Device>,
        req: TransportMessage<'_>,
        take: impl FnOnce(TransportMessage<'_>) -> Result<R>,
    ) -> Result<R> {
        if self.is_broken() {
            return Err(EIO);
        }
        let codec = link::transport_codec(&self.terms);
        let max = usize::from(self.terms.max_msg_size);
        let mut buf = KVec::from_elem(0u8, 2 * max, GFP_KERNEL)?;
        let (req_buf, resp_buf) = buf.split_at_mut(max);
        let request = Frame::transport(self.dev_num, req);
        let len = codec.encode(&request, req_buf).map_err(|_| EINVAL)?;
        self.stats.requests.inc();
        let n = match self
            .link
            .request(req_buf.get(..len).ok_or(EINVAL)?, resp_buf)
        {
            Ok(n) => n,
            Err(e) => {
                // A timeout, or a bus that can no longer reach the device side, leaves the
                // device unusable; a local shortage (ENOMEM, EAGAIN) does not.
                if e == ETIMEDOUT {
                    self.stats.timeouts.inc();
                    self.fail(dev, "request timed out");
                } else if e == EIO || e == ENODEV {
                    self.fail(dev, "bus cannot reach the device side");
                }
                return Err(e);
            }
        };
        let frame = resp_buf
            .get(..n)
            .ok_or(EINVAL)
            .and_then(|bytes| codec.decode(bytes).map_err(|_| eproto()));
        let message = match frame {
            Ok(f) if f.dev_num == self.dev_num && f.message.answers(&request.message) => f.message,
            _ => {
                self.stats.protocol_errors.inc();
                self.fail(dev, "malformed or mismatched response");
                return Err(eproto());
            }
        };
        self.stats.responses.inc();
        let Message::Transport(m) = message else {
            return Err(eproto());
        };
        take(m).inspect_err(|_| {
            self.stats.protocol_errors.inc();
            self.fail(dev, "response out of range");
        })
    }

    /// Reads config `[offset, offset + buf.len())` chunk by chunk; returns the generation.
    ///
    /// Retries while chunks report different generations, a bounded number of times.
    fn read_config(&self, dev: &Device, offset: u32, buf: &mut [u8]) -> Result<u32> {
        let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
        let tries = config_read_tries();
        for attempt in 0..tries {
            let mut generation = None;
            let mut consistent = true;
            for chunk in config_chunks(offset, len, self.terms.max_msg_size).map_err(|_| EINVAL)? {
                let dst = buf.get_mut(chunk.buf.clone()).ok_or(EINVAL)?;
                let req = TransportMessage::GetConfigRequest {
                    offset: chunk.offset,
                    length: chunk.length,
                };
                let chunk_gen = self.call(Some(dev), req, |m| match m {
                    TransportMessage::GetConfigResponse {
                        generation,
                        offset,
                        data,
                    } if offset == chunk.offset && data.len() == dst.len() => {
                        dst.copy_from_slice(data);
                        Ok(generation)
                    }
                    _ => Err(eproto()),
                })?;
                consistent &= *generation.get_or_insert(chunk_gen) == chunk_gen;
            }
            if consistent {
                return Ok(
                    generation.unwrap_or_else(|| self.cache_generation.load(Ordering::Relaxed))
                );
            }
            self.stats.generation_retries.inc();
            if attempt + 1 == tries {
                crate::bus_warn!(
                    self.parent.as_deref(),
                    "device {}: config kept changing during a read\n",
                    self.dev_num
                );
            }
        }
        Err(EAGAIN)
    }

    /// Marks the device broken when the config generation changed on more consecutive
    /// `generation()` calls than two per allowed config read attempt: a driver re-reading its
    /// config until it is stable would otherwise never get past it (its probe, and removal
    /// waiting on the probe, would hang).
    fn check_generation_churn(&self, dev: &Device, generation: u32) {
        if self.last_generation.swap(generation, Ordering::Relaxed) == generation {
            self.generation_changes.store(0, Ordering::Relaxed);
            return;
        }
        let changes = self.generation_changes.fetch_add(1, Ordering::Relaxed) + 1;
        if changes > 2 * config_read_tries() {
            self.stats.protocol_errors.inc();
            self.fail(Some(dev), "config generation changed on every read");
        }
    }

    /// Records config bytes the device reported, for readers that cannot sleep.
    pub(crate) fn update_cache(&self, offset: u32, data: &[u8], generation: u32) {
        let mut cache = self.cache.lock();
        let start = offset as usize;
        if let Some(dst) = cache.get_mut(start..start.saturating_add(data.len())) {
            dst.copy_from_slice(data);
        }
        self.cache_generation.store(generation, Ordering::Relaxed);
    }

    /// Returns whether `[offset, offset + len)` lies inside the device's config space.
    fn config_range_ok(&self, offset: u32, len: usize) -> bool {
        u64::from(offset) + len as u64 <= u64::from(self.info.config_size)
    }

    fn set_status_raw(&self, dev: &Device, status: u32) -> Result<u32> {
        self.call(
            Some(dev),
            TransportMessage::SetDeviceStatusRequest { status },
            |m| match m {
                TransportMessage::SetDeviceStatusResponse { status } => Ok(status),
                _ => Err(eproto()),
            },
        )
    }

    fn get_status_raw(&self, dev: &Device) -> Result<u32> {
        self.call(
            Some(dev),
            TransportMessage::GetDeviceStatusRequest,
            |m| match m {
                TransportMessage::GetDeviceStatusResponse { status } => Ok(status),
                _ => Err(eproto()),
            },
        )
    }

    fn get_vqueue(&self, dev: &Device, index: u32) -> Result<transport::VqueueInfo> {
        self.call(
            Some(dev),
            TransportMessage::GetVqueueRequest { index },
            |m| match m {
                TransportMessage::GetVqueueResponse(info) if info.index == index => Ok(info),
                _ => Err(eproto()),
            },
        )
    }

    fn set_vqueue(&self, dev: &Device, setup: VqueueSetup) -> Result {
        self.call(
            Some(dev),
            TransportMessage::SetVqueueRequest(setup),
            |m| match m {
                TransportMessage::SetVqueueResponse => Ok(()),
                _ => Err(eproto()),
            },
        )
    }

    /// Writes status 0 and waits, bounded, for the device to report 0; false if it did not.
    fn reset_device(&self, dev: &Device) -> bool {
        match self.set_status_raw(dev, 0) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        for _ in 0..reset_polls() {
            match self.get_status_raw(dev) {
                Ok(0) => return true,
                Ok(_) => {
                    kernel::time::delay::fsleep(kernel::time::Delta::from_millis(RESET_POLL_MS))
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Sends the kick of queue `index` as soon as the bus has room, polling for at most
    /// `atomic_kick_wait_ms`; past that the device side is taken to be stuck and the kick fails
    /// (its virtqueue breaks). For callers with interrupts disabled.
    fn kick_when_room(&self, dev: &Device, index: u32, data: u32) -> bool {
        let start = Instant::<Monotonic>::now();
        let limit = i64::from(*crate::module_parameters::atomic_kick_wait_ms.value());
        loop {
            udelay(Delta::from_micros(KICK_POLL_US));
            match self.send_avail(index, data) {
                Ok(()) => return true,
                Err(e) if e == EAGAIN && start.elapsed().as_millis() < limit => {}
                Err(_) => {
                    self.fail(
                        Some(dev),
                        "no room on the bus for a kick made with interrupts disabled",
                    );
                    return false;
                }
            }
        }
    }

    /// Keeps the kick of queue `index` for [`MsgDevice::resend_kicks`]; false for a queue the
    /// device does not have.
    fn keep_kick(&self, index: u32, data: u32) -> bool {
        let mut kicks = self.kicks.lock();
        let Some(kept) = kicks.get_mut(index as usize) else {
            return false;
        };
        *kept = Some(data);
        self.kicks_kept.store(true, Ordering::Release);
        self.stats.kicks_deferred.inc();
        true
    }

    /// Sends the kicks kept while the bus had no room; those it still has no room for stay
    /// kept. Any context.
    pub(crate) fn resend_kicks(&self, dev: &Device) {
        if !self.kicks_kept.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut kicks = self.kicks.lock();
        for (index, kept) in kicks.iter_mut().enumerate() {
            let Some(data) = *kept else {
                continue;
            };
            match self.send_avail(index as u32, data) {
                Ok(()) => *kept = None,
                Err(e) if e == EAGAIN => self.kicks_kept.store(true, Ordering::Release),
                Err(_) => {
                    *kept = None;
                    self.fail(Some(dev), "kept kick could not be sent");
                }
            }
        }
    }

    /// Encodes and sends EVENT_AVAIL for queue `index`. Atomic context: no allocation.
    fn send_avail(&self, index: u32, data: u32) -> Result {
        let mut buf = [0u8; 16];
        let event = Frame::transport(
            self.dev_num,
            TransportMessage::EventAvail {
                vq_index: index,
                next_offset: data,
            },
        );
        let len = link::transport_codec(&self.terms)
            .encode(&event, &mut buf)
            .map_err(|_| EINVAL)?;
        self.link.send_event(buf.get(..len).ok_or(EINVAL)?)?;
        self.stats.events_sent.inc();
        Ok(())
    }
}

impl<B: BusLink> Transport for MsgDevice<B> {
    fn get_config(&self, dev: &Device, offset: u32, buf: &mut [u8]) {
        if !self.config_range_ok(offset, buf.len()) {
            crate::bus_warn!(
                self.parent.as_deref(),
                "device {}: config read past its {} bytes\n",
                self.dev_num,
                self.info.config_size
            );
            buf.fill(0);
            return;
        }
        if !virtio::may_sleep() {
            // No message round trip in atomic context: answer from what the device reported
            // last (reads in process context and EVENT_CONFIG keep the cache fresh).
            self.stats.atomic_config_reads.inc();
            let cache = self.cache.lock();
            let start = offset as usize;
            match cache.get(start..start + buf.len()) {
                Some(src) => buf.copy_from_slice(src),
                None => buf.fill(0),
            }
            return;
        }
        match self.read_config(dev, offset, buf) {
            Ok(generation) => self.update_cache(offset, buf, generation),
            // The virtio core has no error path here: the device is broken (or was just
            // marked so) and the driver sees that on its next virtqueue operation.
            Err(_) => buf.fill(0),
        }
    }

    fn set_config(&self, dev: &Device, offset: u32, buf: &[u8]) {
        if !self.config_range_ok(offset, buf.len()) {
            crate::bus_warn!(
                self.parent.as_deref(),
                "device {}: config write past its end\n",
                self.dev_num
            );
            return;
        }
        let Ok(len) = u32::try_from(buf.len()) else {
            return;
        };
        let Ok(chunks) = config_chunks(offset, len, self.terms.max_msg_size) else {
            return;
        };
        for chunk in chunks {
            let Some(data) = buf.get(chunk.buf.clone()) else {
                return;
            };
            let req = TransportMessage::SetConfigRequest {
                generation: 0,
                offset: chunk.offset,
                data,
            };
            let applied = self.call(Some(dev), req, |m| match m {
                TransportMessage::SetConfigResponse { offset, length, .. }
                    if offset == chunk.offset =>
                {
                    Ok(length)
                }
                _ => Err(eproto()),
            });
            match applied {
                Ok(length) if length == chunk.length => self.update_cache(
                    chunk.offset,
                    data,
                    self.cache_generation.load(Ordering::Relaxed),
                ),
                Ok(_) => {
                    crate::bus_warn!(
                        self.parent.as_deref(),
                        "device {}: config write at {} not applied\n",
                        self.dev_num,
                        chunk.offset
                    );
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn generation(&self, dev: &Device) -> u32 {
        if !virtio::may_sleep() {
            return self.cache_generation.load(Ordering::Relaxed);
        }
        let req = TransportMessage::GetConfigRequest {
            offset: 0,
            length: 0,
        };
        let read = self.call(Some(dev), req, |m| match m {
            TransportMessage::GetConfigResponse {
                generation,
                offset: 0,
                data: [],
            } => Ok(generation),
            _ => Err(eproto()),
        });
        match read {
            Ok(generation) => {
                self.check_generation_churn(dev, generation);
                generation
            }
            // Broken: the same value every time, so that the virtio core's re-read loop ends.
            Err(_) => self.cache_generation.load(Ordering::Relaxed),
        }
    }

    fn get_status(&self, dev: &Device) -> u8 {
        if !self.is_broken() {
            match self.get_status_raw(dev) {
                // After a reset the device must read 0 until the driver writes a status again;
                // the virtio core WARNs on anything else when it removes a driver.
                Ok(s) if s != 0 && self.reset_done.load(Ordering::Acquire) => {
                    self.stats.protocol_errors.inc();
                    self.fail(Some(dev), "status not 0 after a reset");
                    return 0;
                }
                Ok(s) => return (s & 0xff) as u8,
                Err(_) => {}
            }
        }
        // A broken device (or one that just broke) reports DEVICE_NEEDS_RESET (0x40) so that
        // drivers notice, and 0 after its driver reset it (the virtio core checks that a
        // removed driver did).
        if self.reset_done.load(Ordering::Acquire) {
            0
        } else {
            0x40
        }
    }

    fn set_status(&self, dev: &Device, status: u8) {
        self.reset_done.store(status == 0, Ordering::Release);
        self.driver_ok.store(
            u32::from(status) & VIRTIO_CONFIG_S_DRIVER_OK != 0,
            Ordering::Release,
        );
        // The resulting status is what the driver reads back with get_status (FEATURES_OK).
        let _ = self.set_status_raw(dev, u32::from(status));
    }

    fn reset(&self, dev: &Device) {
        if !self.is_broken() && !self.reset_device(dev) {
            self.fail(Some(dev), "reset did not complete");
        }
        if self.removing.load(Ordering::Acquire) {
            // The device side forgets a removed device at its reset: retired, quietly.
            self.broken.store(true, Ordering::Release);
        }
        // Done, or (broken) the driver giving up on the device: either way its status reads 0
        // from now on, as the virtio core expects after a reset.
        self.reset_done.store(true, Ordering::Release);
    }

    fn features(&self, dev: &Device) -> Features {
        let mut blocks = [0u32; CORE_FEATURE_BLOCKS as usize];
        let wanted = self.info.num_feature_blocks.min(CORE_FEATURE_BLOCKS);
        let per_msg = transport::max_feature_blocks(self.terms.max_msg_size).max(1);
        let mut first = 0;
        while first < wanted {
            let num = per_msg.min(wanted - first);
            let req = TransportMessage::GetDeviceFeaturesRequest {
                block_index: first,
                num_blocks: num,
            };
            let got = self.call(Some(dev), req, |m| match m {
                TransportMessage::GetDeviceFeaturesResponse {
                    block_index,
                    features,
                } if block_index == first && features.len() == num as usize => {
                    for (i, f) in features.iter().enumerate() {
                        if let Some(b) = blocks.get_mut(first as usize + i) {
                            *b = f.get();
                        }
                    }
                    Ok(())
                }
                _ => Err(eproto()),
            });
            if got.is_err() {
                return [0; FEATURE_WORDS];
            }
            first += num;
        }
        let mut words = [0u64; FEATURE_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            let lo = blocks.get(2 * i).copied().unwrap_or(0);
            let hi = blocks.get(2 * i + 1).copied().unwrap_or(0);
            *w = u64::from(lo) | (u64::from(hi) << 32);
        }
        words
    }

    fn finalize_features(&self, dev: &Device, features: &Features) -> Result {
        let mut blocks = [U32::new(0); CORE_FEATURE_BLOCKS as usize];
        for (i, b) in blocks.iter_mut().enumerate() {
            let word = features.get(i / 2).copied().unwrap_or(0);
            *b = U32::new((word >> (32 * (i % 2))) as u32);
        }
        // Blocks past the device's would only carry zeros.
        let count = self.info.num_feature_blocks.clamp(1, CORE_FEATURE_BLOCKS);
        let per_msg = transport::max_feature_blocks(self.terms.max_msg_size).max(1);
        let mut first = 0;
        while first < count {
            let num = per_msg.min(count - first);
            let slice = blocks
                .get(first as usize..(first + num) as usize)
                .ok_or(EINVAL)?;
            let req = TransportMessage::SetDriverFeaturesRequest {
                block_index: first,
                features: slice,
            };
            self.call(Some(dev), req, |m| match m {
                TransportMessage::SetDriverFeaturesResponse => Ok(()),
                _ => Err(eproto()),
            })?;
            first += num;
        }
        Ok(())
    }

    fn queue_max_size(&self, dev: &Device, index: u32) -> Result<u32> {
        if index >= self.info.max_virtqueues {
            return Err(ENOENT);
        }
        let info = self.get_vqueue(dev, index)?;
        if info.flags & transport::VQUEUE_INFO_ENABLED != 0 {
            crate::bus_err!(
                self.parent.as_deref(),
                "device {}: queue {index} already enabled\n",
                self.dev_num
            );
            return Err(EBUSY);
        }
        match info.max_size {
            0 => Err(ENOENT),
            size if size <= MAX_QUEUE_SIZE => Ok(size),
            size => {
                crate::bus_err!(
                    self.parent.as_deref(),
                    "device {}: queue {index} size {size} out of range\n",
                    self.dev_num
                );
                // Larger than split rings allow: the device side breaks the protocol, like any
                // other answer out of range.
                self.stats.protocol_errors.inc();
                self.fail(Some(dev), "queue size out of range");
                Err(eproto())
            }
        }
    }

    fn queue_enable(&self, dev: &Device, index: u32, size: u32, addrs: QueueAddrs) -> Result {
        self.set_vqueue(
            dev,
            VqueueSetup {
                index,
                flags: transport::VQUEUE_SET_ENABLE,
                size,
                desc_addr: addrs.desc,
                driver_addr: addrs.driver,
                device_addr: addrs.device,
            },
        )?;
        // Read back: the device must run the queue exactly as set up.
        let info = self.get_vqueue(dev, index)?;
        let as_set = info.flags & transport::VQUEUE_INFO_ENABLED != 0
            && info.cur_size == size
            && info.desc_addr == addrs.desc
            && info.driver_addr == addrs.driver
            && info.device_addr == addrs.device;
        if !as_set {
            crate::bus_err!(
                self.parent.as_deref(),
                "device {}: queue {index} read back differs from its setup\n",
                self.dev_num
            );
            return Err(EIO);
        }
        Ok(())
    }

    fn queue_disable(&self, dev: &Device, index: u32) {
        if self.is_broken() {
            return;
        }
        let ignore = transport::VQUEUE_SET_IGNORE_SIZE
            | transport::VQUEUE_SET_IGNORE_DESC_ADDR
            | transport::VQUEUE_SET_IGNORE_DRIVER_ADDR
            | transport::VQUEUE_SET_IGNORE_DEVICE_ADDR;
        let setup = VqueueSetup {
            index,
            flags: transport::VQUEUE_SET_DISABLE | ignore,
            ..VqueueSetup::default()
        };
        if self.set_vqueue(dev, setup).is_err() {
            crate::bus_warn!(
                self.parent.as_deref(),
                "device {}: queue {index} disable failed\n",
                self.dev_num
            );
        }
    }

    fn notify(&self, dev: &Device, index: u32, data: u32) -> bool {
        if self.is_broken() {
            return false;
        }
        match self.send_avail(index, data) {
            Ok(()) => {
                if self.kicks_kept.load(Ordering::Acquire) {
                    // This kick says all a kept one of the same queue would.
                    if let Some(kept) = self.kicks.lock().get_mut(index as usize) {
                        *kept = None;
                    }
                }
                true
            }
            // No room on the bus now: kept, and sent when the bus resumes events. Returning
            // false would break the virtqueue for good over a device side that is only slow.
            // With interrupts disabled nothing on this CPU could send a kept kick, and the
            // caller may spin until the device answers it (virtio_console's __send_to_port()
            // does, with a spinlock held): wait for room here instead, bounded.
            Err(e) if e == EAGAIN && virtio::irqs_disabled() => {
                self.kick_when_room(dev, index, data)
            }
            Err(e) if e == EAGAIN => {
                if !self.keep_kick(index, data) {
                    return false;
                }
                // The bus may have resumed events between its EAGAIN and the kick being kept:
                // try once more, so that a kick is never left kept with the bus not knowing
                // (a failure now tells the bus again, after the kick is kept).
                self.resend_kicks(dev);
                true
            }
            Err(_) => false,
        }
    }

    fn shm_region(&self, dev: &Device, id: u8) -> Option<(u64, u64)> {
        let req = TransportMessage::GetShmRequest {
            shmid: u32::from(id),
        };
        self.call(Some(dev), req, |m| match m {
            TransportMessage::GetShmResponse(r) if r.shmid == u32::from(id) => Ok(r),
            _ => Err(eproto()),
        })
        .ok()
        .filter(|r| r.length != 0)
        .map(|r| (r.address, r.length))
    }
}
