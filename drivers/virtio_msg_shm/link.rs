// SPDX-License-Identifier: GPL-2.0

//! One bus instance: sends messages through the to-device ring, receives through the
//! to-driver ring, and matches responses to requests by token.

use crate::vmsg::errno::ebadmsg;
use crate::{
    region::{self, Layout, Popped},
    vmsg::{
        bus::client::{BusOps, BusRegistration},
        codec::{
            bus::{BusMessage, DeviceState},
            set_token, BusKind, Codec, Header, Message, TYPE_BUS, TYPE_RESPONSE,
        },
        sync::IrqSpinLock,
    },
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::{
    devres::Devres,
    io::Io,
    irq::{IrqReturn, ThreadedHandler},
    new_condvar, new_mutex,
    pci::Bar,
    prelude::*,
    sync::{Arc, CondVar, CondVarTimeoutResult, Mutex},
    time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic},
    workqueue,
};

/// ivshmem BAR0 registers used here.
pub(crate) const REGS_SIZE: usize = 16;
const DOORBELL: usize = 12;

/// A request waiting for its response.
struct Waiter {
    token: u16,
    response: Option<KVec<u8>>,
}

/// Requests in flight.
struct Pending {
    next_token: u16,
    waiters: KVec<Waiter>,
}

/// The consumer side of the to-driver ring; only the interrupt thread uses it.
struct Rx {
    consumer: u32,
    buf: KVec<u8>,
}

/// Counters shown in the log at removal.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) doorbells: AtomicU64,
}

/// A shared-memory bus instance.
#[pin_data]
pub(crate) struct ShmLink {
    regs: Devres<Bar<'static, REGS_SIZE>>,
    shm: Devres<Bar<'static>>,
    layout: Layout,
    timeout_ms: u32,
    /// Producer index of the to-device ring, kept here, never read back from the region.
    #[pin]
    tx: IrqSpinLock<u32>,
    #[pin]
    rx: Mutex<Rx>,
    #[pin]
    pending: Mutex<Pending>,
    #[pin]
    answered: CondVar,
    /// The transport side, once registered; taken at removal.
    #[pin]
    registration: Mutex<Option<Arc<BusRegistration<ShmLink>>>>,
    /// Set when a ring is corrupt: the instance stops using the rings.
    broken: AtomicBool,
    /// Set while detached: the device side may be resetting the rings under us.
    detached: AtomicBool,
    /// Device add/remove work items queued and not finished; removal waits for them.
    works: AtomicU32,
    pub(crate) stats: Stats,
}

