// SPDX-License-Identifier: GPL-2.0

//! Revisions, message size limits and transport feature bits that a bus instance
//! negotiates once for all of its devices.

/// Transport revision 1, the only one defined.
pub const TRANSPORT_REVISION_1: u32 = 1;

/// Smallest maximum message size revision 1 allows: a GET_DEVICE_INFO response.
pub const MIN_MSG_SIZE: u16 = 52;

/// Largest message size revision 1 allows; `msg_size` is 16 bits wide.
pub const MAX_MSG_SIZE: u16 = 65535;

/// Recommended maximum message size: a 256-byte config chunk plus header.
pub const RECOMMENDED_MSG_SIZE: u16 = 264;

/// Transport feature bit 0: the strict config generation profile.
pub const TRANSPORT_F_STRICT_CONFIG_GENERATION: u64 = 1 << 0;

/// Transport feature bits revision 1 defines.
pub const TRANSPORT_FEATURES_REVISION_1: u64 = TRANSPORT_F_STRICT_CONFIG_GENERATION;

/// Returns the smallest maximum message size `revision` allows, or `None` for a revision
/// this codec does not implement.
pub const fn min_msg_size(revision: u32) -> Option<u16> {
    match revision {
        TRANSPORT_REVISION_1 => Some(MIN_MSG_SIZE),
        _ => None,
    }
}

/// Returns the maximum message size two sides agree on for `revision`: the smaller of
/// their limits, capped at [`MAX_MSG_SIZE`].
///
/// Returns `None` if the revision is unknown or the result is below its minimum, in which
/// case the proposal must be refused rather than shrunk.
pub fn negotiate_max_msg_size(revision: u32, ours: u32, theirs: u32) -> Option<u16> {
    let min = min_msg_size(revision)?;
    let agreed = u16::try_from(ours.min(theirs)).unwrap_or(MAX_MSG_SIZE);
    (agreed >= min).then_some(agreed)
}
