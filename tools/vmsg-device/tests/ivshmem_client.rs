// SPDX-License-Identifier: GPL-2.0

//! Plays QEMU's `ivshmem-doorbell` against the real program over its UNIX socket: the
//! setup messages, the region header, VERSION/PING through the rings, and shutdown.

mod common;

use std::time::Duration;

use common::{hdr, startup_error, Client, Device};
use virtio_msg_codec::bus::{BusMessage, DeviceState};
use virtio_msg_codec::shm::{ShmBusMessage, VersionStatus, VersionTerms};
use virtio_msg_codec::{Frame, Message};

fn version(token: u16, revision: u32, max: u32, features: u64) -> Frame<'static> {
    Frame::bus(
        token,
        Message::Shm(ShmBusMessage::VersionRequest(VersionTerms {
            revision,
            max_msg_size: max,
            features,
        })),
    )
}

#[test]
fn setup_header_and_version_over_the_rings() {
    let mut dev = Device::spawn(&["--device", "rng", "--shm-size", "64K"]);
    let client = Client::connect(&dev.socket, 1);

    // Setup: we are peer 1, the device side is peer 0 with one eventfd.
    assert_eq!(client.id, 1);
    assert_eq!(client.peers.len(), 1);
    assert_eq!(client.peers[0].0, 0);
    assert_eq!(client.own.len(), 1);
    assert_eq!(client.shm_size, 64 * 1024);

    // Header, byte for byte.
    let mut magic = [0u8; 4];
    client.read(0, &mut magic);
    assert_eq!(&magic, b"VMSG");
    assert_eq!(client.load(hdr::MAGIC), 0x4753_4d56);
    assert_eq!(client.load(hdr::LAYOUT_VERSION), 1);
    assert_eq!(client.load(hdr::HEADER_SIZE), 0x40);
    assert_eq!(client.load(hdr::SLOT_SIZE), 264);
    // (64 KiB - 64) / 2 per ring leaves room for 64 slots of 264 bytes, not 128.
    assert_eq!(client.load(hdr::SLOT_COUNT), 64);
    assert_eq!(client.load(hdr::TO_DEVICE), 64);
    assert_eq!(client.load(hdr::TO_DRIVER), 64 + 128 + 64 * 264);
    assert_eq!(client.load(hdr::DEVICE_PEER_ID), 0);
    assert_eq!(client.load(hdr::DEVICE_STATE), 1);
    assert_eq!(client.load(hdr::DRIVER_STATE), 0);
    for off in (0x28..0x40).step_by(4) {
        assert_eq!(client.load(off), 0);
    }
    for base in [64usize, 64 + 128 + 64 * 264] {
        assert_eq!(client.load(base), 0, "producer");
        assert_eq!(client.load(base + 64), 0, "consumer");
        assert_eq!(client.load(base + 68), 1, "consumer_wants_doorbell");
    }

    client.store(hdr::DRIVER_STATE, 1);

    // VERSION: the smaller size wins, unknown feature bits are dropped, the token is copied.
    client.send(version(0x1234, 1, 4096, 0b101));
    let raw = client.recv_raw();
    assert_eq!(raw.len(), 28);
    assert_eq!(&raw[..8], &[0x03, 0x80, 0, 0, 0x34, 0x12, 28, 0]);
    assert_eq!(
        u32::from_le_bytes(raw[8..12].try_into().unwrap()),
        1,
        "revision"
    );
    assert_eq!(
        u32::from_le_bytes(raw[12..16].try_into().unwrap()),
        264,
        "max_msg_size"
    );
    assert_eq!(
        u64::from_le_bytes(raw[16..24].try_into().unwrap()),
        1,
        "features"
    );
    assert_eq!(
        u32::from_le_bytes(raw[24..28].try_into().unwrap()),
        0,
        "status"
    );

    // Fixed until RESET.
    let again = client.recv_after(version(0x0001, 1, 264, 0));
    assert_eq!(again, VersionStatus::AlreadyNegotiated);

    // Several requests in flight at once, answered with their own tokens.
    for (token, data) in [
        (10u16, 0xaaaa_0001u32),
        (11, 0xbbbb_0002),
        (12, 0xcccc_0003),
    ] {
        client.send(Frame::bus(
            token,
            Message::Bus(BusMessage::PingRequest { data }),
        ));
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(client.recv(|f| match f.message {
            Message::Bus(BusMessage::PingResponse { data }) => (f.token, data),
            other => panic!("{other:?}"),
        }));
    }
    got.sort_unstable();
    assert_eq!(
        got,
        vec![(10, 0xaaaa_0001), (11, 0xbbbb_0002), (12, 0xcccc_0003)]
    );

    // The device consumed everything and asked for a doorbell before sleeping.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(client.load(64), 5, "to-device producer");
    assert_eq!(client.load(64 + 64), 5, "to-device consumer");
    assert_eq!(
        client.load(64 + 68),
        1,
        "device sleeps with doorbell requested"
    );

    // SIGTERM: EVENT_DEVICE removed for device 0, device_state 2, clean exit.
    dev.terminate();
    let (dev_num, state) = client.recv(|f| match f.message {
        Message::Bus(BusMessage::EventDevice { dev_num, state }) => (dev_num, state),
        other => panic!("{other:?}"),
    });
    assert_eq!((dev_num, state), (0, DeviceState::Removed));
    let status = dev.wait();
    assert!(status.success(), "{status}");
    assert_eq!(client.load(hdr::DEVICE_STATE), 2);
    assert!(!dev.socket.exists(), "socket removed on exit");
}

