// SPDX-License-Identifier: GPL-2.0

//! A device-role partition in memory, for the KUnit tests: it answers direct messages the way
//! the partition side of DEN0153 would, and can be told to refuse, stall or misbehave.

use crate::{
    link::Alp,
    partition::{EventSink, Partition, DIRECT_SIZE},
    vmsg::codec::{
        bus::{BusMessage, DeviceState},
        ffa::{
            Area, AreaResult, EventMethod, FfaBusMessage, VersionInfo, BUS_F_DIRECT_RX,
            BUS_F_DIRECT_TX, BUS_F_NOTIF_RX,
        },
        frame,
        transport::{DeviceInfo, TransportMessage},
        BusKind, Codec, Frame, Layout, Message,
    },
};
use kernel::{
    new_mutex,
    page::Page,
    prelude::*,
    sync::{Arc, Mutex},
};

/// What the fake partition does and what it saw.
pub(crate) struct Model {
    // Behaviour.
    /// Accepts the ALP2 VERSION layout.
    pub(crate) alp2: bool,
    /// Accepts the ALP1 VERSION layout.
    pub(crate) alp1: bool,
    /// Bus features announced in the ALP2 VERSION response.
    pub(crate) bus_features: u64,
    /// Areas announced in the ALP2 VERSION response.
    pub(crate) max_areas: u16,
    /// Device numbers present.
    pub(crate) devices: KVec<u16>,
    /// Refuses EVENT_CONFIGURE with the notification method.
    pub(crate) refuse_notification: bool,
    /// Error of `notify_request`, if any.
    pub(crate) notify_error: Option<Error>,
    /// Answers this many direct messages with "busy" first.
    pub(crate) busy: u32,
    /// Answers every direct message with "busy": the partition stopped answering.
    pub(crate) dead: bool,
    /// Answers with all-zero registers.
    pub(crate) garbage: bool,
    /// Answers with a token other than the request's.
    pub(crate) wrong_token: bool,
    /// Answers GET_DEVICE_STATUS with ERROR.
    pub(crate) refuse_status: bool,
    /// Error of `FFA_MEM_SHARE`, if any.
    pub(crate) share_error: Option<Error>,
    /// Answers this many AREA_SHARE requests with "busy" first.
    pub(crate) area_busy: u32,
    /// Result of AREA_SHARE once not busy.
    pub(crate) area_result: AreaResult,
    // State.
    /// The VERSION layout accepted since the last RESET.
    pub(crate) negotiated: Option<Alp>,
    /// Events waiting for EVENT_POLL, encoded.
    pub(crate) pending: KVec<KVec<u8>>,
    /// Memory handles shared and not reclaimed.
    pub(crate) shared: KVec<u64>,
    next_handle: u64,
    // What it saw.
    /// Direct messages, busy answers included.
    pub(crate) calls: u32,
    /// VERSION proposals in order: 2 for ALP2, 1 for ALP1.
    pub(crate) versions: KVec<u8>,
    pub(crate) resets: u32,
    pub(crate) event_config: Option<(EventMethod, u16)>,
    pub(crate) get_devices: u32,
    /// Device numbers GET_DEVICE_INFO asked about.
    pub(crate) info_requests: KVec<u16>,
    pub(crate) polls: u32,
    /// EVENT_AVAIL received: (device number, queue).
    pub(crate) kicks: KVec<(u16, u32)>,
    /// Areas announced and not withdrawn.
    pub(crate) areas: KVec<Area>,
    pub(crate) reclaimed: KVec<u64>,
}

impl Model {
    /// An ALP2 partition with direct messages both ways, notifications and 4 areas.
    pub(crate) fn alp2() -> Self {
        Self {
            alp2: true,
            alp1: true,
            bus_features: BUS_F_DIRECT_RX | BUS_F_DIRECT_TX | BUS_F_NOTIF_RX,
            max_areas: 4,
            devices: KVec::new(),
            refuse_notification: false,
            notify_error: None,
            busy: 0,
            dead: false,
            garbage: false,
            wrong_token: false,
            refuse_status: false,
            share_error: None,
            area_busy: 0,
            area_result: AreaResult::Ok,
            negotiated: None,
            pending: KVec::new(),
            shared: KVec::new(),
            next_handle: 0x1000,
            calls: 0,
            versions: KVec::new(),
            resets: 0,
            event_config: None,
            get_devices: 0,
            info_requests: KVec::new(),
            polls: 0,
            kicks: KVec::new(),
            areas: KVec::new(),
            reclaimed: KVec::new(),
        }
    }

    /// An older partition that only knows the ALP1 VERSION layout.
    pub(crate) fn alp1() -> Self {
        Self {
            alp2: false,
            ..Self::alp2()
        }
    }

    fn codec(&self) -> Codec {
        let mut codec = Codec::new(BusKind::Ffa);
        if self.negotiated == Some(Alp::Alp1) {
            codec.layout = Layout::Late2025;
        }
        codec
    }

