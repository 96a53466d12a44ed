// SPDX-License-Identifier: GPL-2.0

//! virtio-console (device id 3) with a single port (no MULTIPORT): queue 0 receives
//! (host to guest), queue 1 transmits (guest to host). Guest output is echoed back, or
//! written to stdout or a file; host input comes from a file/FIFO or is injected through
//! the control socket.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_queue::{Queue, QueueT};

use super::{
    drain_queue, next_chain, waiting, ConsoleOutput, DeviceError, GuestMemory, VirtioDevice,
};

/// Feature bit: the emergency write register `emerg_wr` is usable.
pub const VIRTIO_CONSOLE_F_EMERG_WRITE: u32 = 2;
/// Receive queue (host to guest).
pub const RX_QUEUE: usize = 0;
/// Transmit queue (guest to host).
pub const TX_QUEUE: usize = 1;
/// Config: cols u16 @0, rows u16 @2, max_nr_ports u32 @4, emerg_wr u32 @8.
const CONFIG_SIZE: usize = 12;
const EMERG_WR_OFFSET: u32 = 8;
/// Host data waiting for receive buffers is capped at this many bytes.
const MAX_PENDING: usize = 1 << 20;

/// A single-port virtio-console.
pub struct Console {
    output: ConsoleOutput,
    out_file: Option<File>,
    input: Option<File>,
    input_path: Option<PathBuf>,
    pending: VecDeque<u8>,
}

impl Console {
    /// Opens the output file and input file or FIFO, if any.
    pub fn new(output: ConsoleOutput, input: Option<&Path>) -> Result<Self, DeviceError> {
        let out_file = match &output {
            ConsoleOutput::File(p) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        DeviceError::Config(format!("console output {}: {e}", p.display()))
                    })?,
            ),
            _ => None,
        };
        let input_file = match input {
            Some(p) => {
                let meta = std::fs::metadata(p).map_err(|e| {
                    DeviceError::Config(format!("console input {}: {e}", p.display()))
                })?;
                // A FIFO is opened read-write so that it never reports end of file when a
                // writer goes away.
                let fifo = meta.file_type().is_fifo();
                Some(
                    OpenOptions::new()
                        .read(true)
                        .write(fifo)
                        .custom_flags(nix::libc::O_NONBLOCK)
                        .open(p)
                        .map_err(|e| {
                            DeviceError::Config(format!("console input {}: {e}", p.display()))
                        })?,
                )
            }
            None => None,
        };
        Ok(Self {
            output,
            out_file,
            input: input_file,
            input_path: input.map(Path::to_path_buf),
            pending: VecDeque::new(),
        })
    }

    /// Bytes waiting for receive buffers.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn queue_for_guest(&mut self, data: &[u8]) {
        let room = MAX_PENDING.saturating_sub(self.pending.len());
        if data.len() > room {
            crate::limited!(
                Warn,
                "console: guest is not reading; dropping {} byte(s)",
                data.len() - room
            );
        }
        self.pending.extend(&data[..data.len().min(room)]);
    }

    fn emit(&mut self, data: &[u8]) {
        let result = match &self.output {
            ConsoleOutput::Echo => {
                self.queue_for_guest(data);
                Ok(())
            }
            ConsoleOutput::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(data).and_then(|()| out.flush())
            }
            ConsoleOutput::File(_) => match self.out_file.as_mut() {
                Some(f) => f.write_all(data),
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            log::warn!("console output: {e}");
        }
    }

    /// Moves pending host data into receive buffers; returns whether any was used.
    fn fill_rx(&mut self, queues: &mut [Queue], mem: &GuestMemory) -> Result<bool, DeviceError> {
        let Some(queue) = queues.get_mut(RX_QUEUE) else {
            return Ok(false);
        };
        if !queue.ready() || self.pending.is_empty() {
            return Ok(false);
        }
        let mut used = false;
        loop {
            waiting(queue, mem)?;
            queue.disable_notification(mem)?;
            while !self.pending.is_empty() {
                let Some(chain) = next_chain(queue, mem)? else {
                    break;
                };
                let head = chain.head_index();
                let written = match chain.writer(mem) {
                    Ok(mut w) => {
                        let n = w.available_bytes().min(self.pending.len());
                        let bytes: Vec<u8> = self.pending.drain(..n).collect();
                        match w.write_all(&bytes) {
                            Ok(()) => n as u32,
                            Err(e) => {
                                crate::limited!(Warn, "console: writing to the guest: {e}");
                                0
                            }
                        }
                    }
                    Err(e) => {
                        crate::limited!(Warn, "console: bad receive chain: {e}");
                        0
                    }
                };
                queue.add_used(mem, head, written)?;
                used = true;
            }
            if !queue.enable_notification(mem)? || self.pending.is_empty() {
                break;
            }
        }
        Ok(used)
    }
}

