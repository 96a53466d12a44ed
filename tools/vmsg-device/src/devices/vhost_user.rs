// SPDX-License-Identifier: GPL-2.0

//! A device whose virtqueues are served by an external vhost-user backend (for example
//! qemu-storage-daemon's vhost-user-blk export).
//!
//! This program is the vhost-user frontend, the role QEMU normally has: it hands the
//! backend the guest RAM file, the ring addresses the driver set with SET_VQUEUE, a kick
//! eventfd per queue and one call eventfd. EVENT_AVAIL from the driver becomes a write to
//! the queue's kick eventfd; a signal on the call eventfd becomes EVENT_USED. The backend reads and writes
//! guest RAM itself, so nothing here touches the virtqueues: the same backend can be
//! measured through virtio-msg and through QEMU's vhost-user-*-pci.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use vhost::vhost_user::message::VhostUserConfigFlags;
use vhost::vhost_user::{
    Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::{DeviceError, GuestMemory, VirtioDevice, QUEUE_MAX_SIZE};
use crate::transport::ACCESS_PLATFORM;

/// What kind of device the backend implements: its virtio id and config space size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Virtio device id.
    pub device_id: u32,
    /// Bytes of config space fetched from the backend with GET_CONFIG.
    pub config_size: u32,
}

impl Kind {
    /// The device kinds the `type=` option knows.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            // Config space up to and including the write-zeroes fields, as devices/blk.rs;
            // qemu-storage-daemon refuses GET_CONFIG larger than its own struct.
            "blk" => Some(Self {
                device_id: 2,
                config_size: 60,
            }),
            _ => None,
        }
    }
}

/// Feature bits a backend may offer that the bridge does not pass on: VHOST_F_LOG_ALL
/// (26), VIRTIO_F_RING_PACKED (34), VIRTIO_F_NOTIFICATION_DATA (38),
/// VIRTIO_F_RING_RESET (40).
const NOT_BRIDGED: u64 = 1 << 26 | 1 << 34 | 1 << 38 | 1 << 40;

/// The negotiated features as the backend gets them. Window mode adds
/// VIRTIO_F_ACCESS_PLATFORM for the driver's sake; a backend that did not offer it (and
/// may refuse SET_FEATURES with a bit it did not offer) does not get it, and sees the
/// window as plain guest memory through the memory table.
fn for_backend(negotiated: u64, backend_features: u64) -> u64 {
    negotiated & (backend_features | !ACCESS_PLATFORM)
}

/// Eventfds of one queue, created when the queue is started.
struct Vring {
    kick: EventFd,
}

/// The vhost-user frontend of one device.
pub struct VhostUser {
    frontend: Frontend,
    socket: PathBuf,
    kind: Kind,
    queues: usize,
    /// Features the backend offers (GET_FEATURES), VHOST_USER_F_PROTOCOL_FEATURES included.
    backend_features: u64,
    config: Vec<u8>,
    /// One call eventfd shared by every queue: a signal means "some queue has used
    /// buffers", answered with EVENT_USED for each started queue (a spurious one is
    /// harmless, the driver finds nothing new).
    call: EventFd,
    /// The same eventfd as a `File`, which the event loop can poll.
    call_file: File,
    vrings: Vec<Option<Vring>>,
}

/// A duplicate of `ev` as a `File`: vmm-sys-util's EventFd (what the vhost crate takes)
/// has no `AsFd`, and this crate has no unsafe code, so the fd makes a trip through a
/// socket pair (SCM_RIGHTS), which hands back an owned duplicate.
fn as_file(ev: &EventFd) -> std::io::Result<File> {
    let (a, b) = UnixStream::pair()?;
    a.send_with_fd(&[0u8][..], ev.as_raw_fd())
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
    let mut byte = [0u8; 1];
    match b.recv_with_fd(&mut byte) {
        Ok((_, Some(f))) => Ok(f),
        Ok((_, None)) => Err(std::io::Error::other("no fd received")),
        Err(e) => Err(std::io::Error::from_raw_os_error(e.errno())),
    }
}

