// SPDX-License-Identifier: GPL-2.0

//! `vmsg-device ivshmem-server`: the long-lived half of split mode
//! (`Documentation/shm-bus.rst`, "Restarting the device side").
//!
//! QEMU's ivshmem-doorbell takes the shared-memory fd once per connection and cannot take
//! a new one, so the process that owns the region and QEMU's connection must outlive the
//! device logic. This server owns the region (a memfd), the device peer's eventfds (which
//! QEMU rings) and QEMU's connection. The device logic (`vmsg-device --connect`) joins as
//! an ivshmem peer with the fixed device peer id and receives the same region and
//! eventfds each time it (re)connects. QEMU never learns that the device logic left or
//! came back: the eventfds it rings belong to this process and stay valid. (QEMU 7.2 also
//! could not take a peer id back: its close_peer_eventfds() frees the peer's eventfd array
//! without forgetting it, so re-adding that id would write to freed memory.)
//!
//! Driver sides are accepted only while the region carries a ready header: the device
//! logic initialises it, so QEMU started early waits in its connect instead of mapping a
//! blank region. When the driver side disconnects, the server clears `magic` and
//! `device_state` before telling the device logic, so that the next driver side waits for
//! the device logic to initialise the region again.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use vm_memory::{Bytes, FileOffset, MmapRegion, VolatileMemory};

use crate::ivshmem::{bind_listener, send_message, IvshmemServer, PeerEvent, PROTOCOL_VERSION};
use crate::region::{hdr, DeviceState, MAGIC};

/// How often readiness of the region is rechecked while a driver side waits.
const TICK: Duration = Duration::from_millis(50);

/// What the server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmServerConfig {
    /// Socket QEMU's chardev connects to.
    pub socket: PathBuf,
    /// Socket the device logic connects to.
    pub device_socket: PathBuf,
    /// Region size (a power of two).
    pub shm_size: usize,
    /// Vectors per peer.
    pub vectors: u32,
    /// Peer id of the device side (the id the region header names).
    pub device_peer_id: u16,
}

/// The long-lived ivshmem server of split mode.
pub struct ShmServer {
    /// QEMU's side: this program's own peer is the device peer.
    qemu: IvshmemServer,
    device_listener: UnixListener,
    device_socket: PathBuf,
    device: Option<UnixStream>,
    mem: MmapRegion<()>,
    shm: File,
    signals: UnixStream,
    stop: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    QemuListener,
    Qemu(u16),
    DeviceListener,
    Device,
    Signal,
}

impl ShmServer {
    /// Creates the region and the eventfds and binds both sockets.
    pub fn new(config: &ShmServerConfig) -> Result<Self, String> {
        let size = u64::try_from(config.shm_size).map_err(|_| "shm size too large".to_string())?;
        let fd = nix::sys::memfd::memfd_create(c"vmsg-shm", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| format!("memfd_create: {e}"))?;
        let shm = File::from(fd);
        shm.set_len(size)
            .map_err(|e| format!("sizing the shared memory: {e}"))?;
        let map_file = shm.try_clone().map_err(|e| format!("dup: {e}"))?;
        let mem = MmapRegion::from_file(FileOffset::new(map_file, 0), config.shm_size)
            .map_err(|e| format!("mapping the shared memory: {e}"))?;
        let qemu_shm = shm.try_clone().map_err(|e| format!("dup: {e}"))?;
        let qemu = IvshmemServer::bind(
            &config.socket,
            qemu_shm,
            config.vectors,
            config.device_peer_id,
            1,
        )
        .map_err(|e| e.to_string())?;
        let device_listener = bind_listener(&config.device_socket).map_err(|e| e.to_string())?;
        device_listener
            .set_nonblocking(true)
            .map_err(|e| format!("device socket: {e}"))?;
        let signals = crate::server::signal_pipe()?;
        log::info!(
            "ivshmem server: QEMU on {}, device logic on {} (shm {} bytes, device peer id {}, {} vector(s))",
            config.socket.display(),
            config.device_socket.display(),
            config.shm_size,
            config.device_peer_id,
            config.vectors
        );
        Ok(Self {
            qemu,
            device_listener,
            device_socket: config.device_socket.clone(),
            device: None,
            mem,
            shm,
            signals,
            stop: false,
        })
    }

    fn load(&self, offset: usize) -> u32 {
        self.mem
            .as_volatile_slice()
            .load(offset, Ordering::Acquire)
            .unwrap_or(0)
    }

    fn store(&self, offset: usize, value: u32) {
        if let Err(e) = self
            .mem
            .as_volatile_slice()
            .store(value, offset, Ordering::SeqCst)
        {
            log::error!("region store at {offset:#x}: {e}");
        }
    }

