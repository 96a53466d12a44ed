// SPDX-License-Identifier: GPL-2.0

//! Split mode: `vmsg-device ivshmem-server` holds the region and QEMU's connection while
//! the device logic (`vmsg-device --connect`) is killed and restarted under a driver
//! side that keeps going (Documentation/shm-bus.rst, "Restarting the device side").

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    driver_ok, expect_used, features_ok, hdr, kick, negotiate, ping, queues_at_driver_ok,
    transport, version_status, wait_for, Client, Device, GuestRam, Split, SplitQueue, FEATURES_OK,
    VERSION_1,
};
use virtio_msg_codec::shm::VersionStatus;
use virtio_msg_codec::transport::TransportMessage as T;

/// Starts the device logic; it is ready once it has written its state file.
fn start_device(split: &Split, extra: &[&str], log_name: &str) -> Device {
    let _ = std::fs::remove_file(&split.state);
    split.spawn_device(extra, log_name)
}

/// Restarts the device logic without removing the state file first.
fn restart_device(split: &Split, extra: &[&str]) -> Device {
    let dev = split.spawn_device(extra, "device2.log");
    // The state file exists already: wait for the log line instead.
    wait_for("the restarted device logic to join", || {
        dev.log().contains("joined")
    });
    dev
}

/// Runs a device logic with `args` that the server must refuse: it exits with a
/// failure. Returns what it logged.
fn refused_device(split: &Split, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Device::spawn_with(dir, args, &split.device_socket, "refused.log");
    assert!(!dev.wait().success());
    dev.log()
}

fn blk_write(ram: &GuestRam, q: &mut SplitQueue, slot: u64, sector: u64, fill: u8) -> u16 {
    let base = 0x40000 + slot * 0x1000;
    let mut h = Vec::new();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&sector.to_le_bytes());
    ram.write(base, &h);
    ram.write(base + 0x100, &[fill; 512]);
    ram.write(base + 0x800, &[0xff]);
    q.add_chain(
        ram,
        &[
            (base, 16, false),
            (base + 0x100, 512, false),
            (base + 0x800, 1, true),
        ],
    )
}

fn status_of(ram: &GuestRam, slot: u64) -> u8 {
    ram.read(0x40000 + slot * 0x1000 + 0x800, 1)[0]
}

