// SPDX-License-Identifier: GPL-2.0

//! virtio-blk and virtio-console through real virtqueues, hot plug over the control
//! socket, the detach/recovery handshake, and every fault-injection kind.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{
    control, driver_ok, expect_used, features_ok, hdr, help, kick, negotiate, ping,
    queues_at_driver_ok, spawn_negotiated, transport, version_status, wait_for, Client, Device,
    GuestRam, SplitQueue, ACKNOWLEDGE, DRIVER, FEATURES_OK, VERSION_1,
};
use virtio_msg_codec::bus::{BusMessage, DeviceState};
use virtio_msg_codec::shm::{ShmBusMessage, VersionStatus, VersionTerms};
use virtio_msg_codec::transport::TransportMessage as T;
use virtio_msg_codec::{Frame, Message};

fn blk_request(kind: u32, sector: u64) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&kind.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&sector.to_le_bytes());
    h
}

#[test]
fn blk_write_read_flush_get_id() {
    let ram = GuestRam::new(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let mut image: Vec<u8> = (0..64 * 1024).map(|i| (i / 512) as u8).collect();
    std::fs::write(&disk, &image).unwrap();
    let spec = format!("blk:path={},serial=vmsg-disk-01", disk.display());
    let dev = Device::spawn_in(dir, &["--guest-memory", &ram.path, "--device", &spec]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);

    // Config: capacity 128 sectors, blk_size 512.
    client.send(transport(
        0,
        1,
        T::GetConfigRequest {
            offset: 0,
            length: 24,
        },
    ));
    let cfg = client.recv(|f| match f.message {
        Message::Transport(T::GetConfigResponse { data, .. }) => data.to_vec(),
        other => panic!("{other:?}"),
    });
    assert_eq!(u64::from_le_bytes(cfg[0..8].try_into().unwrap()), 128);
    assert_eq!(u32::from_le_bytes(cfg[20..24].try_into().unwrap()), 512);

    let flush_bit = 1u64 << 9;
    assert_ne!(
        features_ok(&client, 0, VERSION_1 | flush_bit) & FEATURES_OK,
        0
    );
    let mut q = SplitQueue::new(&ram, 0x10000, 16);
    client.call(transport(0, 2, T::SetVqueueRequest(q.setup(0))));
    driver_ok(&client, 0);

    // OUT: 512 bytes of 0x5a to sector 2.
    ram.write(0x40000, &blk_request(1, 2));
    ram.write(0x41000, &[0x5a; 512]);
    ram.write(0x42000, &[0xff]);
    let head = q.add_chain(
        &ram,
        &[
            (0x40000, 16, false),
            (0x41000, 512, false),
            (0x42000, 1, true),
        ],
    );
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_elem(&ram, 0), (u32::from(head), 1));
    assert_eq!(ram.read(0x42000, 1), [0], "status OK");
    image[1024..1536].fill(0x5a);
    assert_eq!(std::fs::read(&disk).unwrap(), image);

    // IN: sectors 1 and 2.
    ram.write(0x40000, &blk_request(0, 1));
    ram.write(0x42000, &[0xff]);
    let head = q.add_chain(
        &ram,
        &[
            (0x40000, 16, false),
            (0x43000, 1024, true),
            (0x42000, 1, true),
        ],
    );
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_elem(&ram, 1), (u32::from(head), 1025));
    assert_eq!(ram.read(0x43000, 1024), &image[512..1536]);
    assert_eq!(ram.read(0x42000, 1), [0]);

    // FLUSH, GET_ID and a read past the end, all in one kick.
    ram.write(0x44000, &blk_request(4, 0));
    ram.write(0x45000, &blk_request(8, 0));
    ram.write(0x46000, &blk_request(0, 127));
    q.add_chain(&ram, &[(0x44000, 16, false), (0x44100, 1, true)]);
    q.add_chain(
        &ram,
        &[
            (0x45000, 16, false),
            (0x45100, 20, true),
            (0x45200, 1, true),
        ],
    );
    q.add_chain(
        &ram,
        &[
            (0x46000, 16, false),
            (0x46100, 1024, true),
            (0x46800, 1, true),
        ],
    );
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_idx(&ram), 5);
    assert_eq!(ram.read(0x44100, 1), [0], "flush OK");
    assert_eq!(ram.read(0x45200, 1), [0], "get-id OK");
    assert_eq!(&ram.read(0x45100, 20)[..12], b"vmsg-disk-01");
    assert_eq!(q.used_elem(&ram, 3).1, 21);
    assert_eq!(ram.read(0x46800, 1), [1], "read past the end is IOERR");
}

