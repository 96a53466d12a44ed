// SPDX-License-Identifier: GPL-2.0

//! One bus instance on one device-role partition.
//!
//! Every message to the partition is one `FFA_MSG_SEND_DIRECT_REQ2` round trip: a request
//! goes out in registers x4-x17 and its response comes back in the same call, so requests need
//! no waiting list; the token is still stamped and checked. A partition that answers busy is
//! retried with a growing pause, for a bounded time. Events the transport sends in atomic
//! context (EVENT_AVAIL) are queued without allocating and sent by a work item, as a direct
//! request may sleep. Events from the partition are fetched with EVENT_POLL, by a work item
//! that an FF-A notification queues or, when the partition offers none, a timer.

use crate::{
    partition::{EventSink, Partition, DIRECT_SIZE},
    vmsg::{
        bus::{
            client::{BusOps, BusRegistration},
            Terms,
        },
        codec::{
            bus::{BusMessage, DeviceState},
            ffa::{id as ffa_id, FfaBusMessage},
            frame, set_token, BusKind, Codec, Frame, Header, Message,
        },
        errno::ebadmsg,
        sync::IrqSpinLock,
    },
    work::{flush_delayed_work, flush_work, system_dfl},
};
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic},
    workqueue::{
        impl_has_delayed_work, impl_has_work, new_delayed_work, new_work, DelayedWork, Work,
        WorkItem,
    },
};

/// Work item ids of [`Link`].
const TX_WORK: u64 = 1;
const POLL_WORK: u64 = 2;
const DEV_WORK: u64 = 3;

/// Events the transport may have queued at once (distinct ones: repeats are coalesced).
const EVENT_SLOTS: usize = 64;
/// Largest event the transport sends (EVENT_AVAIL with notification data).
const EVENT_MAX_SIZE: usize = 16;
/// EVENT_POLL round trips per work run before yielding the worker.
const POLL_BUDGET: u32 = 64;
/// Device additions and removals waiting for the device work item.
const DEV_EVENT_SLOTS: usize = 256;
/// Poll interval after a failed poll, in ms: a partition that stopped answering is not hammered.
const POLL_FAILED_MS: u32 = 1000;
/// Poll interval right after events were found, in ms.
const POLL_ACTIVE_MS: u32 = 1;

/// Settings of one instance (module parameters, or a test's choice).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// Largest message this driver accepts, header included; at most [`DIRECT_SIZE`].
    pub(crate) max_msg_size: u16,
    /// How long one call keeps retrying a busy partition, in ms.
    pub(crate) busy_timeout_ms: u32,
    /// Poll interval when the partition offers no notification, in ms.
    pub(crate) poll_ms: u32,
    /// The FF-A notification id asked for pending events.
    pub(crate) notification_id: u8,
    /// Pages of the window shared at bring-up for virtqueues and buffers; 0 for none.
    pub(crate) window_pages: usize,
}

/// How the partition signals pending events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventMode {
    /// Not configured yet.
    None,
    /// An FF-A notification queues a drain.
    Notification,
    /// A timer queues a drain.
    Poll,
}

impl EventMode {
    const fn to_u8(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Notification => 1,
            Self::Poll => 2,
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Notification,
            2 => Self::Poll,
            _ => Self::None,
        }
    }
}

/// Layout of the VERSION exchange the partition accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alp {
    /// DEN0153 ALP2: bus version, transport revision, FF-A version; features in the answer.
    Alp2,
    /// DEN0153 ALP1, older partitions: protocol version 0x00010000 and transport revision.
    Alp1,
}

/// What VERSION settled; fixed until a bus RESET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// What the transport gets.
    pub(crate) terms: Terms,
    /// Which VERSION layout was accepted.
    pub(crate) alp: Alp,
    /// Bus feature bits (`BUS_F_*`).
    pub(crate) bus_features: u64,
    /// Memory areas the partition accepts.
    pub(crate) max_areas: u16,
}

/// The outcome of a bus request the partition may refuse with ERROR.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply<R> {
    /// The expected response.
    Answer(R),
    /// An ERROR response naming the request.
    Refused,
}

