// SPDX-License-Identifier: GPL-2.0

//! The requests in flight on one bus instance: a fixed table of slots, each with a token and a
//! response buffer reserved up front, so that the receive path hands a response over without
//! allocating. Pure bookkeeping; the link holds it under a spinlock and does the waiting.

use kernel::prelude::*;

/// Where a request slot stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Sent with this token; no response yet.
    Waiting(u16),
    /// The response for this token is in the slot's buffer, this many bytes long.
    Answered(u16, usize),
}

/// One request in flight and the buffer its response is copied to by the receive path.
struct RequestSlot {
    state: SlotState,
    response: KVec<u8>,
}

/// Requests in flight.
pub(crate) struct Pending {
    next_token: u16,
    slots: KVec<RequestSlot>,
}

impl Pending {
    /// A table of `count` slots, each taking responses of up to `max_response` bytes.
    pub(crate) fn new(count: usize, max_response: usize) -> Result<Self> {
        let mut slots = KVec::with_capacity(count, GFP_KERNEL)?;
        for _ in 0..count {
            slots.push(
                RequestSlot {
                    state: SlotState::Free,
                    response: KVec::from_elem(0u8, max_response, GFP_KERNEL)?,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            next_token: 1,
            slots,
        })
    }

    fn token_in_use(&self, token: u16) -> bool {
        self.slots.iter().any(|s| match s.state {
            SlotState::Waiting(t) | SlotState::Answered(t, _) => t == token,
            SlotState::Free => false,
        })
    }

    /// Claims a free slot for a new request and returns its index and token: a token no other
    /// slot holds, so that a late response to an earlier request never answers this one.
    pub(crate) fn claim(&mut self) -> Option<(usize, u16)> {
        let index = self.slots.iter().position(|s| s.state == SlotState::Free)?;
        let mut token = self.next_token;
        while self.token_in_use(token) {
            token = token.wrapping_add(1);
        }
        self.next_token = token.wrapping_add(1);
        self.slots.get_mut(index)?.state = SlotState::Waiting(token);
        Some((index, token))
    }

    /// Copies `msg` into the slot waiting for `token`: `ENOENT` if none waits for it (a stray
    /// or late response), `EMSGSIZE` if it is longer than a response may be.
    pub(crate) fn answer(&mut self, token: u16, msg: &[u8]) -> Result {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.state == SlotState::Waiting(token))
            .ok_or(ENOENT)?;
        let dst = slot.response.get_mut(..msg.len()).ok_or(EMSGSIZE)?;
        dst.copy_from_slice(msg);
        slot.state = SlotState::Answered(token, msg.len());
        Ok(())
    }

    /// Returns whether the request in slot `index` has its response.
    pub(crate) fn is_answered(&self, index: usize) -> bool {
        matches!(
            self.slots.get(index).map(|s| s.state),
            Some(SlotState::Answered(..))
        )
    }

    /// Frees slot `index` and copies its response, if one came, to `resp`.
    pub(crate) fn finish(&mut self, index: usize, resp: &mut [u8]) -> Result<Option<usize>> {
        let slot = self.slots.get_mut(index).ok_or(EINVAL)?;
        match core::mem::replace(&mut slot.state, SlotState::Free) {
            SlotState::Answered(_, len) => {
                let src = slot.response.get(..len).ok_or(EINVAL)?;
                resp.get_mut(..len).ok_or(EMSGSIZE)?.copy_from_slice(src);
                Ok(Some(len))
            }
            _ => Ok(None),
        }
    }

    /// Frees every slot: no request is in flight any more.
    pub(crate) fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            slot.state = SlotState::Free;
        }
    }
}

#[cfg(CONFIG_VIRTIO_MSG_SHM_KUNIT_TEST)]
#[kunit_tests(virtio_msg_shm_pending)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_among_requests_in_flight() -> Result {
        let mut p = Pending::new(3, 16)?;
        let (a, ta) = p.claim().ok_or(ENOSPC)?;
        let (b, tb) = p.claim().ok_or(ENOSPC)?;
        assert!(a != b && ta != tb);
        // Token 0 is never handed out, and none repeats while in flight, across the wrap.
        p.next_token = u16::MAX;
        let (c, tc) = p.claim().ok_or(ENOSPC)?;
        assert_eq!(tc, u16::MAX);
        assert!(p.claim().is_none());
        p.finish(c, &mut [])?;
        p.next_token = ta;
        let (_, td) = p.claim().ok_or(ENOSPC)?;
        assert!(td != ta && td != tb);
        Ok(())
    }

    #[test]
    fn a_response_reaches_only_the_request_it_answers() -> Result {
        let mut p = Pending::new(2, 8)?;
        let (i, token) = p.claim().ok_or(ENOSPC)?;
        // Stray tokens and oversized responses are refused and change nothing.
        assert_eq!(p.answer(token.wrapping_add(7), b"late"), Err(ENOENT));
        assert_eq!(p.answer(token, b"much too long"), Err(EMSGSIZE));
        assert!(!p.is_answered(i));
        p.answer(token, b"reply")?;
        assert!(p.is_answered(i));
        // Answered once: a duplicate finds no request waiting.
        assert_eq!(p.answer(token, b"again"), Err(ENOENT));
        let mut buf = [0u8; 8];
        assert_eq!(p.finish(i, &mut buf)?, Some(5));
        assert_eq!(&buf[..5], b"reply");
        // Freed: the slot is claimed again, and a response for the old token is stray.
        assert_eq!(p.answer(token, b"reply"), Err(ENOENT));
        Ok(())
    }

    #[test]
    fn a_request_without_response_finishes_empty() -> Result {
        let mut p = Pending::new(1, 8)?;
        let (i, _) = p.claim().ok_or(ENOSPC)?;
        assert_eq!(p.finish(i, &mut [0u8; 8])?, None);
        assert!(p.claim().is_some());
        p.clear();
        assert!(p.claim().is_some());
        assert_eq!(p.finish(9, &mut []), Err(EINVAL));
        Ok(())
    }
}
