// SPDX-License-Identifier: GPL-2.0

//! Test harness: runs the real `vmsg-device` binary and plays QEMU's part against it
//! (the ivshmem client protocol and the driver side of the rings), written from
//! `Documentation/shm-bus.rst` without the program's own ring code.

#![allow(dead_code)]

use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use virtio_msg_codec::shm::VersionStatus;
use virtio_msg_codec::{BusKind, Codec, Frame, Message};
use vm_memory::{Bytes, FileOffset, MmapRegion, VolatileMemory};

/// How long a test waits for anything.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The device program running in a temporary directory.
pub struct Device {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Device {
    /// Starts `vmsg-device --socket DIR/sock ARGS...` and waits for its socket.
    pub fn spawn(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_in(dir, args)
    }

    /// Same, in a directory the test prepared.
    pub fn spawn_in(dir: tempfile::TempDir, args: &[&str]) -> Self {
        let socket = dir.path().join("ivshmem.sock");
        let mut all = vec!["--socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        Self::spawn_with(dir, &all, &socket, "device.log")
    }

    /// Same, with a control socket (`--control DIR/ctl`); returns the socket's path too.
    pub fn spawn_with_control(args: &[&str]) -> (Self, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ctl = dir.path().join("ctl");
        let ctl_arg = ctl.to_str().unwrap().to_string();
        let mut all = vec!["--control", ctl_arg.as_str()];
        all.extend_from_slice(args);
        (Self::spawn_in(dir, &all), ctl)
    }

    /// Starts `vmsg-device ARGS... --log-level debug` in `dir`, logging to `log_name`
    /// there, and waits for `ready` to exist. `socket` is set to `ready`.
    pub fn spawn_with(dir: tempfile::TempDir, args: &[&str], ready: &Path, log_name: &str) -> Self {
        let socket = ready.to_path_buf();
        let log = dir.path().join(log_name);
        let child = Command::new(env!("CARGO_BIN_EXE_vmsg-device"))
            .args(args)
            .args(["--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut dev = Self {
            child: Some(child),
            dir,
            socket,
            log,
        };
        let deadline = Instant::now() + TIMEOUT;
        while !dev.socket.exists() {
            if let Some(status) = dev.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vmsg-device exited early ({status}):\n{}", dev.log());
            }
            assert!(
                Instant::now() < deadline,
                "no socket after {TIMEOUT:?}:\n{}",
                dev.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        dev
    }

    /// Kills the program with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// What the program logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// Waits for the program to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vmsg-device did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- vmsg-device log ---\n{}", self.log());
        }
    }
}

/// Receives one ivshmem protocol message: a little-endian i64 and maybe one fd.
pub fn recv_message(stream: &UnixStream) -> (i64, Option<OwnedFd>) {
    let mut buf = [0u8; 8];
    let mut got = 0;
    let mut fd = None;
    while got < 8 {
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        let mut space = nix::cmsg_space!(RawFd);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        assert!(msg.bytes > 0, "server closed the connection");
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                assert_eq!(fds.len(), 1, "one fd per message");
                // SAFETY: SCM_RIGHTS just installed this descriptor in our table and
                // nothing else owns it; OwnedFd takes sole ownership.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        got += msg.bytes;
    }
    (i64::from_le_bytes(buf), fd)
}

/// Header offsets (Documentation/shm-bus.rst).
pub mod hdr {
    pub const MAGIC: usize = 0x00;
    pub const LAYOUT_VERSION: usize = 0x04;
    pub const HEADER_SIZE: usize = 0x08;
    pub const SLOT_SIZE: usize = 0x0C;
    pub const SLOT_COUNT: usize = 0x10;
    pub const TO_DEVICE: usize = 0x14;
    pub const TO_DRIVER: usize = 0x18;
    pub const DEVICE_PEER_ID: usize = 0x1C;
    pub const DEVICE_STATE: usize = 0x20;
    pub const DRIVER_STATE: usize = 0x24;
    pub const WINDOW_OFFSET: usize = 0x28;
    pub const WINDOW_SIZE: usize = 0x30;
    pub const ATTACH_EPOCH: usize = 0x38;
}

/// Bus address of the window's first byte: area id 1, offset 0.
pub const WINDOW_BUS: u64 = 1 << 48;

const PRODUCER: usize = 0;
const CONSUMER: usize = 64;
const WANTS_DOORBELL: usize = 68;
const SLOTS: usize = 128;

/// QEMU's side of the connection plus the guest driver's side of the rings.
pub struct Client {
    pub stream: UnixStream,
    pub id: i64,
    pub shm: MmapRegion<()>,
    pub shm_size: usize,
    /// (peer id, eventfd) for every other peer, in the order received.
    pub peers: Vec<(i64, File)>,
    /// Our own interrupt eventfds.
    pub own: Vec<File>,
    pub codec: Codec,
}

impl Client {
    /// Connects and reads the whole setup for `vectors` vectors, checking its order.
    pub fn connect(socket: &Path, vectors: usize) -> Self {
        // The socket file appears at bind(), a moment before listen(): retry briefly.
        let deadline = Instant::now() + TIMEOUT;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("connecting to {}: {e}", socket.display()),
            }
        };
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let (version, fd) = recv_message(&stream);
        assert_eq!(
            (version, fd.is_none()),
            (0, true),
            "protocol version 0 without fd"
        );
        let (id, fd) = recv_message(&stream);
        assert!(fd.is_none() && id >= 0, "peer id without fd, got {id}");
        let (minus_one, shm_fd) = recv_message(&stream);
        assert_eq!(minus_one, -1, "shared memory comes as -1 with an fd");
        let shm_file = File::from(shm_fd.expect("shared memory fd"));
        let shm_size = shm_file.metadata().unwrap().len() as usize;
        let shm = MmapRegion::<()>::from_file(FileOffset::new(shm_file, 0), shm_size).unwrap();
        let mut peers = Vec::new();
        let mut own = Vec::new();
        while own.len() < vectors {
            let (peer, fd) = recv_message(&stream);
            let fd = fd.expect("peer announcements carry an eventfd");
            let efd = File::from(fd);
            if peer == id {
                own.push(efd);
            } else {
                assert!(own.is_empty(), "other peers come before our own vectors");
                peers.push((peer, efd));
            }
        }
        // Nothing else is pending on the socket.
        stream.set_nonblocking(true).unwrap();
        let mut extra = [0u8; 8];
        assert!(
            (&stream).read(&mut extra).is_err(),
            "unexpected extra data after setup"
        );
        stream.set_nonblocking(false).unwrap();
        Self {
            stream,
            id,
            shm,
            shm_size,
            peers,
            own,
            codec: Codec::new(BusKind::SharedMemory),
        }
    }

