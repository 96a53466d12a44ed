// SPDX-License-Identifier: GPL-2.0

//! Hot removal over the control socket: the device side announces EVENT_DEVICE removed
//! and keeps serving the device until the driver resets it, detaches or resets the bus,
//! or the grace period passes (Documentation/shm-bus.rst, "Hot removal").

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    control, expect_used, hdr, help, kick, negotiate, queues_at_driver_ok, transport, wait_for,
    Client, Device, GuestRam, Split, SplitQueue,
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

/// Two rngs served from `ram`, with a control socket.
fn two_rngs(ram: &GuestRam) -> (Device, PathBuf) {
    Device::spawn_with_control(&[
        "--guest-memory",
        &ram.path,
        "--device",
        "rng",
        "--device",
        "rng",
    ])
}

#[test]
fn a_removed_device_is_served_until_the_driver_resets_it() {
    let ram = GuestRam::new(1 << 20);
    let (dev, ctl) = two_rngs(&ram);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    let mut q = queues_at_driver_ok(&client, 0, &ram, &[(0x10000, 8)]).remove(0);

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

/// A removed device still served, with its queue 0 at 0x10000 at DRIVER_OK and one buffer
/// used since the removal.
fn removed_rng_in_use(client: &Client, ctl: &Path, ram: &GuestRam) -> SplitQueue {
    negotiate(client);
    let mut q = queues_at_driver_ok(client, 0, ram, &[(0x10000, 8)]).remove(0);
    assert_eq!(control(ctl, "remove 0"), "ok");
    assert_eq!(device_event(client), (0, DeviceState::Removed));
    q.add_chain(ram, &[(0x40000, 64, true)]);
    kick(client, 0, 0);
    expect_used(client, 0, 0);
    q
}

/// The guest frees the removed device's queue and reuses the memory: an entry made
/// available there, for a buffer at 0x50000. Returns guest RAM as it is then.
fn reuse_queue_memory(ram: &GuestRam, q: &mut SplitQueue) -> Vec<u8> {
    ram.write(0x50000, &[0xaa; 256]);
    q.add_chain(ram, &[(0x50000, 256, true)]);
    ram.read(0, 1 << 20)
}

#[test]
fn a_removed_device_s_queue_is_left_alone_once_the_driver_side_detached_or_reset_the_bus() {
    for how in ["detach", "reset"] {
        let ram = GuestRam::new(1 << 20);
        let (dev, ctl) = two_rngs(&ram);
        let client = Client::connect(&dev.socket, 1);
        let mut q = removed_rng_in_use(&client, &ctl, &ram);
        if how == "detach" {
            client.reattach();
        } else {
            let r = client.call(Frame::bus(2, Message::Shm(ShmBusMessage::ResetRequest)));
            assert_eq!(r.2, "Shm(ResetResponse { status: 0 })");
        }
        let before = reuse_queue_memory(&ram, &mut q);
        negotiate(&client);
        // A late notification for it (and a console input or anything else) finds no
        // device, and the other device is served.
        kick(&client, 0, 0);
        assert_eq!(device_id(&client, 0), 0, "{how}");
        assert_eq!(device_id(&client, 1), 4, "{how}");
        assert!(
            ram.read(0, 1 << 20) == before,
            "{how}: guest memory written"
        );
    }
}

#[test]
fn a_restarted_device_logic_leaves_the_queues_of_removed_devices_alone() {
    let split = Split::start("64K");
    let ram = GuestRam::new(1 << 20);
    let ctl = split.state.with_file_name("ctl");
    let args = [
        "--control",
        ctl.to_str().unwrap(),
        "--guest-memory",
        ram.path.as_str(),
        "--device",
        "rng",
        "--device",
        "rng",
    ];
    let mut dev = split.spawn_device(&args, "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    let mut q = removed_rng_in_use(&client, &ctl, &ram);
    dev.kill();
    // While no device logic runs, the driver finishes the removal: its reset of the
    // device fails (nobody answers in time) and the queue memory is freed and reused.
    let before = reuse_queue_memory(&ram, &mut q);

    let dev2 = split.spawn_device(&args, "device2.log");
    wait_for("the successor to join", || dev2.log().contains("joined"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(ram.read(0, 1 << 20) == before, "guest memory written");
    // Still removed and served, but its queue is not: neither resumed nor on a
    // notification. The other device resumed.
    assert_eq!(present(&client), vec![0b10]);
    assert_eq!(control(&ctl, "list"), "ok 0:rng(removed) 1:rng");
    assert_eq!(device_id(&client, 0), 4);
    kick(&client, 0, 0);
    assert_eq!(status(&client, 0, 8), Some(15));
    assert!(ram.read(0, 1 << 20) == before, "guest memory written");
    // Its reset is answered, and then it is forgotten.
    let r = client.call(transport(0, 9, T::SetDeviceStatusRequest { status: 0 }));
    assert_eq!(r.2, "Transport(SetDeviceStatusResponse { status: 0 })");
    assert_eq!(device_id(&client, 0), 0);
    assert_eq!(control(&ctl, "list"), "ok 1:rng");
}
