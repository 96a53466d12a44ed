// SPDX-License-Identifier: GPL-2.0

//! Guest RAM: the file behind QEMU's `memory-backend-file,share=on`, mapped with
//! `vm-memory` so that guest physical address `a` is file offset `a`.
//!
//! That linear view holds for an x86 `pc` machine with at most 2 GiB of RAM (RAM above
//! the PCI hole would sit at other addresses); larger files are mapped whole but only
//! their first 2 GiB are guaranteed to match.
//!
//! In window mode (`--window`, `Documentation/shm-bus.rst`, "Window mode") the device
//! side sees no guest RAM: the memory it serves virtqueues from is the window of the
//! shared region alone, placed at bus address `1 << 48` ([`map_window`]), so that the
//! virtqueue code resolves bus addresses exactly as it resolves guest physical ones, and
//! any address outside the window fails as an address outside guest RAM does.

use std::fs::OpenOptions;
use std::path::Path;

use vm_memory::{FileOffset, GuestAddress};

use crate::devices::GuestMemory;
use crate::region::{Region, WINDOW_BUS_BASE};

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

/// The window of `region` as the device side's only memory: one region at bus address
/// [`WINDOW_BUS_BASE`] mapping the window's bytes of the shared-memory file (a mapping of
/// its own, `MAP_SHARED` like the region's).
pub fn map_window(region: &Region) -> Result<GuestMemory, String> {
    let g = region.geometry();
    if !g.has_window() {
        return Err("the region has no window".into());
    }
    let file = region
        .file()
        .try_clone()
        .map_err(|e| format!("window: {e}"))?;
    let offset = u64::try_from(g.window_offset).map_err(|_| "window: offset too large")?;
    let mem = GuestMemory::from_ranges_with_files([(
        GuestAddress(WINDOW_BUS_BASE),
        g.window_size,
        Some(FileOffset::new(file, offset)),
    )])
    .map_err(|e| format!("window: {e}"))?;
    log::info!(
        "window mode: {} bytes at region offset {:#x} serve as bus addresses {:#x}..{:#x}",
        g.window_size,
        g.window_offset,
        WINDOW_BUS_BASE,
        WINDOW_BUS_BASE + g.window_size as u64
    );
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

    fn window_region() -> Region {
        use crate::region::Geometry;
        let g = Geometry::with_window(64 * 1024, 64, Some(4), 16 * 1024).unwrap();
        let r = Region::create(g).unwrap();
        r.initialise(0);
        r
    }

    #[test]
    fn window_bus_addresses_are_window_bytes() {
        use std::os::unix::fs::FileExt;
        let r = window_region();
        let window = 48 * 1024u64;
        // Bytes written into the file at the window's offset 0x123 ...
        r.file().write_all_at(b"WNDW", window + 0x123).unwrap();
        let mem = map_window(&r).unwrap();
        // ... read at bus address 1 << 48 | 0x123.
        let mut got = [0u8; 4];
        mem.read_slice(&mut got, GuestAddress((1 << 48) | 0x123))
            .unwrap();
        assert_eq!(&got, b"WNDW");
        // The last byte of the window is in; writes reach the file.
        mem.write_slice(b"z", GuestAddress((1 << 48) + 16 * 1024 - 1))
            .unwrap();
        let mut b = [0u8; 1];
        r.file().read_exact_at(&mut b, 64 * 1024 - 1).unwrap();
        assert_eq!(&b, b"z");
        assert_eq!(mem.last_addr(), GuestAddress((1 << 48) + 16 * 1024 - 1));
    }

    #[test]
    fn addresses_outside_the_window_fail() {
        let r = window_region();
        let mem = map_window(&r).unwrap();
        let mut got = [0u8; 4];
        for bad in [
            0x123,                   // area 0: a guest physical address
            48 * 1024 + 0x123,       // area 0, even where the window sits in the region
            (1 << 48) | (16 * 1024), // one past the window
            (1 << 48) | (1 << 40),   // far past it
            (2 << 48) | 0x123,       // area 2
            (1 << 48) - 4,           // just below area 1
        ] {
            assert!(
                mem.read_slice(&mut got, GuestAddress(bad)).is_err(),
                "{bad:#x} resolved"
            );
        }
        // A read that starts inside and runs past the end fails too.
        assert!(mem
            .read_slice(&mut got, GuestAddress((1 << 48) + 16 * 1024 - 2))
            .is_err());
        // A region without a window has none to map.
        let plain =
            Region::create(crate::region::Geometry::new(64 * 1024, 64, Some(4)).unwrap()).unwrap();
        assert!(map_window(&plain).is_err());
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
