// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the FF-A bus logic against the fake partition of `fake.rs`, registered with
//! the real transport (module `virtio_msg`).

use crate::{
    fake::{encode_event, event_device, FakePartition, Model},
    link::{get, Alp, BusSide, Config, EventMode, Link},
    vmsg::{
        bus::client::{devices_window_answer, BusOps},
        codec::{
            bus::DeviceState,
            ffa::{AreaResult, EventMethod, BUS_F_DIRECT_TX},
            transport::TransportMessage,
            BusKind, Codec, Frame, Layout, Message,
        },
        errno::ebadmsg,
    },
};
use kernel::{
    alloc::flags::__GFP_ZERO,
    page::Page,
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
};

/// Settings with a short busy timeout, so that a dead partition fails fast.
fn config() -> Config {
    Config {
        max_msg_size: 112,
        busy_timeout_ms: 50,
        poll_ms: 5,
        notification_id: 3,
        window_pages: 0,
    }
}

/// A link to a fake partition, shut down when dropped (also when a test fails early).
struct Bus(Arc<Link<FakePartition>>);

impl Bus {
    fn new(model: Model) -> Result<Self> {
        Self::with_config(model, config())
    }

    fn with_config(model: Model, config: Config) -> Result<Self> {
        Ok(Self(Link::new(FakePartition::new(model), config)?))
    }

    /// A link brought up against `model`, with the first event drain done (so that a test
    /// changing the fake's behaviour afterwards does not race with it).
    fn up(model: Model) -> Result<Self> {
        let bus = Self::new(model)?;
        bus.0.bring_up()?;
        bus.0.flush();
        Ok(bus)
    }

    fn fake(&self) -> &FakePartition {
        self.0.partition()
    }

