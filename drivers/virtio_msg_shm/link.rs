// SPDX-License-Identifier: GPL-2.0

//! One bus instance: sends messages through the to-device ring, receives through the
//! to-driver ring, and matches responses to requests by token.
//!
//! The to-driver ring is drained in the hard interrupt handler, as virtio-pci delivers its
//! vring interrupts: a virtqueue callback runs without waking the interrupt thread first. At
//! most `rx_budget` messages are taken there per interrupt; the thread drains the rest, so a
//! device side that floods the ring cannot keep a CPU in interrupt context. The thread takes
//! at most `WAKE_BATCHES` batches per wake-up and leaves the rest to a work item, which
//! requeues itself batch group by batch group: a device side that keeps the ring full cannot
//! pin a CPU with the real-time interrupt thread either. Nothing on the receive path sleeps
//! or allocates: responses land in buffers reserved when the instance was created.

use crate::vmsg::errno::ebadmsg;
use crate::{
    pending::Pending,
    region::{self, Layout, Popped},
    vmsg::{
        bus::client::{BusOps, BusRegistration},
        codec::{
            bus::{BusMessage, DeviceState},
            set_token, BusKind, Codec, Header, Message, TYPE_BUS, TYPE_RESPONSE,
        },
        sync::{IrqSpinLock, IrqSpinLockBackend},
    },
    work::{flush_work, system_dfl},
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::{
    device::Device,
    devres::Devres,
    io::{poll::read_poll_timeout, Io},
    irq::{IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    new_condvar,
    pci::Bar,
    prelude::*,
    sync::{aref::ARef, lock::Guard, Arc, CondVar, CondVarTimeoutResult},
    time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic},
    workqueue::{impl_has_work, new_work, HasWork, Work, WorkItem},
};

/// ivshmem BAR0 registers used here.
pub(crate) const REGS_SIZE: usize = 16;
const DOORBELL: usize = 12;

/// Messages the interrupt thread drains per hold of the receive lock.
const THREAD_BATCH: u32 = 64;

/// Batches the interrupt thread, a run of the receive work item or a poll takes before it
/// leaves the rest to the receive work item.
const WAKE_BATCHES: u32 = 4;

/// Work item ids of [`ShmLink`].
const DEV_WORK: u64 = 1;
const RX_WORK: u64 = 2;

/// Requests in flight at once per bus instance; more wait for a free slot.
const MAX_IN_FLIGHT: usize = 32;

/// Device numbers with EVENT_DEVICE news waiting for the device work item; news for more are
/// dropped (and counted) until it has caught up.
const MAX_PENDING_DEVICE_EVENTS: usize = 64;

/// What EVENT_DEVICE messages said about one device number since the work item last ran,
/// coalesced: only the latest state counts, and whether it was removed on the way (a device
/// removed and added again is a new device).
#[derive(Clone, Copy)]
struct DeviceNews {
    dev_num: u16,
    state: DeviceState,
    removed_on_the_way: bool,
}

/// What the device work item has to do: the devices GET_DEVICES listed, added first, then the
/// EVENT_DEVICE news since.
struct DeviceWork {
    listed: KVec<u16>,
    news: KVec<DeviceNews>,
}

/// The consumer side of the to-driver ring.
struct Rx {
    consumer: u32,
    buf: KVec<u8>,
}

/// How a drain ended.
#[derive(PartialEq, Eq)]
enum Drained {
    /// The ring is empty and the device side asked to ring the doorbell for the next message.
    Empty,
    /// The budget ran out with messages left.
    BudgetSpent,
}

/// Counters shown in debugfs and in the log at removal.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) sent: AtomicU64,
    /// Messages taken from the to-driver ring in the hard interrupt handler, and in the
    /// interrupt thread.
    pub(crate) received_in_irq: AtomicU64,
    pub(crate) received_in_thread: AtomicU64,
    /// Messages the PING loop's periodic poll took (an interrupt that did not come or could
    /// not run: its CPU spinning with interrupts disabled, say).
    pub(crate) received_by_poll: AtomicU64,
    /// Messages the receive work item took: those beyond what one wake-up of the interrupt
    /// thread or one poll may take.
    pub(crate) received_in_work: AtomicU64,
    /// Wake-ups of the interrupt thread that left messages to the receive work item.
    pub(crate) rx_deferred: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) doorbells: AtomicU64,
    /// Events that found the to-device ring full (kept by the transport, sent later).
    pub(crate) events_blocked: AtomicU64,
    /// EVENT_DEVICE messages dropped because news for too many device numbers were waiting.
    pub(crate) device_events_dropped: AtomicU64,
    /// EVENT_DEVICE news that could not be applied (logged the first 10 times).
    pub(crate) device_events_failed: AtomicU64,
    /// Times the instance was recovered by detaching and attaching again.
    pub(crate) recoveries: AtomicU64,
}