    /// Answers one direct message.
    fn serve(&mut self, req: &[u8; DIRECT_SIZE], out: &mut [u8; DIRECT_SIZE]) -> Result {
        let codec = self.codec();
        let msg = frame(req).map_err(|_| EINVAL)?;
        let request = codec.decode(msg).map_err(|_| EINVAL)?;
        if let Message::Ffa(FfaBusMessage::EventPollRequest) = request.message {
            self.polls += 1;
            if !self.pending.is_empty() {
                let event = self.pending.remove(0).map_err(|_| EINVAL)?;
                out.get_mut(..event.len())
                    .ok_or(EINVAL)?
                    .copy_from_slice(&event);
                return Ok(());
            }
        }
        let mut bitmap = [0u8; 32];
        let reply = self.reply(request.dev_num, request.message, &mut bitmap)?;
        let Some(message) = reply else {
            // An event: the answer carries nothing.
            return Ok(());
        };
        let token = if self.wrong_token {
            request.token.wrapping_add(1)
        } else {
            request.token
        };
        let dev_num = if message.is_bus() { 0 } else { request.dev_num };
        let answer = Frame {
            dev_num,
            token,
            message,
        };
        codec.encode(&answer, out).map_err(|_| EINVAL)?;
        Ok(())
    }

    /// Returns the answer to `m`, or `None` for an event.
    fn reply<'a>(
        &mut self,
        dev_num: u16,
        m: Message<'_>,
        bitmap: &'a mut [u8; 32],
    ) -> Result<Option<Message<'a>>> {
        use FfaBusMessage as F;
        let refuse = |id: u8| {
            Some(Message::Ffa(F::Error {
                msg_id: u16::from(id),
            }))
        };
        let id = m.msg_id();
        let answer = match m {
            Message::Ffa(F::VersionRequest { ffa_version, .. }) => {
                self.versions.push(2, GFP_KERNEL)?;
                if !self.alp2 || self.negotiated.is_some() {
                    return Ok(refuse(id));
                }
                self.negotiated = Some(Alp::Alp2);
                Message::Ffa(F::VersionResponse(VersionInfo {
                    bus_version: 2,
                    transport_revision: 1,
                    ffa_version,
                    transport_features: 0,
                    bus_features: self.bus_features,
                    max_areas: self.max_areas,
                }))
            }
            Message::Ffa(F::VersionAlp1Request { transport_revision }) => {
                self.versions.push(1, GFP_KERNEL)?;
                if !self.alp1 || self.negotiated.is_some() || transport_revision != 1 {
                    return Ok(refuse(id));
                }
                self.negotiated = Some(Alp::Alp1);
                Message::Ffa(F::VersionAlp1Response {
                    transport_revision: 1,
                })
            }
            Message::Ffa(F::ResetRequest) => {
                self.resets += 1;
                self.negotiated = None;
                self.event_config = None;
                Message::Ffa(F::ResetResponse { result: 0 })
            }
            Message::Ffa(F::EventConfigureRequest {
                method,
                notification_id,
            }) => {
                if self.negotiated.is_none()
                    || (method == EventMethod::Notification && self.refuse_notification)
                {
                    return Ok(refuse(id));
                }
                self.event_config = Some((method, notification_id));
                Message::Ffa(F::EventConfigureResponse)
            }
            Message::Ffa(F::EventPollRequest) => Message::Ffa(F::EventPollResponse),
            Message::Ffa(F::AreaShareRequest(area)) => {
                let result = if self.area_busy > 0 {
                    self.area_busy -= 1;
                    AreaResult::Busy
                } else {
                    self.area_result
                };
                if result == AreaResult::Ok {
                    self.areas.push(area, GFP_KERNEL)?;
                }
                Message::Ffa(F::AreaShareResponse {
                    area_id: area.area_id,
                    result,
                })
            }
            Message::Ffa(F::AreaUnshareRequest(area)) => {
                self.areas.retain(|a| a.area_id != area.area_id);
                Message::Ffa(F::AreaUnshareResponse {
                    area_id: area.area_id,
                    result: AreaResult::Ok,
                })
            }
            Message::Bus(BusMessage::GetDevicesRequest { offset, count }) => {
                self.get_devices += 1;
                let end = u32::from(offset) + u32::from(count);
                let len = usize::from(count / 8).min(bitmap.len());
                for &n in self.devices.iter() {
                    if (u32::from(offset)..end).contains(&u32::from(n)) {
                        let bit = usize::from(n - offset);
                        if let Some(byte) = bitmap.get_mut(bit / 8) {
                            *byte |= 1 << (bit % 8);
                        }
                    }
                }
                let more = self.devices.iter().any(|&n| u32::from(n) >= end);
                let next_offset = if more {
                    u16::try_from(end).unwrap_or(0)
                } else {
                    0
                };
                return Ok(Some(Message::Bus(BusMessage::GetDevicesResponse {
                    offset,
                    next_offset,
                    bitmap: bitmap.get(..len).ok_or(EINVAL)?,
                })));
            }
            Message::Transport(TransportMessage::GetDeviceInfoRequest) => {
                self.info_requests.push(dev_num, GFP_KERNEL)?;
                // Device id 0: nothing the transport registers with the virtio core.
                Message::Transport(TransportMessage::GetDeviceInfoResponse(
                    DeviceInfo::default(),
                ))
            }
            Message::Transport(TransportMessage::GetDeviceStatusRequest) => {
                if self.refuse_status {
                    return Ok(refuse(id));
                }
                Message::Transport(TransportMessage::GetDeviceStatusResponse { status: 0x0f })
            }
            Message::Transport(TransportMessage::EventAvail { vq_index, .. }) => {
                self.kicks.push((dev_num, vq_index), GFP_KERNEL)?;
                return Ok(None);
            }
            _ => return Ok(refuse(id)),
        };
        Ok(Some(answer))
    }
}

