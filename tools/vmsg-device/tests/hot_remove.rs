// SPDX-License-Identifier: GPL-2.0

//! Hot removal over the control socket: the device side announces EVENT_DEVICE removed
//! and keeps serving the device until the driver resets it, detaches or resets the bus,
//! or the grace period passes (Documentation/shm-bus.rst, "Hot removal").

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    control, driver_ok, expect_used, features_ok, hdr, help, kick, negotiate, transport, wait_for,
    Client, Device, GuestRam, SplitQueue, VERSION_1,
};
use virtio_msg_codec::bus::{BusMessage, DeviceState};
use virtio_msg_codec::shm::ShmBusMessage;
use virtio_msg_codec::transport::TransportMessage as T;
use virtio_msg_codec::{Frame, Message};

/// How long a test waits to be sure that no answer comes.
const SILENCE: Duration = Duration::from_millis(300);

fn device_event(client: &Client) -> (u16, DeviceState) {
    client.recv(|f| match f.message {
        Message::Bus(BusMessage::EventDevice { dev_num, state }) => (dev_num, state),
        other => panic!("{other:?}"),
    })
}

/// GET_DEVICE_STATUS; `None` when no answer comes.
fn status(client: &Client, dev_num: u16, token: u16) -> Option<u32> {
    client.send(transport(dev_num, token, T::GetDeviceStatusRequest));
    let raw = client.try_recv_raw(SILENCE)?;
    match client.codec.decode(&raw).unwrap() {
        Frame {
            message: Message::Transport(T::GetDeviceStatusResponse { status }),
            token: t,
            dev_num: d,
        } if (d, t) == (dev_num, token) => Some(status),
        other => panic!("{other:?}"),
    }
}

/// `remove N` over the control socket for a device at status 0: announced, and still
/// served at first.
fn remove(client: &Client, ctl: &Path, dev_num: u16) {
    assert_eq!(control(ctl, &format!("remove {dev_num}")), "ok");
    assert_eq!(device_event(client), (dev_num, DeviceState::Removed));
    assert_eq!(status(client, dev_num, 0x700 + dev_num), Some(0));
}

/// GET_DEVICE_INFO's device id (0: no device with that number).
fn device_id(client: &Client, dev_num: u16) -> u32 {
    client.send(transport(dev_num, 0x500 + dev_num, T::GetDeviceInfoRequest));
    client.recv(|f| match f.message {
        Message::Transport(T::GetDeviceInfoResponse(info)) => info.device_id,
        other => panic!("{other:?}"),
    })
}

/// GET_DEVICES' bitmap of the first 8 device numbers.
fn present(client: &Client) -> Vec<u8> {
    client.send(Frame::bus(
        0x600,
        Message::Bus(BusMessage::GetDevicesRequest {
            offset: 0,
            count: 8,
        }),
    ));
    client.recv(|f| match f.message {
        Message::Bus(BusMessage::GetDevicesResponse { bitmap, .. }) => bitmap.to_vec(),
        other => panic!("{other:?}"),
    })
}