impl Stats {
    /// Messages taken from the to-driver ring, in whichever context.
    pub(crate) fn received(&self) -> u64 {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        get(&self.received_in_irq)
            + get(&self.received_in_thread)
            + get(&self.received_by_poll)
            + get(&self.received_in_work)
    }
}

/// A shared-memory bus instance.
#[pin_data]
pub(crate) struct ShmLink {
    /// The PCI device, for log lines.
    parent: ARef<Device>,
    regs: Devres<Bar<'static, REGS_SIZE>>,
    shm: Devres<Bar<'static>>,
    layout: Layout,
    timeout_ms: u32,
    /// Messages drained per interrupt in hard-IRQ context (0: all in the interrupt thread).
    pub(crate) rx_budget: AtomicU32,
    /// Producer index of the to-device ring, kept here, never read back from the region.
    #[pin]
    tx: IrqSpinLock<u32>,
    #[pin]
    rx: IrqSpinLock<Rx>,
    #[pin]
    pending: IrqSpinLock<Pending>,
    /// Signalled when a response arrives, a slot frees up or the instance stops.
    #[pin]
    answered: CondVar,
    /// The transport side, once registered; taken at removal. The receive path hands messages
    /// to it under this lock, so that it never holds the last reference.
    #[pin]
    registration: IrqSpinLock<Option<Arc<BusRegistration<ShmLink>>>>,
    /// Set when a ring is corrupt: the instance stops using the rings.
    broken: AtomicBool,
    /// Set while detached: the device side may be resetting the rings under us.
    detached: AtomicBool,
    /// Set while the recovery loop is being stopped: its waits for the device side's state
    /// end at once, so that a teardown does not first wait out an attempt under way.
    waits_cancelled: AtomicBool,
    /// Devices to add and EVENT_DEVICE news (at most one entry per device number) for
    /// `dev_work`.
    #[pin]
    device_work: IrqSpinLock<DeviceWork>,
    /// Adds and removes devices (adding one probes its driver, which waits for responses).
    #[pin]
    dev_work: Work<ShmLink, DEV_WORK>,
    /// Drains what the interrupt thread or a poll left in the to-driver ring.
    #[pin]
    rx_work: Work<ShmLink, RX_WORK>,
    /// Set at the end: the work items queue nothing more.
    stopped: AtomicBool,
    /// Set when an event found the to-device ring full: the transport kept it, and is told
    /// to send it again once the ring may have room (`resume_events`).
    events_blocked: AtomicBool,
    pub(crate) stats: Stats,
}

