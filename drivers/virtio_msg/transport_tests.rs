// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the transport against the fake bus.

use crate::{
    device::MsgDevice,
    fake_bus::{FakeBus, Fault, CONFIG_SIZE},
    instance::Instance,
    link::BusLink,
    vmsg::virtio::{QueueAddrs, Registration, Transport},
};
use core::sync::atomic::Ordering;
use kernel::{prelude::*, sync::Arc};

/// A device type no driver binds, so registration tests do not depend on drivers.
const UNBOUND_DEVICE_ID: u32 = 0xfffe;

/// A fake bus, the device on it, and an unregistered virtio device to call the transport with.
fn setup(max_msg_size: u16) -> Result<(Arc<FakeBus>, Arc<MsgDevice<FakeBus>>, Registration)> {
    let bus = Arc::pin_init(FakeBus::new(max_msg_size, UNBOUND_DEVICE_ID), GFP_KERNEL)?;
    let dev = MsgDevice::probe(bus.clone(), None, 3)?.ok_or(ENODEV)?;
    let reg = Registration::new(None, UNBOUND_DEVICE_ID, 0, dev.clone())?;
    Ok((bus, dev, reg))
}

/// An instance of the transport on the fake bus.
type TestInstance = Pin<KBox<Instance<FakeBus>>>;

/// A fake bus and an instance on it that may have `max_devices` devices.
fn instance_with(max_devices: u32) -> Result<(Arc<FakeBus>, TestInstance)> {
    let bus = Arc::pin_init(FakeBus::new(264, UNBOUND_DEVICE_ID), GFP_KERNEL)?;
    let dir = crate::vmsg::module_dir::InstanceDir::new(c"virtio_msg", c"test");
    let instance = KBox::pin_init(
        Instance::new(bus.clone(), None, dir, max_devices),
        GFP_KERNEL,
    )?;
    Ok((bus, instance))
}

#[kunit_tests(virtio_msg_transport)]
mod tests {
    use super::*;

    #[test]
    fn features_span_blocks() -> Result {
        let (bus, dev, reg) = setup(264)?;
        let words = dev.features(reg.device());
        assert_eq!(words, [0x2_0000_0001, 0x8_0000_0004]);
        dev.finalize_features(reg.device(), &[0x2_0000_0001, 0x8_0000_0000])?;
        assert_eq!(bus.model.lock().driver_features, [0x1, 0x2, 0, 0x8]);
        Ok(())
    }

    #[test]
    fn features_in_small_messages() -> Result {
        // 52 bytes carry 9 blocks, more than the device has: still one request each way.
        let (bus, dev, reg) = setup(52)?;
        let before = bus.requests.load(Ordering::Relaxed);
        assert_eq!(dev.features(reg.device()), [0x2_0000_0001, 0x8_0000_0004]);
        assert_eq!(bus.requests.load(Ordering::Relaxed) - before, 1);
        Ok(())
    }

    #[test]
    fn config_read_is_chunked() -> Result {
        // 52-byte messages carry 32 config bytes: 100 bytes take 4 requests.
        let (bus, dev, reg) = setup(52)?;
        let mut buf = [0u8; CONFIG_SIZE];
        let before = bus.requests.load(Ordering::Relaxed);
        dev.get_config(reg.device(), 0, &mut buf);
        assert_eq!(bus.requests.load(Ordering::Relaxed) - before, 4);
        assert!(buf.iter().enumerate().all(|(i, b)| *b == i as u8));
        Ok(())
    }

    #[test]
    fn config_read_retries_on_generation_change() -> Result {
        let (bus, dev, reg) = setup(52)?;
        bus.model.lock().bump_after = Some(2);
        let mut buf = [0u8; CONFIG_SIZE];
        let before = bus.requests.load(Ordering::Relaxed);
        dev.get_config(reg.device(), 0, &mut buf);
        assert_eq!(dev.stats.generation_retries.get(), 1);
        assert_eq!(bus.requests.load(Ordering::Relaxed) - before, 8);
        assert!(buf.iter().enumerate().all(|(i, b)| *b == i as u8));
        assert_eq!(dev.generation(reg.device()), 2);
        Ok(())
    }

    #[test]
    fn config_that_never_settles_gives_up() -> Result {
        let (bus, dev, reg) = setup(52)?;
        bus.model.lock().always_bump = true;
        let mut buf = [0xaau8; 64];
        dev.get_config(reg.device(), 0, &mut buf);
        assert_eq!(dev.stats.generation_retries.get(), 5);
        assert!(buf.iter().all(|b| *b == 0));
        Ok(())
    }