    /// Reads bytes of the region.
    pub fn read(&self, off: usize, buf: &mut [u8]) {
        self.shm.as_volatile_slice().read_slice(buf, off).unwrap()
    }

    pub fn load(&self, off: usize) -> u32 {
        self.shm
            .as_volatile_slice()
            .load(off, Ordering::Acquire)
            .unwrap()
    }

    pub fn store(&self, off: usize, v: u32) {
        self.shm
            .as_volatile_slice()
            .store(v, off, Ordering::Release)
            .unwrap()
    }

    /// A little-endian u64 of the region.
    pub fn load_u64(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read(off, &mut b);
        u64::from_le_bytes(b)
    }

    /// The window the header names: (offset, size); (0, 0) without one.
    pub fn window(&self) -> (u64, u64) {
        (
            self.load_u64(hdr::WINDOW_OFFSET),
            self.load_u64(hdr::WINDOW_SIZE),
        )
    }

    fn ring_geometry(&self, header_field: usize) -> (usize, usize, u32) {
        (
            self.load(header_field) as usize,
            self.load(hdr::SLOT_SIZE) as usize,
            self.load(hdr::SLOT_COUNT),
        )
    }

    /// The eventfd that interrupts the device side (peer `device_peer_id`, vector 0).
    pub fn device_doorbell(&self) -> &File {
        let id = i64::from(self.load(hdr::DEVICE_PEER_ID));
        &self
            .peers
            .iter()
            .find(|(p, _)| *p == id)
            .expect("device peer announced")
            .1
    }

