// SPDX-License-Identifier: GPL-2.0

//! Bringing a bus instance up: RESET, VERSION (ALP2, then ALP1), the event method
//! (EVENT_CONFIGURE), GET_DEVICES discovery and registration with the transport.

use crate::{
    link::{Alp, BusSide, EventMode, Link, Negotiated, Reply},
    partition::Partition,
    vmsg::{
        bus::{
            client::{
                devices_window_answer, devices_window_request, discover_devices, BusRegistration,
            },
            Terms,
        },
        codec::{
            ffa::{
                EventMethod, FfaBusMessage, ALP1_PROTO_VERSION, BUS_F_DIRECT_TX, BUS_F_NOTIF_RX,
                DIRECT_MSG_MAX_SIZE,
            },
            negotiate_max_msg_size, Layout, Message, TRANSPORT_FEATURES_REVISION_1,
            TRANSPORT_REVISION_1,
        },
        errno::eproto,
        window_memory::{SharedWindow, WindowMemory},
    },
};
use kernel::{page::Page, prelude::*, sync::Arc};

/// Bus version of the ALP2 VERSION layout (DEN0153 ALP2), proposed first.
pub(crate) const BUS_VERSION_ALP2: u32 = 2;

impl<P: Partition> Link<P> {
    /// Resets the bus instance (RESET): the partition drops every device and the negotiated
    /// terms. `EOPNOTSUPP`-like refusal is reported as `EPERM`.
    pub(crate) fn reset_bus(&self) -> Result {
        let reply = self.bus_call(Message::Ffa(FfaBusMessage::ResetRequest), |m| match m {
            Message::Ffa(FfaBusMessage::ResetResponse { result }) => Some(result),
            _ => None,
        })?;
        match reply {
            Reply::Answer(0) => {
                self.set_negotiated(None);
                Ok(())
            }
            Reply::Answer(result) => {
                crate::bus_warn!(
                    self.partition().device(),
                    "partition failed RESET (result {result})\n"
                );
                Err(EIO)
            }
            Reply::Refused => Err(EPERM),
        }
    }

    /// VERSION in the ALP2 layout. `None` when the partition refuses it (ERROR, or an answer
    /// in the ALP1 layout).
    fn version_alp2(&self, our_max: u16) -> Result<Option<Negotiated>> {
        let reply = self.bus_call(
            Message::Ffa(FfaBusMessage::VersionRequest {
                bus_version: BUS_VERSION_ALP2,
                transport_revision: TRANSPORT_REVISION_1,
                ffa_version: self.partition().ffa_version(),
            }),
            |m| match m {
                Message::Ffa(FfaBusMessage::VersionResponse(info)) => Some(Some(info)),
                Message::Ffa(FfaBusMessage::VersionAlp1Response { .. }) => Some(None),
                _ => None,
            },
        )?;
        let info = match reply {
            Reply::Answer(Some(info)) => info,
            Reply::Answer(None) | Reply::Refused => return Ok(None),
        };
        if info.bus_version != BUS_VERSION_ALP2 || info.transport_revision != TRANSPORT_REVISION_1 {
            crate::bus_err!(
                self.partition().device(),
                "partition accepted VERSION with other terms (bus version {}, transport revision {})\n",
                info.bus_version,
                info.transport_revision
            );
            return Err(eproto());
        }
        if info.bus_features & BUS_F_DIRECT_TX == 0 {
            crate::bus_err!(
                self.partition().device(),
                "partition takes no direct messages (bus features {:#x}); indirect messaging is not supported\n",
                info.bus_features
            );
            return Err(ENODEV);
        }
        Ok(Some(Negotiated {
            terms: Terms {
                revision: TRANSPORT_REVISION_1,
                max_msg_size: our_max,
                features: info.transport_features & TRANSPORT_FEATURES_REVISION_1,
                layout: Layout::Revision1,
            },
            alp: Alp::Alp2,
            bus_features: info.bus_features,
            max_areas: info.max_areas,
        }))
    }

    /// VERSION in the ALP1 layout; `None` when refused. ALP1 partitions predate the
    /// revision 1 payload layout and speak the late-2025 one; they announce no features.
    fn version_alp1(&self, our_max: u16) -> Result<Option<Negotiated>> {
        let reply = self.bus_call(
            Message::Ffa(FfaBusMessage::VersionAlp1Request {
                transport_revision: TRANSPORT_REVISION_1,
            }),
            |m| match m {
                Message::Ffa(FfaBusMessage::VersionAlp1Response { transport_revision }) => {
                    Some(transport_revision)
                }
                _ => None,
            },
        )?;
        match reply {
            Reply::Refused => Ok(None),
            Reply::Answer(TRANSPORT_REVISION_1) => Ok(Some(Negotiated {
                terms: Terms {
                    revision: TRANSPORT_REVISION_1,
                    max_msg_size: our_max,
                    features: 0,
                    layout: Layout::Late2025,
                },
                alp: Alp::Alp1,
                bus_features: BUS_F_DIRECT_TX,
                max_areas: 0,
            })),
            Reply::Answer(other) => {
                crate::bus_err!(
                    self.partition().device(),
                    "partition accepted ALP1 VERSION with transport revision {other}\n"
                );
                Err(eproto())
            }
        }
    }

