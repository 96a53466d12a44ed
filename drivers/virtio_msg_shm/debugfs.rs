// SPDX-License-Identifier: GPL-2.0

//! debugfs: `virtio_msg_shm/<pci device>/stats` (the instance's counters) and `rx_budget`
//! (the module parameter of the same name, per instance and writable, so that the receive
//! path can be compared both ways on one running device).

use crate::{link::ShmLink, vmsg::module_dir::InstanceDir};
use core::{fmt, sync::atomic::Ordering};
use kernel::{debugfs::File, prelude::*, sync::Arc, uaccess::UserSliceReader};

/// The debugfs files of one bus instance; removed when dropped.
pub(crate) struct ShmDebugfs {
    _stats: Pin<KBox<File<Arc<ShmLink>>>>,
    _rx_budget: Pin<KBox<File<Arc<ShmLink>>>>,
    _dir: InstanceDir,
}

impl ShmDebugfs {
    /// Creates `virtio_msg_shm/<device>/` for the instance `link` of PCI device `device`.
    pub(crate) fn new(device: &kernel::device::Device, link: &Arc<ShmLink>) -> Result<Self> {
        let dir = InstanceDir::new(c"virtio_msg_shm", device.name());
        let stats = KBox::pin_init(
            dir.read_callback_file(c"stats", link.clone(), &write_stats),
            GFP_KERNEL,
        )?;
        let rx_budget = KBox::pin_init(
            dir.read_write_callback_file(c"rx_budget", link.clone(), &write_budget, &set_budget),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _stats: stats,
            _rx_budget: rx_budget,
            _dir: dir,
        })
    }
}

fn write_stats(link: &Arc<ShmLink>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = &link.stats;
    let get = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    writeln!(f, "broken: {}", link.is_broken())?;
    writeln!(f, "detached: {}", link.is_detached())?;
    writeln!(f, "sent: {}", get(&s.sent))?;
    writeln!(f, "received: {}", s.received())?;
    writeln!(f, "received_in_irq: {}", get(&s.received_in_irq))?;
    writeln!(f, "received_in_thread: {}", get(&s.received_in_thread))?;
    writeln!(f, "received_by_poll: {}", get(&s.received_by_poll))?;
    writeln!(f, "received_in_work: {}", get(&s.received_in_work))?;
    writeln!(f, "rx_deferred: {}", get(&s.rx_deferred))?;
    writeln!(f, "dropped: {}", get(&s.dropped))?;
    writeln!(f, "timeouts: {}", get(&s.timeouts))?;
    writeln!(f, "doorbells: {}", get(&s.doorbells))?;
    writeln!(f, "events_blocked: {}", get(&s.events_blocked))?;
    writeln!(
        f,
        "device_events_dropped: {}",
        get(&s.device_events_dropped)
    )?;
    writeln!(f, "device_events_failed: {}", get(&s.device_events_failed))?;
    writeln!(f, "recoveries: {}", get(&s.recoveries))
}

fn write_budget(link: &Arc<ShmLink>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", link.rx_budget.load(Ordering::Relaxed))
}

fn set_budget(link: &Arc<ShmLink>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 16];
    let len = reader.len();
    let text = buf.get_mut(..len).ok_or(EINVAL)?;
    reader.read_slice(text)?;
    let value = core::str::from_utf8(text)
        .map_err(|_| EINVAL)?
        .trim()
        .parse::<u32>()
        .map_err(|_| EINVAL)?;
    link.rx_budget.store(value, Ordering::Relaxed);
    Ok(())
}