#[test]
fn console_echo_and_injection() {
    let ram = GuestRam::new(1 << 20);
    let (dev, ctl) =
        Device::spawn_with_control(&["--guest-memory", &ram.path, "--device", "console"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    let mut queues = queues_at_driver_ok(&client, 0, &ram, &[(0x10000, 8), (0x20000, 8)]);
    let (mut rx, mut tx) = (queues.remove(0), queues.remove(0));

    rx.add_chain(&ram, &[(0x40000, 64, true)]);
    rx.add_chain(&ram, &[(0x41000, 64, true)]);
    kick(&client, 0, 0);
    // Nothing to deliver yet: no EVENT_USED.
    assert!(client.try_recv_raw(Duration::from_millis(200)).is_none());

    ram.write(0x50000, b"hello, ");
    ram.write(0x50100, b"device");
    tx.add_chain(&ram, &[(0x50000, 7, false), (0x50100, 6, false)]);
    kick(&client, 0, 1);
    expect_used(&client, 0, 1);
    expect_used(&client, 0, 0);
    assert_eq!(tx.used_elem(&ram, 0).1, 0);
    assert_eq!(rx.used_elem(&ram, 0), (0, 13));
    assert_eq!(ram.read(0x40000, 13), b"hello, device");

    assert_eq!(control(&ctl, "inject 0 typed\\n"), "ok");
    expect_used(&client, 0, 0);
    assert_eq!(rx.used_elem(&ram, 1), (1, 6));
    assert_eq!(ram.read(0x41000, 6), b"typed\n");
    assert_eq!(control(&ctl, "inject 5 x"), "error no device 5");
}

#[test]
fn hot_plug_over_the_control_socket() {
    let (dev, ctl) = Device::spawn_with_control(&["--device", "rng"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    assert_eq!(control(&ctl, "add console"), "ok 1");
    let event = client.recv(|f| format!("{:?}", f.message));
    assert_eq!(event, "Bus(EventDevice { dev_num: 1, state: Added })");
    assert_eq!(control(&ctl, "remove 0"), "ok");
    let event = client.recv(|f| match f.message {
        Message::Bus(BusMessage::EventDevice { dev_num, state }) => (dev_num, state),
        other => panic!("{other:?}"),
    });
    assert_eq!(event, (0, DeviceState::Removed));
    assert_eq!(control(&ctl, "list"), "ok 0:rng(removed) 1:console");
    assert!(control(&ctl, "add toaster").starts_with("error unknown device kind"));
    let r = client.call(Frame::bus(
        9,
        Message::Bus(BusMessage::GetDevicesRequest {
            offset: 0,
            count: 8,
        }),
    ));
    assert_eq!(
        r.2,
        "Bus(GetDevicesResponse { offset: 0, next_offset: 0, bitmap: [2] })"
    );
}

#[test]
fn corrupt_to_device_ring_then_detach_and_reattach() {
    let dev = Device::spawn(&["--device", "rng", "--shm-size", "64K"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    assert_eq!(version_status(&client, 1), VersionStatus::AlreadyNegotiated);

    // The driver side writes a producer index 65 ahead of the consumer (64 slots), once
    // the device side has released every slot (it does so after publishing the answers).
    wait_for("the device to release every slot", || {
        client.load(64 + 64) == client.load(64)
    });
    let consumer = client.load(64 + 64);
    client.store(64, consumer + 65);
    client
        .device_doorbell()
        .write_all(&1u64.to_ne_bytes())
        .unwrap();
    wait_for("the device to report the corrupt ring", || {
        dev.log().contains("ring corrupt")
    });

    // Detach: the device side answers with device_state 0 and empty rings.
    client.store(hdr::DRIVER_STATE, 0);
    client
        .device_doorbell()
        .write_all(&1u64.to_ne_bytes())
        .unwrap();
    wait_for("device_state 0", || client.load(hdr::DEVICE_STATE) == 0);
    for base in [64usize, 64 + 128 + 64 * 264] {
        assert_eq!((client.load(base), client.load(base + 64)), (0, 0));
    }
    // Attach again: device_state 1, and the instance was reset.
    client.store(hdr::DRIVER_STATE, 1);
    client
        .device_doorbell()
        .write_all(&1u64.to_ne_bytes())
        .unwrap();
    wait_for("device_state 1", || client.load(hdr::DEVICE_STATE) == 1);
    assert_eq!(version_status(&client, 2), VersionStatus::Accepted);
    let r = client.call(ping(3, 99));
    assert_eq!(r, (0, 3, "Bus(PingResponse { data: 99 })".to_string()));
}

#[test]
fn fault_delay_reorders_and_bad_token_mangles() {
    let dev = Device::spawn(&[
        "--device",
        "rng",
        "--device",
        "rng",
        "--fault",
        "delay=300:0",
        "--fault",
        "bad-token:1",
    ]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    let start = Instant::now();
    client.send(transport(0, 0x0011, T::GetDeviceStatusRequest));
    client.send(transport(1, 0x0022, T::GetDeviceStatusRequest));
    let first = client.recv(|f| (f.dev_num, f.token));
    assert_eq!(
        first,
        (1, 0x8022),
        "device 1 answers first, with a wrong token"
    );
    let second = client.recv(|f| (f.dev_num, f.token));
    assert_eq!(second, (0, 0x0011));
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn fault_bad_size_and_bad_id() {
    let dev = Device::spawn(&[
        "--device",
        "rng",
        "--fault",
        "bad-size:0",
        "--device",
        "rng",
        "--fault",
        "bad-id:1",
    ]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    client.send(transport(0, 5, T::GetDeviceStatusRequest));
    let raw = client.recv_raw();
    assert_eq!(raw.len(), 16);
    assert_eq!(
        &raw[..8],
        &[0x01, 0x07, 0, 0, 5, 0, 16, 0],
        "msg_size 16 for a 12-byte message"
    );
    assert!(client.codec.decode(&raw).is_err());
    client.send(transport(1, 6, T::GetDeviceStatusRequest));
    let raw = client.recv_raw();
    assert_eq!(
        &raw[..8],
        &[0x01, 0x06, 1, 0, 6, 0, 12, 0],
        "msg_id 0x06 instead of 0x07"
    );
}

#[test]
fn fault_vanish_no_answer_and_flood() {
    let dev = Device::spawn(&[
        "--device",
        "rng",
        "--device",
        "rng",
        "--fault",
        "vanish=2:0",
        "--fault",
        "flood=5:1",
    ]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    for token in [1, 2] {
        let r = client.call(transport(0, token, T::GetDeviceStatusRequest));
        assert_eq!((r.0, r.1), (0, token));
    }
    client.send(transport(0, 3, T::GetDeviceStatusRequest));
    assert!(
        client.try_recv_raw(Duration::from_millis(300)).is_none(),
        "device 0 vanished"
    );
    // The bus and device 1 still answer; device 1 floods 5 EVENT_USED after its answer.
    let r = client.call(ping(4, 4));
    assert_eq!(r.1, 4);
    let r = client.call(transport(1, 5, T::GetDeviceStatusRequest));
    assert_eq!((r.0, r.1), (1, 5));
    for _ in 0..5 {
        expect_used(&client, 1, 0);
    }
    assert!(client.try_recv_raw(Duration::from_millis(100)).is_none());
}

#[test]
fn fault_no_answer_at_all() {
    let dev = Device::spawn(&["--device", "rng", "--fault", "no-answer"]);
    let client = Client::connect(&dev.socket, 1);
    client.store(hdr::DRIVER_STATE, 1);
    client.send(Frame::bus(
        1,
        Message::Shm(ShmBusMessage::VersionRequest(VersionTerms {
            revision: 1,
            max_msg_size: 264,
            features: 0,
        })),
    ));
    assert!(client.try_recv_raw(Duration::from_millis(300)).is_none());
}

#[test]
fn fault_corrupt_index() {
    let dev = Device::spawn(&[
        "--device",
        "rng",
        "--fault",
        "corrupt-index=2",
        "--shm-size",
        "64K",
    ]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    client.send(ping(1, 1));
    let base = 64 + 128 + 64 * 264;
    wait_for("a corrupt producer index", || {
        client.load(base).wrapping_sub(client.load(base + 64)) > 64
    });
    assert_eq!(
        client.load(base).wrapping_sub(client.load(base + 64)),
        64 + 5
    );
}

/// `vmsg-device` serving `rngs` rng devices with `fault` and `extra` options, negotiated.
fn rngs_with_fault(rngs: usize, fault: &str, extra: &[&str]) -> (Device, Client) {
    let mut args = vec!["--fault", fault];
    for _ in 0..rngs {
        args.extend(["--device", "rng"]);
    }
    args.extend_from_slice(extra);
    spawn_negotiated(&args)
}

#[test]
fn fault_stall_stops_consuming_until_the_ring_is_full() {
    assert!(help().contains("stall=MS[@N]"));
    let (dev, client) = rngs_with_fault(1, "stall=600@3", &["--shm-size", "64K"]);
    client.call(ping(1, 1));
    client.call(ping(2, 2));
    // The third message was the last consumed: the ring's 64 slots fill up and stay full.
    let stalled = Instant::now();
    // (The consumer index is published just after the answers.)
    wait_for("every slot released", || {
        client.load(64 + 64) == client.load(64)
    });
    for t in 0..64 {
        client.send(ping(0x100 + t, u32::from(t)));
    }
    assert!(client.try_recv_raw(Duration::from_millis(200)).is_none());
    assert_eq!(client.load(64).wrapping_sub(client.load(64 + 64)), 64);
    // Then everything is consumed and answered, in order.
    for t in 0..64 {
        assert_eq!(client.recv(|f| f.token), 0x100 + t);
    }
    assert!(
        stalled.elapsed() >= Duration::from_millis(500),
        "{:?}",
        stalled.elapsed()
    );
    // Once only.
    let r = client.call(ping(3, 3));
    assert_eq!(r.1, 3);
    assert!(dev.log().contains("fault stall"), "{}", dev.log());
}

/// GET_CONFIG of nothing at offset 0: the generation the answer carries.
fn config_generation(client: &Client, dev_num: u16, token: u16) -> u32 {
    client.send(transport(
        dev_num,
        token,
        T::GetConfigRequest {
            offset: 0,
            length: 0,
        },
    ));
    client.recv(|f| match f.message {
        Message::Transport(T::GetConfigResponse { generation, .. }) => generation,
        other => panic!("{other:?}"),
    })
}

#[test]
fn fault_generation_churn_moves_every_config_answer_on() {
    assert!(help().contains("generation-churn"));
    let (_dev, client) = rngs_with_fault(2, "generation-churn:0", &[]);
    let churned: Vec<u32> = (1..=3).map(|t| config_generation(&client, 0, t)).collect();
    assert_eq!(churned, vec![churned[0], churned[0] + 1, churned[0] + 2]);
    let steady: Vec<u32> = (4..=5).map(|t| config_generation(&client, 1, t)).collect();
    assert_eq!(steady[0], steady[1]);
}

/// SET_DEVICE_STATUS; returns the status answered.
fn set_status(client: &Client, dev_num: u16, status: u32) -> u32 {
    client.send(transport(
        dev_num,
        0x40,
        T::SetDeviceStatusRequest { status },
    ));
    client.recv(|f| match f.message {
        Message::Transport(T::SetDeviceStatusResponse { status }) => status,
        other => panic!("{other:?}"),
    })
}

/// GET_DEVICE_STATUS; returns the status answered.
fn get_status(client: &Client, dev_num: u16) -> u32 {
    client.send(transport(dev_num, 0x41, T::GetDeviceStatusRequest));
    client.recv(|f| match f.message {
        Message::Transport(T::GetDeviceStatusResponse { status }) => status,
        other => panic!("{other:?}"),
    })
}

#[test]
fn fault_sticky_status_reports_the_status_from_before_the_reset() {
    assert!(help().contains("sticky-status"));
    let (_dev, client) = rngs_with_fault(2, "sticky-status:0", &[]);
    for dev_num in [0, 1] {
        assert_eq!(set_status(&client, dev_num, ACKNOWLEDGE | DRIVER), 3);
        assert_eq!(
            set_status(&client, dev_num, 0),
            0,
            "the reset itself is answered"
        );
    }
    assert_eq!(
        get_status(&client, 0),
        3,
        "stuck at the status before the reset"
    );
    assert_eq!(get_status(&client, 0), 3);
    assert_eq!(get_status(&client, 1), 0);
    // The next status the driver writes ends it.
    assert_eq!(set_status(&client, 0, ACKNOWLEDGE), 1);
    assert_eq!(get_status(&client, 0), 1);
}

#[test]
fn fault_device_event_flood_once_the_bus_is_up() {
    assert!(help().contains("device-event-flood=N"));
    let (_dev, client) = rngs_with_fault(2, "device-event-flood=2", &[]);
    // Nothing before the first kick.
    assert_eq!(client.call(ping(1, 1)).1, 1);
    client.send(transport(
        0,
        0,
        T::EventAvail {
            vq_index: 0,
            next_offset: 0,
        },
    ));
    let event = || {
        client.recv(|f| match f.message {
            Message::Bus(BusMessage::EventDevice { dev_num, state }) => (dev_num, state),
            other => panic!("{other:?}"),
        })
    };
    let events: Vec<(u16, DeviceState)> = (0..4).map(|_| event()).collect();
    use DeviceState::{Added, Removed};
    assert_eq!(
        events,
        vec![(7, Added), (0, Removed), (7, Removed), (0, Added)]
    );
    // Nothing more, and not again after a new VERSION.
    assert_eq!(client.call(ping(4, 4)).1, 4);
    let r = client.call(Frame::bus(2, Message::Shm(ShmBusMessage::ResetRequest)));
    assert_eq!(r.2, "Shm(ResetResponse { status: 0 })");
    negotiate(&client);
    assert_eq!(client.call(ping(3, 3)).1, 3);
}
