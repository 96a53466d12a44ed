// SPDX-License-Identifier: GPL-2.0

//! Window mode (Documentation/shm-bus.rst, "Window mode"): the device side sees no guest
//! RAM; the virtqueues and every buffer are in a window at the end of the shared region,
//! and the driver gives bus addresses `1 << 48 | offset` into it.

mod common;

use common::{
    driver_ok, expect_used, features_ok, hdr, kick, negotiate, startup_error, transport, wait_for,
    Client, Device, GuestRam, Split, SplitQueue, FEATURES_OK, VERSION_1, WINDOW_BUS,
};
use virtio_msg_codec::transport::TransportMessage as T;

const ACCESS_PLATFORM: u64 = 1 << 33;

/// A recognisable entropy source: byte i is (i * 7 + 3) mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

fn entropy(dir: &tempfile::TempDir) -> String {
    let source = dir.path().join("entropy");
    std::fs::write(&source, pattern(4096)).unwrap();
    format!("rng:source={}", source.display())
}

/// Checks the header's window: at the end of the region, behind the rings.
fn check_header(client: &Client, window: u64) {
    let size = client.shm_size as u64;
    assert_eq!(client.window(), (size - window, window));
    assert_eq!(client.load(hdr::LAYOUT_VERSION), 1);
    let rings_end = u64::from(client.load(hdr::TO_DRIVER))
        + 128
        + u64::from(client.load(hdr::SLOT_SIZE)) * u64::from(client.load(hdr::SLOT_COUNT));
    assert!(rings_end <= size - window, "the rings overlap the window");
    assert_eq!(client.load(0x3C), 0, "reserved");
}

/// Device 0's feature bits 32-63, as the response prints them.
fn feature_block_1(client: &Client) -> String {
    let r = client.call(transport(
        0,
        0x400,
        T::GetDeviceFeaturesRequest {
            block_index: 1,
            num_blocks: 1,
        },
    ));
    r.2
}

/// Brings rng device 0 to DRIVER_OK with its queue in the window at offset 0x1000.
fn start_rng(client: &Client, win: &GuestRam) -> SplitQueue {
    assert_ne!(
        features_ok(client, 0, VERSION_1 | ACCESS_PLATFORM) & FEATURES_OK,
        0
    );
    let mut q = SplitQueue::new(win, 0x1000, 8);
    q.bus = WINDOW_BUS;
    let r = client.call(transport(0, 0x501, T::SetVqueueRequest(q.setup(0))));
    assert_eq!(r, (0, 0x501, "Transport(SetVqueueResponse)".to_string()));
    let r = client.call(transport(0, 0x502, T::GetVqueueRequest { index: 0 }));
    assert!(
        r.2.contains(&format!("flags: 1, desc_addr: {}", WINDOW_BUS + 0x1000)),
        "{}",
        r.2
    );
    driver_ok(client, 0);
    q
}