/// The fake partition.
#[pin_data]
pub(crate) struct FakePartition {
    #[pin]
    pub(crate) model: Mutex<Model>,
    #[pin]
    sink: Mutex<Option<Arc<dyn EventSink>>>,
}

impl FakePartition {
    /// Returns an initialiser for a fake partition behaving as `model` says.
    pub(crate) fn new(model: Model) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            model <- new_mutex!(model),
            sink <- new_mutex!(None),
        })
    }

    /// Runs `f` on the model.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        f(&mut self.model.lock())
    }

    /// Returns whether a notification is bound.
    pub(crate) fn notification_bound(&self) -> bool {
        self.sink.lock().is_some()
    }

    /// Makes event `event` pending and, when events are signalled by notification, notifies.
    pub(crate) fn raise(&self, event: &[u8]) -> Result {
        let notify = self.with(|m| -> Result<bool> {
            let mut copy = KVec::new();
            copy.extend_from_slice(event, GFP_KERNEL)?;
            m.pending.push(copy, GFP_KERNEL)?;
            Ok(matches!(
                m.event_config,
                Some((EventMethod::Notification, _))
            ))
        })?;
        let sink = self.sink.lock().clone();
        if let (true, Some(sink)) = (notify, sink) {
            sink.notified();
        }
        Ok(())
    }
}

impl Partition for FakePartition {
    fn direct(&self, regs: &mut [u8; DIRECT_SIZE]) -> Result {
        let mut m = self.model.lock();
        m.calls += 1;
        if m.dead {
            return Err(EBUSY);
        }
        if m.busy > 0 {
            m.busy -= 1;
            return Err(EBUSY);
        }
        let request = *regs;
        *regs = [0; DIRECT_SIZE];
        if m.garbage {
            return Ok(());
        }
        m.serve(&request, regs)
    }

    fn device(&self) -> Option<&kernel::device::Device> {
        None
    }

    fn ffa_version(&self) -> u32 {
        0x0001_0002
    }

    fn notify_request(&self, _id: u8, sink: Arc<dyn EventSink>) -> Result {
        if let Some(e) = self.with(|m| m.notify_error) {
            return Err(e);
        }
        *self.sink.lock() = Some(sink);
        Ok(())
    }

    fn notify_relinquish(&self) {
        let sink = self.sink.lock().take();
        drop(sink);
    }

    fn share(&self, _pages: &[Page], _tag: u64) -> Result<u64> {
        self.with(|m| {
            if let Some(e) = m.share_error {
                return Err(e);
            }
            let handle = m.next_handle;
            m.next_handle += 1;
            m.shared.push(handle, GFP_KERNEL)?;
            Ok(handle)
        })
    }

    fn reclaim(&self, handle: u64) -> Result {
        self.with(|m| {
            let pos = m.shared.iter().position(|h| *h == handle).ok_or(EINVAL)?;
            m.shared.remove(pos).map_err(|_| EINVAL)?;
            m.reclaimed.push(handle, GFP_KERNEL)?;
            Ok(())
        })
    }
}

/// Encodes a device-side event for device `dev_num` (a transport event) or the bus.
pub(crate) fn encode_event(dev_num: u16, message: Message<'_>) -> Result<KVec<u8>> {
    let mut buf = [0u8; DIRECT_SIZE];
    let frame = if message.is_bus() {
        Frame::bus(0, message)
    } else {
        Frame {
            dev_num,
            token: 0,
            message,
        }
    };
    let n = Codec::new(BusKind::Ffa)
        .encode(&frame, &mut buf)
        .map_err(|_| EINVAL)?;
    let mut out = KVec::new();
    out.extend_from_slice(buf.get(..n).ok_or(EINVAL)?, GFP_KERNEL)?;
    Ok(out)
}

/// Encodes EVENT_DEVICE for `dev_num`.
pub(crate) fn event_device(dev_num: u16, state: DeviceState) -> Result<KVec<u8>> {
    encode_event(0, Message::Bus(BusMessage::EventDevice { dev_num, state }))
}
