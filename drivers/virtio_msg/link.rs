// SPDX-License-Identifier: GPL-2.0

//! What the transport needs from a bus instance.

pub(crate) use crate::vmsg::bus::Terms as BusTerms;
use crate::vmsg::{
    bus_host::ForeignLink,
    codec::{BusKind, Codec},
};
use kernel::prelude::*;

/// Returns the codec for transport messages under `terms`.
pub(crate) fn transport_codec(terms: &BusTerms) -> Codec {
    terms.codec(BusKind::Generic)
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

/// A bus module's instance, through the exported C ABI.
impl BusLink for ForeignLink {
    fn terms(&self) -> BusTerms {
        ForeignLink::terms(self)
    }

    fn request(&self, req: &[u8], resp: &mut [u8]) -> Result<usize> {
        ForeignLink::request(self, req, resp)
    }

    fn send_event(&self, msg: &[u8]) -> Result {
        ForeignLink::send_event(self, msg)
    }
}