    #[test]
    fn config_write_is_chunked_and_applied() -> Result {
        let (bus, dev, reg) = setup(52)?;
        let data = [0x5au8; 40];
        dev.set_config(reg.device(), 10, &data);
        let m = bus.model.lock();
        assert!(m.config[10..50].iter().all(|b| *b == 0x5a));
        assert_eq!(m.config[9], 9);
        assert_eq!(m.config[50], 50);
        Ok(())
    }

    #[test]
    fn config_access_past_the_end_sends_nothing() -> Result {
        let (bus, dev, reg) = setup(264)?;
        let before = bus.requests.load(Ordering::Relaxed);
        let mut buf = [0xffu8; 8];
        dev.get_config(reg.device(), CONFIG_SIZE as u32 - 4, &mut buf);
        assert_eq!(buf, [0; 8]);
        assert_eq!(bus.requests.load(Ordering::Relaxed), before);
        Ok(())
    }

    #[test]
    fn queue_setup_and_read_back() -> Result {
        let (bus, dev, reg) = setup(264)?;
        assert_eq!(dev.queue_max_size(reg.device(), 0)?, 256);
        let addrs = QueueAddrs {
            desc: 0x1000,
            driver: 0x2000,
            device: 0x3000,
        };
        dev.queue_enable(reg.device(), 0, 128, addrs)?;
        assert_eq!(bus.model.lock().queues[0].cur_size, 128);
        // An enabled queue cannot be set up again.
        assert_eq!(dev.queue_max_size(reg.device(), 0), Err(EBUSY));
        dev.queue_disable(reg.device(), 0);
        assert_eq!(bus.model.lock().queues[0].flags, 0);
        Ok(())
    }

    #[test]
    fn queue_setup_failures() -> Result {
        let (bus, dev, reg) = setup(264)?;
        // Past the device's queue count: refused without a message.
        assert_eq!(dev.queue_max_size(reg.device(), 2), Err(ENOENT));
        bus.model.lock().queues[1].max_size = 0;
        assert_eq!(dev.queue_max_size(reg.device(), 1), Err(ENOENT));
        bus.model.lock().fault = Fault::WrongReadBack;
        let addrs = QueueAddrs {
            desc: 0x1000,
            driver: 0x2000,
            device: 0x3000,
        };
        assert_eq!(dev.queue_enable(reg.device(), 0, 128, addrs), Err(EIO));
        Ok(())
    }