    /// Producer side of the to-device ring, exactly as the contract says.
    pub fn send_raw(&self, msg: &[u8]) {
        let (base, slot_size, count) = self.ring_geometry(hdr::TO_DEVICE);
        assert!(msg.len() <= slot_size);
        let producer = self.load(base + PRODUCER);
        let consumer = self.load(base + CONSUMER);
        assert!(
            producer.wrapping_sub(consumer) < count,
            "to-device ring full"
        );
        let slot = base + SLOTS + (producer & (count - 1)) as usize * slot_size;
        self.shm.as_volatile_slice().write_slice(msg, slot).unwrap();
        self.store(base + PRODUCER, producer.wrapping_add(1));
        fence(Ordering::SeqCst);
        if self.load(base + WANTS_DOORBELL) == 1 {
            self.device_doorbell()
                .write_all(&1u64.to_ne_bytes())
                .unwrap();
        }
    }

    /// Encodes and sends a frame.
    pub fn send(&self, frame: Frame<'_>) {
        let mut buf = vec![0u8; 65535];
        let n = self.codec.encode(&frame, &mut buf).unwrap();
        self.send_raw(&buf[..n]);
    }

    /// Consumer side of the to-driver ring: the next message, waiting on our own eventfd.
    pub fn try_recv_raw(&self, timeout: Duration) -> Option<Vec<u8>> {
        let (base, slot_size, count) = self.ring_geometry(hdr::TO_DRIVER);
        let deadline = Instant::now() + timeout;
        loop {
            let producer = self.load(base + PRODUCER);
            let consumer = self.load(base + CONSUMER);
            let n = producer.wrapping_sub(consumer);
            assert!(
                n <= count,
                "to-driver ring corrupt: producer {producer} consumer {consumer}"
            );
            if n > 0 {
                let slot = base + SLOTS + (consumer & (count - 1)) as usize * slot_size;
                let mut size = [0u8; 2];
                self.shm
                    .as_volatile_slice()
                    .read_slice(&mut size, slot + 6)
                    .unwrap();
                let size = u16::from_le_bytes(size) as usize;
                assert!(
                    (8..=slot_size).contains(&size),
                    "msg_size {size} out of range"
                );
                let mut msg = vec![0u8; size];
                self.shm
                    .as_volatile_slice()
                    .read_slice(&mut msg, slot)
                    .unwrap();
                self.store(base + CONSUMER, consumer.wrapping_add(1));
                return Some(msg);
            }
            // Sleep protocol: ask for a doorbell, barrier, recheck, then wait.
            self.store(base + WANTS_DOORBELL, 1);
            fence(Ordering::SeqCst);
            if self.load(base + PRODUCER) != consumer {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.own[0].as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0 {
                let mut count = [0u8; 8];
                (&self.own[0]).read_exact(&mut count).unwrap();
            }
        }
    }

    pub fn recv_raw(&self) -> Vec<u8> {
        self.try_recv_raw(TIMEOUT)
            .expect("no message from the device side")
    }

    /// Receives and decodes one message (the closure sees the decoded frame).
    pub fn recv<T>(&self, f: impl FnOnce(Frame<'_>) -> T) -> T {
        let raw = self.recv_raw();
        let frame = self.codec.decode(&raw).unwrap();
        f(frame)
    }

    /// Sends `frame` and returns the decoded next message, rendered with `{:?}` together
    /// with its dev_num and token.
    pub fn call(&self, frame: Frame<'_>) -> (u16, u16, String) {
        self.send(frame);
        self.recv(|f| (f.dev_num, f.token, format!("{:?}", f.message)))
    }

    /// The next message within `timeout`, rendered as [`Client::call`] does; `None` if
    /// none comes.
    pub fn try_recv(&self, timeout: Duration) -> Option<(u16, u16, String)> {
        let raw = self.try_recv_raw(timeout)?;
        let f = self.codec.decode(&raw).unwrap();
        Some((f.dev_num, f.token, format!("{:?}", f.message)))
    }

    /// Stores `driver_state` and rings the device side, as a driver side attaching (1) or
    /// detaching (0) does.
    pub fn set_driver_state(&self, state: u32) {
        self.store(hdr::DRIVER_STATE, state);
        fence(Ordering::SeqCst);
        self.device_doorbell()
            .write_all(&1u64.to_ne_bytes())
            .unwrap();
    }

    /// Detaches and attaches again, each time waiting for the device side's answer
    /// (Documentation/shm-bus.rst, "Attaching, detaching and recovery").
    pub fn reattach(&self) {
        self.set_driver_state(0);
        wait_for("device_state 0 after the detach", || {
            self.load(hdr::DEVICE_STATE) == 0
        });
        self.set_driver_state(1);
        wait_for("device_state 1 after the attach", || {
            self.load(hdr::DEVICE_STATE) == 1
        });
    }
}

/// A PING request.
pub fn ping(token: u16, data: u32) -> Frame<'static> {
    use virtio_msg_codec::bus::BusMessage;
    Frame::bus(token, Message::Bus(BusMessage::PingRequest { data }))
}

/// A transport request frame with a token.
pub fn transport(
    dev_num: u16,
    token: u16,
    m: virtio_msg_codec::transport::TransportMessage<'_>,
) -> Frame<'_> {
    Frame {
        dev_num,
        token,
        message: Message::Transport(m),
    }
}