fn vu_err(socket: &Path, what: &str, e: vhost::Error) -> DeviceError {
    DeviceError::Io(format!("vhost-user {}: {what}: {e}", socket.display()))
}

impl VhostUser {
    /// Connects to the backend at `socket` and does the part of the handshake that does
    /// not depend on the driver: owner, features, protocol features, config space.
    pub fn connect(socket: &Path, kind: Kind, queues: u16) -> Result<Self, DeviceError> {
        let err = |what: &'static str| move |e| vu_err(socket, what, e);
        let queues = usize::from(queues.max(1));
        let mut frontend = Frontend::connect(socket, queues as u64).map_err(|e| {
            DeviceError::Config(format!("vhost-user {}: connect: {e}", socket.display()))
        })?;
        frontend.set_owner().map_err(err("SET_OWNER"))?;
        let backend_features = frontend.get_features().map_err(err("GET_FEATURES"))?;
        let proto_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        if backend_features & proto_bit == 0 {
            return Err(DeviceError::Config(format!(
                "vhost-user {}: the backend lacks VHOST_USER_F_PROTOCOL_FEATURES (needed for GET_CONFIG)",
                socket.display()
            )));
        }
        let offered = frontend
            .get_protocol_features()
            .map_err(err("GET_PROTOCOL_FEATURES"))?;
        if !offered.contains(VhostUserProtocolFeatures::CONFIG) {
            return Err(DeviceError::Config(format!(
                "vhost-user {}: the backend does not offer the CONFIG protocol feature",
                socket.display()
            )));
        }
        let wanted = offered & (VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ);
        frontend
            .set_protocol_features(wanted)
            .map_err(err("SET_PROTOCOL_FEATURES"))?;
        if wanted.contains(VhostUserProtocolFeatures::MQ) {
            let max = frontend.get_queue_num().map_err(err("GET_QUEUE_NUM"))?;
            if (queues as u64) > max {
                return Err(DeviceError::Config(format!(
                    "vhost-user {}: {queues} queue(s) asked, the backend has {max}",
                    socket.display()
                )));
            }
        }
        let call = EventFd::new(EFD_NONBLOCK)
            .map_err(|e| DeviceError::Io(format!("vhost-user: eventfd: {e}")))?;
        let call_file =
            as_file(&call).map_err(|e| DeviceError::Io(format!("vhost-user: eventfd: {e}")))?;
        let mut dev = Self {
            frontend,
            socket: socket.to_path_buf(),
            kind,
            queues,
            backend_features,
            config: Vec::new(),
            call,
            call_file,
            vrings: (0..queues).map(|_| None).collect(),
        };
        dev.refresh_config()?;
        log::info!(
            "vhost-user {}: device id {}, backend features {backend_features:#x}, protocol features {:#x}",
            socket.display(),
            kind.device_id,
            wanted.bits()
        );
        Ok(dev)
    }