impl ShmLink {
    /// Creates the instance state for a checked `layout`.
    ///
    /// Responses longer than `max_response` bytes are dropped: the negotiated maximum message
    /// size never exceeds what this driver proposes.
    pub(crate) fn new(
        parent: ARef<Device>,
        regs: Devres<Bar<'static, REGS_SIZE>>,
        shm: Devres<Bar<'static>>,
        layout: Layout,
        timeout_ms: u32,
        rx_budget: u32,
        max_response: u32,
    ) -> Result<Arc<Self>> {
        let buf = KVec::from_elem(0u8, layout.slot_size as usize, GFP_KERNEL)?;
        let device_news = KVec::with_capacity(MAX_PENDING_DEVICE_EVENTS, GFP_KERNEL)?;
        let pending = Pending::new(MAX_IN_FLIGHT, max_response as usize)?;
        Arc::pin_init(
            try_pin_init!(Self {
                parent,
                regs,
                shm,
                layout,
                timeout_ms,
                rx_budget: AtomicU32::new(rx_budget),
                tx <- crate::new_irq_spinlock!(0, c"virtio_msg_shm_tx"),
                rx <- crate::new_irq_spinlock!(Rx { consumer: 0, buf }, c"virtio_msg_shm_rx"),
                pending <- crate::new_irq_spinlock!(pending, c"virtio_msg_shm_pending"),
                answered <- new_condvar!(),
                registration <- crate::new_irq_spinlock!(None, c"virtio_msg_shm_registration"),
                broken: AtomicBool::new(false),
                detached: AtomicBool::new(true),
                waits_cancelled: AtomicBool::new(false),
                device_work <- crate::new_irq_spinlock!(
                    DeviceWork {
                        listed: KVec::new(),
                        news: device_news,
                    },
                    c"virtio_msg_shm_device_work"
                ),
                dev_work <- new_work!("virtio_msg_shm::dev"),
                rx_work <- new_work!("virtio_msg_shm::rx"),
                stopped: AtomicBool::new(false),
                events_blocked: AtomicBool::new(false),
                stats: Stats::default(),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns the PCI device, for log lines that name the instance.
    pub(crate) fn device(&self) -> &Device {
        &self.parent
    }

    /// Runs `f` on the shared region while the device is bound.
    fn with_shm<R>(&self, f: impl FnOnce(&Bar<'_>) -> Result<R>) -> Result<R> {
        let shm = self.shm.try_access().ok_or(ENODEV)?;
        f(&shm)
    }

    /// Rings the device side's doorbell.
    fn ring_doorbell(&self) -> Result {
        let regs = self.regs.try_access().ok_or(ENODEV)?;
        regs.write32(self.layout.device_peer << 16, DOORBELL);
        self.stats.doorbells.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Marks the rings unusable, once, with a log line.
    fn fail(&self, why: &str) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            dev_err!(self.parent, "{why}; the bus instance stops\n");
            // Requests waiting for responses fail now rather than at their timeouts.
            self.answered.notify_all();
        }
    }

    /// Returns whether the instance stopped using the rings (corrupt ring, missed PING).
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Returns whether the instance is detached from the device side.
    pub(crate) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    /// Stops the instance after a missed PING: requests and events fail from now on.
    pub(crate) fn fail_liveness(&self, e: Error) {
        // A stopped instance fails its PINGs too; that says nothing new.
        if !self.detached.load(Ordering::Acquire) && !self.broken.load(Ordering::Acquire) {
            dev_err!(self.parent, "device side missed a PING ({e:?})\n");
            self.fail("device side not answering");
        }
    }

    /// Returns the device side's `device_state`.
    pub(crate) fn device_state(&self) -> Result<u32> {
        self.with_shm(region::device_state)
    }

    /// Attaches to the device side (Documentation/shm-bus.rst, "Attaching").
    pub(crate) fn attach(&self) -> Result {
        if self.with_shm(region::driver_state)? != 0 {
            // A previous instance did not detach (a guest reboot, say): detach first.
            self.detach()?;
        } else if self.with_shm(|io| region::detach_unanswered(io, &self.layout))? {
            // The last detach found the device side down. The device side that comes back
            // must see it before this attach, or it would take this attachment for the gone
            // one and resume its virtqueues over memory the guest reuses.
            dev_info!(
                self.parent,
                "the last detach is not answered yet; waiting for the device side\n"
            );
            self.wait_device_state(|s| s != region::DEVICE_READY)
                .inspect_err(|_| dev_err!(self.parent, "device side not back\n"))?;
        }
        let (tx, rx) = self.with_shm(|io| {
            region::set_driver_state(io, 1)?;
            Ok((
                io.try_read32(self.layout.to_device.base_producer())?,
                io.try_read32(self.layout.to_driver.base_consumer())?,
            ))
        })?;
        *self.tx.lock() = tx;
        self.rx.lock().consumer = rx;
        self.detached.store(false, Ordering::Release);
        self.ring_doorbell()?;
        self.wait_device_state(|s| s == region::DEVICE_READY)
            .inspect_err(|_| dev_err!(self.parent, "device side not ready\n"))
    }

    /// Detaches from the device side and waits (bounded) for it to reset the rings.
    pub(crate) fn detach(&self) -> Result {
        self.detached.store(true, Ordering::Release);
        // Wait for a drain in progress: it holds `rx`.
        drop(self.rx.lock());
        self.with_shm(|io| region::set_driver_state(io, 0))?;
        self.ring_doorbell()?;
        self.wait_device_state(|s| s != region::DEVICE_READY)
    }

    /// Waits up to 5 s for the device side's state to satisfy `ok`; EINTR once
    /// [`Self::cancel_waits`] was called.
    fn wait_device_state(&self, ok: impl Fn(u32) -> bool) -> Result {
        let state = read_poll_timeout(
            || self.with_shm(region::device_state),
            |state: &u32| ok(*state) || self.waits_cancelled.load(Ordering::Acquire),
            Delta::from_millis(10),
            Delta::from_secs(5),
        )?;
        if ok(state) {
            Ok(())
        } else {
            Err(EINTR)
        }
    }

    /// Ends the waits for the device side's state now and until `cancelled` is false again:
    /// stopping the recovery loop must not wait out an attempt's waits (the teardown that
    /// follows detaches, and waits, on its own).
    pub(crate) fn cancel_waits(&self, cancelled: bool) {
        self.waits_cancelled.store(cancelled, Ordering::Release);
    }

    /// Logs the instance's counters.
    pub(crate) fn log_stats(&self) {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        dev_info!(
            self.parent,
            "sent {} received {} ({} in IRQ, {} in thread, {} by poll, {} in work) dropped {} timeouts {} doorbells {} events blocked {} recoveries {}\n",
            get(&s.sent),
            s.received(),
            get(&s.received_in_irq),
            get(&s.received_in_thread),
            get(&s.received_by_poll),
            get(&s.received_in_work),
            get(&s.dropped),
            get(&s.timeouts),
            get(&s.doorbells),
            get(&s.events_blocked),
            get(&s.recoveries)
        );
    }

    /// Waits for the device work queued so far, and drops what it had not done yet: the
    /// registration it was for is gone. May sleep.
    pub(crate) fn wait_for_device_work(&self) {
        flush_work(&self.dev_work);
        self.forget_device_work();
    }

    fn forget_device_work(&self) {
        let mut queue = self.device_work.lock();
        queue.listed.clear();
        queue.news.clear();
    }

    /// Adds `devices` (listed by GET_DEVICES) in the device work item, so that the probe of
    /// the bus device, and its removal, wait for no device's bring-up.
    pub(crate) fn add_devices_later(self: &Arc<Self>, devices: KVec<u16>) {
        self.device_work.lock().listed = devices;
        self.queue::<DEV_WORK>();
    }

    /// Queues work item `ID` unless the work items are stopped. Already queued: that run
    /// takes this too.
    fn queue<const ID: u64>(self: &Arc<Self>)
    where
        Self: WorkItem<ID, Pointer = Arc<Self>> + HasWork<Self, ID>,
    {
        if !self.stopped.load(Ordering::Acquire) {
            let _ = system_dfl().enqueue::<Arc<Self>, ID>(self.clone());
        }
    }

    /// Stops the work items and waits for them. Called once the interrupt is freed and the
    /// PING loop stopped, the only other sources of work. May sleep.
    pub(crate) fn stop_work(&self) {
        self.stopped.store(true, Ordering::Release);
        // A run that started before `stopped` may queue itself once more; the second round
        // waits for that one, which sees `stopped`.
        for _ in 0..2 {
            flush_work(&self.rx_work);
            flush_work(&self.dev_work);
        }
    }

    /// Makes the transport side reachable from the receive path.
    pub(crate) fn set_registration(&self, reg: Arc<BusRegistration<ShmLink>>) {
        let old = self.registration.lock().replace(reg);
        // Dropped here, outside the spinlock: the last reference unregisters, which sleeps.
        drop(old);
    }

    /// Returns the transport side for use in process context (a device work item).
    pub(crate) fn registration(&self) -> Option<Arc<BusRegistration<ShmLink>>> {
        self.registration.lock().clone()
    }

    /// Makes the transport side unreachable from the receive path and returns it.
    pub(crate) fn take_registration(&self) -> Option<Arc<BusRegistration<ShmLink>>> {
        self.registration.lock().take()
    }

    /// Clears the stopped state once detached, before attaching again: no request is in flight
    /// (the devices are gone and the supervisor, the only other requester, is the caller).
    pub(crate) fn restart(&self) {
        self.pending.lock().clear();
        // News from before the detach are about the instance that went: the next bring-up
        // starts from its own GET_DEVICES.
        self.forget_device_work();
        self.broken.store(false, Ordering::Release);
    }

    /// Queues `msg` on the to-device ring, waiting (bounded by `deadline`) while it is full.
    fn send(&self, msg: &[u8], deadline: Option<&Instant<Monotonic>>) -> Result {
        if self.broken.load(Ordering::Acquire) || self.detached.load(Ordering::Acquire) {
            return Err(EIO);
        }
        loop {
            let wants = {
                let mut producer = self.tx.lock();
                self.with_shm(|io| self.layout.to_device.push(io, &mut producer, msg))
            };
            match wants {
                Ok(wants) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return if wants { self.ring_doorbell() } else { Ok(()) };
                }
                Err(e) if e == EAGAIN => match deadline {
                    Some(d) if d.elapsed().as_millis() < i64::from(self.timeout_ms) => {
                        fsleep(Delta::from_millis(1))
                    }
                    _ => return Err(EAGAIN),
                },
                Err(e) => {
                    if e == EIO {
                        self.fail("to-device ring corrupt");
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Lets the transport send the events it kept when the to-device ring was full. Called
    /// after each drain of the to-driver ring (the device side answering means it consumed)
    /// and by the PING loop's timer. Any context.
    pub(crate) fn resume_events(&self) {
        if self.events_blocked.swap(false, Ordering::AcqRel) {
            self.tell_transport_to_resume();
        }
    }

    /// The PING loop's periodic safety net: drains the to-driver ring and resends kept events,
    /// whether or not an interrupt said so. The interrupt may be stuck on a CPU that spins with
    /// interrupts disabled waiting for the device side (virtio_console's __send_to_port()
    /// does), while the device side waits for room in the to-driver ring.
    pub(crate) fn poll(self: &Arc<Self>) {
        self.drain_or_defer(&self.stats.received_by_poll);
        self.events_blocked.store(false, Ordering::Release);
        self.tell_transport_to_resume();
    }

    fn tell_transport_to_resume(&self) {
        if let Some(reg) = self.registration.lock().as_ref() {
            reg.resume_events();
        }
    }

    /// Hands a received response to the request waiting for its token. Any context.
    fn complete(&self, msg: &[u8], token: u16) -> Result {
        self.pending.lock().answer(token, msg)?;
        self.answered.notify_all();
        Ok(())
    }

    /// Handles one message from the device side. Any context.
    fn dispatch(self: &Arc<Self>, msg: &[u8]) {
        let Ok(header) = Header::peek(msg) else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let result = if header.msg_type & TYPE_RESPONSE != 0 {
            self.complete(msg, header.token.get())
        } else if header.msg_type & TYPE_BUS != 0 {
            self.bus_event(msg)
        } else {
            self.registration
                .lock()
                .as_ref()
                .ok_or(ENODEV)
                .and_then(|r| r.receive(msg))
        };
        if result.is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Handles a bus event: devices come and go in a work item (on the long-running queue:
    /// adding one probes its driver, which waits for responses). Any context: no allocation
    /// per event; a flood of them is coalesced per device number, and bounded.
    fn bus_event(self: &Arc<Self>, msg: &[u8]) -> Result {
        let frame = Codec::new(BusKind::SharedMemory)
            .decode(msg)
            .map_err(|_| ebadmsg())?;
        let Message::Bus(BusMessage::EventDevice { dev_num, state }) = frame.message else {
            return Err(ebadmsg());
        };
        {
            let mut queue = self.device_work.lock();
            if let Some(n) = queue.news.iter_mut().find(|n| n.dev_num == dev_num) {
                n.removed_on_the_way |= state == DeviceState::Removed;
                n.state = state;
            } else {
                queue
                    .news
                    .push_within_capacity(DeviceNews {
                        dev_num,
                        state,
                        // A removal that opens the entry is remembered: an addition
                        // coalesced into it later is a new device, not the old one.
                        removed_on_the_way: state == DeviceState::Removed,
                    })
                    .map_err(|_| {
                        self.stats
                            .device_events_dropped
                            .fetch_add(1, Ordering::Relaxed);
                        EBUSY
                    })?;
            }
        }
        self.queue::<DEV_WORK>();
        Ok(())
    }

    /// Adds the devices listed by GET_DEVICES, then applies the EVENT_DEVICE news, until there
    /// is nothing left. Runs in `dev_work`.
    fn apply_device_work(&self) {
        loop {
            // Not registered yet (bring-up): the work is kept, `add_devices_later` queues the
            // work item again once the registration is there. After a tear-down nothing is
            // kept (`wait_for_device_work`).
            let Some(reg) = self.registration() else {
                return;
            };
            let (listed, news) = {
                let mut queue = self.device_work.lock();
                if queue.listed.is_empty() {
                    (None, queue.news.remove(0).ok())
                } else {
                    (queue.listed.remove(0).ok(), None)
                }
            };
            if (listed.is_none() && news.is_none()) || self.stopped.load(Ordering::Acquire) {
                return;
            }
            if let Some(dev_num) = listed {
                self.add_listed(&reg, dev_num);
            }
            if let Some(news) = news {
                self.apply_news(&reg, news);
            }
        }
    }

    /// Adds device `dev_num`, which GET_DEVICES listed.
    fn add_listed(&self, reg: &BusRegistration<ShmLink>, dev_num: u16) {
        match reg.add_device(dev_num) {
            // ENODEV: the instance is being torn down.
            Ok(()) | Err(ENODEV) => {}
            Err(ENOSPC) => {
                // The transport logged why; the rest would be refused too.
                let left = core::mem::take(&mut self.device_work.lock().listed);
                dev_warn!(
                    self.parent,
                    "{} more device(s) listed by the device side not added\n",
                    left.len()
                );
            }
            Err(e) => dev_warn!(self.parent, "device {dev_num} could not be added: {e:?}\n"),
        }
    }

    /// Applies what EVENT_DEVICE messages said about one device number.
    fn apply_news(&self, reg: &BusRegistration<ShmLink>, news: DeviceNews) {
        let dev_num = news.dev_num;
        if news.removed_on_the_way || news.state == DeviceState::Removed {
            // Removing a number the transport does not have, or from an instance being torn
            // down (ENODEV: the registration is closed), is no news.
            match reg.remove_device(dev_num) {
                Ok(()) | Err(ENOENT) | Err(ENODEV) => {}
                Err(e) => self.device_event_failed(dev_num, "removal", e),
            }
        }
        if news.state == DeviceState::Added {
            // EEXIST: listed by GET_DEVICES and announced as well.
            match reg.add_device(dev_num) {
                Ok(()) | Err(ENODEV) | Err(EEXIST) => {}
                Err(e) => self.device_event_failed(dev_num, "addition", e),
            }
        }
    }

    /// Logs a device event that could not be applied, at most 10 times per instance.
    fn device_event_failed(&self, dev_num: u16, what: &str, e: Error) {
        if self
            .stats
            .device_events_failed
            .fetch_add(1, Ordering::Relaxed)
            < 10
        {
            dev_warn!(
                self.parent,
                "device {dev_num}: {what} announced by the device side failed: {e:?}\n"
            );
        }
    }

    /// Takes up to `budget` messages from the to-driver ring and dispatches them. Any context:
    /// runs in the hard interrupt handler and in its thread.
    /// Each message taken is counted in `taken` too.
    fn drain(self: &Arc<Self>, budget: u32, taken: &AtomicU64) -> Result<Drained> {
        let ring = self.layout.to_driver;
        let mut rx = self.rx.lock();
        if self.detached.load(Ordering::Acquire) || self.broken.load(Ordering::Acquire) {
            return Ok(Drained::Empty);
        }
        let Rx { consumer, buf } = &mut *rx;
        // One access to the region for the whole batch: each costs an RCU read section.
        self.with_shm(|io| {
            let mut left = budget;
            loop {
                ring.want_doorbell(io, false)?;
                loop {
                    if left == 0 {
                        // No doorbell requested: the interrupt thread goes on without one.
                        return Ok(Drained::BudgetSpent);
                    }
                    left -= 1;
                    match ring.pop(io, consumer, buf) {
                        Ok(Popped::Empty) => break,
                        Ok(Popped::Message(n)) => {
                            taken.fetch_add(1, Ordering::Relaxed);
                            if let Some(msg) = buf.get(..n) {
                                self.dispatch(msg);
                            }
                        }
                        Err(e) if e == ebadmsg() => {
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if e == EIO {
                                self.fail("to-driver ring corrupt");
                            }
                            return Err(e);
                        }
                    }
                }
                // Ask for a doorbell, then look once more: a message published in between
                // would otherwise wait for the next one.
                ring.want_doorbell(io, true)?;
                if !ring.has_messages(io, *consumer)? {
                    return Ok(Drained::Empty);
                }
            }
        })
    }

    /// Drains the to-driver ring in batches of `THREAD_BATCH`, so that interrupts are not kept
    /// disabled for a whole flood, up to `WAKE_BATCHES` of them, counting what it took in
    /// `taken`, and leaves what is left to the receive work item. Returns whether it did.
    /// Process context.
    fn drain_or_defer(self: &Arc<Self>, taken: &AtomicU64) -> bool {
        for _ in 0..WAKE_BATCHES {
            if !matches!(self.drain(THREAD_BATCH, taken), Ok(Drained::BudgetSpent)) {
                return false;
            }
        }
        self.queue::<RX_WORK>();
        true
    }

    /// Waits (bounded by the request timeout from `start`) for a free request slot; returns its
    /// index and token.
    fn claim_slot(&self, start: &Instant<Monotonic>) -> Result<(usize, u16)> {
        let mut pending = self.pending.lock();
        loop {
            if let Some(claimed) = pending.claim() {
                return Ok(claimed);
            }
            if self.broken.load(Ordering::Acquire) {
                return Err(EIO);
            }
            if start.elapsed().as_millis() >= i64::from(self.timeout_ms) {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(ETIMEDOUT);
            }
            pending = self.wait_for_news(pending, start);
        }
    }

    /// Waits until `answered` is signalled or the request started at `start` runs out of time.
    fn wait_for_news<'a>(
        &'a self,
        mut pending: Guard<'a, Pending, IrqSpinLockBackend>,
        start: &Instant<Monotonic>,
    ) -> Guard<'a, Pending, IrqSpinLockBackend> {
        let left = (i64::from(self.timeout_ms) - start.elapsed().as_millis()).max(1) as u32;
        if let CondVarTimeoutResult::Signal { .. } = self
            .answered
            .wait_interruptible_timeout(&mut pending, msecs_to_jiffies(left))
        {
            // A signal cuts the wait short; keep waiting without spinning.
            drop(pending);
            fsleep(Delta::from_millis(1));
            pending = self.pending.lock();
        }
        pending
    }

    /// Frees request slot `index` and copies its response, if one came, to `resp`.
    fn finish(&self, index: usize, resp: &mut [u8]) -> Result<Option<usize>> {
        let result = self.pending.lock().finish(index, resp);
        // A request waiting for a slot may go on.
        self.answered.notify_all();
        result
    }
}

impl BusOps for ShmLink {
    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize> {
        let start = Instant::<Monotonic>::now();
        let (index, token) = self.claim_slot(&start)?;
        let staged = KVec::with_capacity(req.len(), GFP_KERNEL).and_then(|mut msg| {
            msg.extend_from_slice(req, GFP_KERNEL)?;
            Ok(msg)
        });
        let sent = match staged {
            Ok(mut msg) => set_token(&mut msg, token)
                .map_err(|_| EINVAL)
                .and_then(|()| self.send(&msg, Some(&start)).map_err(|_| EIO)),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = sent {
            let _ = self.finish(index, resp);
            return Err(e);
        }
        let mut pending = self.pending.lock();
        loop {
            if pending.is_answered(index)
                || start.elapsed().as_millis() >= i64::from(self.timeout_ms)
                || self.broken.load(Ordering::Acquire)
            {
                drop(pending);
                return match self.finish(index, resp)? {
                    Some(len) => Ok(len),
                    // The instance stopped: the device side is unreachable, not slow.
                    None if self.broken.load(Ordering::Acquire) => Err(EIO),
                    None => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        Err(ETIMEDOUT)
                    }
                };
            }
            pending = self.wait_for_news(pending, &start);
        }
    }

    fn send_event(&self, msg: &[u8]) -> Result {
        // Atomic context: no waiting for ring space. A full ring is reported as EAGAIN: the
        // transport keeps the event until `resume_events`.
        self.send(msg, None).inspect_err(|e| {
            if *e == EAGAIN {
                self.stats.events_blocked.fetch_add(1, Ordering::Relaxed);
                self.events_blocked.store(true, Ordering::Release);
            }
        })
    }
}

/// The interrupt handler: drains the ring in hard-IRQ context up to the budget, and in the
/// interrupt thread beyond it.
pub(crate) struct RxHandler(pub(crate) Arc<ShmLink>);

impl ThreadedHandler for RxHandler {
    fn handle(&self, _dev: &kernel::device::Device<kernel::device::Bound>) -> ThreadedIrqReturn {
        let link = &self.0;
        match link.rx_budget.load(Ordering::Relaxed) {
            0 => ThreadedIrqReturn::WakeThread,
            budget => match link.drain(budget, &link.stats.received_in_irq) {
                Ok(Drained::BudgetSpent) => ThreadedIrqReturn::WakeThread,
                _ => {
                    link.resume_events();
                    ThreadedIrqReturn::Handled
                }
            },
        }
    }

    fn handle_threaded(&self, _dev: &kernel::device::Device<kernel::device::Bound>) -> IrqReturn {
        let link = &self.0;
        // The thread runs at real-time priority: a device side that keeps the ring full must
        // not pin the CPU. The work item shares it with everything else.
        if link.drain_or_defer(&link.stats.received_in_thread) {
            link.stats.rx_deferred.fetch_add(1, Ordering::Relaxed);
        }
        link.resume_events();
        IrqReturn::Handled
    }
}

impl_has_work! {
    impl HasWork<Self, DEV_WORK> for ShmLink { self.dev_work }
    impl HasWork<Self, RX_WORK> for ShmLink { self.rx_work }
}

impl WorkItem<DEV_WORK> for ShmLink {
    type Pointer = Arc<ShmLink>;

    fn run(this: Arc<ShmLink>) {
        this.apply_device_work();
    }
}

impl WorkItem<RX_WORK> for ShmLink {
    type Pointer = Arc<ShmLink>;

    fn run(this: Arc<ShmLink>) {
        if this.stopped.load(Ordering::Acquire) {
            return;
        }
        // Queued again behind whatever else waits for a worker while messages are left.
        this.drain_or_defer(&this.stats.received_in_work);
        this.resume_events();
    }
}

/// Stops the link's work items when dropped: after the interrupt, which queues them, is freed,
/// so that none runs once the module may be gone.
pub(crate) struct WorkStopper(pub(crate) Arc<ShmLink>);

impl Drop for WorkStopper {
    fn drop(&mut self) {
        self.0.stop_work();
    }
}