/// A memfd standing in for guest RAM, reachable by path for the device program.
pub struct GuestRam {
    pub map: MmapRegion<()>,
    /// `/proc/<this pid>/fd/<memfd>`: the program opens the memfd through it.
    pub path: String,
    _file: File,
}

impl GuestRam {
    pub fn new(size: usize) -> Self {
        let fd = nix::sys::memfd::memfd_create(c"guest-ram", nix::sys::memfd::MFdFlags::empty())
            .unwrap();
        let file = File::from(fd);
        file.set_len(size as u64).unwrap();
        let path = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd());
        let map = MmapRegion::<()>::from_file(FileOffset::new(file.try_clone().unwrap(), 0), size)
            .unwrap();
        Self {
            map,
            path,
            _file: file,
        }
    }

    /// The window of `client`'s region, in the role of guest RAM: address `a` here is
    /// bus address `WINDOW_BUS + a` for the device side. A second mapping of the region's
    /// file, as a driver side would bounce buffers through it.
    pub fn window(client: &Client) -> Self {
        let (offset, size) = client.window();
        assert_ne!(size, 0, "the region has no window");
        let file = client
            .shm
            .file_offset()
            .expect("the region is a file mapping")
            .file()
            .try_clone()
            .unwrap();
        let map = MmapRegion::<()>::from_file(
            FileOffset::new(file.try_clone().unwrap(), offset),
            size as usize,
        )
        .unwrap();
        Self {
            map,
            path: String::new(),
            _file: file,
        }
    }

    pub fn write(&self, addr: u64, bytes: &[u8]) {
        self.map
            .as_volatile_slice()
            .write_slice(bytes, addr as usize)
            .unwrap();
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.map
            .as_volatile_slice()
            .read_slice(&mut v, addr as usize)
            .unwrap();
        v
    }

    pub fn load_u16(&self, addr: u64) -> u16 {
        self.map
            .as_volatile_slice()
            .load(addr as usize, Ordering::Acquire)
            .unwrap()
    }

    pub fn store_u16(&self, addr: u64, v: u16) {
        self.map
            .as_volatile_slice()
            .store(v, addr as usize, Ordering::Release)
            .unwrap()
    }
}

/// The driver's view of one split virtqueue laid out in [`GuestRam`].
pub struct SplitQueue {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// Added to the three areas' addresses in SET_VQUEUE (the window's bus address).
    pub bus: u64,
    next_desc: u16,
    avail_idx: u16,
}

pub const VRING_DESC_F_NEXT: u16 = 1;
pub const VRING_DESC_F_WRITE: u16 = 2;

impl SplitQueue {
    /// A queue of `size` entries whose three areas start at `base` (4 KiB apart).
    pub fn new(ram: &GuestRam, base: u64, size: u16) -> Self {
        let q = Self {
            size,
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
            bus: 0,
            next_desc: 0,
            avail_idx: 0,
        };
        ram.write(q.desc, &vec![0u8; 0x3000]);
        q
    }

