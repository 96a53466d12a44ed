// SPDX-License-Identifier: GPL-2.0

//! Whole messages: the [`Message`] sum type, the [`Frame`] around it and the [`Codec`]
//! that turns frames into bytes and back.

use super::bus::{self, BusMessage};
use super::compat::Layout;
use super::error::{DecodeError, EncodeError};
use super::ffa::{self, FfaBusMessage};
use super::header::{Header, HEADER_SIZE, TYPE_BUS, TYPE_RESERVED, TYPE_RESPONSE};
use super::limits::MAX_MSG_SIZE;
use super::shm::{self, ShmBusMessage};
use super::transport::{self, TransportMessage};
use super::wire::{Counter, Reader, Sink, SliceWriter};

/// Which bus-specific messages (bus ids 0x80-0xFF) a bus instance carries.
///
/// The bus-specific id ranges overlap between buses, so decoding them needs to know the
/// bus; transport and generic bus messages decode the same on every bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// None: bus-specific ids are rejected as unknown.
    Generic,
    /// This project's shared-memory mailbox bus.
    SharedMemory,
    /// The Arm FF-A bus.
    Ffa,
}

/// Any virtio-msg message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A transport message.
    Transport(TransportMessage<'a>),
    /// A generic bus message.
    Bus(BusMessage<'a>),
    /// A shared-memory bus message.
    Shm(ShmBusMessage),
    /// An FF-A bus message.
    Ffa(FfaBusMessage),
}

impl Message<'_> {
    /// Returns the message id.
    pub const fn msg_id(&self) -> u8 {
        match self {
            Self::Transport(m) => m.msg_id(),
            Self::Bus(m) => m.msg_id(),
            Self::Shm(m) => m.msg_id(),
            Self::Ffa(m) => m.msg_id(),
        }
    }

    /// Returns whether this is a response.
    pub const fn is_response(&self) -> bool {
        match self {
            Self::Transport(m) => m.is_response(),
            Self::Bus(m) => m.is_response(),
            Self::Shm(m) => m.is_response(),
            Self::Ffa(m) => m.is_response(),
        }
    }

    /// Returns whether this is a bus message.
    pub const fn is_bus(&self) -> bool {
        !matches!(self, Self::Transport(_))
    }

    /// Returns the type byte of the header.
    pub const fn msg_type(&self) -> u8 {
        let mut msg_type = 0;
        if self.is_response() {
            msg_type |= TYPE_RESPONSE;
        }
        if self.is_bus() {
            msg_type |= TYPE_BUS;
        }
        msg_type
    }

    /// Returns whether this message is the response to `request`: same namespace, same id,
    /// and `request` is not itself a response.
    ///
    /// An FF-A ERROR answers any request but is not matched here; check for it separately.
    pub const fn answers(&self, request: &Message<'_>) -> bool {
        self.is_response()
            && !request.is_response()
            && self.msg_id() == request.msg_id()
            && self.is_bus() == request.is_bus()
    }
}

/// A message with the header fields its variant does not determine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Device number; must be 0 for bus messages.
    pub dev_num: u16,
    /// Correlation value owned by the bus; the transport sends 0.
    pub token: u16,
    /// The message.
    pub message: Message<'a>,
}

impl<'a> Frame<'a> {
    /// Returns a transport message for device `dev_num` with token 0.
    pub const fn transport(dev_num: u16, message: TransportMessage<'a>) -> Self {
        Self {
            dev_num,
            token: 0,
            message: Message::Transport(message),
        }
    }

    /// Returns a bus message (dev_num 0) with `token`.
    pub const fn bus(token: u16, message: Message<'a>) -> Self {
        Self {
            dev_num: 0,
            token,
            message,
        }
    }
}

/// Encoder and decoder for one bus instance.
///
/// All devices of a bus instance share its layout and maximum message size, so one
/// `Codec` value serves all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// Which bus-specific messages are understood.
    pub bus: BusKind,
    /// Which payload layouts the peer speaks.
    pub layout: Layout,
    /// The negotiated maximum message size; larger messages are rejected both ways.
    pub max_msg_size: u16,
}

