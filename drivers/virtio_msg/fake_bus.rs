// SPDX-License-Identifier: GPL-2.0

//! An in-kernel fake bus and device side, for the transport's KUnit tests.
//!
//! It answers transport requests from a small device model with the shared codec, and can be
//! told to misbehave the ways a real device side can.

use crate::{
    link::{self, BusLink, BusTerms},
    vmsg::codec::{
        transport::{DeviceInfo, TransportMessage, VqueueInfo, VQUEUE_INFO_ENABLED},
        Frame, Layout, Message,
    },
};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::{new_mutex, prelude::*, sync::Mutex};
use zerocopy::{little_endian::U32, FromBytes};

/// Config space size of the fake device.
pub(crate) const CONFIG_SIZE: usize = 100;
/// Queues of the fake device.
pub(crate) const QUEUES: usize = 2;

/// Ways the fake device side misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fault {
    /// Behaves.
    None,
    /// Never answers.
    Timeout,
    /// The bus cannot reach the device side any more.
    BusDown,
    /// The bus is short of memory for this one request.
    NoMemory,
    /// Answers with a different message id.
    WrongId,
    /// Answers for another device number.
    WrongDevNum,
    /// Answers with the last byte cut off.
    Truncated,
    /// Reports queue sizes no split ring can have.
    HugeQueue,
    /// Reads a queue back with another size than was set.
    WrongReadBack,
}

/// The fake device's state.
pub(crate) struct Model {
    pub(crate) info: DeviceInfo,
    pub(crate) config: [u8; CONFIG_SIZE],
    pub(crate) generation: u32,
    /// Bump the generation when this many more GET_CONFIG requests have been answered.
    pub(crate) bump_after: Option<u32>,
    /// Bump the generation on every GET_CONFIG (a config that never settles).
    pub(crate) always_bump: bool,
    pub(crate) features: [u32; 4],
    pub(crate) driver_features: [u32; 4],
    pub(crate) status: u32,
    /// Every status the driver set, in order (up to 16).
    pub(crate) status_log: KVec<u32>,
    pub(crate) queues: [VqueueInfo; QUEUES],
    pub(crate) fault: Fault,
    /// After a reset, status reads keep answering the status from before it.
    pub(crate) sticky_status: bool,
}

/// The fake bus: a [`BusLink`] backed by a [`Model`].
#[pin_data]
pub(crate) struct FakeBus {
    terms: BusTerms,
    #[pin]
    pub(crate) model: Mutex<Model>,
    pub(crate) requests: AtomicU32,
    pub(crate) events: AtomicU32,
    /// Events are refused with `EAGAIN`, as by a bus whose ring is full.
    pub(crate) events_full: AtomicBool,
    /// The next this many events are refused with `EAGAIN`, then there is room again.
    pub(crate) refuse_events: AtomicU32,
}

impl FakeBus {
    /// A fake bus with maximum message size `max_msg_size` and device type `device_id`.
    pub(crate) fn new(max_msg_size: u16, device_id: u32) -> impl PinInit<Self, Error> {
        let mut config = [0u8; CONFIG_SIZE];
        for (i, b) in config.iter_mut().enumerate() {
            *b = i as u8;
        }
        let queue = |index: u32| VqueueInfo {
            index,
            max_size: 256,
            ..VqueueInfo::default()
        };
        let model = Model {
            info: DeviceInfo {
                device_id,
                vendor_id: 0x1af4,
                num_feature_blocks: 4,
                config_size: CONFIG_SIZE as u32,
                max_virtqueues: QUEUES as u32,
                ..DeviceInfo::default()
            },
            config,
            generation: 1,
            bump_after: None,
            always_bump: false,
            features: [0x1, 0x2, 0x4, 0x8],
            driver_features: [0; 4],
            status: 0,
            status_log: KVec::new(),
            queues: [queue(0), queue(1)],
            fault: Fault::None,
            sticky_status: false,
        };
        try_pin_init!(Self {
            terms: BusTerms {
                revision: 1,
                max_msg_size,
                features: 0,
                layout: Layout::Revision1,
            },
            model <- new_mutex!(model),
            requests: AtomicU32::new(0),
            events: AtomicU32::new(0),
            events_full: AtomicBool::new(false),
            refuse_events: AtomicU32::new(0),
        })
    }