    fn err(&self, what: &str) -> impl Fn(vhost::Error) -> DeviceError + '_ {
        let what = what.to_owned();
        move |e| vu_err(&self.socket, &what, e)
    }

    fn refresh_config(&mut self) -> Result<(), DeviceError> {
        let size = self.kind.config_size;
        let buf = vec![0u8; size as usize];
        let (_, data) = self
            .frontend
            .get_config(0, size, VhostUserConfigFlags::empty(), &buf)
            .map_err(|e| vu_err(&self.socket, "GET_CONFIG", e))?;
        self.config = data;
        Ok(())
    }

    /// Frontend (this process's) virtual address of guest physical `addr`, checked to
    /// be followed by `len` mapped bytes.
    fn host_addr(mem: &GuestMemory, addr: u64, len: usize) -> Option<u64> {
        let ga = GuestAddress(addr);
        mem.checked_offset(ga, len.saturating_sub(1))?;
        mem.get_host_address(ga).ok().map(|p| p as u64)
    }

    /// Tells the backend about guest RAM, then sets up and enables every ready queue.
    fn start_rings(
        &mut self,
        features: u64,
        queues: &[Queue],
        mem: &GuestMemory,
    ) -> Result<(), DeviceError> {
        let proto_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        self.frontend
            .set_features(for_backend(features, self.backend_features) | proto_bit)
            .map_err(self.err("SET_FEATURES"))?;
        let regions = mem
            .iter()
            .map(VhostUserMemoryRegionInfo::from_guest_region)
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("guest memory region"))?;
        self.frontend
            .set_mem_table(&regions)
            .map_err(self.err("SET_MEM_TABLE"))?;
        for (i, q) in queues.iter().enumerate().take(self.queues) {
            if !q.ready() {
                continue;
            }
            let size = q.size();
            let n = usize::from(size);
            // Split ring sizes: 16 bytes a descriptor; flags, idx, ring, event (u16s);
            // flags, idx, event (u16s) and 8-byte used elements.
            let (desc, avail, used) = (
                Self::host_addr(mem, q.desc_table(), 16 * n),
                Self::host_addr(mem, q.avail_ring(), 6 + 2 * n),
                Self::host_addr(mem, q.used_ring(), 6 + 8 * n),
            );
            let (Some(desc), Some(avail), Some(used)) = (desc, avail, used) else {
                return Err(DeviceError::Queue(format!(
                    "vhost-user: queue {i} is not inside guest memory"
                )));
            };
            let kick = EventFd::new(EFD_NONBLOCK)
                .map_err(|e| DeviceError::Io(format!("vhost-user: eventfd: {e}")))?;
            let ring = VringConfigData {
                queue_max_size: QUEUE_MAX_SIZE,
                queue_size: size,
                flags: 0,
                desc_table_addr: desc,
                used_ring_addr: used,
                avail_ring_addr: avail,
                log_addr: None,
            };
            self.frontend
                .set_vring_num(i, size)
                .map_err(self.err("SET_VRING_NUM"))?;
            self.frontend
                .set_vring_base(i, 0)
                .map_err(self.err("SET_VRING_BASE"))?;
            self.frontend
                .set_vring_addr(i, &ring)
                .map_err(self.err("SET_VRING_ADDR"))?;
            self.frontend
                .set_vring_kick(i, &kick)
                .map_err(self.err("SET_VRING_KICK"))?;
            self.frontend
                .set_vring_call(i, &self.call)
                .map_err(self.err("SET_VRING_CALL"))?;
            self.frontend
                .set_vring_enable(i, true)
                .map_err(self.err("SET_VRING_ENABLE"))?;
            self.vrings[i] = Some(Vring { kick });
            log::debug!("vhost-user: queue {i} started, size {size}");
        }
        Ok(())
    }

    /// Stops every started queue; GET_VRING_BASE is what makes the backend let go of it.
    fn stop(&mut self) {
        for i in 0..self.vrings.len() {
            if self.vrings[i].take().is_none() {
                continue;
            }
            if let Err(e) = self.frontend.set_vring_enable(i, false) {
                log::warn!("{}", vu_err(&self.socket, "SET_VRING_ENABLE 0", e));
            }
            match self.frontend.get_vring_base(i) {
                Ok(base) => log::debug!("vhost-user: queue {i} stopped at {base}"),
                Err(e) => log::warn!("{}", vu_err(&self.socket, "GET_VRING_BASE", e)),
            }
        }
    }
}

