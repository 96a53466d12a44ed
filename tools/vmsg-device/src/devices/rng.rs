// SPDX-License-Identifier: GPL-2.0

//! virtio-rng (device id 4): one request queue whose writable buffers are filled with
//! random bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_queue::Queue;

use super::{drain_queue, DeviceError, GuestMemory, VirtioDevice};

/// Largest number of bytes given for one buffer.
const MAX_PER_BUFFER: usize = 64 * 1024;

/// The default entropy source.
pub const DEFAULT_SOURCE: &str = "/dev/urandom";

/// A virtio-rng device.
pub struct Rng {
    source: File,
    path: PathBuf,
    regular: bool,
}

impl Rng {
    /// Opens `source` (default `/dev/urandom`). A regular file is read in a loop.
    pub fn new(source: Option<&Path>) -> Result<Self, DeviceError> {
        let path = source.unwrap_or(Path::new(DEFAULT_SOURCE)).to_path_buf();
        let file = File::open(&path)
            .map_err(|e| DeviceError::Config(format!("rng source {}: {e}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(|e| DeviceError::Config(format!("rng source {}: {e}", path.display())))?;
        if meta.is_file() && meta.len() == 0 {
            return Err(DeviceError::Config(format!(
                "rng source {} is empty",
                path.display()
            )));
        }
        Ok(Self {
            source: file,
            path,
            regular: meta.is_file(),
        })
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), DeviceError> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .source
                .read(&mut buf[done..])
                .map_err(|e| DeviceError::Io(format!("rng source {}: {e}", self.path.display())))?;
            if n == 0 {
                if !self.regular {
                    return Err(DeviceError::Io(format!(
                        "rng source {} ended",
                        self.path.display()
                    )));
                }
                self.source
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| DeviceError::Io(format!("rng source: {e}")))?;
            }
            done += n;
        }
        Ok(())
    }
}

impl VirtioDevice for Rng {
    fn name(&self) -> &'static str {
        "rng"
    }

    fn device_id(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn config(&self) -> Vec<u8> {
        Vec::new()
    }

    fn num_queues(&self) -> usize {
        1
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<Vec<usize>, DeviceError> {
        let queue = queues
            .get_mut(index)
            .ok_or(DeviceError::Queue(format!("rng has no queue {index}")))?;
        let mut failure = None;
        let used = drain_queue(queue, mem, |chain| {
            let mut writer = match chain.writer(mem) {
                Ok(w) => w,
                Err(e) => {
                    crate::limited!(Warn, "rng: bad descriptor chain: {e}");
                    return 0;
                }
            };
            let len = writer.available_bytes().min(MAX_PER_BUFFER);
            let mut bytes = vec![0u8; len];
            if let Err(e) = self.fill(&mut bytes) {
                failure = Some(e);
                return 0;
            }
            match writer.write_all(&bytes) {
                Ok(()) => u32::try_from(len).unwrap_or(0),
                Err(e) => {
                    crate::limited!(Warn, "rng: writing to the guest: {e}");
                    0
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(if used { vec![index] } else { Vec::new() })
    }
}
