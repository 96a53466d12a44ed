// SPDX-License-Identifier: GPL-2.0

//! Memory areas: pages shared with the partition by `FFA_MEM_SHARE` and announced with
//! AREA_SHARE, so that bus addresses `area_id << 48 | offset` name bytes inside them.
//!
//! At bring-up one area becomes the instance's window (see `Link::share_window`): the transport
//! places every device's virtqueues in it and bounces buffers through it.

use crate::{
    ffa::MappedPages,
    link::{inc, Link, Reply, SharedArea},
    partition::Partition,
    vmsg::codec::{
        ffa::{Area, AreaResult, FfaBusMessage},
        Message,
    },
};
use kernel::{
    page::Page,
    prelude::*,
    sync::Arc,
    time::{delay::fsleep, Delta},
};

/// AREA_SHARE / AREA_UNSHARE attempts while the partition answers busy.
const AREA_BUSY_TRIES: u32 = 8;

impl<P: Partition> Link<P> {
    /// Sends AREA_SHARE or AREA_UNSHARE for `area`, retrying while the partition is busy.
    fn area_call(&self, share: bool, area: Area) -> Result {
        let msg = if share {
            FfaBusMessage::AreaShareRequest(area)
        } else {
            FfaBusMessage::AreaUnshareRequest(area)
        };
        for attempt in 0..AREA_BUSY_TRIES {
            let reply = self.bus_call(Message::Ffa(msg), |m| match m {
                Message::Ffa(
                    FfaBusMessage::AreaShareResponse { area_id, result }
                    | FfaBusMessage::AreaUnshareResponse { area_id, result },
                ) if area_id == area.area_id => Some(result),
                _ => None,
            })?;
            match reply {
                Reply::Answer(AreaResult::Ok) => return Ok(()),
                Reply::Answer(AreaResult::Busy) => {
                    inc(&self.stats.busy);
                    fsleep(Delta::from_millis(1 << attempt));
                }
                Reply::Answer(AreaResult::Error) | Reply::Refused => return Err(EIO),
            }
        }
        Err(EBUSY)
    }

    /// Gives `pages` back to the page allocator once the partition lost access; leaks them
    /// (with a log line) when `FFA_MEM_RECLAIM` fails, as the partition may still write them.
    fn reclaim_or_leak(&self, handle: u64, memory: Arc<MappedPages>) -> Result {
        match self.partition().reclaim(handle) {
            Ok(()) => Ok(()),
            Err(e) => {
                crate::bus_err!(
                    self.partition().device(),
                    "memory handle {handle:#x} not reclaimed ({e:?}); leaking {} page(s)\n",
                    memory.pages().len()
                );
                core::mem::forget(memory);
                Err(e)
            }
        }
    }

    /// Shares `pages` with the partition and announces them as a new area; returns its id.
    /// `ENOSPC` past the partition's `max_areas`; the FF-A error when sharing fails; `EIO`
    /// when the partition refuses the area (the memory is reclaimed).
    pub(crate) fn share_area(&self, pages: KVec<Page>) -> Result<u16> {
        let max_areas = self.negotiated().ok_or(ENODEV)?.max_areas;
        let page_count = u32::try_from(pages.len()).map_err(|_| EINVAL)?;
        if page_count == 0 {
            return Err(EINVAL);
        }
        // Areas are announced one at a time: the lock also keeps ids unique.
        let mut areas = self.areas.lock();
        areas.reserve(1, GFP_KERNEL)?;
        let id = (0..max_areas)
            .find(|id| !areas.iter().any(|a| a.id == *id))
            .ok_or(ENOSPC)?;
        let memory = Arc::new(MappedPages::new(pages)?, GFP_KERNEL)?;
        let handle = self.partition().share(memory.pages(), 0)?;
        let area = Area {
            area_id: id,
            handle,
            tag: 0,
            page_count,
            attributes: 0,
        };
        if let Err(e) = self.area_call(true, area) {
            let _ = self.reclaim_or_leak(handle, memory);
            return Err(e);
        }
        let shared = SharedArea {
            id,
            handle,
            memory,
            released: false,
        };
        if let Err(e) = areas.push_within_capacity(shared) {
            // Not reached (capacity was reserved); keep every shared area listed anyway.
            let SharedArea { handle, memory, .. } = e.0;
            let _ = self.area_call(false, area);
            let _ = self.reclaim_or_leak(handle, memory);
            return Err(ENOMEM);
        }
        Ok(id)
    }

    /// Returns the memory of area `id`.
    pub(crate) fn area_memory(&self, id: u16) -> Option<Arc<MappedPages>> {
        let areas = self.areas.lock();
        areas.iter().find(|a| a.id == id).map(|a| a.memory.clone())
    }

    /// Withdraws area `id` (AREA_UNSHARE, unless the partition released it) and reclaims its
    /// memory.
    pub(crate) fn unshare_area(&self, id: u16) -> Result {
        let area = {
            let mut areas = self.areas.lock();
            let pos = areas.iter().position(|a| a.id == id).ok_or(ENOENT)?;
            areas.remove(pos).map_err(|_| ENOENT)?
        };
        self.withdraw(area)
    }

    fn withdraw(&self, area: SharedArea) -> Result {
        if !area.released {
            let page_count = u32::try_from(area.memory.pages().len()).map_err(|_| EINVAL)?;
            let desc = Area {
                area_id: area.id,
                handle: area.handle,
                tag: 0,
                page_count,
                attributes: 0,
            };
            if let Err(e) = self.area_call(false, desc) {
                crate::bus_warn!(
                    self.partition().device(),
                    "AREA_UNSHARE of area {} failed: {e:?}\n",
                    area.id
                );
            }
        }
        self.reclaim_or_leak(area.handle, area.memory)
    }

    /// Withdraws every area (at removal).
    pub(crate) fn unshare_all(&self) {
        let areas = core::mem::take(&mut *self.areas.lock());
        for area in areas {
            let _ = self.withdraw(area);
        }
    }

    /// AREA_RELEASE: the partition no longer uses area `id`.
    pub(crate) fn area_released(&self, id: u16) -> Result {
        let mut areas = self.areas.lock();
        let area = areas.iter_mut().find(|a| a.id == id).ok_or(ENOENT)?;
        area.released = true;
        Ok(())
    }
}
