// SPDX-License-Identifier: GPL-2.0

//! The client end of the ivshmem protocol: how the device logic joins a long-lived
//! `vmsg-device ivshmem-server` (split mode, `Documentation/shm-bus.rst`, "Restarting the
//! device side") instead of being the server itself.
//!
//! The protocol is the one QEMU speaks (see [`crate::ivshmem`]): version 0, our peer id,
//! `-1` with the shared-memory fd, then `(peer id, eventfd)` messages, our own id last;
//! later a peer that joins is announced by its eventfds, one that leaves by its id
//! without an fd.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::ivshmem::PROTOCOL_VERSION;

/// How long joining may take before the server is considered unresponsive.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What changed on the server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    /// A peer now has all its vectors (it joined).
    Joined(u16),
    /// A peer left.
    Left(u16),
    /// The server closed the connection.
    ServerGone,
}

/// One received protocol message.
struct Received {
    value: i64,
    fd: Option<OwnedFd>,
}

/// A connection to an ivshmem server, as one of its peers.
pub struct IvshmemPeer {
    stream: UnixStream,
    own_id: u16,
    vectors: usize,
    shm: File,
    own: Vec<File>,
    peers: BTreeMap<u16, Vec<File>>,
    /// Bytes of a message received in part.
    partial: Vec<u8>,
    /// An fd that came with the partial message.
    partial_fd: Option<OwnedFd>,
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn peer_id(value: i64) -> io::Result<u16> {
    u16::try_from(value).map_err(|_| bad(format!("peer id {value} out of range")))
}

impl IvshmemPeer {
    /// Connects to the server at `path` and reads the setup until our own `vectors`
    /// eventfds have arrived.
    pub fn connect(path: &Path, vectors: u32) -> io::Result<Self> {
        // A server just started may have bound its socket and not be listening yet.
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                    ) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("connecting to {}: {e}", path.display()),
                    ))
                }
            }
        };
        stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
        let mut partial = Vec::new();
        let mut partial_fd = None;
        let mut next = || next_blocking(&stream, &mut partial, &mut partial_fd);
        let version = next()?;
        if version.value != PROTOCOL_VERSION || version.fd.is_some() {
            return Err(bad(format!(
                "server speaks protocol {}, not {PROTOCOL_VERSION}",
                version.value
            )));
        }
        let id = next()?;
        let own_id = peer_id(id.value)?;
        let shm = next()?;
        let shm = match (shm.value, shm.fd) {
            (-1, Some(fd)) => File::from(fd),
            (v, _) => {
                return Err(bad(format!(
                    "expected the shared memory (-1 with an fd), got {v}"
                )))
            }
        };
        let vectors = usize::try_from(vectors).map_err(|_| bad("vectors".into()))?;
        let mut peer = Self {
            stream: stream.try_clone()?,
            own_id,
            vectors,
            shm,
            own: Vec::new(),
            peers: BTreeMap::new(),
            partial: Vec::new(),
            partial_fd: None,
        };
        while peer.own.len() < vectors {
            let m = next()?;
            peer.apply(m)?;
        }
        peer.partial = partial;
        peer.partial_fd = partial_fd;
        stream.set_nonblocking(true)?;
        Ok(peer)
    }

    /// Our peer id (the device peer id the region header must carry).
    pub fn own_id(&self) -> u16 {
        self.own_id
    }

    /// The shared-memory file the server handed out.
    pub fn shm(&self) -> &File {
        &self.shm
    }

    /// The connection, for polling.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Eventfds that interrupt us, one per vector.
    pub fn own_eventfds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.own.iter().map(|f| f.as_fd())
    }

    /// Peers with all their vectors, in id order.
    pub fn peers(&self) -> Vec<u16> {
        self.peers
            .iter()
            .filter(|(_, v)| v.len() >= self.vectors)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Reads and clears every own eventfd; returns whether any had been rung.
    pub fn drain_own(&self) -> bool {
        let mut rung = false;
        for mut f in &self.own {
            let mut count = [0u8; 8];
            // WouldBlock means this vector was not rung.
            if let Ok(8) = f.read(&mut count) {
                rung |= u64::from_ne_bytes(count) > 0;
            }
        }
        rung
    }

    /// Interrupts `vector` of peer `id`.
    pub fn ring(&self, id: u16, vector: u32) -> bool {
        let Some(mut f) = self.peers.get(&id).and_then(|v| v.get(vector as usize)) else {
            return false;
        };
        match f.write_all(&1u64.to_ne_bytes()) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("ringing peer {id} vector {vector}: {e}");
                false
            }
        }
    }

    fn apply(&mut self, m: Received) -> io::Result<Option<PeerChange>> {
        let id = peer_id(m.value)?;
        match m.fd {
            Some(fd) if id == self.own_id => {
                if self.own.len() < self.vectors {
                    self.own.push(File::from(fd));
                }
                Ok(None)
            }
            Some(fd) => {
                let v = self.peers.entry(id).or_default();
                if v.len() >= self.vectors {
                    log::warn!(
                        "peer {id}: more eventfds than {} vector(s); ignored",
                        self.vectors
                    );
                    return Ok(None);
                }
                v.push(File::from(fd));
                Ok((v.len() == self.vectors).then_some(PeerChange::Joined(id)))
            }
            None => Ok(self.peers.remove(&id).map(|_| PeerChange::Left(id))),
        }
    }

    /// Handles readability of the connection: returns what changed.
    pub fn handle_readable(&mut self) -> Vec<PeerChange> {
        let mut changes = Vec::new();
        loop {
            match receive(&self.stream, &mut self.partial, &mut self.partial_fd) {
                Ok(Some(m)) => match self.apply(m) {
                    Ok(Some(c)) => changes.push(c),
                    Ok(None) => {}
                    Err(e) => log::warn!("ivshmem server: {e}"),
                },
                Ok(None) => break,
                Err(e) => {
                    if e.kind() != io::ErrorKind::UnexpectedEof {
                        log::error!("ivshmem server connection: {e}");
                    }
                    changes.push(PeerChange::ServerGone);
                    break;
                }
            }
        }
        changes
    }
}

/// Receives one whole message on a socket with a read timeout, within [`SETUP_TIMEOUT`].
fn next_blocking(
    stream: &UnixStream,
    partial: &mut Vec<u8>,
    partial_fd: &mut Option<OwnedFd>,
) -> io::Result<Received> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        if let Some(m) = receive(stream, partial, partial_fd)? {
            return Ok(m);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "ivshmem setup"));
        }
    }
}

/// Receives (part of) one message. `Ok(None)`: nothing complete yet (would block).
fn receive(
    stream: &UnixStream,
    partial: &mut Vec<u8>,
    partial_fd: &mut Option<OwnedFd>,
) -> io::Result<Option<Received>> {
    let mut buf = [0u8; 8];
    let want = 8 - partial.len();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut buf[..want])];
    let got = match rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
        Ok(r) => r.bytes,
        Err(rustix::io::Errno::AGAIN) => return Ok(None),
        Err(rustix::io::Errno::INTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for fd in fds {
                if partial_fd.is_some() {
                    log::warn!("ivshmem server sent two fds with one message; one dropped");
                } else {
                    *partial_fd = Some(fd);
                }
            }
        }
    }
    if got == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    partial.extend_from_slice(&buf[..got]);
    if partial.len() < 8 {
        return Ok(None);
    }
    let mut value = [0u8; 8];
    value.copy_from_slice(partial);
    partial.clear();
    Ok(Some(Received {
        value: i64::from_le_bytes(value),
        fd: partial_fd.take(),
    }))
}