    /// Answers one decoded request from the model.
    fn answer<'a>(
        m: &mut Model,
        req: TransportMessage<'_>,
        data: &'a mut [u8],
    ) -> TransportMessage<'a> {
        match req {
            TransportMessage::GetDeviceInfoRequest => {
                TransportMessage::GetDeviceInfoResponse(m.info)
            }
            TransportMessage::GetDeviceFeaturesRequest {
                block_index,
                num_blocks,
            } => {
                let blocks = data.len() / 4;
                let n = (num_blocks as usize).min(blocks);
                let (words, _) = <[U32]>::mut_from_prefix_with_elems(data, n).unwrap_or_default();
                for (i, w) in words.iter_mut().enumerate() {
                    *w = U32::new(
                        m.features
                            .get(block_index as usize + i)
                            .copied()
                            .unwrap_or(0),
                    );
                }
                TransportMessage::GetDeviceFeaturesResponse {
                    block_index,
                    features: words,
                }
            }
            TransportMessage::SetDriverFeaturesRequest {
                block_index,
                features,
            } => {
                for (i, f) in features.iter().enumerate() {
                    if let Some(d) = m.driver_features.get_mut(block_index as usize + i) {
                        *d = f.get();
                    }
                }
                TransportMessage::SetDriverFeaturesResponse
            }
            TransportMessage::GetConfigRequest { offset, length } => {
                let generation = m.generation;
                if m.always_bump {
                    m.generation += 1;
                }
                if let Some(n) = m.bump_after.as_mut() {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        m.generation += 1;
                        m.bump_after = None;
                    }
                }
                let start = offset as usize;
                let src = m.config.get(start..start + length as usize).unwrap_or(&[]);
                let dst = data.get_mut(..src.len()).unwrap_or_default();
                dst.copy_from_slice(src);
                TransportMessage::GetConfigResponse {
                    generation,
                    offset,
                    data: dst,
                }
            }
            TransportMessage::SetConfigRequest {
                offset, data: src, ..
            } => {
                let start = offset as usize;
                let applied = match m.config.get_mut(start..start + src.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(src);
                        src.len() as u32
                    }
                    None => 0,
                };
                TransportMessage::SetConfigResponse {
                    generation: m.generation,
                    offset,
                    length: applied,
                }
            }
            TransportMessage::GetDeviceStatusRequest => {
                let status = match m.status_log.iter().rev().nth(1) {
                    Some(&before) if m.sticky_status && m.status == 0 => before,
                    _ => m.status,
                };
                TransportMessage::GetDeviceStatusResponse { status }
            }
            TransportMessage::SetDeviceStatusRequest { status } => {
                m.status = status;
                if m.status_log.len() < 16 {
                    let _ = m.status_log.push(status, GFP_KERNEL);
                }
                TransportMessage::SetDeviceStatusResponse { status }
            }
            TransportMessage::GetVqueueRequest { index } => {
                let mut info = m.queues.get(index as usize).copied().unwrap_or_default();
                info.index = index;
                if m.fault == Fault::HugeQueue {
                    info.max_size = 1 << 20;
                }
                if m.fault == Fault::WrongReadBack {
                    info.cur_size /= 2;
                }
                TransportMessage::GetVqueueResponse(info)
            }
            TransportMessage::SetVqueueRequest(setup) => {
                if let Some(q) = m.queues.get_mut(setup.index as usize) {
                    if setup.flags & 0b11 == 1 {
                        q.flags = VQUEUE_INFO_ENABLED;
                        q.cur_size = setup.size;
                        q.desc_addr = setup.desc_addr;
                        q.driver_addr = setup.driver_addr;
                        q.device_addr = setup.device_addr;
                    } else {
                        q.flags = 0;
                    }
                }
                TransportMessage::SetVqueueResponse
            }
            TransportMessage::GetShmRequest { shmid } => {
                TransportMessage::GetShmResponse(crate::vmsg::codec::transport::ShmRegion {
                    shmid,
                    ..Default::default()
                })
            }
            _ => TransportMessage::ResetVqueueResponse,
        }
    }
}

impl BusLink for FakeBus {
    fn terms(&self) -> BusTerms {
        self.terms
    }

    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let codec = link::transport_codec(&self.terms);
        let frame = codec.decode(req).map_err(|_| EINVAL)?;
        let Message::Transport(request) = frame.message else {
            return Err(EINVAL);
        };
        let mut m = self.model.lock();
        let mut data = [0u8; 256];
        let answer = Self::answer(&mut m, request, &mut data);
        let mut out = Frame::transport(frame.dev_num, answer);
        out.token = frame.token;
        match m.fault {
            Fault::Timeout => return Err(ETIMEDOUT),
            Fault::BusDown => return Err(EIO),
            Fault::NoMemory => return Err(ENOMEM),
            Fault::WrongId => out.message = Message::Transport(TransportMessage::SetVqueueResponse),
            Fault::WrongDevNum => out.dev_num = out.dev_num.wrapping_add(1),
            _ => {}
        }
        let n = codec.encode(&out, resp).map_err(|_| EINVAL)?;
        Ok(if m.fault == Fault::Truncated {
            n.saturating_sub(1)
        } else {
            n
        })
    }

    fn send_event(&self, _msg: &[u8]) -> Result {
        let refused = self
            .refuse_events
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if self.events_full.load(Ordering::Relaxed) || refused.is_ok() {
            return Err(EAGAIN);
        }
        self.events.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