/// Counters, logged when the instance goes away.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) events_sent: AtomicU64,
    pub(crate) events_coalesced: AtomicU64,
    pub(crate) events_received: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) notifications: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// Increments a counter.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Reads a counter.
pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// An event the transport sent, waiting for the transmit work item.
#[derive(Clone, Copy, PartialEq, Eq)]
struct QueuedEvent {
    len: u8,
    bytes: [u8; EVENT_MAX_SIZE],
}

/// A memory area shared with the partition.
pub(crate) struct SharedArea {
    pub(crate) id: u16,
    pub(crate) handle: u64,
    pub(crate) memory: Arc<crate::ffa::MappedPages>,
    /// The partition said it no longer uses the area (AREA_RELEASE).
    pub(crate) released: bool,
}

/// One bus instance.
#[pin_data]
pub(crate) struct Link<P: Partition> {
    #[pin]
    partition: P,
    pub(crate) config: Config,
    #[pin]
    negotiated: Mutex<Option<Negotiated>>,
    mode: AtomicU8,
    token: AtomicU16,
    /// Events from the transport (atomic context), sent by `tx_work`.
    #[pin]
    tx: IrqSpinLock<KVec<QueuedEvent>>,
    #[pin]
    tx_work: Work<Link<P>, TX_WORK>,
    /// Drains the partition's events (EVENT_POLL).
    #[pin]
    poll_work: DelayedWork<Link<P>, POLL_WORK>,
    /// Device additions and removals, applied by `dev_work` (adding a device probes a driver,
    /// which needs the poll work for its events).
    #[pin]
    dev_events: Mutex<KVec<(u16, DeviceState)>>,
    /// Devices GET_DEVICES listed, added by `dev_work` before the events: the probe of the
    /// bus device waits for no device's bring-up.
    #[pin]
    listed: Mutex<KVec<u16>>,
    #[pin]
    dev_work: Work<Link<P>, DEV_WORK>,
    /// The transport side, once registered.
    #[pin]
    registration: Mutex<Option<Arc<BusRegistration<BusSide<P>>>>>,
    #[pin]
    pub(crate) areas: Mutex<KVec<SharedArea>>,
    /// Set once by `shutdown`.
    shut: AtomicBool,
    /// Set when nothing may talk to the partition any more.
    stopped: AtomicBool,
    pub(crate) stats: Stats,
}

impl_has_work! {
    impl{P: Partition} HasWork<Self, TX_WORK> for Link<P> { self.tx_work }
    impl{P: Partition} HasWork<Self, DEV_WORK> for Link<P> { self.dev_work }
}

impl_has_delayed_work! {
    impl{P: Partition} HasDelayedWork<Self, POLL_WORK> for Link<P> { self.poll_work }
}

/// What the transport calls: a handle on the instance (the transport holds it until it
/// unregisters).
pub(crate) struct BusSide<P: Partition>(pub(crate) Arc<Link<P>>);

/// What the notification calls.
struct Notifier<P: Partition>(Arc<Link<P>>);