    /// Publishes a chain of (address, length, device-writable) buffers; returns its head.
    pub fn add_chain(&mut self, ram: &GuestRam, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, (addr, len, writable)) in bufs.iter().enumerate() {
            let index = self.next_desc;
            self.next_desc = (self.next_desc + 1) % self.size;
            let mut flags = if *writable { VRING_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VRING_DESC_F_NEXT;
            }
            let mut d = Vec::with_capacity(16);
            d.extend_from_slice(&addr.to_le_bytes());
            d.extend_from_slice(&len.to_le_bytes());
            d.extend_from_slice(&flags.to_le_bytes());
            d.extend_from_slice(&self.next_desc.to_le_bytes());
            ram.write(self.desc + u64::from(index) * 16, &d);
        }
        let slot = self.avail + 4 + u64::from(self.avail_idx % self.size) * 2;
        ram.write(slot, &head.to_le_bytes());
        fence(Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.store_u16(self.avail + 2, self.avail_idx);
        head
    }

    pub fn used_idx(&self, ram: &GuestRam) -> u16 {
        ram.load_u16(self.used + 2)
    }

    /// (id, len) of used element `i`.
    pub fn used_elem(&self, ram: &GuestRam, i: u16) -> (u32, u32) {
        let e = ram.read(self.used + 4 + u64::from(i % self.size) * 8, 8);
        (
            u32::from_le_bytes(e[0..4].try_into().unwrap()),
            u32::from_le_bytes(e[4..8].try_into().unwrap()),
        )
    }

    pub fn setup(&self, index: u32) -> virtio_msg_codec::transport::VqueueSetup {
        virtio_msg_codec::transport::VqueueSetup {
            index,
            flags: virtio_msg_codec::transport::VQUEUE_SET_ENABLE,
            size: u32::from(self.size),
            desc_addr: self.bus + self.desc,
            driver_addr: self.bus + self.avail,
            device_addr: self.bus + self.used,
        }
    }
}

/// Device status bits.
pub const ACKNOWLEDGE: u32 = 1;
pub const DRIVER: u32 = 2;
pub const DRIVER_OK: u32 = 4;
pub const FEATURES_OK: u32 = 8;
pub const VERSION_1: u64 = 1 << 32;

/// Asks for VERSION 1 with a 264-byte limit; returns the answer's status.
pub fn version_status(client: &Client, token: u16) -> VersionStatus {
    use virtio_msg_codec::shm::{ShmBusMessage, VersionTerms};
    client.send(Frame::bus(
        token,
        Message::Shm(ShmBusMessage::VersionRequest(VersionTerms {
            revision: 1,
            max_msg_size: 264,
            features: 0,
        })),
    ));
    client.recv(|f| match f.message {
        Message::Shm(ShmBusMessage::VersionResponse { status, .. }) => status,
        other => panic!("{other:?}"),
    })
}

/// Negotiates VERSION 1 with a 264-byte limit and checks it was accepted.
pub fn negotiate(client: &Client) {
    client.store(hdr::DRIVER_STATE, 1);
    assert_eq!(version_status(client, 0x7000), VersionStatus::Accepted);
}

/// Starts `vmsg-device ARGS...`, connects as QEMU and negotiates VERSION.
pub fn spawn_negotiated(args: &[&str]) -> (Device, Client) {
    let dev = Device::spawn(args);
    let client = Client::connect(&dev.socket, 1);
    negotiate(&client);
    (dev, client)
}

/// Notifies queue `vq_index` of device `dev_num` (EVENT_AVAIL, token 0).
pub fn kick(client: &Client, dev_num: u16, vq_index: u32) {
    use virtio_msg_codec::transport::TransportMessage as T;
    client.send(transport(
        dev_num,
        0,
        T::EventAvail {
            vq_index,
            next_offset: 0,
        },
    ));
}

/// Receives the next message and checks it is EVENT_USED for queue `vq_index`.
pub fn expect_used(client: &Client, dev_num: u16, vq_index: u32) {
    let got = client.recv(|f| (f.dev_num, f.token, format!("{:?}", f.message)));
    assert_eq!(
        got,
        (
            dev_num,
            0,
            format!("Transport(EventUsed {{ vq_index: {vq_index} }})")
        )
    );
}

/// Sends one line to the control socket at `path` and returns its answer line.
pub fn control(path: &Path, line: &str) -> String {
    use std::io::{BufRead, BufReader};
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    answer.trim_end().to_string()
}