    /// Negotiates with VERSION, ALP2 first, ALP1 when that is refused. The result holds until
    /// a bus RESET: a second negotiation before it fails with `EBUSY`.
    pub(crate) fn negotiate(&self) -> Result<Negotiated> {
        if self.negotiated().is_some() {
            return Err(EBUSY);
        }
        let our_max = negotiate_max_msg_size(
            TRANSPORT_REVISION_1,
            u32::from(self.config.max_msg_size),
            u32::from(DIRECT_MSG_MAX_SIZE),
        )
        .ok_or(EINVAL)?;
        let negotiated = match self.version_alp2(our_max)? {
            Some(n) => n,
            None => match self.version_alp1(our_max)? {
                Some(n) => n,
                None => {
                    crate::bus_err!(
                        self.partition().device(),
                        "partition refused VERSION: tried ALP2 (bus version {BUS_VERSION_ALP2}) and ALP1 (protocol version {ALP1_PROTO_VERSION:#x}), transport revision {TRANSPORT_REVISION_1}\n"
                    );
                    return Err(ENODEV);
                }
            },
        };
        self.set_negotiated(Some(negotiated));
        Ok(negotiated)
    }

    fn event_configure(&self, method: EventMethod, notification_id: u16) -> Result<Reply<()>> {
        self.bus_call(
            Message::Ffa(FfaBusMessage::EventConfigureRequest {
                method,
                notification_id,
            }),
            |m| match m {
                Message::Ffa(FfaBusMessage::EventConfigureResponse) => Some(()),
                _ => None,
            },
        )
    }

    /// Chooses how the partition signals events: an FF-A notification when it offers one
    /// (ALP2 bus feature NOTIF_RX) and Linux can bind it, polling otherwise.
    pub(crate) fn configure_events(self: &Arc<Self>, n: &Negotiated) -> Result<EventMode> {
        let id = self.config.notification_id;
        if n.alp == Alp::Alp2 && n.bus_features & BUS_F_NOTIF_RX != 0 {
            match self.request_notification() {
                Ok(()) => match self.event_configure(EventMethod::Notification, id.into()) {
                    Ok(Reply::Answer(())) => return Ok(EventMode::Notification),
                    Ok(Reply::Refused) => {
                        crate::bus_info!(
                            self.partition().device(),
                            "partition refused notification {id} for events; polling\n"
                        );
                        self.partition().notify_relinquish();
                    }
                    Err(e) => {
                        self.partition().notify_relinquish();
                        return Err(e);
                    }
                },
                Err(e) => crate::bus_info!(
                    self.partition().device(),
                    "FF-A notification {id} unavailable ({e:?}); polling\n"
                ),
            }
        }
        if n.alp == Alp::Alp2 && self.event_configure(EventMethod::Poll, 0)? == Reply::Refused {
            crate::bus_warn!(
                self.partition().device(),
                "partition refused polled events; polling anyway\n"
            );
        }
        Ok(EventMode::Poll)
    }

    /// Discovers the device numbers present.
    pub(crate) fn discover(&self) -> Result<KVec<u16>> {
        discover_devices(|offset| {
            match self.bus_call(devices_window_request(offset), |m| {
                devices_window_answer(offset, m)
            })? {
                Reply::Answer(window) => Ok(window),
                _ => {
                    crate::bus_err!(self.partition().device(), "partition refused GET_DEVICES\n");
                    Err(eproto())
                }
            }
        })
    }

    fn try_bring_up(self: &Arc<Self>) -> Result {
        // A previous instance (module reload, kexec) may have negotiated: start clean. Older
        // partitions may not know RESET; that is not fatal.
        match self.reset_bus() {
            Err(e) if e != EPERM => return Err(e),
            _ => {}
        }
        let n = self.negotiate()?;
        let mode = self.configure_events(&n)?;
        let devices = self.discover()?;
        crate::bus_info!(
            self.partition().device(),
            "bus up: {:?}, transport revision {}, max message {} bytes, bus features {:#x}, events by {:?}, {} device(s)\n",
            n.alp,
            n.terms.revision,
            n.terms.max_msg_size,
            n.bus_features,
            mode,
            devices.len()
        );
        let side = Arc::new(BusSide(self.clone()), GFP_KERNEL)?;
        let registration = Arc::new(
            BusRegistration::new(self.partition().device(), n.terms, side)?,
            GFP_KERNEL,
        )?;
        if self.config.window_pages > 0 {
            if let Err(e) = self.share_window(&registration, n.max_areas) {
                crate::bus_warn!(
                    self.partition().device(),
                    "no window shared ({e:?}): devices get the DMA layer's addresses, which the partition must reach by itself\n"
                );
            }
        }
        self.set_registration(Some(registration));
        self.start_events(mode);
        // In the device work item: devices that never answer, or many of them, keep neither
        // the probe of the bus device nor its removal waiting.
        self.add_devices_later(devices);
        Ok(())
    }

    /// Shares `config.window_pages` pages as an area and makes them the instance's window: the
    /// transport places virtqueues there and bounces buffers through it, at bus addresses
    /// `area_id << 48 | offset`.
    fn share_window(&self, registration: &BusRegistration<BusSide<P>>, max_areas: u16) -> Result {
        if max_areas == 0 {
            return Err(ENOSPC);
        }
        let mut pages = KVec::with_capacity(self.config.window_pages, GFP_KERNEL)?;
        for _ in 0..self.config.window_pages {
            pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        let id = self.share_area(pages)?;
        let memory: Arc<dyn WindowMemory> = self.area_memory(id).ok_or(ENOENT)?;
        let window = KBox::new(SharedWindow::from_arc(memory), GFP_KERNEL)?;
        if let Err(e) = registration.set_window(window, u64::from(id) << 48) {
            let _ = self.unshare_area(id);
            return Err(e);
        }
        Ok(())
    }

    /// Brings the instance up; on failure it is shut down again.
    pub(crate) fn bring_up(self: &Arc<Self>) -> Result {
        self.try_bring_up().inspect_err(|_| self.shutdown())
    }
}