fn no_socket_traffic(client: &Client) -> bool {
    client.stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    let quiet = matches!((&client.stream).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    client.stream.set_nonblocking(false).unwrap();
    quiet
}

fn disk(dir: &Path) -> PathBuf {
    let path = dir.join("disk.img");
    std::fs::write(&path, vec![0u8; 64 * 1024]).unwrap();
    path
}

#[test]
fn qemu_waits_for_the_region_and_sees_one_fixed_device_peer() {
    let split = Split::start("64K");
    // QEMU connects before any device logic: it is held until the region is laid out.
    let qemu = split.qemu_socket.clone();
    let early = std::thread::spawn(move || Client::connect(&qemu, 1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!early.is_finished(), "QEMU got a blank region");
    let _dev = start_device(&split, &["--device", "rng"], "device.log");
    let client = early.join().unwrap();
    assert_eq!(client.load(hdr::MAGIC), 0x4753_4d56);
    assert_eq!(client.load(hdr::DEVICE_PEER_ID), 0);
    assert_eq!(client.load(hdr::DEVICE_STATE), 1);
    assert_eq!(client.peers.len(), 1);
    assert_eq!(client.peers[0].0, 0);
    assert_ne!(client.id, 0);
    negotiate(&client);
    let r = client.call(ping(5, 0xfeed));
    assert_eq!(r, (0, 5, "Bus(PingResponse { data: 65261 })".to_string()));
    // A second device logic is refused while the first is connected.
    let log = refused_device(
        &split,
        &[
            "--connect",
            split.device_socket.to_str().unwrap(),
            "--device",
            "rng",
        ],
    );
    assert!(log.contains("joining the ivshmem server"), "{log}");
    assert!(split
        .server
        .log()
        .contains("refusing a device logic connection"));
}

#[test]
fn killed_device_logic_resumes_state_rings_and_virtqueues() {
    let split = Split::start("64K");
    let ram = GuestRam::new(1 << 20);
    let disk_dir = tempfile::tempdir().unwrap();
    let disk = disk(disk_dir.path());
    let spec = format!("blk:path={}", disk.display());
    let args = [
        "--guest-memory",
        ram.path.as_str(),
        "--device",
        spec.as_str(),
    ];
    let mut dev = start_device(&split, &args, "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    negotiate(&client);
    assert_ne!(features_ok(&client, 0, VERSION_1) & FEATURES_OK, 0);
    let mut q = SplitQueue::new(&ram, 0x10000, 16);
    client.call(transport(0, 2, T::SetVqueueRequest(q.setup(0))));
    driver_ok(&client, 0);

    // One write acknowledged before the kill.
    blk_write(&ram, &mut q, 0, 1, 0x11);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!((q.used_idx(&ram), status_of(&ram, 0)), (1, 0));

    dev.kill();

    // While nobody serves the rings: a write the driver made available and notified, a
    // PING, and a second write the old process would have taken but never completed
    // (nothing tells the new one about it but the avail ring).
    blk_write(&ram, &mut q, 1, 2, 0x22);
    kick(&client, 0, 0);
    client.send(ping(0x77, 7));
    blk_write(&ram, &mut q, 2, 3, 0x33);

    let _dev2 = restart_device(&split, &args);

    // Everything waiting is served: the writes (one EVENT_USED when the queue is
    // resumed; the replayed EVENT_AVAILs find nothing left), the PING (same token).
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(client.recv(|f| (f.token, format!("{:?}", f.message))));
    }
    assert!(
        got.contains(&(0x77, "Bus(PingResponse { data: 7 })".to_string())),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(_, m)| m == "Transport(EventUsed { vq_index: 0 })"),
        "{got:?}"
    );
    wait_for("both writes to complete", || q.used_idx(&ram) == 3);
    assert_eq!((status_of(&ram, 1), status_of(&ram, 2)), (0, 0));
    let image = std::fs::read(&disk).unwrap();
    assert!(image[512..1024].iter().all(|b| *b == 0x11));
    assert!(image[1024..1536].iter().all(|b| *b == 0x22));
    assert!(image[1536..2048].iter().all(|b| *b == 0x33));

    // The negotiated state came back: VERSION is fixed, the device is at DRIVER_OK with
    // its queue where the driver put it.
    assert_eq!(version_status(&client, 9), VersionStatus::AlreadyNegotiated);
    let r = client.call(transport(0, 10, T::GetDeviceStatusRequest));
    assert_eq!(r.2, "Transport(GetDeviceStatusResponse { status: 15 })");
    let r = client.call(transport(0, 11, T::GetVqueueRequest { index: 0 }));
    assert!(
        r.2.contains("cur_size: 16") && r.2.contains("flags: 1"),
        "{}",
        r.2
    );
    assert!(r.2.contains(&format!("desc_addr: {}", q.desc)), "{}", r.2);

    // And the device keeps working, through the same doorbell eventfd as before.
    blk_write(&ram, &mut q, 3, 4, 0x44);
    kick(&client, 0, 0);
    wait_for("the write after the restart", || q.used_idx(&ram) == 4);
    assert_eq!(status_of(&ram, 3), 0);

    // QEMU's connection never noticed: no peer went or came.
    assert!(no_socket_traffic(&client));
    assert!(split.server.log().contains("device logic disconnected"));
}

#[test]
fn a_new_driver_side_after_the_old_one_left_gets_a_fresh_region() {
    let split = Split::start("64K");
    let _dev = start_device(&split, &["--device", "rng"], "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    negotiate(&client);
    client.send(ping(1, 1));
    client.recv(|_| ());
    drop(client);
    // The device logic lays the region out again; the next client starts from zero.
    let client = Client::connect(&split.qemu_socket, 1);
    assert_eq!(client.load(hdr::DRIVER_STATE), 0);
    assert_eq!(client.load(64), 0, "to-device producer");
    negotiate(&client);
}

#[test]
fn a_successor_with_another_layout_is_refused_and_the_same_one_resumes() {
    let split = Split::start("64K");
    let mut dev = start_device(&split, &["--device", "rng"], "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    negotiate(&client);
    dev.kill();
    // Other slots would move the rings under the driver side: refused, region untouched.
    let log = refused_device(
        &split,
        &[
            "--connect",
            split.device_socket.to_str().unwrap(),
            "--state",
            split.state.to_str().unwrap(),
            "--max-msg-size",
            "128",
            "--device",
            "rng",
        ],
    );
    assert!(log.contains("another layout"), "{log}");
    assert_eq!(client.load(hdr::SLOT_SIZE), 264);
    // The right successor, started at once (the server may not have seen the hang-up yet).
    let _dev = restart_device(&split, &["--device", "rng"]);
    client.send(ping(3, 3));
    // The VERSION may be answered a second time: killed after publishing its answer and
    // before releasing its slot, the first process left it to be read again. A driver
    // side drops an answer to a token it no longer waits for.
    let r = loop {
        let (dev, token, m) = client.recv(|f| (f.dev_num, f.token, format!("{:?}", f.message)));
        if token != 0x7000 {
            break (dev, token, m);
        }
        assert!(m.contains("AlreadyNegotiated"), "{m}");
    };
    assert_eq!(r, (0, 3, "Bus(PingResponse { data: 3 })".to_string()));
}

#[test]
fn the_device_logic_serves_on_when_the_server_dies() {
    let mut split = Split::start("64K");
    let dev = start_device(&split, &["--device", "rng"], "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    negotiate(&client);
    split.server.kill();
    wait_for("the device logic to notice", || {
        dev.log().contains("the ivshmem server went away")
    });
    let r = client.call(ping(4, 4));
    assert_eq!(r, (0, 4, "Bus(PingResponse { data: 4 })".to_string()));
}

/// The guest reuses the memory of queue `q`, which it freed: an entry made available
/// there (as a resumed queue would take it) for a buffer at 0x50000. Returns guest RAM as
/// it is then; a device side that keeps away from freed memory leaves it so.
fn reuse_queue_memory(ram: &GuestRam, q: &mut SplitQueue) -> Vec<u8> {
    ram.write(0x50000, &[0xaa; 256]);
    q.add_chain(ram, &[(0x50000, 256, true)]);
    ram.read(0, RAM)
}

const RAM: usize = 1 << 20;

/// A device logic serving one rng from `ram` to a negotiated driver side, its queue 0 at
/// 0x10000, at DRIVER_OK, one buffer used.
fn rng_in_use(split: &Split, ram: &GuestRam) -> (Device, Client, SplitQueue) {
    let args = ["--guest-memory", ram.path.as_str(), "--device", "rng"];
    let dev = start_device(split, &args, "device.log");
    let client = Client::connect(&split.qemu_socket, 1);
    negotiate(&client);
    let mut q = queues_at_driver_ok(&client, 0, ram, &[(0x10000, 8)]).remove(0);
    q.add_chain(ram, &[(0x40000, 64, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    (dev, client, q)
}

/// [`rng_in_use`], then the device logic killed.
fn killed_in_use() -> (Split, GuestRam, Client, SplitQueue) {
    let split = Split::start("64K");
    let ram = GuestRam::new(RAM);
    let (mut dev, client, q) = rng_in_use(&split, &ram);
    dev.kill();
    (split, ram, client, q)
}

/// A successor that started a moment ago has left guest RAM as `before` was, and logged
/// `says`.
fn left_alone(ram: &GuestRam, before: &[u8], dev: &Device, says: &str) {
    std::thread::sleep(Duration::from_millis(200));
    assert!(ram.read(0, RAM) == before, "guest memory written");
    assert!(dev.log().contains(says), "{}", dev.log());
}

/// After a fresh start: the driver side attaches (if it is not) and finds nothing of the
/// old instance: VERSION is accepted anew, the device is at status 0, its queue disabled,
/// and a new queue elsewhere works.
fn fresh_instance(client: &Client, ram: &GuestRam) {
    if client.load(hdr::DRIVER_STATE) == 0 {
        client.set_driver_state(1);
    }
    wait_for("device_state 1", || client.load(hdr::DEVICE_STATE) == 1);
    assert_eq!(client.load(64), 0, "to-device producer");
    assert_eq!(version_status(client, 0x7001), VersionStatus::Accepted);
    let r = client.call(transport(0, 3, T::GetDeviceStatusRequest));
    assert_eq!(r.2, "Transport(GetDeviceStatusResponse { status: 0 })");
    let r = client.call(transport(0, 4, T::GetVqueueRequest { index: 0 }));
    assert!(r.2.contains("flags: 0"), "{}", r.2);
    let mut q = queues_at_driver_ok(client, 0, ram, &[(0x20000, 8)]).remove(0);
    q.add_chain(ram, &[(0x60000, 32, true)]);
    kick(client, 0, 0);
    expect_used(client, 0, 0);
    assert_eq!(q.used_elem(ram, 0), (0, 32));
}

#[test]
fn a_device_logic_stopped_by_sigterm_is_not_resumed() {
    let split = Split::start("64K");
    let ram = GuestRam::new(RAM);
    let (mut dev, client, mut q) = rng_in_use(&split, &ram);
    dev.terminate();
    assert!(dev.wait().success());
    assert_eq!(client.load(hdr::DEVICE_STATE), 2, "going away");
    let r = client.recv(|f| format!("{:?}", f.message));
    assert_eq!(r, "Bus(EventDevice { dev_num: 0, state: Removed })");
    assert!(!split.state.exists(), "the state file is invalidated");
    // The driver side removes its devices, frees their memory (which the guest reuses)
    // and detaches while no device logic runs.
    let before = reuse_queue_memory(&ram, &mut q);
    client.set_driver_state(0);

    let dev2 = split.spawn_device(
        &["--guest-memory", &ram.path, "--device", "rng"],
        "device2.log",
    );
    // A fresh start: the rings laid out again, device_state 1 for the driver side to come
    // back to; the freed queue is never read or written.
    wait_for("device_state 1", || client.load(hdr::DEVICE_STATE) == 1);
    left_alone(&ram, &before, &dev2, "starting fresh");
    fresh_instance(&client, &ram);
    assert!(!dev2.log().contains("Iterator error"), "{}", dev2.log());
}

#[test]
fn a_killed_device_logic_is_not_resumed_once_the_driver_side_detached() {
    let (split, ram, client, mut q) = killed_in_use();
    // Recovery: the driver side detaches (nobody answers yet), frees the queue memory.
    client.set_driver_state(0);
    let before = reuse_queue_memory(&ram, &mut q);

    let dev2 = restart_device(&split, &["--guest-memory", &ram.path, "--device", "rng"]);
    // The detach is answered (device_state 0, rings emptied); the saved queues are not
    // resumed.
    wait_for("device_state 0", || client.load(hdr::DEVICE_STATE) == 0);
    left_alone(&ram, &before, &dev2, "not resuming");
    fresh_instance(&client, &ram);
}

#[test]
fn a_state_saved_before_the_current_attachment_is_not_resumed() {
    let (split, ram, client, mut q) = killed_in_use();
    // A copy of the state: what a successor run with another --state would leave behind.
    let stale = split.state.with_extension("stale");
    std::fs::copy(&split.state, &stale).unwrap();

    // A successor resumes, then the driver side detaches and attaches anew (its old queue
    // memory freed), and negotiates again.
    let mut dev2 = restart_device(&split, &["--guest-memory", &ram.path, "--device", "rng"]);
    expect_used(&client, 0, 0);
    assert_eq!(client.load(hdr::ATTACH_EPOCH), 1);
    client.reattach();
    assert_eq!(
        client.load(hdr::ATTACH_EPOCH),
        2,
        "the new attachment is counted"
    );
    assert_eq!(version_status(&client, 0x7002), VersionStatus::Accepted);
    dev2.kill();
    let before = reuse_queue_memory(&ram, &mut q);

    // The stale state describes an attachment that is gone, although driver_state and
    // device_state are 1 as they were then.
    std::fs::rename(&stale, &split.state).unwrap();
    let dev3 = split.spawn_device(
        &["--guest-memory", &ram.path, "--device", "rng"],
        "device3.log",
    );
    wait_for("dev3 to join", || dev3.log().contains("joined"));
    left_alone(&ram, &before, &dev3, "not resuming");
    // It asks the driver side to go (device_state 2) and serves nothing until it has
    // detached; then it starts afresh.
    wait_for("device_state 2", || client.load(hdr::DEVICE_STATE) == 2);
    assert!(client.try_recv(Duration::from_millis(200)).is_none());
    client.send(ping(0x55, 5));
    assert!(
        client.try_recv(Duration::from_millis(300)).is_none(),
        "served a stale attachment"
    );
    client.set_driver_state(0);
    wait_for("device_state 1", || client.load(hdr::DEVICE_STATE) == 1);
    fresh_instance(&client, &ram);
}

#[test]
fn a_device_reset_pending_at_the_restart_stops_that_device_s_queues() {
    let (split, ram, client, mut q) = killed_in_use();
    // While nobody serves the rings, the driver makes a buffer available, notifies, then
    // resets the device (its driver unbinds); the reset times out, and the driver frees
    // and reuses the queue memory.
    q.add_chain(&ram, &[(0x50000, 256, true)]);
    kick(&client, 0, 0);
    client.send(transport(0, 0x21, T::SetDeviceStatusRequest { status: 0 }));
    ram.write(0x50000, &[0xaa; 256]);
    let before = ram.read(0, RAM);

    let dev2 = restart_device(&split, &["--guest-memory", &ram.path, "--device", "rng"]);
    let r = client.recv(|f| (f.dev_num, f.token, format!("{:?}", f.message)));
    assert_eq!(
        r,
        (
            0,
            0x21,
            "Transport(SetDeviceStatusResponse { status: 0 })".to_string()
        )
    );
    assert!(client.try_recv(Duration::from_millis(200)).is_none());
    left_alone(&ram, &before, &dev2, "its reset is pending");
    // The rest of the instance resumed: VERSION stays negotiated.
    assert_eq!(
        version_status(&client, 0x7003),
        VersionStatus::AlreadyNegotiated
    );
}
