// SPDX-License-Identifier: GPL-2.0

//! Guest RAM: the file behind QEMU's `memory-backend-file,share=on`, mapped with
//! `vm-memory` so that guest physical address `a` is file offset `a`.
//!
//! That linear view holds for an x86 `pc` machine with at most 2 GiB of RAM (RAM above
//! the PCI hole would sit at other addresses); larger files are mapped whole but only
//! their first 2 GiB are guaranteed to match.

use std::fs::OpenOptions;
use std::path::Path;

use vm_memory::{FileOffset, GuestAddress};

use crate::devices::GuestMemory;

/// Largest RAM size for which guest physical addresses are file offsets on `pc`.
pub const LINEAR_LIMIT: u64 = 2 << 30;

/// Maps the whole file at guest physical address 0.
pub fn map(path: &Path) -> Result<GuestMemory, String> {
    let bad = |what: String| format!("guest memory {}: {what}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let size = meta.len();
    if size == 0 {
        return Err(bad(
            "the file is empty (has QEMU started with this mem-path?)".into(),
        ));
    }
    if size > LINEAR_LIMIT {
        log::warn!(
            "guest memory {}: {size} bytes is above 2 GiB; only the first 2 GiB map linearly on a pc machine",
            path.display()
        );
    }
    let len = usize::try_from(size).map_err(|_| bad("too large".into()))?;
    let mem = GuestMemory::from_ranges_with_files([(
        GuestAddress(0),
        len,
        Some(FileOffset::new(file, 0)),
    )])
    .map_err(|e| bad(e.to_string()))?;
    log::info!("guest memory {} mapped: {size} bytes", path.display());
    Ok(mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemoryBackend};

    #[test]
    fn maps_file_offsets_as_guest_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ram");
        let mut data = vec![0u8; 64 * 1024];
        data[0x1234..0x1238].copy_from_slice(b"VMSG");
        std::fs::write(&path, &data).unwrap();
        let mem = map(&path).unwrap();
        assert_eq!(mem.last_addr(), GuestAddress(64 * 1024 - 1));
        let mut got = [0u8; 4];
        mem.read_slice(&mut got, GuestAddress(0x1234)).unwrap();
        assert_eq!(&got, b"VMSG");
        // Writes reach the file (MAP_SHARED).
        mem.write_slice(b"ok", GuestAddress(0x10)).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[0x10..0x12], b"ok");
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = map(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("No such file"), "{missing}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(map(&empty).unwrap_err().contains("empty"));
        assert!(map(dir.path()).is_err());
    }
}
