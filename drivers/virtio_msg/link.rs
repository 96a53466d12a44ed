// SPDX-License-Identifier: GPL-2.0

//! What the transport needs from a bus instance.

use crate::vmsg::codec::{BusKind, Codec, Layout};
use kernel::prelude::*;

/// Terms a bus instance negotiated once with its device side; shared by all its devices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BusTerms {
    /// Transport revision (only 1 exists).
    pub(crate) revision: u32,
    /// Maximum message size, header included.
    pub(crate) max_msg_size: u16,
    /// Transport feature bits.
    pub(crate) features: u64,
    /// Payload layout of the peer (revision 1 or the late-2025 compatibility layouts).
    pub(crate) layout: Layout,
}

impl BusTerms {
    /// Returns the codec for transport messages under these terms.
    pub(crate) fn codec(&self) -> Codec {
        let mut codec = Codec::new(BusKind::Generic);
        codec.layout = self.layout;
        codec.max_msg_size = self.max_msg_size;
        codec
    }
}

/// One bus instance as the transport sees it: a way to send requests and events.
///
/// Token assignment and correlation belong to the bus: a response handed back by
/// [`BusLink::request`] answers the request given to it.
pub(crate) trait BusLink: Send + Sync + 'static {
    /// Returns the terms negotiated for this instance.
    fn terms(&self) -> BusTerms;

    /// Sends request `req` and waits, for a bounded time, for its response, which is copied to
    /// `resp`; returns the response's length. May sleep. `ETIMEDOUT` when no response came.
    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize>;

    /// Sends event `msg`. Never sleeps: called from atomic context.
    fn send_event(&self, msg: &[u8]) -> Result;
}