impl Codec {
    /// Returns a codec for `bus` speaking revision 1 with the largest message size, as
    /// used before the bus instance has negotiated a smaller one.
    pub const fn new(bus: BusKind) -> Self {
        Self {
            bus,
            layout: Layout::Revision1,
            max_msg_size: MAX_MSG_SIZE,
        }
    }

    /// Decodes one message that fills `msg` exactly.
    ///
    /// Use [`frame`](super::frame) first if the message may be followed by unused bytes.
    pub fn decode<'a>(&self, msg: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let header = Header::peek(msg)?;
        let msg_size = header.msg_size.get();
        if usize::from(msg_size) != msg.len() {
            return Err(DecodeError::SizeMismatch {
                msg_size,
                actual: msg.len(),
            });
        }
        if msg_size > self.max_msg_size {
            return Err(DecodeError::TooLarge {
                msg_size,
                max: self.max_msg_size,
            });
        }
        let msg_type = header.msg_type;
        if msg_type & TYPE_RESERVED != 0 {
            return Err(DecodeError::BadType { msg_type });
        }

        let msg_id = header.msg_id;
        let mut r = Reader::new(msg, HEADER_SIZE);
        let message = if msg_type & TYPE_BUS == 0 {
            Message::Transport(transport::decode(msg_type, msg_id, &mut r, self.layout)?)
        } else if msg_id < 0x80 {
            Message::Bus(bus::decode(msg_type, msg_id, &mut r, self.layout)?)
        } else {
            match self.bus {
                BusKind::SharedMemory => Message::Shm(shm::decode(msg_type, msg_id, &mut r)?),
                BusKind::Ffa => Message::Ffa(ffa::decode(msg_type, msg_id, &mut r)?),
                BusKind::Generic => return Err(DecodeError::UnknownId { msg_type, msg_id }),
            }
        };
        r.finish()?;
        if message.is_bus() && header.dev_num.get() != 0 {
            return Err(DecodeError::FieldOutOfRange { field: "dev_num" });
        }
        Ok(Frame {
            dev_num: header.dev_num.get(),
            token: header.token.get(),
            message,
        })
    }

    /// Encodes `frame` at the start of `out` and returns its size.
    ///
    /// Writes nothing unless the whole message fits both `out` and the maximum message
    /// size.
    pub fn encode(&self, frame: &Frame<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut counter = Counter::default();
        self.write(frame, 0, &mut counter)?;
        let size = counter.len;
        let msg_size = u16::try_from(size)
            .ok()
            .filter(|&s| s <= self.max_msg_size)
            .ok_or(EncodeError::TooLarge {
                size,
                max: self.max_msg_size,
            })?;
        let available = out.len();
        let dst = out.get_mut(..size).ok_or(EncodeError::BufferTooSmall {
            needed: size,
            available,
        })?;
        let mut w = SliceWriter::new(dst);
        self.write(frame, msg_size, &mut w)?;
        Ok(w.pos)
    }

    /// Writes the header with `msg_size` and then the payload.
    fn write<S: Sink>(
        &self,
        frame: &Frame<'_>,
        msg_size: u16,
        s: &mut S,
    ) -> Result<(), EncodeError> {
        let message = &frame.message;
        if message.is_bus() && frame.dev_num != 0 {
            return Err(EncodeError::FieldOutOfRange { field: "dev_num" });
        }
        let bus_matches = match message {
            Message::Transport(_) | Message::Bus(_) => true,
            Message::Shm(_) => matches!(self.bus, BusKind::SharedMemory),
            Message::Ffa(_) => matches!(self.bus, BusKind::Ffa),
        };
        if !bus_matches {
            return Err(EncodeError::WrongBus);
        }
        s.put_struct(&Header {
            msg_type: message.msg_type(),
            msg_id: message.msg_id(),
            dev_num: frame.dev_num.into(),
            token: frame.token.into(),
            msg_size: msg_size.into(),
        })?;
        match message {
            Message::Transport(m) => m.write_payload(self.layout, s),
            Message::Bus(m) => m.write_payload(self.layout, s),
            Message::Shm(m) => m.write_payload(s),
            Message::Ffa(m) => m.write_payload(s),
        }
    }
}