/// Polls `cond` until it holds; fails the test after [`TIMEOUT`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the status sequence up to FEATURES_OK with `features`; returns the status.
pub fn features_ok(client: &Client, dev_num: u16, features: u64) -> u32 {
    use virtio_msg_codec::transport::TransportMessage as T;
    use zerocopy::little_endian::U32;
    let s = |status| {
        client.call(transport(
            dev_num,
            0x100,
            T::SetDeviceStatusRequest { status },
        ))
    };
    s(ACKNOWLEDGE);
    s(ACKNOWLEDGE | DRIVER);
    let blocks = [U32::new(features as u32), U32::new((features >> 32) as u32)];
    let r = client.call(transport(
        dev_num,
        0x101,
        T::SetDriverFeaturesRequest {
            block_index: 0,
            features: &blocks,
        },
    ));
    assert_eq!(
        r,
        (
            dev_num,
            0x101,
            "Transport(SetDriverFeaturesResponse)".to_string()
        )
    );
    client.send(transport(
        dev_num,
        0x102,
        T::SetDeviceStatusRequest {
            status: ACKNOWLEDGE | DRIVER | FEATURES_OK,
        },
    ));
    client.recv(|f| match f.message {
        Message::Transport(T::SetDeviceStatusResponse { status }) => status,
        other => panic!("{other:?}"),
    })
}

/// Split mode: `vmsg-device ivshmem-server` (QEMU's side and the region) and the paths
/// the device logic joins it by.
pub struct Split {
    pub server: Device,
    pub qemu_socket: PathBuf,
    pub device_socket: PathBuf,
    pub state: PathBuf,
}

impl Split {
    /// Starts the server with a region of `shm_size`.
    pub fn start(shm_size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let qemu_socket = dir.path().join("qemu.sock");
        let device_socket = dir.path().join("device.sock");
        let state = dir.path().join("state");
        let args = [
            "ivshmem-server",
            "--socket",
            qemu_socket.to_str().unwrap(),
            "--device-socket",
            device_socket.to_str().unwrap(),
            "--shm-size",
            shm_size,
        ];
        let server = Device::spawn_with(dir, &args, &device_socket, "server.log");
        Split {
            server,
            qemu_socket,
            device_socket,
            state,
        }
    }

    /// Starts the device logic (`--connect`, `--state`, then `extra`) and waits for the
    /// state file.
    pub fn spawn_device(&self, extra: &[&str], log_name: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--connect",
            self.device_socket.to_str().unwrap(),
            "--state",
            self.state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Device::spawn_with(dir, &args, &self.state, log_name)
    }
}

/// Runs `vmsg-device --socket SOCK ARGS...`, which must fail to start; returns its stderr.
pub fn startup_error(sock: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vmsg-device"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What `vmsg-device --help` prints.
pub fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vmsg-device"))
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How often `needle` occurs in `text`.
pub fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Sets DRIVER_OK (after [`features_ok`] and the queue setup) and checks the device took it.
pub fn driver_ok(client: &Client, dev_num: u16) {
    use virtio_msg_codec::transport::TransportMessage as T;
    let r = client.call(transport(
        dev_num,
        0x1ff,
        T::SetDeviceStatusRequest {
            status: ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        },
    ));
    assert!(r.2.contains("status: 15"), "{}", r.2);
}

/// Brings device `dev_num` to DRIVER_OK (features: VERSION_1) with one split queue per
/// `(base, size)` of `queues`, queue `i` the `i`th; returns the queues.
pub fn queues_at_driver_ok(
    client: &Client,
    dev_num: u16,
    ram: &GuestRam,
    queues: &[(u64, u16)],
) -> Vec<SplitQueue> {
    use virtio_msg_codec::transport::TransportMessage as T;
    assert_ne!(features_ok(client, dev_num, VERSION_1) & FEATURES_OK, 0);
    let queues: Vec<SplitQueue> = queues
        .iter()
        .map(|&(base, size)| SplitQueue::new(ram, base, size))
        .collect();
    for (i, q) in queues.iter().enumerate() {
        let r = client.call(transport(
            dev_num,
            0x1c0,
            T::SetVqueueRequest(q.setup(i as u32)),
        ));
        assert_eq!(r.2, "Transport(SetVqueueResponse)");
    }
    driver_ok(client, dev_num);
    queues
}
