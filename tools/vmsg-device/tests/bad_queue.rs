// SPDX-License-Identifier: GPL-2.0

//! Virtqueues the device side cannot use (an avail ring that says more buffers wait than
//! the queue holds, buffers outside guest memory): the queue stops, the device needs a
//! reset (DEVICE_NEEDS_RESET, announced with EVENT_CONFIG), the log says so once, and
//! the device side stays responsive (Documentation/shm-bus.rst, "Window mode" and
//! Documentation/transport.rst).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::{
    count, expect_used, kick, negotiate, ping, queues_at_driver_ok, transport, Client, Device,
    GuestRam, SplitQueue,
};
use virtio_msg_codec::transport::TransportMessage as T;

const NEEDS_RESET: u32 = 0x40;
/// How long the tests wait for an answer that must come at once.
const PROMPT: Duration = Duration::from_secs(3);

/// The next message must be EVENT_CONFIG for `dev_num` with DEVICE_NEEDS_RESET set.
fn expect_needs_reset(client: &Client, dev_num: u16) {
    let (d, token, m) = client
        .try_recv(PROMPT)
        .expect("no EVENT_CONFIG: the device side is stuck");
    assert_eq!((d, token), (dev_num, 0), "{m}");
    assert!(
        m.starts_with(&format!(
            "Transport(EventConfig {{ device_status: {}",
            0xf | NEEDS_RESET
        )),
        "{m}"
    );
}

/// The device side answers a PING at once.
fn responsive(client: &Client, token: u16) {
    client.send(ping(token, 0x1234));
    let r = client.try_recv(PROMPT).expect("PING not answered");
    assert_eq!(
        r,
        (0, token, "Bus(PingResponse { data: 4660 })".to_string())
    );
}

fn status(client: &Client, dev_num: u16) -> String {
    client
        .call(transport(dev_num, 0x77, T::GetDeviceStatusRequest))
        .2
}

/// Device 0 at DRIVER_OK with one queue of `size` entries at `base`.
fn one_queue(client: &Client, ram: &GuestRam, base: u64, size: u16) -> SplitQueue {
    queues_at_driver_ok(client, 0, ram, &[(base, size)]).remove(0)
}

/// `control()` with a short timeout: a stuck device side fails the test quickly.
fn control_prompt(path: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .expect("no answer on the control socket: the device side is stuck");
    answer.trim_end().to_string()
}

/// An rng served from guest RAM, negotiated, at DRIVER_OK with one queue of `size` entries
/// at 0x10000.
fn rng_with_queue(size: u16) -> (GuestRam, Device, Client, SplitQueue) {
    let ram = GuestRam::new(1 << 20);
    let dev = Device::spawn(&["--guest-memory", &ram.path, "--device", "rng"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    let q = one_queue(&client, &ram, 0x10000, size);
    (ram, dev, client, q)
}

#[test]
fn an_avail_index_past_the_queue_size_stops_the_queue_once_until_a_reset() {
    let (ram, dev, client, q) = rng_with_queue(8);
    // 100 buffers in a queue of 8: memory the driver no longer owns, or garbage.
    ram.store_u16(q.avail + 2, 100);
    let before = ram.read(0, 1 << 20);
    kick(&client, 0, 0);
    expect_needs_reset(&client, 0);
    for _ in 0..5 {
        kick(&client, 0, 0);
    }
    responsive(&client, 2);
    assert_eq!(
        status(&client, 0),
        format!(
            "Transport(GetDeviceStatusResponse {{ status: {} }})",
            0xf | NEEDS_RESET
        )
    );
    assert!(ram.read(0, 1 << 20) == before, "guest memory written");
    let log = dev.log();
    assert_eq!(count(&log, "invalid available ring index"), 1, "{log}");

    // The driver resets the device and sets the queue up again: served again.
    let r = client.call(transport(0, 3, T::SetDeviceStatusRequest { status: 0 }));
    assert_eq!(r.2, "Transport(SetDeviceStatusResponse { status: 0 })");
    let mut q = one_queue(&client, &ram, 0x20000, 8);
    q.add_chain(&ram, &[(0x40000, 16, true)]);
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_elem(&ram, 0), (0, 16));
}

#[test]
fn console_input_into_a_broken_receive_queue_needs_a_reset_once() {
    let ram = GuestRam::new(1 << 20);
    let (dev, ctl) =
        Device::spawn_with_control(&["--guest-memory", &ram.path, "--device", "console"]);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    let queues = queues_at_driver_ok(&client, 0, &ram, &[(0x10000, 8), (0x20000, 8)]);
    ram.store_u16(queues[0].avail + 2, 0x8000);
    let before = ram.read(0, 1 << 20);
    let answer = control_prompt(&ctl, "inject 0 typed");
    assert!(answer.starts_with("error "), "{answer}");
    expect_needs_reset(&client, 0);
    // More input waits: the queue is not touched again.
    for _ in 0..3 {
        control_prompt(&ctl, "inject 0 more");
    }
    responsive(&client, 3);
    assert!(ram.read(0, 1 << 20) == before, "guest memory written");
    let log = dev.log();
    assert_eq!(count(&log, "invalid available ring index"), 1, "{log}");
}

#[test]
fn buffers_outside_guest_memory_are_logged_at_a_bounded_rate() {
    let (ram, dev, client, mut q) = rng_with_queue(64);
    for _ in 0..64 {
        q.add_chain(&ram, &[(0x1000_0000, 64, true)]);
    }
    kick(&client, 0, 0);
    expect_used(&client, 0, 0);
    assert_eq!(q.used_idx(&ram), 64);
    assert_eq!(q.used_elem(&ram, 63).1, 0, "nothing written");
    responsive(&client, 2);
    let log = dev.log();
    let lines = log.lines().filter(|l| l.contains("rng: ")).count();
    assert!(lines <= 11, "{lines} lines:\n{log}");
}
