// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked cursors that every message layout reads and writes through.

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::error::{DecodeError, EncodeError};

/// Reads a message front to back; every read is checked against the message end.
pub(crate) struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `msg` at byte `pos` (just past the header).
    pub(crate) fn new(msg: &'a [u8], pos: usize) -> Self {
        Self { msg, pos }
    }

    /// Reads a fixed-size wire struct.
    pub(crate) fn take<T: FromBytes>(&mut self) -> Result<T, DecodeError> {
        let size = core::mem::size_of::<T>();
        let bytes = self.bytes(size).ok_or(DecodeError::TooShort {
            needed: self.pos.saturating_add(size),
            actual: self.msg.len(),
        })?;
        // The slice has exactly `size_of::<T>()` bytes, so this cannot fail; map it anyway
        // rather than unwrap.
        T::read_from_bytes(bytes).map_err(|_| DecodeError::TooShort {
            needed: self.pos,
            actual: self.msg.len(),
        })
    }

    /// Reads `len` bytes whose length came from the field `field` of the message.
    pub(crate) fn take_bytes(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        self.bytes(len)
            .ok_or(DecodeError::FieldOutOfRange { field })
    }

    /// Reads `count` little-endian 32-bit words whose count came from the field `field`.
    pub(crate) fn take_words(
        &mut self,
        count: u32,
        field: &'static str,
    ) -> Result<&'a [U32], DecodeError> {
        let out_of_range = DecodeError::FieldOutOfRange { field };
        let len = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(core::mem::size_of::<U32>()))
            .ok_or(out_of_range)?;
        let bytes = self.bytes(len).ok_or(out_of_range)?;
        <[U32]>::ref_from_bytes(bytes).map_err(|_| out_of_range)
    }

    /// Returns how many bytes are left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.msg.len().saturating_sub(self.pos)
    }

    /// Checks that the layout accounted for the whole message.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.pos == self.msg.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                expected: self.pos,
                actual: self.msg.len(),
            })
        }
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let bytes = self.msg.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }
}

/// Destination of an encoder: either a byte counter or a real buffer.
///
/// Every message is written twice, once into a [`Counter`] to learn its size and once into
/// the caller's buffer, through the same code, so the size check and the bytes cannot
/// disagree.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError>;

    /// Appends a fixed-size wire struct.
    fn put_struct<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.put(value.as_bytes())
    }
}

/// A sink that only counts bytes.
#[derive(Default)]
pub(crate) struct Counter {
    /// Bytes appended so far.
    pub(crate) len: usize,
}

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.len = self
            .len
            .checked_add(bytes.len())
            .ok_or(EncodeError::FieldOutOfRange { field: "msg_size" })?;
        Ok(())
    }
}

/// A sink that writes into a caller's buffer and never past its end.
pub(crate) struct SliceWriter<'b> {
    buf: &'b mut [u8],
    /// Bytes written so far.
    pub(crate) pos: usize,
}

impl<'b> SliceWriter<'b> {
    /// Writes from the start of `buf`.
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }
}

impl Sink for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let available = self.buf.len();
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall {
                needed: usize::MAX,
                available,
            })?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall {
                needed: end,
                available,
            })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// Declares a private `#[repr(C)]` wire struct with the zerocopy derives and checks its
/// size against the specification at compile time.
macro_rules! wire_struct {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? } = $size:expr) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(
            zerocopy_derive::FromBytes,
            zerocopy_derive::IntoBytes,
            zerocopy_derive::KnownLayout,
            zerocopy_derive::Immutable,
            zerocopy_derive::Unaligned,
        )]
        struct $name { $($field: $ty),* }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
    };
}

pub(crate) use wire_struct;