    #[test]
    fn huge_queue_size_breaks_the_device() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.model.lock().fault = Fault::HugeQueue;
        assert!(dev.queue_max_size(reg.device(), 0).is_err());
        assert!(!dev.is_broken() || dev.stats.protocol_errors.get() > 0);
        Ok(())
    }

    #[test]
    fn timeout_breaks_the_device_and_fails_fast() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.model.lock().fault = Fault::Timeout;
        assert_eq!(dev.get_status(reg.device()), 0x40);
        assert!(dev.is_broken());
        assert_eq!(dev.stats.timeouts.get(), 1);
        let before = bus.requests.load(Ordering::Relaxed);
        assert_eq!(dev.queue_max_size(reg.device(), 0), Err(EIO));
        assert!(!dev.notify(reg.device(), 0, 0));
        assert_eq!(bus.requests.load(Ordering::Relaxed), before);
        Ok(())
    }

    #[test]
    fn unreachable_device_side_breaks_the_device() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.model.lock().fault = Fault::NoMemory;
        assert_eq!(dev.queue_max_size(reg.device(), 0), Err(ENOMEM));
        assert!(!dev.is_broken());
        bus.model.lock().fault = Fault::BusDown;
        assert_eq!(dev.queue_max_size(reg.device(), 0), Err(EIO));
        assert!(dev.is_broken());
        assert_eq!(dev.stats.timeouts.get(), 0);
        Ok(())
    }

    #[test]
    fn broken_device_reads_needs_reset_until_reset() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.model.lock().fault = Fault::Timeout;
        assert_eq!(dev.get_status(reg.device()), 0x40);
        let before = bus.requests.load(Ordering::Relaxed);
        dev.reset(reg.device());
        assert_eq!(dev.get_status(reg.device()), 0);
        // Neither the reset nor the status read went to the broken device.
        assert_eq!(bus.requests.load(Ordering::Relaxed), before);
        Ok(())
    }

    #[test]
    fn device_breaking_during_reset_reads_status_zero() -> Result {
        let (bus, dev, reg) = setup(264)?;
        // The reset itself times out: the device breaks during it.
        bus.model.lock().fault = Fault::Timeout;
        dev.reset(reg.device());
        assert!(dev.is_broken());
        assert_eq!(dev.get_status(reg.device()), 0);
        Ok(())
    }

    #[test]
    fn removal_of_a_device_the_device_side_forgot_completes() -> Result {
        let (bus, instance) = instance_with(64)?;
        instance.add_device(4)?;
        // The device side has forgotten the device: any message times out. The removal still
        // completes, and the number is free again.
        bus.model.lock().fault = Fault::Timeout;
        instance.remove_device(4)?;
        assert!(instance.slot(4).is_none());
        bus.model.lock().fault = Fault::None;
        instance.add_device(4)?;
        instance.remove_all();
        Ok(())
    }

    #[test]
    fn wrong_answers_are_protocol_errors() -> Result {
        for fault in [Fault::WrongId, Fault::WrongDevNum, Fault::Truncated] {
            let (bus, dev, reg) = setup(264)?;
            bus.model.lock().fault = fault;
            assert_eq!(dev.get_status(reg.device()), 0x40);
            assert!(dev.is_broken());
            assert_eq!(dev.stats.protocol_errors.get(), 1);
        }
        Ok(())
    }

    #[test]
    fn absent_device_is_not_probed() -> Result {
        let bus = Arc::pin_init(FakeBus::new(264, 0), GFP_KERNEL)?;
        assert!(MsgDevice::probe(bus, None, 0)?.is_none());
        Ok(())
    }

    #[test]
    fn notify_sends_an_event() -> Result {
        let (bus, dev, reg) = setup(264)?;
        assert!(dev.notify(reg.device(), 1, 0));
        assert_eq!(bus.events.load(Ordering::Relaxed), 1);
        assert_eq!(dev.stats.events_sent.get(), 1);
        Ok(())
    }

    #[test]
    fn kick_without_room_is_kept_and_sent_later() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.events_full.store(true, Ordering::Relaxed);
        // Not a broken queue: the kick is kept, once per queue however often it comes.
        assert!(dev.notify(reg.device(), 1, 0));
        assert!(dev.notify(reg.device(), 1, 0));
        // A queue the device lacks.
        assert!(!dev.notify(reg.device(), 9, 0));
        assert_eq!(dev.stats.kicks_deferred.get(), 2);
        dev.resend_kicks(reg.device());
        // Still no room: still kept.
        assert_eq!(bus.events.load(Ordering::Relaxed), 0);
        bus.events_full.store(false, Ordering::Relaxed);
        dev.resend_kicks(reg.device());
        assert_eq!(bus.events.load(Ordering::Relaxed), 1);
        dev.resend_kicks(reg.device());
        // Sent once.
        assert_eq!(bus.events.load(Ordering::Relaxed), 1);
        assert!(!dev.is_broken());
        Ok(())
    }

    #[test]
    fn kick_refused_just_before_room_is_not_lost() -> Result {
        let (bus, dev, reg) = setup(264)?;
        // The bus refuses the kick, then has room at once (it may have resumed events before
        // the transport kept the kick, and will not resume them again).
        bus.refuse_events.store(1, Ordering::Relaxed);
        assert!(dev.notify(reg.device(), 0, 0));
        assert_eq!(bus.events.load(Ordering::Relaxed), 1);
        Ok(())
    }

    #[test]
    fn kick_with_interrupts_disabled_waits_for_room() -> Result {
        let (bus, dev, reg) = setup(264)?;
        let lock = KBox::pin_init(crate::new_irq_spinlock!((), c"kick_test"), GFP_KERNEL)?;
        // Three refusals, then room: sent from within the call, not kept (with interrupts
        // disabled nothing could send a kept kick while the caller spins on its answer).
        bus.refuse_events.store(3, Ordering::Relaxed);
        let guard = lock.lock();
        let sent = dev.notify(reg.device(), 0, 0);
        drop(guard);
        assert!(sent);
        assert_eq!(bus.events.load(Ordering::Relaxed), 1);
        assert_eq!(dev.stats.kicks_deferred.get(), 0);
        Ok(())
    }

    #[test]
    fn config_generation_churn_breaks_the_device() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.model.lock().always_bump = true;
        // The virtio core's __virtio_cread_many(): read until two generations agree.
        let mut buf = [0u8; 8];
        let mut rounds = 0;
        loop {
            let before = dev.generation(reg.device());
            dev.get_config(reg.device(), 0, &mut buf);
            if dev.generation(reg.device()) == before {
                break;
            }
            rounds += 1;
            // Otherwise the config read never ends.
            assert!(rounds < 100);
        }
        assert!(dev.is_broken());
        Ok(())
    }

    #[test]
    fn status_after_a_reset_must_be_zero() -> Result {
        let (bus, dev, reg) = setup(264)?;
        bus.model.lock().sticky_status = true;
        dev.set_status(reg.device(), 0x0f);
        dev.reset(reg.device());
        // The virtio core WARNs on a non-zero status after its driver reset the device.
        assert_eq!(dev.get_status(reg.device()), 0);
        assert!(dev.is_broken());
        Ok(())
    }

    #[test]
    fn registration_resets_and_acknowledges() -> Result {
        let (bus, instance) = instance_with(64)?;
        instance.add_device(7)?;
        assert_eq!(instance.add_device(7), Err(EEXIST));
        // The virtio core resets a new device, then sets ACKNOWLEDGE.
        assert_eq!(&bus.model.lock().status_log[..2], &[0, 1]);
        instance.remove_device(7)?;
        assert_eq!(instance.remove_device(7), Err(ENOENT));
        assert!(instance.slot(7).is_none());
        Ok(())
    }

    #[test]
    fn gate_turns_calls_away_once_closed() -> Result {
        use crate::vmsg::gate::Gate;
        let gate = Gate::new();
        let first = gate.enter();
        let second = gate.enter();
        assert!(first.is_some() && second.is_some());
        drop(first);
        drop(second);
        // No call inside: closing does not wait.
        gate.close();
        assert!(gate.is_closed());
        assert!(gate.enter().is_none());
        // Idempotent, and still closed.
        gate.close();
        assert!(gate.enter().is_none());
        Ok(())
    }

    #[test]
    fn teardown_retires_devices_not_yet_ready_and_refuses_additions() -> Result {
        let (bus, instance) = instance_with(64)?;
        // No driver binds UNBOUND_DEVICE_ID: device 1 stays short of DRIVER_OK, as one whose
        // driver is still probing. Device 2's status says DRIVER_OK.
        instance.add_device(1)?;
        instance.add_device(2)?;
        let probing = instance.slot(1).ok_or(ENOENT)?.device.clone();
        let ready = instance.slot(2).ok_or(ENOENT)?;
        ready.device.set_status(ready.registration.device(), 0xf);
        let ready = ready.device.clone();
        instance.remove_all();
        // Retired: the driver's requests fail at once rather than wait for the device side
        // while the instance's removal waits for the probe. A ready device keeps working
        // until it is reset, for its I/O in flight.
        assert!(probing.is_broken());
        assert!(!ready.is_broken());
        assert!(instance.slot(1).is_none() && instance.slot(2).is_none());
        // Once the teardown began, nothing is added, and nothing is asked of the device side.
        let asked = bus.requests.load(Ordering::Relaxed);
        assert_eq!(instance.add_device(3), Err(ENODEV));
        assert_eq!(bus.requests.load(Ordering::Relaxed), asked);
        Ok(())
    }

    #[test]
    fn devices_beyond_the_limit_are_refused() -> Result {
        let (bus, instance) = instance_with(2)?;
        instance.add_device(1)?;
        instance.add_device(2)?;
        let asked = bus.requests.load(Ordering::Relaxed);
        assert_eq!(instance.add_device(3), Err(ENOSPC));
        // Refused before a single message to the device side.
        assert_eq!(bus.requests.load(Ordering::Relaxed), asked);
        assert!(instance.slot(3).is_none());
        // A freed place can be taken again.
        instance.remove_device(2)?;
        instance.add_device(3)?;
        instance.remove_all();
        Ok(())
    }

    #[test]
    fn events_for_unknown_devices_or_queues_are_dropped() -> Result {
        use crate::vmsg::codec::{transport::TransportMessage, Frame};
        let (_bus, instance) = instance_with(64)?;
        instance.add_device(1)?;
        let codec = crate::link::transport_codec(&instance.link().terms());
        let mut buf = [0u8; 32];
        let used = Frame::transport(1, TransportMessage::EventUsed { vq_index: 0 });
        let n = codec.encode(&used, &mut buf).map_err(|_| EINVAL)?;
        // No queue 0 is set up: dropped.
        assert_eq!(instance.receive(&buf[..n]), Err(EINVAL));
        let other = Frame::transport(2, TransportMessage::EventUsed { vq_index: 0 });
        let n = codec.encode(&other, &mut buf).map_err(|_| EINVAL)?;
        assert_eq!(instance.receive(&buf[..n]), Err(ENODEV));
        assert!(instance.receive(&buf[..n - 1]).is_err());
        instance.remove_all();
        Ok(())
    }
}