impl ShmLink {
    /// Creates the instance state for a checked `layout`.
    pub(crate) fn new(
        regs: Devres<Bar<'static, REGS_SIZE>>,
        shm: Devres<Bar<'static>>,
        layout: Layout,
        timeout_ms: u32,
    ) -> Result<Arc<Self>> {
        let buf = KVec::from_elem(0u8, layout.slot_size as usize, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                regs,
                shm,
                layout,
                timeout_ms,
                tx <- crate::new_irq_spinlock!(0, c"virtio_msg_shm_tx"),
                rx <- new_mutex!(Rx { consumer: 0, buf }),
                pending <- new_mutex!(Pending {
                    next_token: 1,
                    waiters: KVec::new(),
                }),
                answered <- new_condvar!(),
                registration <- new_mutex!(None),
                broken: AtomicBool::new(false),
                detached: AtomicBool::new(true),
                works: AtomicU32::new(0),
                stats: Stats::default(),
            }),
            GFP_KERNEL,
        )
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
            pr_err!("{why}; the bus instance stops\n");
            // Requests waiting for responses fail now rather than at their timeouts.
            self.answered.notify_all();
        }
    }

    /// Stops the instance after a missed PING: requests and events fail from now on.
    pub(crate) fn fail_liveness(&self, e: Error) {
        if !self.detached.load(Ordering::Acquire) {
            pr_err!("device side missed a PING ({e:?})\n");
            self.fail("device side not answering");
        }
    }

    /// Attaches to the device side (Documentation/shm-bus.rst, "Attaching").
    pub(crate) fn attach(&self) -> Result {
        if self.with_shm(region::driver_state)? != 0 {
            // A previous instance did not detach (a guest reboot, say): detach first.
            self.detach()?;
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
            .inspect_err(|_| pr_err!("device side not ready\n"))
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

    fn wait_device_state(&self, ok: impl Fn(u32) -> bool) -> Result {
        for _ in 0..500 {
            if ok(self.with_shm(region::device_state)?) {
                return Ok(());
            }
            fsleep(Delta::from_millis(10));
        }
        Err(ETIMEDOUT)
    }

    /// Logs the instance's counters.
    pub(crate) fn log_stats(&self) {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        pr_info!(
            "sent {} received {} dropped {} timeouts {} doorbells {}\n",
            get(&s.sent),
            get(&s.received),
            get(&s.dropped),
            get(&s.timeouts),
            get(&s.doorbells)
        );
    }

    /// Waits for the device add/remove work items queued so far. Their closures may still be
    /// returning (dropping their reference) when this returns.
    pub(crate) fn wait_for_work(&self) {
        while self.works.load(Ordering::Acquire) != 0 {
            fsleep(Delta::from_millis(1));
        }
    }

    /// Makes the transport side reachable from the receive path.
    pub(crate) fn set_registration(&self, reg: Option<Arc<BusRegistration<ShmLink>>>) {
        *self.registration.lock() = reg;
    }

    fn registration(&self) -> Option<Arc<BusRegistration<ShmLink>>> {
        self.registration.lock().clone()
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

    /// Hands a received response to the request waiting for its token.
    fn complete(&self, msg: &[u8], token: u16) -> Result {
        let mut pending = self.pending.lock();
        let waiter = pending
            .waiters
            .iter_mut()
            .find(|w| w.token == token && w.response.is_none())
            .ok_or(ENOENT)?;
        let mut copy = KVec::with_capacity(msg.len(), GFP_KERNEL)?;
        copy.extend_from_slice(msg, GFP_KERNEL)?;
        waiter.response = Some(copy);
        drop(pending);
        self.answered.notify_all();
        Ok(())
    }

    /// Handles one message from the device side.
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
            self.registration()
                .ok_or(ENODEV)
                .and_then(|r| r.receive(msg))
        };
        if result.is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Handles a bus event: devices come and go in a work item (on the long-running queue:
    /// adding one probes its driver, which needs this interrupt thread for its responses).
    fn bus_event(self: &Arc<Self>, msg: &[u8]) -> Result {
        let frame = Codec::new(BusKind::SharedMemory)
            .decode(msg)
            .map_err(|_| ebadmsg())?;
        let Message::Bus(BusMessage::EventDevice { dev_num, state }) = frame.message else {
            return Err(ebadmsg());
        };
        let this = self.clone();
        self.works.fetch_add(1, Ordering::AcqRel);
        workqueue::system_long()
            .try_spawn(GFP_KERNEL, move || {
                if let Some(reg) = this.registration() {
                    let result = match state {
                        DeviceState::Added => reg.add_device(dev_num),
                        DeviceState::Removed => reg.remove_device(dev_num),
                    };
                    if let Err(e) = result {
                        pr_warn!("device {dev_num} event {state:?} failed: {e:?}\n");
                    }
                }
                this.works.fetch_sub(1, Ordering::AcqRel);
            })
            .inspect_err(|_| {
                self.works.fetch_sub(1, Ordering::AcqRel);
            })
            .map_err(|_| ENOMEM)
    }

    /// Drains the to-driver ring. Runs in the interrupt thread.
    fn drain(self: &Arc<Self>) -> Result {
        let ring = self.layout.to_driver;
        let mut rx = self.rx.lock();
        if self.detached.load(Ordering::Acquire) || self.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        let Rx { consumer, buf } = &mut *rx;
        loop {
            self.with_shm(|io| ring.want_doorbell(io, false))?;
            loop {
                match self.with_shm(|io| ring.pop(io, consumer, buf)) {
                    Ok(Popped::Empty) => break,
                    Ok(Popped::Message(n)) => {
                        self.stats.received.fetch_add(1, Ordering::Relaxed);
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
            // Ask for a doorbell, then look once more: a message published in between would
            // otherwise wait for the next one.
            self.with_shm(|io| ring.want_doorbell(io, true))?;
            if !self.with_shm(|io| ring.has_messages(io, *consumer))? {
                return Ok(());
            }
        }
    }

    /// Removes the waiter for `token`, returning its response if one came.
    fn take_waiter(pending: &mut Pending, token: u16) -> Option<KVec<u8>> {
        let pos = pending.waiters.iter().position(|w| w.token == token)?;
        pending.waiters.remove(pos).ok().and_then(|w| w.response)
    }
}

impl BusOps for ShmLink {
    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize> {
        let start = Instant::<Monotonic>::now();
        let token = {
            let mut pending = self.pending.lock();
            let mut token = pending.next_token;
            while pending.waiters.iter().any(|w| w.token == token) {
                token = token.wrapping_add(1);
            }
            pending.next_token = token.wrapping_add(1);
            pending.waiters.push(
                Waiter {
                    token,
                    response: None,
                },
                GFP_KERNEL,
            )?;
            token
        };
        let mut msg = KVec::with_capacity(req.len(), GFP_KERNEL)?;
        msg.extend_from_slice(req, GFP_KERNEL)?;
        if set_token(&mut msg, token).is_err() || self.send(&msg, Some(&start)).is_err() {
            Self::take_waiter(&mut self.pending.lock(), token);
            return Err(EIO);
        }
        let mut pending = self.pending.lock();
        loop {
            let answered = pending
                .waiters
                .iter()
                .any(|w| w.token == token && w.response.is_some());
            let elapsed = start.elapsed().as_millis();
            if answered
                || elapsed >= i64::from(self.timeout_ms)
                || self.broken.load(Ordering::Acquire)
            {
                let response = Self::take_waiter(&mut pending, token);
                return match response {
                    Some(r) => {
                        let dst = resp.get_mut(..r.len()).ok_or(EMSGSIZE)?;
                        dst.copy_from_slice(&r);
                        Ok(r.len())
                    }
                    // The instance stopped: the device side is unreachable, not slow.
                    None if self.broken.load(Ordering::Acquire) => Err(EIO),
                    None => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                        Err(ETIMEDOUT)
                    }
                };
            }
            let left = (i64::from(self.timeout_ms) - elapsed).max(1) as u32;
            if let CondVarTimeoutResult::Signal { .. } = self
                .answered
                .wait_interruptible_timeout(&mut pending, msecs_to_jiffies(left))
            {
                // A signal cuts the wait short; keep waiting without spinning.
                drop(pending);
                fsleep(Delta::from_millis(1));
                pending = self.pending.lock();
            }
        }
    }

    fn send_event(&self, msg: &[u8]) -> Result {
        // Atomic context: no waiting for ring space.
        self.send(msg, None)
    }
}

/// The interrupt handler: drains the ring in the interrupt thread.
pub(crate) struct RxHandler(pub(crate) Arc<ShmLink>);

impl ThreadedHandler for RxHandler {
    fn handle_threaded(&self, _dev: &kernel::device::Device<kernel::device::Bound>) -> IrqReturn {
        let _ = self.0.drain();
        IrqReturn::Handled
    }
}