#[test]
fn a_removed_device_is_served_until_the_driver_resets_it() {
    let ram = GuestRam::new(1 << 20);
    let (dev, ctl) = Device::spawn_with_control(&[
        "--guest-memory",
        &ram.path,
        "--device",
        "rng",
        "--device",
        "rng",
    ]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    features_ok(&client, 0, VERSION_1);
    let mut q = SplitQueue::new(&ram, 0x10000, 8);
    client.call(transport(0, 1, T::SetVqueueRequest(q.setup(0))));
    driver_ok(&client, 0);

    assert_eq!(control(&ctl, "remove 0"), "ok");
    assert_eq!(device_event(&client), (0, DeviceState::Removed));

    // Still served: a virtqueue request, the status, the config.
    q.add_chain(&ram, &[(0x40000, 64, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_elem(&ram, 0), (0, 64));
    assert_eq!(status(&client, 0, 2), Some(15));
    let r = client.call(transport(
        0,
        3,
        T::GetConfigRequest {
            offset: 0,
            length: 0,
        },
    ));
    assert_eq!((r.0, r.1), (0, 3), "{}", r.2);
    // But no longer present, and not removed twice.
    assert_eq!(present(&client), vec![0b10]);
    assert_eq!(control(&ctl, "list"), "ok 0:rng(removed) 1:rng");
    assert!(
        control(&ctl, "remove 0").starts_with("error device 0 is already removed"),
        "a second remove is refused"
    );
    // An add meanwhile does not get the number that is still served.
    assert_eq!(control(&ctl, "add rng"), "ok 2");
    assert_eq!(device_event(&client), (2, DeviceState::Added));

    // The driver resets it: answered, then forgotten.
    let r = client.call(transport(0, 4, T::SetDeviceStatusRequest { status: 0 }));
    assert_eq!(
        r,
        (
            0,
            4,
            "Transport(SetDeviceStatusResponse { status: 0 })".into()
        )
    );
    assert_eq!(status(&client, 0, 5), None, "forgotten after the reset");
    assert_eq!(device_id(&client, 0), 0);
    assert_eq!(control(&ctl, "list"), "ok 1:rng 2:rng");

    // Its number is free again, for a fresh device.
    assert_eq!(control(&ctl, "add rng"), "ok 0");
    assert_eq!(device_event(&client), (0, DeviceState::Added));
    assert_eq!(device_id(&client, 0), 4);
    assert_eq!(status(&client, 0, 6), Some(0));
}

#[test]
fn a_removed_device_is_forgotten_after_the_grace_period() {
    let (dev, ctl) = Device::spawn_with_control(&["--device", "rng", "--removal-grace-ms", "400"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    let removed = Instant::now();
    remove(&client, &ctl, 0);
    wait_for("device 0 to be forgotten", || device_id(&client, 0) == 0);
    assert!(
        removed.elapsed() >= Duration::from_millis(350),
        "forgotten after {:?}",
        removed.elapsed()
    );
    assert!(dev.log().contains("grace period"), "{}", dev.log());
    assert_eq!(control(&ctl, "list"), "ok");
}

#[test]
fn a_removed_device_is_forgotten_when_the_driver_resets_the_bus_or_detaches() {
    let (dev, ctl) = Device::spawn_with_control(&["--device", "rng", "--device", "rng"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);

    // RESET of the bus instance.
    remove(&client, &ctl, 0);
    let r = client.call(Frame::bus(2, Message::Shm(ShmBusMessage::ResetRequest)));
    assert_eq!(r.2, "Shm(ResetResponse { status: 0 })");
    negotiate(&client);
    assert_eq!(device_id(&client, 0), 0);
    assert_eq!(present(&client), vec![0b10]);

    // The driver side detaches and attaches again.
    remove(&client, &ctl, 1);
    let ring_device = || {
        client
            .device_doorbell()
            .write_all(&1u64.to_ne_bytes())
            .unwrap()
    };
    client.store(hdr::DRIVER_STATE, 0);
    ring_device();
    wait_for("device_state 0", || client.load(hdr::DEVICE_STATE) == 0);
    client.store(hdr::DRIVER_STATE, 1);
    ring_device();
    wait_for("device_state 1", || client.load(hdr::DEVICE_STATE) == 1);
    negotiate(&client);
    assert_eq!(device_id(&client, 1), 0);
    assert_eq!(present(&client), vec![0]);
    assert_eq!(control(&ctl, "list"), "ok");
    assert_eq!(control(&ctl, "add rng"), "ok 0");
}

#[test]
fn help_documents_the_removal_grace_period() {
    let help = help();
    assert!(help.contains("--removal-grace-ms <MS>"), "{help}");
    assert!(help.contains("[default: 30000]"), "{help}");
}