trait RecvVersion {
    fn recv_after(&self, frame: Frame<'_>) -> VersionStatus;
}

impl RecvVersion for Client {
    fn recv_after(&self, frame: Frame<'_>) -> VersionStatus {
        self.send(frame);
        self.recv(|f| match f.message {
            Message::Shm(ShmBusMessage::VersionResponse { status, .. }) => status,
            other => panic!("{other:?}"),
        })
    }
}

#[test]
fn refused_revisions_and_sizes_then_reset() {
    let dev = Device::spawn(&[
        "--device",
        "rng",
        "--accept-revisions",
        "1",
        "--max-msg-size",
        "128",
    ]);
    let client = Client::connect(&dev.socket, 1);
    client.store(hdr::DRIVER_STATE, 1);
    assert_eq!(client.load(hdr::SLOT_SIZE), 128);
    assert_eq!(
        client.recv_after(version(1, 2, 264, 0)),
        VersionStatus::RevisionUnsupported
    );
    assert_eq!(
        client.recv_after(version(2, 1, 40, 0)),
        VersionStatus::SizeUnsupported
    );
    client.send(version(3, 1, 264, 0));
    let terms = client.recv(|f| match f.message {
        Message::Shm(ShmBusMessage::VersionResponse {
            terms,
            status: VersionStatus::Accepted,
        }) => terms,
        other => panic!("{other:?}"),
    });
    assert_eq!(terms.max_msg_size, 128);
    let reset = client.call(Frame::bus(4, Message::Shm(ShmBusMessage::ResetRequest)));
    assert_eq!(
        reset,
        (0, 4, "Shm(ResetResponse { status: 0 })".to_string())
    );
    assert_eq!(
        client.recv_after(version(5, 1, 64, 0)),
        VersionStatus::Accepted
    );
}

#[test]
fn no_accepted_revision_refuses_every_version() {
    let dev = Device::spawn(&["--accept-revisions", "none"]);
    let client = Client::connect(&dev.socket, 1);
    assert_eq!(
        client.recv_after(version(1, 1, 264, 0)),
        VersionStatus::RevisionUnsupported
    );
}

#[test]
fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let run = |args: &[&str]| startup_error(&sock, args);
    let e = run(&["--device", "blk:path=/nonexistent/disk.img"]);
    assert!(
        e.contains("/nonexistent/disk.img") && e.contains("No such file"),
        "{e}"
    );
    let e = run(&["--accept-revisions", "2"]);
    assert!(e.contains("revision 2 is not supported"), "{e}");
    let e = run(&["--shm-size", "1K"]);
    assert!(e.contains("too small"), "{e}");
    // A socket somebody listens on is refused.
    let dev = Device::spawn(&[]);
    let e = startup_error(&dev.socket, &[]);
    assert!(e.contains("in use"), "{e}");
    assert!(dev.socket.exists(), "the live socket was left alone");
}
