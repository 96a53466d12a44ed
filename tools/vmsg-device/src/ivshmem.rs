// SPDX-License-Identifier: GPL-2.0

//! The server end of QEMU's ivshmem UNIX-socket protocol.
//!
//! Each message is a little-endian `int64`, alone in one `sendmsg`, optionally with one
//! file descriptor by `SCM_RIGHTS`. On connection a client receives: protocol version 0;
//! its peer id; `-1` with the shared-memory fd; for every other peer (this program
//! included), that peer's id once per vector with one eventfd each; then its own id once
//! per vector with the eventfds its interrupts arrive on. Existing peers learn the new
//! peer's eventfds the same way, and a peer that leaves is announced by its id without an
//! fd. This program is itself a peer: it keeps its own eventfds (which clients ring) and
//! rings a client's eventfds to interrupt it.

use std::fs::File;
use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

/// The protocol version QEMU's `ivshmem-doorbell` expects first.
pub const PROTOCOL_VERSION: i64 = 0;

/// Why the server could not start or serve a client.
#[derive(Debug)]
pub enum IvshmemError {
    /// Another process is listening on the socket path.
    InUse(PathBuf),
    /// The path exists and is not a socket; it is left alone.
    NotASocket(PathBuf),
    /// A system call failed.
    Io(String, io::Error),
}

impl std::fmt::Display for IvshmemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InUse(p) => write!(
                f,
                "socket {} is in use: another server is listening on it",
                p.display()
            ),
            Self::NotASocket(p) => write!(
                f,
                "{} exists and is not a socket; refusing to replace it",
                p.display()
            ),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for IvshmemError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> IvshmemError {
    let what = what.into();
    move |e| IvshmemError::Io(what, e)
}

fn new_eventfds(count: u32) -> io::Result<Vec<EventFd>> {
    (0..count)
        .map(|_| {
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(io::Error::from)
        })
        .collect()
}

/// Sends one protocol message: `value` as a little-endian i64, with `fd` attached.
pub fn send_message(stream: &UnixStream, value: i64, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let bytes = value.to_le_bytes();
    let iov = [IoSlice::new(&bytes)];
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(fd) => {
            fds = [fd.as_raw_fd()];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    let sent = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent == bytes.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short send: {sent} of 8 bytes"),
        ))
    }
}

/// Binds a non-blocking UNIX listener at `path`, replacing a stale socket that nobody
/// listens on and refusing a live one or a non-socket file.
pub fn bind_listener(path: &Path) -> Result<UnixListener, IvshmemError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(IvshmemError::NotASocket(path.to_path_buf()));
        }
        match UnixStream::connect(path) {
            Ok(_) => return Err(IvshmemError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                log::info!("removing stale socket {}", path.display());
                std::fs::remove_file(path)
                    .map_err(io_err(format!("removing stale socket {}", path.display())))?;
            }
            Err(e) => {
                return Err(IvshmemError::Io(
                    format!("probing existing socket {}", path.display()),
                    e,
                ))
            }
        }
    }
    UnixListener::bind(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            IvshmemError::InUse(path.to_path_buf())
        } else {
            IvshmemError::Io(format!("binding {}", path.display()), e)
        }
    })
}

/// A connected client.
pub struct Peer {
    /// Its peer id.
    pub id: u16,
    stream: UnixStream,
    eventfds: Vec<EventFd>,
}

impl Peer {
    /// The socket, for polling.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }
}

/// What happened on a client's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// Nothing of note (clients never send; stray bytes are discarded).
    Quiet,
    /// The client hung up and was removed.
    Left(u16),
}

/// The listening server plus this program's own peer.
pub struct IvshmemServer {
    listener: UnixListener,
    path: PathBuf,
    shm: File,
    vectors: u32,
    own_id: u16,
    own_eventfds: Vec<EventFd>,
    peers: Vec<Peer>,
    max_clients: usize,
}

impl IvshmemServer {
    /// Binds `path`, replacing a stale socket nobody listens on.
    ///
    /// `shm` is the region file every client maps; `vectors` is the number of interrupt
    /// vectors per peer (QEMU's `vectors=`); `own_id` is this program's peer id.
    pub fn bind(
        path: &Path,
        shm: File,
        vectors: u32,
        own_id: u16,
        max_clients: usize,
    ) -> Result<Self, IvshmemError> {
        let listener = bind_listener(path)?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("making the listener non-blocking"))?;
        let own_eventfds = new_eventfds(vectors).map_err(io_err("creating eventfds"))?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            shm,
            vectors,
            own_id,
            own_eventfds,
            peers: Vec::new(),
            max_clients,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This program's peer id.
    pub fn own_id(&self) -> u16 {
        self.own_id
    }