impl VirtioDevice for VhostUser {
    fn name(&self) -> &'static str {
        "vhost-user"
    }

    fn device_id(&self) -> u32 {
        self.kind.device_id
    }

    fn device_features(&self) -> u64 {
        self.backend_features & !VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn feature_mask(&self) -> u64 {
        // The transport's common bits only where the backend implements them too (it
        // runs the rings), and none that this bridge cannot pass on: per-queue reset
        // (RESET_VQUEUE), packed rings (the transport sets up split ones), notification
        // data (a kick eventfd carries none), vhost's dirty logging.
        self.device_features() & !NOT_BRIDGED
    }

    fn config(&self) -> Vec<u8> {
        self.config.clone()
    }

    fn num_queues(&self) -> usize {
        self.queues
    }

    fn external_queues(&self) -> bool {
        true
    }

    fn start(
        &mut self,
        features: u64,
        queues: &[Queue],
        mem: Option<&GuestMemory>,
    ) -> Result<(), DeviceError> {
        let Some(mem) = mem else {
            return Err(DeviceError::Io(
                "vhost-user: guest memory is not mapped (--guest-memory)".into(),
            ));
        };
        // A driver that re-reads the config after DRIVER_OK sees the backend's current one.
        self.refresh_config()?;
        self.start_rings(features, queues, mem)
    }

    fn reset(&mut self) {
        self.stop();
    }

    fn process_queue(
        &mut self,
        index: usize,
        _queues: &mut [Queue],
        _mem: &GuestMemory,
    ) -> Result<Vec<usize>, DeviceError> {
        match self.vrings.get(index) {
            Some(Some(v)) => v
                .kick
                .write(1)
                .map_err(|e| DeviceError::Io(format!("vhost-user: kick of queue {index}: {e}")))?,
            _ => crate::limited!(
                Warn,
                "vhost-user: EVENT_AVAIL for queue {index}, which is not started"
            ),
        }
        Ok(Vec::new())
    }

    fn inject(
        &mut self,
        _data: &[u8],
        _queues: &mut [Queue],
        _mem: Option<&GuestMemory>,
    ) -> Result<Vec<usize>, DeviceError> {
        // Reached through read_input when the call eventfd fired.
        Ok(self
            .vrings
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|_| i))
            .collect())
    }

    fn input_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.call_file.as_fd())
    }

    fn read_input(&mut self) -> Option<Vec<u8>> {
        // The counter's value does not matter; an empty read (EAGAIN) is a spurious wakeup.
        let mut count = [0u8; 8];
        match (&self.call_file).read(&mut count) {
            Ok(8) => Some(count.to_vec()),
            _ => Some(Vec::new()),
        }
    }
}