impl<P: Partition> Link<P> {
    /// Creates the instance state for the partition `partition` initialises.
    pub(crate) fn new(partition: impl PinInit<P, Error>, config: Config) -> Result<Arc<Self>> {
        let tx = KVec::with_capacity(EVENT_SLOTS, GFP_KERNEL)?;
        let dev_events = KVec::with_capacity(DEV_EVENT_SLOTS, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                partition <- partition,
                config,
                negotiated <- new_mutex!(None),
                mode: AtomicU8::new(EventMode::None.to_u8()),
                token: AtomicU16::new(1),
                tx <- crate::new_irq_spinlock!(tx, c"virtio_msg_ffa_tx"),
                tx_work <- new_work!("virtio_msg_ffa::tx"),
                poll_work <- new_delayed_work!("virtio_msg_ffa::poll"),
                dev_events <- new_mutex!(dev_events),
                listed <- new_mutex!(KVec::new()),
                dev_work <- new_work!("virtio_msg_ffa::dev"),
                registration <- new_mutex!(None),
                areas <- new_mutex!(KVec::new()),
                shut: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                stats: Stats::default(),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns the partition.
    pub(crate) fn partition(&self) -> &P {
        &self.partition
    }

    /// Returns how events are signalled.
    pub(crate) fn mode(&self) -> EventMode {
        EventMode::from_u8(self.mode.load(Ordering::Acquire))
    }

    pub(crate) fn set_mode(&self, mode: EventMode) {
        self.mode.store(mode.to_u8(), Ordering::Release);
    }

    /// Returns what VERSION settled, if it ran since the last RESET.
    pub(crate) fn negotiated(&self) -> Option<Negotiated> {
        *self.negotiated.lock()
    }

    pub(crate) fn set_negotiated(&self, n: Option<Negotiated>) {
        *self.negotiated.lock() = n;
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn next_token(&self) -> u16 {
        self.token.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a malformed or mismatched message and returns the error for it.
    pub(crate) fn malformed(&self) -> Error {
        inc(&self.stats.malformed);
        ebadmsg()
    }

    /// Returns the codec of this instance: the FF-A bus, with the negotiated layout once known.
    pub(crate) fn codec(&self) -> Codec {
        match self.negotiated() {
            Some(n) => n.terms.codec(BusKind::Ffa),
            None => {
                let mut codec = Codec::new(BusKind::Ffa);
                codec.max_msg_size = self.config.max_msg_size;
                codec
            }
        }
    }

    /// One direct round trip, retrying a busy partition for at most `busy_timeout_ms`.
    fn exchange(&self, regs: &mut [u8; DIRECT_SIZE]) -> Result {
        if self.stopped() {
            return Err(ENODEV);
        }
        let request = *regs;
        let start = Instant::<Monotonic>::now();
        let mut pause_us = 50;
        loop {
            match self.partition.direct(regs) {
                Ok(()) => return Ok(()),
                Err(e) if e == EBUSY || e == EAGAIN || e == EINTR => {
                    inc(&self.stats.busy);
                    let spent = start.elapsed().as_millis();
                    if spent >= i64::from(self.config.busy_timeout_ms) || self.stopped() {
                        inc(&self.stats.timeouts);
                        return Err(ETIMEDOUT);
                    }
                    *regs = request;
                    fsleep(Delta::from_micros(pause_us));
                    pause_us = (pause_us * 2).min(10_000);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends request `req` with a fresh token and leaves the response in `regs`; returns its
    /// length. The response must be a response and carry the token.
    fn transact(&self, req: &[u8], regs: &mut [u8; DIRECT_SIZE]) -> Result<usize> {
        if req.len() > usize::from(self.config.max_msg_size) {
            return Err(EMSGSIZE);
        }
        *regs = [0; DIRECT_SIZE];
        let dst = regs.get_mut(..req.len()).ok_or(EMSGSIZE)?;
        dst.copy_from_slice(req);
        let token = self.next_token();
        set_token(dst, token).map_err(|_| EINVAL)?;
        self.exchange(regs)?;
        let len = frame(regs).map_err(|_| self.malformed())?.len();
        let header = Header::peek(regs).map_err(|_| self.malformed())?;
        if !header.is_response() || header.token.get() != token {
            return Err(self.malformed());
        }
        Ok(len)
    }

    /// Sends bus request `msg` and returns the decoded answer, or [`Reply::Refused`] when the
    /// partition answered ERROR for it.
    pub(crate) fn bus_call<R>(
        &self,
        msg: Message<'_>,
        take: impl FnOnce(Message<'_>) -> Option<R>,
    ) -> Result<Reply<R>> {
        let codec = self.codec();
        let request = Frame::bus(0, msg);
        let mut req = [0u8; DIRECT_SIZE];
        let n = codec.encode(&request, &mut req).map_err(|_| EINVAL)?;
        let mut regs = [0u8; DIRECT_SIZE];
        let len = self.transact(req.get(..n).ok_or(EINVAL)?, &mut regs)?;
        let frame = codec
            .decode(regs.get(..len).ok_or(EINVAL)?)
            .map_err(|_| self.malformed())?;
        if let Message::Ffa(FfaBusMessage::Error { msg_id }) = frame.message {
            if msg_id == u16::from(request.message.msg_id()) {
                inc(&self.stats.refused);
                return Ok(Reply::Refused);
            }
            return Err(self.malformed());
        }
        if !frame.message.answers(&request.message) {
            return Err(self.malformed());
        }
        take(frame.message)
            .map(Reply::Answer)
            .ok_or_else(|| self.malformed())
    }

    /// Makes the transport side reachable from the event path.
    pub(crate) fn set_registration(&self, reg: Option<Arc<BusRegistration<BusSide<P>>>>) {
        *self.registration.lock() = reg;
    }

    fn registration(&self) -> Option<Arc<BusRegistration<BusSide<P>>>> {
        self.registration.lock().clone()
    }

    /// Queues event `msg` from the transport. Atomic context: no allocation, no sleep.
    fn queue_event(&self, msg: &[u8]) -> Result {
        if self.stopped() {
            return Err(ENODEV);
        }
        let len = u8::try_from(msg.len())
            .ok()
            .filter(|l| usize::from(*l) <= EVENT_MAX_SIZE)
            .ok_or(EMSGSIZE)?;
        let mut ev = QueuedEvent {
            len,
            bytes: [0; EVENT_MAX_SIZE],
        };
        ev.bytes
            .get_mut(..msg.len())
            .ok_or(EMSGSIZE)?
            .copy_from_slice(msg);
        let mut queue = self.tx.lock();
        if queue.contains(&ev) {
            // A kick that is already waiting says the same thing.
            inc(&self.stats.events_coalesced);
            return Ok(());
        }
        // Full: the transport keeps the kick and sends it again once the queue drained
        // (`resume_events` from the TX work).
        queue.push_within_capacity(ev).map_err(|_| EAGAIN)
    }

    /// Sends one queued event. The partition's answer to an event carries nothing.
    fn send_queued(&self, ev: &QueuedEvent) -> Result {
        let msg = ev.bytes.get(..usize::from(ev.len)).ok_or(EINVAL)?;
        let mut regs = [0u8; DIRECT_SIZE];
        let dst = regs.get_mut(..msg.len()).ok_or(EINVAL)?;
        dst.copy_from_slice(msg);
        set_token(dst, self.next_token()).map_err(|_| EINVAL)?;
        self.exchange(&mut regs)?;
        inc(&self.stats.events_sent);
        Ok(())
    }

    /// Queues the drain of the partition's events after `ms` milliseconds.
    pub(crate) fn kick_poll(self: &Arc<Self>, ms: u32) {
        if self.stopped() {
            return;
        }
        // Already queued: the queued run drains everything.
        let _ = system_dfl()
            .enqueue_delayed::<Arc<Self>, POLL_WORK>(self.clone(), msecs_to_jiffies(ms));
    }

    /// Fetches events with EVENT_POLL until none is left or the budget is spent. Returns how
    /// many came and whether more may be waiting.
    fn drain_events(self: &Arc<Self>) -> Result<(u32, bool)> {
        let codec = self.codec();
        for found in 0..POLL_BUDGET {
            let token = self.next_token();
            let request = Frame::bus(token, Message::Ffa(FfaBusMessage::EventPollRequest));
            let mut regs = [0u8; DIRECT_SIZE];
            codec.encode(&request, &mut regs).map_err(|_| EINVAL)?;
            self.exchange(&mut regs)?;
            inc(&self.stats.polls);
            let msg = frame(&regs).map_err(|_| self.malformed())?;
            let header = Header::peek(msg).map_err(|_| self.malformed())?;
            if header.is_response() {
                // Nothing pending, or EVENT_POLL refused.
                let answer = codec.decode(msg).map_err(|_| self.malformed())?;
                return match answer.message {
                    _ if answer.token != token => Err(self.malformed()),
                    Message::Ffa(FfaBusMessage::EventPollResponse) => Ok((found, false)),
                    Message::Ffa(FfaBusMessage::Error { msg_id })
                        if msg_id == u16::from(ffa_id::EVENT_POLL) =>
                    {
                        inc(&self.stats.refused);
                        Err(EIO)
                    }
                    _ => Err(self.malformed()),
                };
            }
            inc(&self.stats.events_received);
            if self.dispatch_event(msg).is_err() {
                inc(&self.stats.dropped);
            }
        }
        Ok((POLL_BUDGET, true))
    }

    /// Hands one event from the partition to where it belongs.
    fn dispatch_event(self: &Arc<Self>, msg: &[u8]) -> Result {
        let header = Header::peek(msg).map_err(|_| ebadmsg())?;
        if !header.is_bus() {
            return self.registration().ok_or(ENODEV)?.receive(msg);
        }
        let frame = self.codec().decode(msg).map_err(|_| ebadmsg())?;
        match frame.message {
            Message::Bus(BusMessage::EventDevice { dev_num, state }) => {
                self.queue_device_event(dev_num, state)
            }
            Message::Ffa(FfaBusMessage::AreaRelease { area_id }) => self.area_released(area_id),
            _ => Err(ebadmsg()),
        }
    }

    /// Has `devices` (listed by GET_DEVICES) added by the device work item.
    pub(crate) fn add_devices_later(self: &Arc<Self>, devices: KVec<u16>) {
        *self.listed.lock() = devices;
        let _ = system_dfl().enqueue::<Arc<Self>, DEV_WORK>(self.clone());
    }

    fn queue_device_event(self: &Arc<Self>, dev_num: u16, state: DeviceState) -> Result {
        self.dev_events
            .lock()
            .push_within_capacity((dev_num, state))
            .map_err(|_| EBUSY)?;
        let _ = system_dfl().enqueue::<Arc<Self>, DEV_WORK>(self.clone());
        Ok(())
    }

    /// Waits for the work items queued so far (tests use it to see their effects).
    pub(crate) fn flush(&self) {
        flush_delayed_work(&self.poll_work);
        flush_work(&self.dev_work);
        flush_work(&self.tx_work);
    }

    /// Starts event delivery in `mode` and drains what is already pending.
    pub(crate) fn start_events(self: &Arc<Self>, mode: EventMode) {
        self.set_mode(mode);
        self.kick_poll(0);
    }

    /// Binds the notification that says events are pending.
    pub(crate) fn request_notification(self: &Arc<Self>) -> Result {
        let sink: Arc<dyn EventSink> = Arc::new(Notifier(self.clone()), GFP_KERNEL)?;
        self.partition
            .notify_request(self.config.notification_id, sink)
    }

    /// Takes the instance down: removes its devices (events keep flowing meanwhile), unbinds
    /// the notification, unshares memory, resets the bus, then stops and waits for every work
    /// item. Idempotent. May sleep.
    pub(crate) fn shutdown(self: &Arc<Self>) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(reg) = self.registration() {
            reg.unregister();
        }
        self.set_registration(None);
        self.partition.notify_relinquish();
        self.unshare_all();
        if self.negotiated().is_some() {
            if let Err(e) = self.reset_bus() {
                crate::bus_warn!(
                    self.partition().device(),
                    "bus RESET at removal failed: {e:?}\n"
                );
            }
        }
        self.stopped.store(true, Ordering::Release);
        // A run that started before `stopped` may queue itself once more; the second round
        // waits for that one, which sees `stopped`.
        for _ in 0..2 {
            self.flush();
        }
        self.tx.lock().clear();
        self.dev_events.lock().clear();
        self.listed.lock().clear();
    }

    /// Logs a failure nobody waits for (an event to or from the partition), at most 10 times per
    /// module load: a partition that stopped answering would fill the log otherwise.
    fn log_limited(&self, what: &str, e: Error) {
        static LOGGED: AtomicU64 = AtomicU64::new(0);
        if LOGGED.fetch_add(1, Ordering::Relaxed) < 10 {
            crate::bus_warn!(self.partition().device(), "{what}: {e:?}\n");
        }
    }

    /// Logs the instance's counters.
    pub(crate) fn log_stats(&self) {
        let s = &self.stats;
        crate::bus_info!(
            self.partition().device(),
            "requests {} events sent {} (coalesced {}) received {} polls {} notifications {} busy {} timeouts {} refused {} malformed {} dropped {}\n",
            get(&s.requests),
            get(&s.events_sent),
            get(&s.events_coalesced),
            get(&s.events_received),
            get(&s.polls),
            get(&s.notifications),
            get(&s.busy),
            get(&s.timeouts),
            get(&s.refused),
            get(&s.malformed),
            get(&s.dropped)
        );
    }
}

impl<P: Partition> WorkItem<TX_WORK> for Link<P> {
    type Pointer = Arc<Link<P>>;

    fn run(this: Arc<Link<P>>) {
        loop {
            let next = {
                let mut queue = this.tx.lock();
                if queue.is_empty() {
                    None
                } else {
                    queue.remove(0).ok()
                }
            };
            let Some(ev) = next else {
                // Room again for the kicks the transport kept while the queue was full.
                if let Some(reg) = this.registration() {
                    reg.resume_events();
                }
                return;
            };
            if this.stopped() {
                continue;
            }
            if let Err(e) = this.send_queued(&ev) {
                this.log_limited("event not delivered to the partition", e);
            }
        }
    }
}

impl<P: Partition> WorkItem<POLL_WORK> for Link<P> {
    type Pointer = Arc<Link<P>>;

    fn run(this: Arc<Link<P>>) {
        // Before `start_events` (a notification during bring-up) the events stay with the
        // partition: the transport side that takes them is not registered yet.
        if this.stopped() || this.mode() == EventMode::None {
            return;
        }
        let result = this.drain_events();
        if let Err(e) = result {
            this.log_limited("events not fetched from the partition", e);
        }
        match (this.mode(), result) {
            (_, Ok((_, true))) => this.kick_poll(0),
            (EventMode::Poll, Ok((0, false))) => this.kick_poll(this.config.poll_ms),
            (EventMode::Poll, Ok((_, false))) => this.kick_poll(POLL_ACTIVE_MS),
            (EventMode::Poll, Err(_)) => this.kick_poll(POLL_FAILED_MS),
            // Notification mode: the next notification queues the next drain.
            _ => {}
        }
    }
}

impl<P: Partition> WorkItem<DEV_WORK> for Link<P> {
    type Pointer = Arc<Link<P>>;

    fn run(this: Arc<Link<P>>) {
        loop {
            // Listed devices first: the events came after the listing.
            let listed = this.listed.lock().remove(0).ok();
            let next = match listed {
                Some(dev_num) => Some((dev_num, DeviceState::Added)),
                None => this.dev_events.lock().remove(0).ok(),
            };
            let Some((dev_num, state)) = next else {
                return;
            };
            let Some(reg) = this.registration() else {
                continue;
            };
            if this.stopped() {
                continue;
            }
            let result = match state {
                DeviceState::Added => reg.add_device(dev_num),
                DeviceState::Removed => reg.remove_device(dev_num),
            };
            match result {
                Ok(()) => {}
                // The transport logged why; the rest would be refused too.
                Err(ENOSPC) if listed.is_some() => {
                    let left = core::mem::take(&mut *this.listed.lock());
                    crate::bus_warn!(
                        this.partition().device(),
                        "{} more device(s) listed by the partition not added\n",
                        left.len()
                    );
                }
                Err(e) if listed.is_some() => {
                    crate::bus_warn!(
                        this.partition().device(),
                        "device {dev_num} could not be added: {e:?}\n"
                    )
                }
                Err(e) => crate::bus_warn!(
                    this.partition().device(),
                    "device {dev_num} {state:?}: {e:?}\n"
                ),
            }
        }
    }
}

impl<P: Partition> EventSink for Notifier<P> {
    fn notified(&self) {
        inc(&self.0.stats.notifications);
        self.0.kick_poll(0);
    }
}

impl<P: Partition> BusOps for BusSide<P> {
    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize> {
        let link = &self.0;
        let mut regs = [0u8; DIRECT_SIZE];
        let len = link.transact(req, &mut regs)?;
        let msg = regs.get(..len).ok_or(EINVAL)?;
        let header = Header::peek(msg).map_err(|_| link.malformed())?;
        if header.is_bus() && header.msg_id == ffa_id::ERROR {
            inc(&link.stats.refused);
            return Err(EIO);
        }
        resp.get_mut(..len).ok_or(EMSGSIZE)?.copy_from_slice(msg);
        inc(&link.stats.requests);
        Ok(len)
    }

    fn send_event(&self, msg: &[u8]) -> Result {
        self.0.queue_event(msg)?;
        // Already queued: the queued run sends this event too.
        let _ = system_dfl().enqueue::<Arc<Link<P>>, TX_WORK>(self.0.clone());
        Ok(())
    }
}
