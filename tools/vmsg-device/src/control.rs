// SPDX-License-Identifier: GPL-2.0

//! The control socket (`--control PATH`): a line protocol for tests and operators.
//!
//! Commands, one per line; each gets one answer line starting with `ok` or `error`:
//! - `add SPEC` adds a device (same syntax as `--device`) at the lowest free number and
//!   announces it (EVENT_DEVICE); the number of a removed device still served is not free;
//! - `remove N` announces the removal of device N, which is served until its driver resets
//!   it, the bus instance is reset, or `--removal-grace-ms` has passed (refused for a
//!   device already removed);
//! - `inject N TEXT` sends TEXT to console device N (escapes `\n`, `\r`, `\t`, `\\`,
//!   `\xHH`);
//! - `list` prints `N:kind` for every device, `N:kind(removed)` for one removed but still
//!   served;
//! - `flood N MS` keeps the device-to-driver ring full of spurious EVENT_USED for device N
//!   for MS ms (the driver side must drain it without starving the guest);
//! - `stall MS` stops reading the driver-to-device ring for MS ms, from now (the fault
//!   `stall=MS@N` does the same after N messages; a test that first sets up its load
//!   chooses the moment with this).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::devices::DeviceSpec;
use crate::ivshmem::{bind_listener, IvshmemError};

/// Longest accepted command line.
const MAX_LINE: usize = 64 * 1024;

/// A control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Hot-add a device.
    Add(DeviceSpec),
    /// Hot-remove a device.
    Remove(u16),
    /// Send bytes to a console.
    Inject(u16, Vec<u8>),
    /// List devices.
    List,
    /// Keep the device-to-driver ring full of spurious EVENT_USED for a device, for a while
    /// (`flood N MS`): a test of the driver under a flood it cannot drain.
    Flood(u16, Duration),
    /// Stop reading the driver-to-device ring for a while (`stall MS`), as the fault
    /// `stall` does, at a moment the caller chooses.
    Stall(Duration),
}

/// Decodes `\n`, `\r`, `\t`, `\\` and `\xHH`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let text = std::str::from_utf8(&hex).map_err(|_| "bad \\x escape".to_string())?;
                let v =
                    u8::from_str_radix(text, 16).map_err(|_| format!("bad \\x escape '{text}'"))?;
                out.push(v);
            }
            Some(other) => return Err(format!("unknown escape \\{}", other as char)),
            None => return Err("trailing backslash".into()),
        }
    }
    Ok(out)
}

fn dev_num(s: Option<&str>) -> Result<u16, String> {
    let s = s.ok_or("missing device number")?;
    s.parse()
        .map_err(|_| format!("'{s}' is not a device number"))
}

impl FromStr for Command {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "add" => Ok(Self::Add(rest.trim().parse()?)),
            "remove" => Ok(Self::Remove(dev_num(Some(rest.trim()))?)),
            "inject" => {
                let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
                Ok(Self::Inject(dev_num(Some(n))?, unescape(text)?))
            }
            "list" => Ok(Self::List),
            "flood" => {
                let (n, ms) = rest.trim().split_once(' ').ok_or("usage: flood N MS")?;
                let ms: u64 = ms
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{ms}' is not a number of ms"))?;
                Ok(Self::Flood(dev_num(Some(n))?, Duration::from_millis(ms)))
            }
            "stall" => rest
                .trim()
                .parse()
                .map(|ms| Self::Stall(Duration::from_millis(ms)))
                .map_err(|_| format!("usage: stall MS ('{}' is not a number of ms)", rest.trim())),
            "" => Err("empty command".into()),
            other => Err(format!(
                "unknown command '{other}' (add, remove, inject, list, flood, stall)"
            )),
        }
    }
}

struct Conn {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
}

/// The listening control socket and its connections.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    conns: Vec<Conn>,
    next_id: u64,
}

impl Control {
    /// Binds `path`.
    pub fn bind(path: &Path) -> Result<Self, IvshmemError> {
        let listener = bind_listener(path)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| IvshmemError::Io("control socket".into(), e))?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            conns: Vec::new(),
            next_id: 0,
        })
    }

    /// The listener, for polling.
    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Open connections, for polling.
    pub fn conns(&self) -> impl Iterator<Item = (u64, BorrowedFd<'_>)> {
        self.conns.iter().map(|c| (c.id, c.stream.as_fd()))
    }

    /// Accepts pending connections.
    pub fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        log::warn!("control connection: {e}");
                        continue;
                    }
                    self.conns.push(Conn {
                        id: self.next_id,
                        stream,
                        buf: Vec::new(),
                    });
                    self.next_id += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("control accept: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what connection `id` sent and returns its complete lines; closes it at EOF.
    pub fn read(&mut self, id: u64) -> Vec<String> {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return Vec::new();
        };
        let conn = &mut self.conns[pos];
        let mut closed = false;
        let mut chunk = [0u8; 4096];
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut lines = Vec::new();
        while let Some(nl) = conn.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = conn.buf.drain(..=nl).collect();
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        if conn.buf.len() > MAX_LINE {
            log::warn!("control: line too long; closing the connection");
            closed = true;
        }
        if closed {
            self.conns.remove(pos);
        }
        lines
    }

    /// Writes one answer line to connection `id`.
    pub fn reply(&mut self, id: u64, text: &str) {
        if let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) {
            // Answers are short; a client that does not read them loses them.
            let _ = conn.stream.write_all(format!("{text}\n").as_bytes());
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!("list\n".parse::<Command>(), Ok(Command::List));
        assert_eq!("remove 3".parse::<Command>(), Ok(Command::Remove(3)));
        assert_eq!(
            "add rng".parse::<Command>(),
            Ok(Command::Add(DeviceSpec::Rng { source: None }))
        );
        assert_eq!(
            "inject 2 hi there\\n\\x41".parse::<Command>(),
            Ok(Command::Inject(2, b"hi there\nA".to_vec()))
        );
        assert_eq!(
            "flood 1 3000".parse::<Command>(),
            Ok(Command::Flood(1, Duration::from_millis(3000)))
        );
        assert!("flood 1".parse::<Command>().is_err());
        assert_eq!(
            "stall 1500".parse::<Command>(),
            Ok(Command::Stall(Duration::from_millis(1500)))
        );
        assert!("stall".parse::<Command>().is_err());
        assert!("stall soon".parse::<Command>().is_err());
        assert!("flood x 10".parse::<Command>().is_err());
        assert!("inject x hi".parse::<Command>().is_err());
        assert!("launch"
            .parse::<Command>()
            .unwrap_err()
            .contains("unknown command"));
        assert!("add toaster".parse::<Command>().is_err());
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\xZZ").is_err());
    }

    #[test]
    fn lines_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl");
        let mut control = Control::bind(&path).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"list\nremove 1\nparti").unwrap();
        control.accept();
        let id = control.conns().next().unwrap().0;
        assert_eq!(control.read(id), vec!["list\n", "remove 1\n"]);
        control.reply(id, "ok");
        let mut answer = [0u8; 3];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"ok\n");
        drop(client);
        assert!(control.read(id).is_empty());
        assert_eq!(control.conns().count(), 0);
    }
}