#[test]
fn rng_served_from_the_window_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let rng = entropy(&dir);
    let dev = Device::spawn_in(
        dir,
        &["--shm-size", "1M", "--window", "256K", "--device", &rng],
    );
    let client = Client::connect(&dev.socket, 1);
    check_header(&client, 256 * 1024);
    negotiate(&client);

    // ACCESS_PLATFORM (bit 33) is offered: bit 1 of feature block 1 (with VERSION_1,
    // bit 32, and RING_RESET, bit 40).
    let r = feature_block_1(&client);
    assert!(r.contains("features: [U32(259)]"), "{r}");
    // A driver that does not accept it gets no FEATURES_OK.
    assert_eq!(features_ok(&client, 0, VERSION_1) & FEATURES_OK, 0);
    assert!(
        dev.log().contains("VIRTIO_F_ACCESS_PLATFORM"),
        "{}",
        dev.log()
    );
    let r = client.call(transport(0, 0x401, T::SetDeviceStatusRequest { status: 0 }));
    assert!(r.2.contains("status: 0"), "{}", r.2);

    let win = GuestRam::window(&client);
    let mut q = start_rng(&client, &win);

    // A buffer in the window, by bus address: the device writes the window's bytes.
    win.write(0x8000, &[0xee; 64]);
    let head = q.add_chain(&win, &[(WINDOW_BUS + 0x8000, 64, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_elem(&win, 0), (u32::from(head), 64));
    assert_eq!(win.read(0x8000, 64), pattern(64));
    // Those are the region's bytes at window_offset + 0x8000.
    let mut raw = [0u8; 64];
    client.read(client.window().0 as usize + 0x8000, &mut raw);
    assert_eq!(raw.to_vec(), pattern(64));

    // Any other address fails the request (completed with nothing written), as an
    // address outside guest RAM does: area 0 (a guest physical address), an offset past
    // the window, a buffer running over its end, area 2.
    let bad = [
        (0x8000, 16),
        (WINDOW_BUS + 256 * 1024, 16),
        (WINDOW_BUS + 256 * 1024 - 8, 16),
        ((2 << 48) | 0x8000, 16),
    ];
    for (i, (addr, len)) in bad.into_iter().enumerate() {
        win.write(0x9000, &[0xee; 64]);
        let head = q.add_chain(&win, &[(addr, len, true)]);
        kick(&client, 0, 0);
        expect_used(&client, 0, 0);
        assert_eq!(
            q.used_elem(&win, 1 + i as u16),
            (u32::from(head), 0),
            "{addr:#x}"
        );
    }
    assert_eq!(win.read(0x9000, 64), vec![0xee; 64]);
    // The device still works, and the stream continues where it stopped.
    let head = q.add_chain(&win, &[(WINDOW_BUS + 0x8100, 16, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_elem(&win, 5), (u32::from(head), 16));
    assert_eq!(win.read(0x8100, 16), &pattern(80)[64..]);

    // Queue areas outside the window: the queue is not enabled.
    let r = client.call(transport(0, 0x600, T::SetDeviceStatusRequest { status: 0 }));
    assert!(r.2.contains("status: 0"), "{}", r.2);
    assert_ne!(
        features_ok(&client, 0, VERSION_1 | ACCESS_PLATFORM) & FEATURES_OK,
        0
    );
    let outside = SplitQueue::new(&win, 0x1000, 8);
    client.call(transport(0, 0x601, T::SetVqueueRequest(outside.setup(0))));
    let r = client.call(transport(0, 0x602, T::GetVqueueRequest { index: 0 }));
    assert!(r.2.contains("flags: 0"), "{}", r.2);
    assert!(dev.log().contains("not in guest memory"), "{}", dev.log());
}

#[test]
fn without_a_window_nothing_changes() {
    let dev = Device::spawn(&["--device", "rng"]);
    let client = Client::connect(&dev.socket, 1);
    assert_eq!(client.window(), (0, 0));
    negotiate(&client);
    let r = feature_block_1(&client);
    assert!(r.contains("features: [U32(257)]"), "{r}");
    assert_ne!(features_ok(&client, 0, VERSION_1) & FEATURES_OK, 0);
}

#[test]
fn a_new_client_finds_the_window_again() {
    let dir = tempfile::tempdir().unwrap();
    let rng = entropy(&dir);
    let dev = Device::spawn_in(
        dir,
        &["--shm-size", "1M", "--window", "512K", "--device", &rng],
    );
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    drop(client);
    wait_for("the device side to see the client leave", || {
        dev.log().contains("disconnected")
    });
    let client = Client::connect(&dev.socket, 1);
    check_header(&client, 512 * 1024);
    negotiate(&client);
    let win = GuestRam::window(&client);
    let mut q = start_rng(&client, &win);
    q.add_chain(&win, &[(WINDOW_BUS + 0x8000, 32, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(win.read(0x8000, 32), pattern(32));
}

#[test]
fn startup_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let run = |args: &[&str]| startup_error(&sock, args);
    let e = run(&["--window", "4M", "--guest-memory", "/dev/shm/none"]);
    assert!(
        e.contains("--window and --guest-memory exclude each other"),
        "{e}"
    );
    let e = run(&["--shm-size", "1M", "--window", "1M"]);
    assert!(
        e.contains("does not fit") && e.contains("--shm-size"),
        "{e}"
    );
    let e = run(&["--window", "5000"]);
    assert!(e.contains("multiple of 4096"), "{e}");
}

/// Starts the device logic of split mode; ready once it has joined.
fn device_logic(split: &Split, extra: &[&str], log_name: &str) -> Device {
    let dev = split.spawn_device(extra, log_name);
    wait_for("the device logic to join", || dev.log().contains("joined"));
    dev
}

#[test]
fn split_mode_the_device_logic_lays_out_the_window_and_resumes_with_it() {
    let split = Split::start("1M");
    let dir = tempfile::tempdir().unwrap();
    let rng = entropy(&dir);
    let args = ["--window", "256K", "--device", rng.as_str()];
    let mut dev = device_logic(&split, &args, "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    check_header(&client, 256 * 1024);
    negotiate(&client);
    let win = GuestRam::window(&client);
    let mut q = start_rng(&client, &win);
    q.add_chain(&win, &[(WINDOW_BUS + 0x8000, 64, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(win.read(0x8000, 64), pattern(64));

    // A successor without the window, or with another one, is another layout: refused,
    // the region untouched.
    dev.kill();
    for other in [
        &["--device", "rng"][..],
        &["--window", "128K", "--device", "rng"][..],
    ] {
        let mut refused = Device::spawn_with(
            tempfile::tempdir().unwrap(),
            &[
                &[
                    "--connect",
                    split.device_socket.to_str().unwrap(),
                    "--state",
                    split.state.to_str().unwrap(),
                ][..],
                other,
            ]
            .concat(),
            &split.device_socket,
            "refused.log",
        );
        assert!(!refused.wait().success());
        assert!(
            refused.log().contains("another layout"),
            "{}",
            refused.log()
        );
        assert_eq!(client.window().1, 256 * 1024);
    }

    // The same options resume: the queue goes on in the window.
    let _dev = device_logic(&split, &args, "device2.log");
    q.add_chain(&win, &[(WINDOW_BUS + 0x8100, 16, true)]);
    kick(&client, 0, 0);
    wait_for("the request after the restart", || q.used_idx(&win) == 2);
    assert_eq!(q.used_elem(&win, 1).1, 16);
    assert_eq!(win.read(0x8100, 16).len(), 16);
    assert!(split.server.log().contains("device logic disconnected"));
}

#[test]
fn split_mode_a_region_too_small_for_the_window_is_refused() {
    let split = Split::start("64K");
    let mut dev = Device::spawn_with(
        tempfile::tempdir().unwrap(),
        &[
            "--connect",
            split.device_socket.to_str().unwrap(),
            "--window",
            "64K",
            "--device",
            "rng",
        ],
        &split.device_socket,
        "device.log",
    );
    assert!(!dev.wait().success());
    let log = dev.log();
    assert!(log.contains("does not fit"), "{log}");
}