    /// Whether the device logic has initialised the region for a driver side.
    pub fn region_ready(&self) -> bool {
        self.load(hdr::MAGIC) == MAGIC && self.load(hdr::DEVICE_STATE) == DeviceState::Ready as u32
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<(), String> {
        while !self.stop {
            for source in self.wait()? {
                self.dispatch(source);
            }
        }
        log::info!("ivshmem server: stopping");
        Ok(())
    }

    fn wait(&self) -> Result<Vec<Source>, String> {
        let mut sources: Vec<(Source, BorrowedFd<'_>)> = vec![
            (Source::DeviceListener, self.device_listener.as_fd()),
            (Source::Signal, self.signals.as_fd()),
        ];
        // A driver side waits in the listen queue until the region is ready.
        if !self.qemu.has_client() && self.region_ready() {
            sources.push((Source::QemuListener, self.qemu.listener()));
        }
        for peer in self.qemu.peers() {
            sources.push((Source::Qemu(peer.id), peer.stream().as_fd()));
        }
        if let Some(d) = &self.device {
            sources.push((Source::Device, d.as_fd()));
        }
        let mut fds: Vec<PollFd<'_>> = sources
            .iter()
            .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(TICK.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(format!("poll: {e}")),
        }
        Ok(fds
            .iter()
            .zip(&sources)
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, (s, _))| *s)
            .collect())
    }

    fn dispatch(&mut self, source: Source) {
        match source {
            Source::Signal => {
                let mut buf = [0u8; 16];
                // Any byte means SIGTERM or SIGINT arrived.
                let _ = self.signals.read(&mut buf);
                self.stop = true;
            }
            Source::QemuListener => match self.qemu.accept() {
                Ok(Some(id)) => self.announce_client(id),
                Ok(None) => {}
                Err(e) => log::error!("{e}"),
            },
            Source::Qemu(id) => {
                if let PeerEvent::Left(id) = self.qemu.handle_readable(id) {
                    // The next driver side must wait for a freshly initialised region.
                    self.store(hdr::DEVICE_STATE, DeviceState::NotReady as u32);
                    self.store(hdr::MAGIC, 0);
                    if let Some(d) = &self.device {
                        if let Err(e) = send_message(d, i64::from(id), None) {
                            log::warn!("telling the device logic that peer {id} left: {e}");
                        }
                    }
                }
            }
            Source::DeviceListener => self.accept_device(),
            Source::Device => self.device_readable(),
        }
    }

    /// Tells the device logic about driver side `id`'s eventfds.
    fn announce_client(&self, id: u16) {
        let Some(d) = &self.device else {
            return;
        };
        for fd in self.qemu.peer_eventfds(id) {
            if let Err(e) = send_message(d, i64::from(id), Some(fd)) {
                log::warn!("telling the device logic about peer {id}: {e}");
            }
        }
    }

    fn accept_device(&mut self) {
        let stream = match self.device_listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                log::error!("accepting on {}: {e}", self.device_socket.display());
                return;
            }
        };
        if self.device.is_some() {
            // A successor may connect before its killed predecessor's hang-up was handled.
            self.device_readable();
        }
        if self.device.is_some() {
            // Two device sides on one ring would corrupt it.
            log::warn!("refusing a device logic connection: one is connected");
            return;
        }
        if let Err(e) = self.send_device_setup(&stream) {
            log::warn!("device logic failed during setup: {e}");
            return;
        }
        if let Err(e) = stream.set_nonblocking(true) {
            log::warn!("device logic socket: {e}");
            return;
        }
        log::info!("device logic connected");
        self.device = Some(stream);
    }

    fn send_device_setup(&self, s: &UnixStream) -> std::io::Result<()> {
        let own = i64::from(self.qemu.own_id());
        send_message(s, PROTOCOL_VERSION, None)?;
        send_message(s, own, None)?;
        send_message(s, -1, Some(self.shm.as_fd()))?;
        for peer in self.qemu.peers() {
            for fd in self.qemu.peer_eventfds(peer.id) {
                send_message(s, i64::from(peer.id), Some(fd))?;
            }
        }
        for fd in self.qemu.own_eventfds() {
            send_message(s, own, Some(fd))?;
        }
        Ok(())
    }

    fn device_readable(&mut self) {
        let Some(d) = &mut self.device else {
            return;
        };
        let mut buf = [0u8; 64];
        loop {
            match d.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("device logic connection: {e}");
                    break;
                }
            }
        }
        // The region, QEMU's connection and the eventfds stay: a restarted device logic
        // resumes where this one stopped.
        log::warn!("device logic disconnected; keeping the region for its successor");
        self.device = None;
    }
}

impl Drop for ShmServer {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.device_socket) {
            log::debug!("removing {}: {e}", self.device_socket.display());
        }
    }
}