    /// The listening socket, for polling.
    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Eventfds that clients ring to interrupt this program, one per vector.
    pub fn own_eventfds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.own_eventfds.iter().map(|e| e.as_fd())
    }

    /// Connected clients.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// Eventfds of client `id` (empty if there is no such client).
    pub fn peer_eventfds(&self, id: u16) -> Vec<BorrowedFd<'_>> {
        self.peers
            .iter()
            .filter(|p| p.id == id)
            .flat_map(|p| p.eventfds.iter().map(|e| e.as_fd()))
            .collect()
    }

    /// Whether any client is connected.
    pub fn has_client(&self) -> bool {
        !self.peers.is_empty()
    }

    /// Reads and clears every own eventfd; returns whether any had been rung.
    pub fn drain_own(&self) -> bool {
        let mut rung = false;
        for e in &self.own_eventfds {
            // EAGAIN means this vector was not rung.
            if let Ok(n) = e.read() {
                rung |= n > 0;
            }
        }
        rung
    }

    fn free_id(&self) -> Option<u16> {
        (0..=u16::MAX).find(|id| *id != self.own_id && self.peers.iter().all(|p| p.id != *id))
    }

    /// Accepts one pending connection, if any, and sends it the whole setup.
    ///
    /// Returns the new client's id, or `None` if nothing was pending or the client was
    /// refused.
    pub fn accept(&mut self) -> Result<Option<u16>, IvshmemError> {
        let stream = match self.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(IvshmemError::Io("accept".into(), e)),
        };
        if self.peers.len() >= self.max_clients {
            log::warn!(
                "refusing a client: this bus already has {} driver side(s) connected",
                self.peers.len()
            );
            return Ok(None);
        }
        let Some(id) = self.free_id() else {
            log::warn!("refusing a client: no free peer id");
            return Ok(None);
        };
        let eventfds = new_eventfds(self.vectors).map_err(io_err("creating eventfds"))?;
        let peer = Peer {
            id,
            stream,
            eventfds,
        };
        if let Err(e) = self.send_setup(&peer) {
            log::warn!("client {id} failed during setup: {e}");
            return Ok(None);
        }
        // Tell the clients already here about the new one.
        for other in &self.peers {
            for e in &peer.eventfds {
                if let Err(err) = send_message(&other.stream, i64::from(id), Some(e.as_fd())) {
                    log::warn!("telling peer {} about peer {id}: {err}", other.id);
                }
            }
        }
        peer.stream
            .set_nonblocking(true)
            .map_err(io_err("making a client socket non-blocking"))?;
        log::info!("client connected as peer {id} ({} vector(s))", self.vectors);
        self.peers.push(peer);
        Ok(Some(id))
    }

    fn send_setup(&self, peer: &Peer) -> io::Result<()> {
        let s = &peer.stream;
        send_message(s, PROTOCOL_VERSION, None)?;
        send_message(s, i64::from(peer.id), None)?;
        send_message(s, -1, Some(self.shm.as_fd()))?;
        for e in &self.own_eventfds {
            send_message(s, i64::from(self.own_id), Some(e.as_fd()))?;
        }
        for other in &self.peers {
            for e in &other.eventfds {
                send_message(s, i64::from(other.id), Some(e.as_fd()))?;
            }
        }
        for e in &peer.eventfds {
            send_message(s, i64::from(peer.id), Some(e.as_fd()))?;
        }
        Ok(())
    }

    /// Handles readability of client `id`'s socket: a hang-up removes the client.
    pub fn handle_readable(&mut self, id: u16) -> PeerEvent {
        let Some(peer) = self.peers.iter_mut().find(|p| p.id == id) else {
            return PeerEvent::Quiet;
        };
        let mut buf = [0u8; 64];
        loop {
            match peer.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => log::debug!("peer {id} sent {n} unexpected byte(s); ignored"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return PeerEvent::Quiet,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("peer {id}: {e}");
                    break;
                }
            }
        }
        self.remove_peer(id);
        PeerEvent::Left(id)
    }

    /// Drops client `id` and announces its departure to the others.
    pub fn remove_peer(&mut self, id: u16) {
        self.peers.retain(|p| p.id != id);
        for other in &self.peers {
            if let Err(e) = send_message(&other.stream, i64::from(id), None) {
                log::warn!("telling peer {} that peer {id} left: {e}", other.id);
            }
        }
        log::info!("peer {id} disconnected");
    }

    /// Interrupts `vector` of client `id`.
    pub fn ring(&self, id: u16, vector: u32) -> bool {
        let Some(peer) = self.peers.iter().find(|p| p.id == id) else {
            return false;
        };
        let Some(e) = peer.eventfds.get(vector as usize) else {
            return false;
        };
        match e.write(1) {
            Ok(_) => true,
            Err(err) => {
                log::warn!("ringing peer {id} vector {vector}: {err}");
                false
            }
        }
    }
}

impl Drop for IvshmemServer {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::debug!("removing {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shm() -> File {
        File::from(
            nix::sys::memfd::memfd_create(c"t", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap(),
        )
    }

    #[test]
    fn refuses_a_path_that_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, b"keep me").unwrap();
        let err = IvshmemServer::bind(&path, shm(), 1, 0, 1).err().unwrap();
        assert!(matches!(err, IvshmemError::NotASocket(_)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[test]
    fn refuses_a_socket_in_use_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let first = IvshmemServer::bind(&path, shm(), 1, 0, 1).unwrap();
        let err = IvshmemServer::bind(&path, shm(), 1, 0, 1).err().unwrap();
        assert!(matches!(err, IvshmemError::InUse(_)), "{err}");
        assert!(err.to_string().contains("in use"));
        // A socket file left by a dead server is replaced.
        drop(first);
        let stale = UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let second = IvshmemServer::bind(&path, shm(), 1, 0, 1);
        assert!(second.is_ok());
    }

    #[test]
    fn free_ids_skip_own_id() {
        let dir = tempfile::tempdir().unwrap();
        let server = IvshmemServer::bind(&dir.path().join("s"), shm(), 1, 0, 4).unwrap();
        assert_eq!(server.free_id(), Some(1));
    }
}
