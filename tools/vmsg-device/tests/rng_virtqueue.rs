// SPDX-License-Identifier: GPL-2.0

//! GET_DEVICES, GET_DEVICE_INFO and a virtio-rng request through a split virtqueue placed
//! in a memfd that stands in for guest RAM.

mod common;

use common::{
    driver_ok, expect_used, features_ok, kick, negotiate, transport, Client, Device, GuestRam,
    SplitQueue, FEATURES_OK, VERSION_1,
};
use virtio_msg_codec::bus::{present_devices, BusMessage};
use virtio_msg_codec::transport::{DeviceInfo, TransportMessage as T};
use virtio_msg_codec::{Frame, Message};

/// A recognisable entropy source: byte i is (i * 7 + 3) mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

#[test]
fn discovery_info_and_an_rng_request() {
    let ram = GuestRam::new(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("entropy");
    std::fs::write(&source, pattern(4096)).unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 64 * 1024]).unwrap();
    let rng = format!("rng:source={}", source.display());
    let blk = format!("blk:path={}", disk.display());
    let dev = Device::spawn_in(
        dir,
        &[
            "--guest-memory",
            &ram.path,
            "--device",
            &rng,
            "--device",
            &blk,
            "--device",
            "console",
        ],
    );
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);

    // GET_DEVICES: devices 0, 1, 2 and nothing past the window.
    client.send(Frame::bus(
        0x0a0b,
        Message::Bus(BusMessage::GetDevicesRequest {
            offset: 0,
            count: 16,
        }),
    ));
    let present = client.recv(|f| {
        assert_eq!(f.token, 0x0a0b);
        match f.message {
            Message::Bus(BusMessage::GetDevicesResponse {
                offset,
                next_offset,
                bitmap,
            }) => {
                assert_eq!((offset, next_offset), (0, 0));
                assert_eq!(bitmap, &[0b111, 0]);
                present_devices(offset, bitmap).collect::<Vec<u16>>()
            }
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(present, vec![0, 1, 2]);

    // GET_DEVICE_INFO for each, with ids rng 4, blk 2, console 3.
    let mut infos = Vec::new();
    for dev_num in 0..4u16 {
        client.send(transport(dev_num, 0x300 + dev_num, T::GetDeviceInfoRequest));
        infos.push(client.recv(|f| {
            assert_eq!((f.dev_num, f.token), (dev_num, 0x300 + dev_num));
            match f.message {
                Message::Transport(T::GetDeviceInfoResponse(info)) => info,
                other => panic!("{other:?}"),
            }
        }));
    }
    assert_eq!(
        infos[0],
        DeviceInfo {
            device_id: 4,
            vendor_id: 0x1af4,
            device_uuid: [0; 16],
            num_feature_blocks: 2,
            config_size: 0,
            max_virtqueues: 1,
            admin_vq_start: 0,
            admin_vq_count: 0,
        }
    );
    assert_eq!(
        (
            infos[1].device_id,
            infos[1].config_size,
            infos[1].max_virtqueues
        ),
        (2, 60, 1)
    );
    assert_eq!(
        (
            infos[2].device_id,
            infos[2].config_size,
            infos[2].max_virtqueues
        ),
        (3, 12, 2)
    );
    assert_eq!(infos[3].device_id, 0, "no device 3");

    // Features: VERSION_1 is offered in block 1.
    let features = client.call(transport(
        0,
        0x400,
        T::GetDeviceFeaturesRequest {
            block_index: 1,
            num_blocks: 1,
        },
    ));
    assert_eq!(features.1, 0x400);
    assert!(features.2.contains("block_index: 1"), "{}", features.2);

    assert_ne!(features_ok(&client, 0, VERSION_1) & FEATURES_OK, 0);

    // The queue: size 8, areas at 0x10000.., one 64-byte writable buffer at 0x40000.
    let mut q = SplitQueue::new(&ram, 0x10000, 8);
    let r = client.call(transport(0, 0x500, T::GetVqueueRequest { index: 0 }));
    assert!(r.2.contains("max_size: 256"), "{}", r.2);
    let r = client.call(transport(0, 0x501, T::SetVqueueRequest(q.setup(0))));
    assert_eq!(r, (0, 0x501, "Transport(SetVqueueResponse)".to_string()));
    let r = client.call(transport(0, 0x502, T::GetVqueueRequest { index: 0 }));
    assert!(
        r.2.contains("cur_size: 8, flags: 1, desc_addr: 65536"),
        "{}",
        r.2
    );
    driver_ok(&client, 0);

    ram.write(0x40000, &[0xee; 64]);
    let head = q.add_chain(&ram, &[(0x40000, 64, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_idx(&ram), 1);
    assert_eq!(q.used_elem(&ram, 0), (u32::from(head), 64));
    assert_eq!(ram.read(0x40000, 64), pattern(64));

    // A second request split over two descriptors continues the stream.
    let head = q.add_chain(&ram, &[(0x41000, 30, true), (0x42000, 70, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_idx(&ram), 2);
    assert_eq!(q.used_elem(&ram, 1), (u32::from(head), 100));
    let expect = pattern(164);
    assert_eq!(ram.read(0x41000, 30), &expect[64..94]);
    assert_eq!(ram.read(0x42000, 70), &expect[94..164]);

    // Device status reads back; reset (status 0) disables the queue.
    let r = client.call(transport(0, 0x600, T::GetDeviceStatusRequest));
    assert_eq!(
        r,
        (
            0,
            0x600,
            "Transport(GetDeviceStatusResponse { status: 15 })".to_string()
        )
    );
    let r = client.call(transport(0, 0x601, T::SetDeviceStatusRequest { status: 0 }));
    assert_eq!(r.2, "Transport(SetDeviceStatusResponse { status: 0 })");
    let r = client.call(transport(0, 0x602, T::GetVqueueRequest { index: 0 }));
    assert!(r.2.contains("flags: 0"), "{}", r.2);
}

#[test]
fn features_ok_is_refused_without_version_1() {
    let dev = Device::spawn(&["--device", "rng"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    assert_eq!(features_ok(&client, 0, 0) & FEATURES_OK, 0);
}