    fn side(&self) -> BusSide<FakePartition> {
        BusSide(self.0.clone())
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Encodes a transport message for device `dev_num`.
fn transport(dev_num: u16, m: TransportMessage<'_>) -> Result<KVec<u8>> {
    encode_event(dev_num, Message::Transport(m))
}

fn pages(n: usize) -> Result<KVec<Page>> {
    let mut v = KVec::new();
    for _ in 0..n {
        v.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
    }
    Ok(v)
}

#[kunit_tests(virtio_msg_ffa)]
mod tests {
    use super::*;

    #[test]
    fn alp2_with_notification() -> Result {
        let bus = Bus::up(Model::alp2())?;
        let n = bus.0.negotiated().ok_or(EINVAL)?;
        assert_eq!(n.alp, Alp::Alp2);
        assert_eq!(n.terms.revision, 1);
        assert_eq!(n.terms.max_msg_size, 112);
        assert_eq!(n.terms.layout, Layout::Revision1);
        assert_eq!(n.max_areas, 4);
        assert_eq!(bus.0.mode(), EventMode::Notification);
        assert!(bus.fake().notification_bound());
        let (versions, resets, config) = bus
            .fake()
            .with(|m| (m.versions.as_slice() == [2], m.resets, m.event_config));
        assert!(versions);
        assert_eq!(resets, 1);
        assert_eq!(config, Some((EventMethod::Notification, 3)));
        Ok(())
    }

    #[test]
    fn falls_back_to_alp1() -> Result {
        let bus = Bus::up(Model::alp1())?;
        let n = bus.0.negotiated().ok_or(EINVAL)?;
        assert_eq!(n.alp, Alp::Alp1);
        assert_eq!(n.terms.layout, Layout::Late2025);
        // ALP1 offers no notification: polled, and no EVENT_CONFIGURE was sent.
        assert_eq!(bus.0.mode(), EventMode::Poll);
        let (versions, config) = bus
            .fake()
            .with(|m| (m.versions.as_slice() == [2, 1], m.event_config));
        assert!(versions);
        assert_eq!(config, None);
        Ok(())
    }

    #[test]
    fn refused_version_fails_the_probe() -> Result {
        let mut model = Model::alp1();
        model.alp1 = false;
        let bus = Bus::new(model)?;
        assert_eq!(bus.0.bring_up(), Err(ENODEV));
        let (versions, event_config, get_devices) = bus.fake().with(|m| {
            (
                m.versions.as_slice() == [2, 1],
                m.event_config,
                m.get_devices,
            )
        });
        assert!(versions);
        assert_eq!(event_config, None);
        assert_eq!(get_devices, 0);
        assert!(!bus.fake().notification_bound());
        Ok(())
    }

    #[test]
    fn version_is_fixed_until_reset() -> Result {
        // A previous instance left the partition negotiated: bring-up resets it first.
        let mut model = Model::alp2();
        model.negotiated = Some(Alp::Alp1);
        let bus = Bus::up(model)?;
        assert_eq!(bus.fake().with(|m| m.resets), 1);
        // A second negotiation is refused on this side, without a message.
        let calls = bus.fake().with(|m| m.calls);
        assert_eq!(bus.0.negotiate().err(), Some(EBUSY));
        assert_eq!(bus.fake().with(|m| m.calls), calls);
        // After RESET it runs again.
        bus.0.reset_bus()?;
        assert_eq!(bus.0.negotiated(), None);
        assert_eq!(bus.0.negotiate()?.alp, Alp::Alp2);
        assert_eq!(bus.fake().with(|m| m.resets), 2);
        Ok(())
    }

    #[test]
    fn partition_without_direct_messages_is_refused() -> Result {
        let mut model = Model::alp2();
        model.bus_features = 0;
        let bus = Bus::new(model)?;
        assert_eq!(bus.0.bring_up(), Err(ENODEV));
        // Nothing was settled on this side.
        assert_eq!(bus.0.negotiated(), None);
        let mut model = Model::alp2();
        model.bus_features = BUS_F_DIRECT_TX;
        let bus = Bus::up(model)?;
        assert_eq!(bus.0.mode(), EventMode::Poll);
        Ok(())
    }

    #[test]
    fn get_devices_over_several_windows() -> Result {
        let mut model = Model::alp2();
        for n in [3u16, 300, 1000] {
            model.devices.push(n, GFP_KERNEL)?;
        }
        let bus = Bus::up(model)?;
        let (windows, asked) = bus
            .fake()
            .with(|m| (m.get_devices, m.info_requests.as_slice() == [3, 300, 1000]));
        // Windows of 256 at 0, 256, 512 and 768.
        assert_eq!(windows, 4);
        assert!(asked);
        Ok(())
    }

    #[test]
    fn get_devices_answer_must_cover_the_window_asked_for() -> Result {
        use crate::vmsg::codec::bus::BusMessage;
        let answer = |offset, bitmap| {
            devices_window_answer(
                0,
                Message::Bus(BusMessage::GetDevicesResponse {
                    offset,
                    next_offset: 0,
                    bitmap,
                }),
            )
        };
        // The window asked for: 256 numbers from 0, devices 0 and 9.
        let mut full = [0u8; 32];
        full[0] = 1;
        full[1] = 2;
        let (_, found) = answer(0, &full).ok_or(EINVAL)?;
        assert_eq!(found.as_slice(), [0, 9]);
        // 248 numbers, or another offset: not an answer to that request.
        assert!(answer(0, &full[..31]).is_none());
        assert!(answer(8, &full).is_none());
        Ok(())
    }

    #[test]
    fn direct_transfers() -> Result {
        let bus = Bus::up(Model::alp2())?;
        let side = bus.side();
        let req = transport(5, TransportMessage::GetDeviceStatusRequest)?;
        let mut resp = [0u8; 112];
        let n = side.request(&req, &mut resp)?;
        let codec = Codec::new(BusKind::Ffa);
        let frame = codec
            .decode(resp.get(..n).ok_or(EINVAL)?)
            .map_err(|_| EINVAL)?;
        assert_eq!(frame.dev_num, 5);
        assert_eq!(
            frame.message,
            Message::Transport(TransportMessage::GetDeviceStatusResponse { status: 0x0f })
        );
        // More than one direct message holds.
        let big = [0u8; 113];
        assert_eq!(side.request(&big, &mut resp), Err(EMSGSIZE));
        // ERROR from the partition.
        bus.fake().with(|m| m.refuse_status = true);
        assert_eq!(side.request(&req, &mut resp), Err(EIO));
        // A response with another token.
        bus.fake().with(|m| {
            m.refuse_status = false;
            m.wrong_token = true;
        });
        assert_eq!(side.request(&req, &mut resp), Err(ebadmsg()));
        assert_eq!(get(&bus.0.stats.malformed), 1);
        bus.fake().with(|m| m.wrong_token = false);
        Ok(())
    }

    #[test]
    fn busy_partition_is_retried() -> Result {
        let bus = Bus::up(Model::alp2())?;
        bus.fake().with(|m| m.busy = 3);
        let req = transport(1, TransportMessage::GetDeviceStatusRequest)?;
        let mut resp = [0u8; 112];
        assert!(bus.side().request(&req, &mut resp).is_ok());
        assert_eq!(get(&bus.0.stats.busy), 3);
        assert_eq!(get(&bus.0.stats.timeouts), 0);
        Ok(())
    }

    #[test]
    fn partition_that_stops_answering() -> Result {
        let bus = Bus::up(Model::alp2())?;
        bus.fake().with(|m| m.dead = true);
        let req = transport(1, TransportMessage::GetDeviceStatusRequest)?;
        let mut resp = [0u8; 112];
        let start = Instant::<Monotonic>::now();
        assert_eq!(bus.side().request(&req, &mut resp), Err(ETIMEDOUT));
        // Bounded by the 50 ms busy timeout (plus one pause of at most 10 ms).
        assert!(start.elapsed().as_millis() < 1000);
        assert_eq!(get(&bus.0.stats.timeouts), 1);
        // Garbage instead of a response.
        bus.fake().with(|m| {
            m.dead = false;
            m.garbage = true;
        });
        assert_eq!(bus.side().request(&req, &mut resp), Err(ebadmsg()));
        bus.fake().with(|m| m.garbage = false);
        // A dead partition at probe time fails the probe instead of hanging it.
        let mut model = Model::alp2();
        model.dead = true;
        let dead = Bus::new(model)?;
        assert_eq!(dead.0.bring_up(), Err(ETIMEDOUT));
        Ok(())
    }

    #[test]
    fn notification_driven_events() -> Result {
        let bus = Bus::up(Model::alp2())?;
        assert_eq!(bus.0.mode(), EventMode::Notification);
        bus.0.flush();
        let polls = bus.fake().with(|m| m.polls);
        bus.fake().raise(&event_device(7, DeviceState::Added)?)?;
        bus.fake()
            .raise(&transport(9, TransportMessage::EventUsed { vq_index: 0 })?)?;
        bus.0.flush();
        let (asked, left, polled) = bus
            .fake()
            .with(|m| (m.info_requests.as_slice() == [7], m.pending.len(), m.polls));
        // The device event made the transport ask about device 7.
        assert!(asked);
        assert_eq!(left, 0);
        assert!(polled > polls);
        assert_eq!(get(&bus.0.stats.events_received), 2);
        assert!(get(&bus.0.stats.notifications) >= 1);
        // EVENT_USED for a device the transport does not have is dropped and counted.
        assert_eq!(get(&bus.0.stats.dropped), 1);
        Ok(())
    }

    #[test]
    fn polling_when_notifications_are_not_offered() -> Result {
        let mut model = Model::alp2();
        model.notify_error = Some(ENOTSUPP);
        let bus = Bus::up(model)?;
        assert_eq!(bus.0.mode(), EventMode::Poll);
        assert_eq!(
            bus.fake().with(|m| m.event_config),
            Some((EventMethod::Poll, 0))
        );
        bus.fake().raise(&event_device(4, DeviceState::Added)?)?;
        // The poll timer finds the event; flushing runs the poll now.
        bus.0.flush();
        bus.0.flush();
        assert!(bus.fake().with(|m| m.info_requests.as_slice() == [4]));
        // A partition that refuses the notification method is polled too.
        let mut model = Model::alp2();
        model.refuse_notification = true;
        let refusing = Bus::up(model)?;
        assert_eq!(refusing.0.mode(), EventMode::Poll);
        assert!(!refusing.fake().notification_bound());
        Ok(())
    }

    #[test]
    fn events_from_atomic_context() -> Result {
        let bus = Bus::up(Model::alp2())?;
        let side = bus.side();
        let kick = transport(
            2,
            TransportMessage::EventAvail {
                vq_index: 1,
                next_offset: 0,
            },
        )?;
        let lock = KBox::pin_init(crate::new_irq_spinlock!((), c"ffa_test"), GFP_KERNEL)?;
        {
            // Interrupts off: sending must neither sleep nor allocate.
            let _guard = lock.lock();
            side.send_event(&kick)?;
            side.send_event(&kick)?;
        }
        bus.0.flush();
        let kicks = bus.fake().with(|m| m.kicks.len());
        assert!(kicks >= 1);
        assert_eq!(kicks as u64 + get(&bus.0.stats.events_coalesced), 2);
        assert!(bus.fake().with(|m| m.kicks.iter().all(|k| *k == (2, 1))));
        // An event too large to queue.
        assert_eq!(side.send_event(&[0u8; 17]), Err(EMSGSIZE));
        Ok(())
    }

    #[test]
    fn memory_areas() -> Result {
        let bus = Bus::up(Model::alp2())?;
        // Shared, announced, withdrawn, reclaimed.
        let id = bus.0.share_area(pages(2)?)?;
        assert_eq!(id, 0);
        let announced = bus
            .fake()
            .with(|m| m.areas.first().map(|a| (a.page_count, a.handle)));
        assert_eq!(announced, Some((2, 0x1000)));
        bus.0.unshare_area(id)?;
        assert!(bus
            .fake()
            .with(|m| m.areas.is_empty() && m.reclaimed.as_slice() == [0x1000]));
        // FFA_MEM_SHARE fails: nothing is announced.
        bus.fake().with(|m| m.share_error = Some(ENOMEM));
        assert_eq!(bus.0.share_area(pages(1)?), Err(ENOMEM));
        assert!(bus.fake().with(|m| m.areas.is_empty()));
        // The partition refuses the area: the memory is reclaimed.
        bus.fake().with(|m| {
            m.share_error = None;
            m.area_result = AreaResult::Error;
        });
        assert_eq!(bus.0.share_area(pages(1)?), Err(EIO));
        assert!(bus
            .fake()
            .with(|m| m.shared.is_empty() && m.reclaimed.len() == 2));
        // Busy twice, then accepted.
        bus.fake().with(|m| {
            m.area_result = AreaResult::Ok;
            m.area_busy = 2;
        });
        assert_eq!(bus.0.share_area(pages(1)?), Ok(0));
        // No more than `max_areas` areas.
        for id in 1..4 {
            assert_eq!(bus.0.share_area(pages(1)?), Ok(id));
        }
        assert_eq!(bus.0.share_area(pages(1)?), Err(ENOSPC));
        // Removal withdraws what is left.
        bus.0.shutdown();
        assert!(bus
            .fake()
            .with(|m| m.areas.is_empty() && m.shared.is_empty()));
        Ok(())
    }

    #[test]
    fn window_is_shared_at_bring_up() -> Result {
        // The transport's minimum: 2 MiB.
        let windowed = Config {
            window_pages: (2 << 20) / kernel::page::PAGE_SIZE,
            ..config()
        };
        // Shared as area 0 before any device is added, withdrawn at removal.
        let bus = Bus::with_config(Model::alp2(), windowed)?;
        bus.0.bring_up()?;
        let announced = bus
            .fake()
            .with(|m| m.areas.first().map(|a| (a.area_id, a.page_count, a.handle)));
        let pages = windowed.window_pages;
        assert_eq!(announced, Some((0, pages as u32, 0x1000)));
        assert_eq!(bus.0.area_memory(0).map(|m| m.pages().len()), Some(pages));
        bus.0.shutdown();
        assert!(bus
            .fake()
            .with(|m| m.areas.is_empty() && m.reclaimed.as_slice() == [0x1000]));
        // A partition without areas (ALP1), or one whose FFA_MEM_SHARE fails: the bus comes up
        // without a window.
        let bus = Bus::with_config(Model::alp1(), windowed)?;
        bus.0.bring_up()?;
        assert!(bus
            .fake()
            .with(|m| m.areas.is_empty() && m.shared.is_empty()));
        let bus = Bus::with_config(Model::alp2(), windowed)?;
        bus.fake().with(|m| m.share_error = Some(ENOMEM));
        bus.0.bring_up()?;
        assert!(bus.fake().with(|m| m.areas.is_empty()));
        // A window below the transport's minimum is refused: withdrawn and reclaimed again.
        let small = Config {
            window_pages: 4,
            ..config()
        };
        let bus = Bus::with_config(Model::alp2(), small)?;
        bus.0.bring_up()?;
        assert!(bus
            .fake()
            .with(|m| m.areas.is_empty() && m.reclaimed.as_slice() == [0x1000]));
        Ok(())
    }

    #[test]
    fn shutdown_resets_and_stops() -> Result {
        let bus = Bus::up(Model::alp2())?;
        bus.0.shutdown();
        assert_eq!(bus.fake().with(|m| m.resets), 2);
        assert!(!bus.fake().notification_bound());
        let req = transport(1, TransportMessage::GetDeviceStatusRequest)?;
        let mut resp = [0u8; 112];
        assert_eq!(bus.side().request(&req, &mut resp), Err(ENODEV));
        let kick = transport(
            1,
            TransportMessage::EventAvail {
                vq_index: 0,
                next_offset: 0,
            },
        )?;
        assert_eq!(bus.side().send_event(&kick), Err(ENODEV));
        // Notifications after removal do nothing.
        bus.fake().raise(&event_device(1, DeviceState::Added)?)?;
        bus.0.flush();
        assert!(bus.fake().with(|m| m.info_requests.is_empty()));
        Ok(())
    }

    #[test]
    fn codec_frames_fit_one_direct_message() -> Result {
        // The largest GET_DEVICES answer for a 256-device window fits in 112 bytes.
        let bitmap = [0xffu8; 32];
        let m = Message::Bus(crate::vmsg::codec::bus::BusMessage::GetDevicesResponse {
            offset: 0,
            next_offset: 0,
            bitmap: &bitmap,
        });
        let mut buf = [0u8; 112];
        let mut codec = Codec::new(BusKind::Ffa);
        codec.max_msg_size = 112;
        assert!(codec.encode(&Frame::bus(0, m), &mut buf).is_ok());
        Ok(())
    }
}
