// SPDX-License-Identifier: GPL-2.0

//! The bus-level exchanges at probe: VERSION (with step-down) and GET_DEVICES discovery.

use crate::vmsg::errno::{ebadmsg, eproto};
use crate::{
    link::ShmLink,
    vmsg::{
        bus::{
            client::{devices_window_answer, devices_window_request, discover_devices, BusOps},
            Terms,
        },
        codec::{
            bus::BusMessage,
            min_msg_size, negotiate_max_msg_size,
            shm::{ShmBusMessage, VersionStatus, VersionTerms},
            BusKind, Codec, Frame, Layout, Message, MAX_MSG_SIZE,
        },
    },
};
use kernel::prelude::*;

/// Transport revisions this driver implements, newest first.
const REVISIONS: [u32; 1] = [1];

/// Sends bus request `msg` and returns the decoded response, which must answer it.
fn bus_call<R>(
    link: &ShmLink,
    msg: Message<'_>,
    take: impl FnOnce(Message<'_>) -> Option<R>,
) -> Result<R> {
    let codec = Codec::new(BusKind::SharedMemory);
    let mut req = [0u8; 32];
    let mut resp = KVec::from_elem(0u8, usize::from(MAX_MSG_SIZE), GFP_KERNEL)?;
    let request = Frame::bus(0, msg);
    let n = codec.encode(&request, &mut req).map_err(|_| EINVAL)?;
    let len = link.request(req.get(..n).ok_or(EINVAL)?, &mut resp)?;
    let frame = codec
        .decode(resp.get(..len).ok_or(EINVAL)?)
        .map_err(|_| ebadmsg())?;
    if !frame.message.answers(&request.message) {
        return Err(ebadmsg());
    }
    take(frame.message).ok_or(ebadmsg())
}

fn version(link: &ShmLink, proposal: VersionTerms) -> Result<(VersionStatus, VersionTerms)> {
    bus_call(
        link,
        Message::Shm(ShmBusMessage::VersionRequest(proposal)),
        |m| match m {
            Message::Shm(ShmBusMessage::VersionResponse { terms, status }) => Some((status, terms)),
            _ => None,
        },
    )
}

fn reset(link: &ShmLink) -> Result {
    bus_call(
        link,
        Message::Shm(ShmBusMessage::ResetRequest),
        |m| match m {
            Message::Shm(ShmBusMessage::ResetResponse { status: 0 }) => Some(()),
            _ => None,
        },
    )
}

/// Negotiates revision and maximum message size, newest revision first, stepping down while
/// the device side refuses a revision. The result holds until a bus reset.
pub(crate) fn negotiate(link: &ShmLink, our_max: u32) -> Result<Terms> {
    // Never propose what no revision allows; the device side should not have to say no.
    let smallest = REVISIONS
        .iter()
        .filter_map(|r| min_msg_size(*r))
        .min()
        .unwrap_or(u16::MAX);
    if our_max < u32::from(smallest) {
        dev_err!(
            link.device(),
            "max_msg_size {our_max} is below the minimum message size {smallest}\n"
        );
        return Err(EINVAL);
    }
    let mut reset_done = false;
    let mut tried = 0;
    let mut index = 0;
    while let Some(&revision) = REVISIONS.get(index) {
        let proposal = VersionTerms {
            revision,
            max_msg_size: our_max,
            features: 0,
        };
        let (status, terms) = version(link, proposal).inspect_err(|e| {
            dev_err!(
                link.device(),
                "VERSION (revision {revision}) got no valid answer: {e:?}\n"
            );
        })?;
        tried += 1;
        match status {
            VersionStatus::Accepted => {
                let max = negotiate_max_msg_size(revision, our_max, terms.max_msg_size)
                    .filter(|m| u32::from(*m) == terms.max_msg_size);
                let Some(max_msg_size) = max else {
                    dev_err!(
                        link.device(),
                        "device side accepted revision {revision} with max message size {}, outside what was proposed\n",
                        terms.max_msg_size
                    );
                    return Err(eproto());
                };
                if terms.revision != revision || terms.features & !proposal.features != 0 {
                    dev_err!(
                        link.device(),
                        "device side accepted other terms than proposed\n"
                    );
                    return Err(eproto());
                }
                return Ok(Terms {
                    revision,
                    max_msg_size,
                    features: terms.features,
                    layout: Layout::Revision1,
                });
            }
            VersionStatus::RevisionUnsupported => index += 1,
            VersionStatus::SizeUnsupported => {
                dev_err!(
                    link.device(),
                    "device side refused max message size {our_max}\n"
                );
                return Err(EINVAL);
            }
            VersionStatus::AlreadyNegotiated if !reset_done => {
                reset(link)?;
                reset_done = true;
            }
            VersionStatus::AlreadyNegotiated => return Err(eproto()),
        }
    }
    dev_err!(
        link.device(),
        "device side accepted no revision (tried {tried}: {:?})\n",
        REVISIONS
    );
    Err(ENODEV)
}

/// Discovers the device numbers present.
pub(crate) fn discover(link: &ShmLink) -> Result<KVec<u16>> {
    discover_devices(|offset| {
        bus_call(link, devices_window_request(offset), |m| {
            devices_window_answer(offset, m)
        })
    })
}

/// Sends PING with `data` and checks that the device side echoes it.
pub(crate) fn ping(link: &ShmLink, data: u32) -> Result {
    bus_call(
        link,
        Message::Bus(BusMessage::PingRequest { data }),
        |m| match m {
            Message::Bus(BusMessage::PingResponse { data: echo }) if echo == data => Some(()),
            _ => None,
        },
    )
}
