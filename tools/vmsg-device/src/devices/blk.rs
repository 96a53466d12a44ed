// SPDX-License-Identifier: GPL-2.0

//! virtio-blk (device id 2) over a file: read, write, flush, discard, write zeroes and
//! get-id, one request queue.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::mem::offset_of;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{fallocate, FallocateFlags};
use virtio_bindings::virtio_blk::{
    virtio_blk_config, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::Queue;

use super::{drain_queue, Chain, DeviceError, GuestMemory, VirtioDevice, QUEUE_MAX_SIZE};

/// Bytes of a GET_ID answer.
pub const ID_BYTES: usize = 20;
/// Sector size of the virtio-blk protocol.
pub const SECTOR: u64 = 512;
/// Request header: type u32, reserved u32, sector u64.
const REQ_HEADER: usize = 16;
/// One discard / write-zeroes segment: sector u64, num_sectors u32, flags u32.
const SEGMENT: usize = 16;
/// Segments per discard or write-zeroes request.
const MAX_SEGMENTS: u32 = 32;
/// Sectors per discard or write-zeroes segment.
const MAX_SEGMENT_SECTORS: u32 = 1 << 22;
/// Config space bytes: up to and including the write-zeroes fields.
const CONFIG_SIZE: usize = offset_of!(virtio_blk_config, max_secure_erase_sectors);

/// A virtio-blk device.
pub struct Blk {
    file: File,
    path: PathBuf,
    readonly: bool,
    capacity_bytes: u64,
    serial: [u8; ID_BYTES],
}

fn put_u32(cfg: &mut [u8], off: usize, v: u32) {
    cfg[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

impl Blk {
    /// Opens the backing file; reports a clear error for a missing or unusable one.
    pub fn open(path: &Path, readonly: bool, serial: Option<&str>) -> Result<Self, DeviceError> {
        let bad = |what: &str| {
            DeviceError::Config(format!("blk backing file {}: {what}", path.display()))
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(&e.to_string()))?;
        let ft = meta.file_type();
        if !(ft.is_file() || ft.is_block_device()) {
            return Err(bad("not a regular file or block device"));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(!readonly)
            .open(path)
            .map_err(|e| {
                if readonly {
                    bad(&e.to_string())
                } else {
                    bad(&format!("{e} (use readonly to serve it read-only)"))
                }
            })?;
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| bad(&format!("size: {e}")))?;
        if size < SECTOR {
            return Err(bad(&format!(
                "{size} bytes is less than one 512-byte sector"
            )));
        }
        if size % SECTOR != 0 {
            log::warn!(
                "blk {}: size {size} is not a multiple of 512; the last {} byte(s) are not served",
                path.display(),
                size % SECTOR
            );
        }
        let mut id = [0u8; ID_BYTES];
        let serial = serial.map_or_else(
            || {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
            str::to_owned,
        );
        let n = serial.len().min(ID_BYTES);
        id[..n].copy_from_slice(&serial.as_bytes()[..n]);
        Ok(Self {
            file,
            path: path.to_path_buf(),
            readonly,
            capacity_bytes: size - size % SECTOR,
            serial: id,
        })
    }

    fn range(&self, sector: u64, len: u64) -> Option<u64> {
        let start = sector.checked_mul(SECTOR)?;
        let end = start.checked_add(len)?;
        (end <= self.capacity_bytes).then_some(start)
    }

    fn read_request(&self, sector: u64, data: &mut impl Write, len: usize) -> (u32, u32) {
        let Some(start) = self.range(sector, len as u64) else {
            crate::limited!(
                Warn,
                "blk: read past the end: sector {sector} + {len} bytes"
            );
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        let mut buf = vec![0u8; len];
        if let Err(e) = self.file.read_exact_at(&mut buf, start) {
            crate::limited!(Warn, "blk {}: read: {e}", self.path.display());
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        match data.write_all(&buf) {
            Ok(()) => (VIRTIO_BLK_S_OK, u32::try_from(len).unwrap_or(0)),
            Err(e) => {
                crate::limited!(Warn, "blk: writing to the guest: {e}");
                (VIRTIO_BLK_S_IOERR, 0)
            }
        }
    }

    fn write_request(&self, sector: u64, data: &mut impl Read, len: usize) -> u32 {
        if self.readonly {
            return VIRTIO_BLK_S_IOERR;
        }
        let Some(start) = self.range(sector, len as u64) else {
            crate::limited!(
                Warn,
                "blk: write past the end: sector {sector} + {len} bytes"
            );
            return VIRTIO_BLK_S_IOERR;
        };
        let mut buf = vec![0u8; len];
        if let Err(e) = data.read_exact(&mut buf) {
            crate::limited!(Warn, "blk: reading from the guest: {e}");
            return VIRTIO_BLK_S_IOERR;
        }
        match self.file.write_all_at(&buf, start) {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(e) => {
                crate::limited!(Warn, "blk {}: write: {e}", self.path.display());
                VIRTIO_BLK_S_IOERR
            }
        }
    }

    fn zero(&self, start: u64, len: u64) -> std::io::Result<()> {
        let flags = FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let (Ok(off), Ok(l)) = (i64::try_from(start), i64::try_from(len)) else {
            return Err(std::io::Error::other("range too large"));
        };
        if fallocate(self.file.as_fd(), flags, off, l).is_ok() {
            return Ok(());
        }
        let chunk = vec![0u8; 64 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.file.write_all_at(&chunk[..n], start + done)?;
            done += n as u64;
        }
        Ok(())
    }

    fn segments_request(&self, kind: u32, data: &mut impl Read, len: usize) -> u32 {
        if self.readonly {
            return VIRTIO_BLK_S_IOERR;
        }
        if len % SEGMENT != 0 || len == 0 || len / SEGMENT > MAX_SEGMENTS as usize {
            crate::limited!(Warn, "blk: discard/write-zeroes payload of {len} bytes");
            return VIRTIO_BLK_S_UNSUPP;
        }
        for _ in 0..len / SEGMENT {
            let mut seg = [0u8; SEGMENT];
            if data.read_exact(&mut seg).is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
            let sector = u64::from_le_bytes(seg[0..8].try_into().unwrap_or_default());
            let sectors = u32::from_le_bytes(seg[8..12].try_into().unwrap_or_default());
            let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap_or_default());
            if sectors > MAX_SEGMENT_SECTORS || (kind == VIRTIO_BLK_T_DISCARD && flags != 0) {
                return VIRTIO_BLK_S_UNSUPP;
            }
            let bytes = u64::from(sectors) * SECTOR;
            let Some(start) = self.range(sector, bytes) else {
                return VIRTIO_BLK_S_IOERR;
            };
            let result = if kind == VIRTIO_BLK_T_DISCARD {
                let flags =
                    FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
                match (i64::try_from(start), i64::try_from(bytes)) {
                    (Ok(off), Ok(l)) => {
                        // Discard is a hint: a file system without hole punching keeps the data.
                        if let Err(e) = fallocate(self.file.as_fd(), flags, off, l) {
                            crate::limited!(Debug, "blk: discard not done: {e}");
                        }
                        Ok(())
                    }
                    _ => Err(std::io::Error::other("range too large")),
                }
            } else {
                self.zero(start, bytes)
            };
            if let Err(e) = result {
                crate::limited!(Warn, "blk {}: {e}", self.path.display());
                return VIRTIO_BLK_S_IOERR;
            }
        }
        VIRTIO_BLK_S_OK
    }

    /// Serves one request chain; returns the bytes written into it (data plus status).
    fn handle(&mut self, chain: Chain<'_>, mem: &GuestMemory) -> u32 {
        let (mut reader, mut writer) = match (chain.clone().reader(mem), chain.writer(mem)) {
            (Ok(r), Ok(w)) => (r, w),
            _ => {
                crate::limited!(Warn, "blk: unusable descriptor chain");
                return 0;
            }
        };
        let mut header = [0u8; REQ_HEADER];
        if reader.read_exact(&mut header).is_err() {
            crate::limited!(Warn, "blk: request without a 16-byte header");
            return 0;
        }
        let kind = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default());
        let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        let writable = writer.available_bytes();
        if writable == 0 {
            crate::limited!(Warn, "blk: request without a status byte");
            return 0;
        }
        let data_len = writable - 1;
        let mut status_writer = match writer.split_at(data_len) {
            Ok(w) => w,
            Err(e) => {
                crate::limited!(Warn, "blk: {e}");
                return 0;
            }
        };
        let readable = reader.available_bytes();
        let (status, written) = match kind {
            VIRTIO_BLK_T_IN => self.read_request(sector, &mut writer, data_len),
            VIRTIO_BLK_T_OUT => (self.write_request(sector, &mut reader, readable), 0),
            VIRTIO_BLK_T_FLUSH => match self.file.sync_data() {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(e) => {
                    crate::limited!(Warn, "blk {}: flush: {e}", self.path.display());
                    (VIRTIO_BLK_S_IOERR, 0)
                }
            },
            VIRTIO_BLK_T_GET_ID => {
                let n = data_len.min(ID_BYTES);
                match writer.write_all(&self.serial[..n]) {
                    Ok(()) => (VIRTIO_BLK_S_OK, n as u32),
                    Err(_) => (VIRTIO_BLK_S_IOERR, 0),
                }
            }
            VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
                (self.segments_request(kind, &mut reader, readable), 0)
            }
            other => {
                crate::limited!(Debug, "blk: unsupported request type {other}");
                (VIRTIO_BLK_S_UNSUPP, 0)
            }
        };
        if status_writer.write_all(&[status as u8]).is_err() {
            return written;
        }
        written + 1
    }
}

impl VirtioDevice for Blk {
    fn name(&self) -> &'static str {
        "blk"
    }

    fn device_id(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn device_features(&self) -> u64 {
        let mut f = (1u64 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_BLK_SIZE)
            | (1 << VIRTIO_BLK_F_FLUSH)
            | (1 << VIRTIO_BLK_F_DISCARD)
            | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
        if self.readonly {
            f |= 1 << VIRTIO_BLK_F_RO;
        }
        f
    }

    fn config(&self) -> Vec<u8> {
        let mut cfg = vec![0u8; CONFIG_SIZE];
        let capacity = self.capacity_bytes / SECTOR;
        let off = offset_of!(virtio_blk_config, capacity);
        cfg[off..off + 8].copy_from_slice(&capacity.to_le_bytes());
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, seg_max),
            u32::from(QUEUE_MAX_SIZE) - 2,
        );
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, blk_size),
            SECTOR as u32,
        );
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, max_discard_sectors),
            MAX_SEGMENT_SECTORS,
        );
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, max_discard_seg),
            MAX_SEGMENTS,
        );
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, discard_sector_alignment),
            1,
        );
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, max_write_zeroes_sectors),
            MAX_SEGMENT_SECTORS,
        );
        put_u32(
            &mut cfg,
            offset_of!(virtio_blk_config, max_write_zeroes_seg),
            MAX_SEGMENTS,
        );
        cfg[offset_of!(virtio_blk_config, write_zeroes_may_unmap)] = 1;
        cfg
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
            .ok_or(DeviceError::Queue(format!("blk has no queue {index}")))?;
        let used = drain_queue(queue, mem, |chain| self.handle(chain, mem))?;
        Ok(if used { vec![index] } else { Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.img");
        std::fs::write(&path, vec![0u8; 8 * 512 + 100]).unwrap();
        let blk = Blk::open(&path, false, Some("serial-1")).unwrap();
        let cfg = blk.config();
        assert_eq!(cfg.len(), 60);
        assert_eq!(u64::from_le_bytes(cfg[0..8].try_into().unwrap()), 8);
        assert_eq!(u32::from_le_bytes(cfg[12..16].try_into().unwrap()), 254);
        assert_eq!(u32::from_le_bytes(cfg[20..24].try_into().unwrap()), 512);
        assert_eq!(
            u32::from_le_bytes(cfg[40..44].try_into().unwrap()),
            MAX_SEGMENTS
        );
        assert_eq!(&blk.serial[..8], b"serial-1");
        assert_eq!(blk.device_features() & (1 << VIRTIO_BLK_F_RO), 0);
    }

    #[test]
    fn clear_errors_for_bad_backing_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Blk::open(&dir.path().join("nope.img"), false, None)
            .err()
            .unwrap();
        assert!(missing.to_string().contains("nope.img"), "{missing}");
        assert!(missing.to_string().contains("No such file"), "{missing}");
        let is_dir = Blk::open(dir.path(), false, None).err().unwrap();
        assert!(
            is_dir.to_string().contains("not a regular file"),
            "{is_dir}"
        );
        let tiny = dir.path().join("tiny.img");
        std::fs::write(&tiny, b"abc").unwrap();
        let err = Blk::open(&tiny, false, None).err().unwrap();
        assert!(
            err.to_string().contains("less than one 512-byte sector"),
            "{err}"
        );
    }

    #[test]
    fn readonly_sets_ro_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.img");
        std::fs::write(&path, vec![7u8; 1024]).unwrap();
        let blk = Blk::open(&path, true, None).unwrap();
        assert_ne!(blk.device_features() & (1 << VIRTIO_BLK_F_RO), 0);
        let mut data: &[u8] = &[1u8; 512];
        assert_eq!(blk.write_request(0, &mut data, 512), VIRTIO_BLK_S_IOERR);
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 1024]);
    }

    #[test]
    fn read_write_zero_round_trip_on_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rw.img");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let blk = Blk::open(&path, false, None).unwrap();
        let mut data: &[u8] = &[0xabu8; 1024];
        assert_eq!(blk.write_request(2, &mut data, 1024), VIRTIO_BLK_S_OK);
        let mut out = Vec::new();
        assert_eq!(blk.read_request(2, &mut out, 1024), (VIRTIO_BLK_S_OK, 1024));
        assert_eq!(out, vec![0xab; 1024]);
        // Out of range is an I/O error, not a short read.
        let mut out = Vec::new();
        assert_eq!(blk.read_request(7, &mut out, 1024).0, VIRTIO_BLK_S_IOERR);
        // Write zeroes over the second of the two written sectors.
        let mut seg = Vec::new();
        seg.extend_from_slice(&3u64.to_le_bytes());
        seg.extend_from_slice(&1u32.to_le_bytes());
        seg.extend_from_slice(&0u32.to_le_bytes());
        let mut r: &[u8] = &seg;
        assert_eq!(
            blk.segments_request(VIRTIO_BLK_T_WRITE_ZEROES, &mut r, 16),
            VIRTIO_BLK_S_OK
        );
        let file = std::fs::read(&path).unwrap();
        assert_eq!(&file[1024..1536], &[0xab; 512][..]);
        assert_eq!(&file[1536..2048], &[0u8; 512][..]);
    }
}