impl VirtioDevice for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    fn device_id(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn device_features(&self) -> u64 {
        1 << VIRTIO_CONSOLE_F_EMERG_WRITE
    }

    fn config(&self) -> Vec<u8> {
        let mut cfg = vec![0u8; CONFIG_SIZE];
        cfg[0..2].copy_from_slice(&80u16.to_le_bytes());
        cfg[2..4].copy_from_slice(&25u16.to_le_bytes());
        cfg[4..8].copy_from_slice(&1u32.to_le_bytes());
        cfg
    }

    fn write_config(&mut self, offset: u32, data: &[u8]) -> bool {
        if offset != EMERG_WR_OFFSET || data.len() != 4 {
            return false;
        }
        let ch = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let mut utf8 = [0u8; 4];
        let text = char::from_u32(ch).unwrap_or('?').encode_utf8(&mut utf8);
        let bytes = text.as_bytes().to_vec();
        self.emit(&bytes);
        true
    }

    fn num_queues(&self) -> usize {
        2
    }

    fn reset(&mut self) {
        self.pending.clear();
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<Vec<usize>, DeviceError> {
        let mut notify = Vec::new();
        match index {
            TX_QUEUE => {
                let mut out = Vec::new();
                let queue = &mut queues[TX_QUEUE];
                let used = drain_queue(queue, mem, |chain| {
                    match chain.reader(mem) {
                        Ok(mut r) => {
                            if let Err(e) = r.read_to_end(&mut out) {
                                crate::limited!(Warn, "console: reading from the guest: {e}");
                            }
                        }
                        Err(e) => crate::limited!(Warn, "console: bad transmit chain: {e}"),
                    }
                    0
                })?;
                if !out.is_empty() {
                    self.emit(&out);
                }
                if used {
                    notify.push(TX_QUEUE);
                }
                if self.fill_rx(queues, mem)? {
                    notify.push(RX_QUEUE);
                }
            }
            RX_QUEUE => {
                if self.fill_rx(queues, mem)? {
                    notify.push(RX_QUEUE);
                }
            }
            other => return Err(DeviceError::Queue(format!("console has no queue {other}"))),
        }
        Ok(notify)
    }

    fn inject(
        &mut self,
        data: &[u8],
        queues: &mut [Queue],
        mem: Option<&GuestMemory>,
    ) -> Result<Vec<usize>, DeviceError> {
        self.queue_for_guest(data);
        match mem {
            Some(mem) if self.fill_rx(queues, mem)? => Ok(vec![RX_QUEUE]),
            _ => Ok(Vec::new()),
        }
    }

    fn input_fd(&self) -> Option<BorrowedFd<'_>> {
        self.input.as_ref().map(|f| f.as_fd())
    }

    fn read_input(&mut self) -> Option<Vec<u8>> {
        let file = self.input.as_mut()?;
        let mut buf = vec![0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) => {
                log::info!(
                    "console input {} ended",
                    self.input_path
                        .as_deref()
                        .unwrap_or(Path::new("?"))
                        .display()
                );
                self.input = None;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Vec::new()),
            Err(e) => {
                log::warn!("console input: {e}");
                self.input = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergency_write_echoes_and_config_reads() {
        let mut c = Console::new(ConsoleOutput::Echo, None).unwrap();
        assert_eq!(c.config(), vec![80, 0, 25, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert!(c.write_config(8, &u32::from(b'x').to_le_bytes()));
        assert!(!c.write_config(0, &[1, 2]));
        assert_eq!(c.pending(), 1);
        c.reset();
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn output_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut c = Console::new(ConsoleOutput::File(path.clone()), None).unwrap();
        c.emit(b"hello ");
        c.emit(b"world");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn input_from_a_file_then_eof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"typed").unwrap();
        let mut c = Console::new(ConsoleOutput::Echo, Some(&path)).unwrap();
        assert!(c.input_fd().is_some());
        assert_eq!(c.read_input(), Some(b"typed".to_vec()));
        assert_eq!(c.read_input(), None);
        assert!(c.input_fd().is_none());
    }
}
