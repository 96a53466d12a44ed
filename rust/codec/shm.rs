// SPDX-License-Identifier: GPL-2.0

//! Messages specific to this project's shared-memory mailbox bus: VERSION and RESET.
//!
//! VERSION negotiates, once per bus instance, the transport revision, the maximum message
//! size and the transport feature bits; RESET undoes it and tears down every device.

use zerocopy::little_endian::{U32, U64};

use super::error::{DecodeError, EncodeError};
use super::header::TYPE_RESPONSE;
use super::wire::{wire_struct, Reader, Sink};

/// Message ids of shared-memory bus messages (type bit 1 set, ids 0x80-0xBF).
pub mod id {
    /// VERSION: propose a revision, a maximum message size and features.
    pub const VERSION: u8 = 0x80;
    /// RESET: forget the negotiated version and tear down every device.
    pub const RESET: u8 = 0x81;
}

/// Outcome of a VERSION proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStatus {
    /// The proposal is accepted as the response states it.
    Accepted,
    /// The device side does not implement the proposed revision.
    RevisionUnsupported,
    /// The resulting maximum message size is below the revision's minimum.
    SizeUnsupported,
    /// A version is already negotiated; RESET first.
    AlreadyNegotiated,
}

impl VersionStatus {
    /// Returns the wire value.
    pub const fn to_wire(self) -> u32 {
        match self {
            Self::Accepted => 0,
            Self::RevisionUnsupported => 1,
            Self::SizeUnsupported => 2,
            Self::AlreadyNegotiated => 3,
        }
    }

    /// Parses a wire value.
    pub const fn from_wire(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Accepted),
            1 => Some(Self::RevisionUnsupported),
            2 => Some(Self::SizeUnsupported),
            3 => Some(Self::AlreadyNegotiated),
            _ => None,
        }
    }
}

/// The values a VERSION exchange negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionTerms {
    /// Transport revision.
    pub revision: u32,
    /// Maximum message size: the sender's limit in a request, the agreed one in a response.
    pub max_msg_size: u32,
    /// Transport feature bits: proposed in a request, accepted in a response.
    pub features: u64,
}

/// A shared-memory bus message (type bit 1 set, dev_num 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmBusMessage {
    /// VERSION request from the driver side.
    VersionRequest(VersionTerms),
    /// VERSION response from the device side.
    VersionResponse {
        /// The terms in force if `status` is [`VersionStatus::Accepted`].
        terms: VersionTerms,
        /// Whether the proposal was accepted.
        status: VersionStatus,
    },
    /// RESET request.
    ResetRequest,
    /// RESET response.
    ResetResponse {
        /// 0 on success.
        status: u32,
    },
}

wire_struct! {
    /// VERSION request payload.
    VersionWire { revision: U32, max_msg_size: U32, features: U64 } = 16
}

impl VersionWire {
    fn from_terms(t: &VersionTerms) -> Self {
        Self {
            revision: t.revision.into(),
            max_msg_size: t.max_msg_size.into(),
            features: t.features.into(),
        }
    }

    fn terms(&self) -> VersionTerms {
        VersionTerms {
            revision: self.revision.get(),
            max_msg_size: self.max_msg_size.get(),
            features: self.features.get(),
        }
    }
}

/// Decodes the payload of a shared-memory bus message whose header has `msg_type` and
/// `msg_id`.
pub(crate) fn decode(
    msg_type: u8,
    msg_id: u8,
    r: &mut Reader<'_>,
) -> Result<ShmBusMessage, DecodeError> {
    let response = msg_type & TYPE_RESPONSE != 0;
    let msg = match (msg_id, response) {
        (id::VERSION, false) => ShmBusMessage::VersionRequest(r.take::<VersionWire>()?.terms()),
        (id::VERSION, true) => {
            let terms = r.take::<VersionWire>()?.terms();
            let status = VersionStatus::from_wire(r.take::<U32>()?.get())
                .ok_or(DecodeError::FieldOutOfRange { field: "status" })?;
            ShmBusMessage::VersionResponse { terms, status }
        }
        (id::RESET, false) => ShmBusMessage::ResetRequest,
        (id::RESET, true) => ShmBusMessage::ResetResponse {
            status: r.take::<U32>()?.get(),
        },
        _ => return Err(DecodeError::UnknownId { msg_type, msg_id }),
    };
    Ok(msg)
}

impl ShmBusMessage {
    /// Returns the message id.
    pub const fn msg_id(&self) -> u8 {
        match self {
            Self::VersionRequest(_) | Self::VersionResponse { .. } => id::VERSION,
            Self::ResetRequest | Self::ResetResponse { .. } => id::RESET,
        }
    }

    /// Returns whether this is a response.
    pub const fn is_response(&self) -> bool {
        matches!(
            self,
            Self::VersionResponse { .. } | Self::ResetResponse { .. }
        )
    }

    /// Writes the payload.
    pub(crate) fn write_payload<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        match self {
            Self::VersionRequest(terms) => s.put_struct(&VersionWire::from_terms(terms)),
            Self::VersionResponse { terms, status } => {
                s.put_struct(&VersionWire::from_terms(terms))?;
                s.put_struct(&U32::new(status.to_wire()))
            }
            Self::ResetRequest => Ok(()),
            Self::ResetResponse { status } => s.put_struct(&U32::new(*status)),
        }
    }
}