impl Drop for VhostUser {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Ctx, TransportDevice};
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    use virtio_msg_codec::transport::{TransportMessage, VqueueSetup, VQUEUE_SET_ENABLE};
    use vm_memory::{Bytes, FileOffset, GuestMemoryRegion};
    use zerocopy::little_endian::U32;

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const QSIZE: u16 = 16;
    const NEXT: u16 = 1;
    const WRITE: u16 = 2;

    /// qemu-storage-daemon with a vhost-user-blk export of `disk` on `sock`; killed on drop.
    struct Qsd(Child);

    impl Drop for Qsd {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A 1 MiB disk image in `dir` whose sector 2 is 0xb2 bytes, served by
    /// qemu-storage-daemon: the image, the vhost-user socket and the daemon.
    fn serve_test_disk(dir: &Path) -> Option<(PathBuf, PathBuf, Qsd)> {
        let disk = dir.join("disk.img");
        let mut image = vec![0u8; 1 << 20];
        image[1024..1536].fill(0xb2);
        std::fs::write(&disk, &image).unwrap();
        let sock = dir.join("vu.sock");
        let qsd = start_qsd(&disk, &sock)?;
        Some((disk, sock, qsd))
    }

    fn start_qsd(disk: &Path, sock: &Path) -> Option<Qsd> {
        let child = Command::new("qemu-storage-daemon")
            .arg("--blockdev")
            .arg(format!(
                "driver=file,node-name=f0,filename={},locking=off",
                disk.display()
            ))
            .arg("--export")
            .arg(format!(
                "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path={},writable=on,num-queues=1",
                sock.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut qsd = match child {
            Ok(c) => Qsd(c),
            Err(e) => {
                eprintln!("SKIPPED: qemu-storage-daemon cannot be started ({e})");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                qsd.0.try_wait().unwrap().is_none(),
                "qemu-storage-daemon exited"
            );
            assert!(Instant::now() < deadline, "no vhost-user socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(qsd)
    }

    /// Where the test's memory starts: the queue and request offsets are relative to it.
    fn base(mem: &GuestMemory) -> u64 {
        mem.iter().next().unwrap().start_addr().0
    }

    fn desc(mem: &GuestMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = base(mem) + DESC + 16 * u64::from(i);
        mem.write_obj(addr, GuestAddress(at)).unwrap();
        mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Puts a three-descriptor virtio-blk request at descriptors `first..first + 3` in
    /// avail slot `slot`, its data at `data` (absolute), and returns the status byte's
    /// address.
    fn request(mem: &GuestMemory, first: u16, slot: u16, kind: u32, sector: u64, data: u64) -> u64 {
        let hdr = base(mem) + 0x4000 + 0x100 * u64::from(slot);
        let status = base(mem) + 0x6000 + 0x100 * u64::from(slot);
        mem.write_obj(kind, GuestAddress(hdr)).unwrap();
        mem.write_obj(0u32, GuestAddress(hdr + 4)).unwrap();
        mem.write_obj(sector, GuestAddress(hdr + 8)).unwrap();
        mem.write_obj(0xffu8, GuestAddress(status)).unwrap();
        let data_flags = if kind == 0 { WRITE | NEXT } else { NEXT };
        desc(mem, first, hdr, 16, NEXT, first + 1);
        desc(mem, first + 1, data, 512, data_flags, first + 2);
        desc(mem, first + 2, status, 1, WRITE, 0);
        let avail = base(mem) + AVAIL;
        mem.write_obj(first, GuestAddress(avail + 4 + 2 * u64::from(slot)))
            .unwrap();
        mem.write_obj(slot + 1, GuestAddress(avail + 2)).unwrap();
        status
    }

    fn run(dev: &mut TransportDevice, msg: TransportMessage<'_>, ctx: &Ctx<'_>) -> Vec<String> {
        let mut out = Vec::new();
        dev.handle(&msg, ctx, |m| out.push(format!("{m:?}")));
        out
    }

    fn set_status(dev: &mut TransportDevice, ctx: &Ctx<'_>, status: u32) {
        let out = run(
            dev,
            TransportMessage::SetDeviceStatusRequest { status },
            ctx,
        );
        assert_eq!(
            out,
            vec![format!("SetDeviceStatusResponse {{ status: {status} }}")]
        );
    }

    /// What a driver does up to DRIVER_OK: VERSION_1 only (and ACCESS_PLATFORM where the
    /// device offers it), queue 0 at DESC/AVAIL/USED.
    fn start_driver(dev: &mut TransportDevice, ctx: &Ctx<'_>) {
        let platform = dev.offered_features() & ACCESS_PLATFORM;
        let features = 1 << 32 | platform;
        let blocks = [U32::new(features as u32), U32::new((features >> 32) as u32)];
        run(
            dev,
            TransportMessage::SetDriverFeaturesRequest {
                block_index: 0,
                features: &blocks,
            },
            ctx,
        );
        let b = ctx.mem.map_or(0, base);
        let setup = VqueueSetup {
            index: 0,
            flags: VQUEUE_SET_ENABLE,
            size: u32::from(QSIZE),
            desc_addr: b + DESC,
            driver_addr: b + AVAIL,
            device_addr: b + USED,
        };
        run(dev, TransportMessage::SetVqueueRequest(setup), ctx);
        set_status(dev, ctx, 15);
    }

    /// Kicks the queue and waits for the backend's call, which must become EVENT_USED.
    fn kick_and_wait(dev: &mut TransportDevice, ctx: &Ctx<'_>, mem: &GuestMemory, used: u16) {
        let avail = TransportMessage::EventAvail {
            vq_index: 0,
            next_offset: 0,
        };
        assert!(run(dev, avail, ctx).is_empty());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let fd = dev.input_fd().unwrap();
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            assert_eq!(
                poll(&mut fds, PollTimeout::from(10_000u16)).unwrap(),
                1,
                "no call from the backend"
            );
            let mut out = Vec::new();
            assert!(dev.poll_input(ctx, |m| out.push(format!("{m:?}"))));
            assert_eq!(out, vec!["EventUsed { vq_index: 0 }".to_string()]);
            if mem
                .read_obj::<u16>(GuestAddress(base(mem) + USED + 2))
                .unwrap()
                == used
            {
                return;
            }
            assert!(Instant::now() < deadline, "used index stays below {used}");
        }
    }

    #[test]
    fn qemu_storage_daemon_serves_a_write_and_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let Some((disk, sock, _qsd)) = serve_test_disk(dir.path()) else {
            return;
        };

        let ram = tempfile::tempfile_in(dir.path()).unwrap();
        ram.set_len(1 << 20).unwrap();
        let mem = GuestMemory::from_ranges_with_files([(
            GuestAddress(0),
            1 << 20,
            Some(FileOffset::new(ram, 0)),
        )])
        .unwrap();
        let ctx = Ctx {
            mem: Some(&mem),
            max_msg_size: 264,
            strict_generation: false,
        };

        let kind = Kind::by_name("blk").unwrap();
        let vu = VhostUser::connect(&sock, kind, 1).unwrap();
        let mut dev = TransportDevice::new(Box::new(vu)).unwrap();
        assert_eq!(dev.info().device_id, 2);
        // Offered: the backend's bits, so VERSION_1 but no RING_RESET (qsd lacks it).
        let offered = dev.offered_features();
        assert_ne!(offered & (1 << 32), 0);
        assert_eq!(offered & (1 << 40), 0);
        assert_eq!(
            offered & (1 << 30),
            0,
            "the vhost-user protocol bit is not virtio's"
        );
        assert_eq!(offered & NOT_BRIDGED, 0);
        // EVENT_IDX and INDIRECT_DESC: common bits qemu-storage-daemon has too.
        assert_eq!(offered & (1 << 29 | 1 << 28), 1 << 29 | 1 << 28);
        let mut capacity = Vec::new();
        dev.handle(
            &TransportMessage::GetConfigRequest {
                offset: 0,
                length: 8,
            },
            &ctx,
            |m| {
                if let TransportMessage::GetConfigResponse { data, .. } = m {
                    capacity.extend_from_slice(data);
                }
            },
        );
        assert_eq!(capacity, ((1u64 << 20) / 512).to_le_bytes());

        start_driver(&mut dev, &ctx);

        // Write sector 1 from guest RAM.
        mem.write_slice(&[0xa1; 512], GuestAddress(0x8000)).unwrap();
        let status = request(&mem, 0, 0, 1, 1, 0x8000);
        kick_and_wait(&mut dev, &ctx, &mem, 1);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(status)).unwrap(), 0);
        let file = std::fs::read(&disk).unwrap();
        assert!(
            file[512..1024].iter().all(|b| *b == 0xa1),
            "write not in the file"
        );

        // Read sector 2, which the file had before, into guest RAM.
        let status = request(&mem, 3, 1, 0, 2, 0x9000);
        kick_and_wait(&mut dev, &ctx, &mem, 2);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(status)).unwrap(), 0);
        let mut got = [0u8; 512];
        mem.read_slice(&mut got, GuestAddress(0x9000)).unwrap();
        assert!(
            got.iter().all(|b| *b == 0xb2),
            "read did not bring the file's data"
        );

        // Reset stops the ring (GET_VRING_BASE); a new DRIVER_OK starts it again.
        set_status(&mut dev, &ctx, 0);
        for off in [AVAIL, USED] {
            mem.write_slice(&[0u8; 0x100], GuestAddress(off)).unwrap();
        }
        start_driver(&mut dev, &ctx);
        let status = request(&mem, 0, 0, 0, 1, 0xa000);
        kick_and_wait(&mut dev, &ctx, &mem, 1);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(status)).unwrap(), 0);
        mem.read_slice(&mut got, GuestAddress(0xa000)).unwrap();
        assert!(got.iter().all(|b| *b == 0xa1), "read after reset");
    }

    #[test]
    fn qemu_storage_daemon_serves_the_window_in_window_mode() {
        let dir = tempfile::tempdir().unwrap();
        let Some((disk, sock, _qsd)) = serve_test_disk(dir.path()) else {
            return;
        };

        // As in window mode: the window, at offset 64 KiB of the region's file, is the
        // only memory, at bus address 1 << 48.
        let region = tempfile::tempfile_in(dir.path()).unwrap();
        region.set_len(192 * 1024).unwrap();
        let window = 1u64 << 48;
        let mem = GuestMemory::from_ranges_with_files([(
            GuestAddress(window),
            128 * 1024,
            Some(FileOffset::new(region, 64 * 1024)),
        )])
        .unwrap();
        let ctx = Ctx {
            mem: Some(&mem),
            max_msg_size: 264,
            strict_generation: false,
        };
        let kind = Kind::by_name("blk").unwrap();
        let vu = VhostUser::connect(&sock, kind, 1).unwrap();
        let mut dev = TransportDevice::new(Box::new(vu)).unwrap();
        dev.set_access_platform(true);
        assert_ne!(dev.offered_features() & ACCESS_PLATFORM, 0);
        // The driver accepts ACCESS_PLATFORM; the backend, which did not offer it, does
        // not get it (it would refuse SET_FEATURES or wait for IOTLB messages).
        start_driver(&mut dev, &ctx);
        assert_ne!(dev.negotiated_features() & ACCESS_PLATFORM, 0);
        assert_eq!(dev.status(), 15);

        mem.write_slice(&[0xa1; 512], GuestAddress(window + 0x8000))
            .unwrap();
        let status = request(&mem, 0, 0, 1, 1, window + 0x8000);
        kick_and_wait(&mut dev, &ctx, &mem, 1);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(status)).unwrap(), 0);
        let file = std::fs::read(&disk).unwrap();
        assert!(
            file[512..1024].iter().all(|b| *b == 0xa1),
            "write not in the file"
        );
        let status = request(&mem, 3, 1, 0, 2, window + 0x9000);
        kick_and_wait(&mut dev, &ctx, &mem, 2);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(status)).unwrap(), 0);
        let mut got = [0u8; 512];
        mem.read_slice(&mut got, GuestAddress(window + 0x9000))
            .unwrap();
        assert!(got.iter().all(|b| *b == 0xb2), "read into the window");
    }

    #[test]
    fn access_platform_reaches_only_a_backend_that_offered_it() {
        let version_1 = 1 << 32;
        let negotiated = version_1 | ACCESS_PLATFORM | 1 << 29;
        assert_eq!(
            for_backend(negotiated, version_1 | 1 << 29),
            version_1 | 1 << 29
        );
        assert_eq!(
            for_backend(negotiated, version_1 | ACCESS_PLATFORM | 1 << 29),
            negotiated
        );
        assert_eq!(for_backend(version_1, version_1), version_1);
    }

    #[test]
    fn connect_to_a_missing_socket_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let kind = Kind::by_name("blk").unwrap();
        match VhostUser::connect(&dir.path().join("none"), kind, 1) {
            Err(DeviceError::Config(m)) => assert!(m.contains("connect"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("connected to nothing"),
        }
    }
}
