// SPDX-License-Identifier: GPL-2.0

//! What the device logic persists so that a restarted process resumes a bus instance the
//! driver side is still using (`Documentation/shm-bus.rst`, "Restarting the device side"):
//! the negotiated terms, each device's status, features, config generation, queue setup
//! and whether it was announced removed, whether the driver side was attached, and the
//! region's attach epoch then (a state is only good for that attachment). Ring indices
//! need no copy: they live in the shared region, which outlives the process; virtqueue
//! indices are re-read from guest memory.
//!
//! A clean shutdown (SIGTERM, SIGINT) removes the file: the device side went away, and
//! what it served is no longer the driver side's.
//!
//! The file is TOML, replaced atomically (written beside it, then renamed) on every
//! change, so a process killed at any point leaves the old or the new state, never half
//! of one. 64-bit values are hex strings: TOML integers stop at `i64::MAX`, and queue
//! addresses come from the guest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Layout version of the file; a file of another version is not used. Version 1 had no
/// attach epoch, so no state of it can be matched with an attachment.
pub const STATE_VERSION: u32 = 2;

mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        u64::from_str_radix(digits, 16).map_err(serde::de::Error::custom)
    }
}

/// Terms of an accepted VERSION.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedTerms {
    /// Transport revision.
    pub revision: u32,
    /// Agreed maximum message size.
    pub max_msg_size: u16,
    /// Accepted transport features.
    #[serde(with = "hex")]
    pub features: u64,
}

/// One virtqueue's setup.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SavedQueue {
    /// Current size.
    pub size: u16,
    /// Enabled.
    pub ready: bool,
    /// Descriptor area.
    #[serde(with = "hex")]
    pub desc: u64,
    /// Driver area.
    #[serde(with = "hex")]
    pub driver: u64,
    /// Device area.
    #[serde(with = "hex")]
    pub device: u64,
}

/// One device's transport state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SavedDevice {
    /// Its device number.
    pub dev_num: u16,
    /// Its class ("blk"), checked against the device configured at that number.
    pub kind: String,
    /// Device status.
    pub status: u32,
    /// Feature blocks the driver wrote.
    pub driver_features: Vec<u32>,
    /// Features accepted at FEATURES_OK.
    #[serde(with = "hex")]
    pub negotiated: u64,
    /// Config generation.
    pub generation: u32,
    /// Queue setup, by index.
    pub queues: Vec<SavedQueue>,
    /// Announced removed (EVENT_DEVICE removed) and served until its driver resets it.
    #[serde(default)]
    pub removed: bool,
}

/// Everything persisted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Inode of the shared-memory file: a state belongs to one region.
    #[serde(with = "hex")]
    pub region_inode: u64,
    /// Whether the driver side was attached (driver_state 1 seen).
    pub driver_attached: bool,
    /// The region's `attach_epoch` when this was saved: a driver side attached since (the
    /// epoch moved on) is another attachment, which this state does not describe.
    #[serde(default)]
    pub attach_epoch: u32,
    /// Terms in force, if VERSION was accepted.
    pub terms: Option<SavedTerms>,
    /// Devices, by number.
    #[serde(default)]
    pub devices: Vec<SavedDevice>,
}

/// The state file.
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
    last: Option<SavedState>,
}

impl StateFile {
    /// A state file at `path` (nothing is read or written yet).
    pub fn new(path: &Path) -> Self {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        Self {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            last: None,
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file: `Ok(None)` if there is none.
    pub fn load(&mut self) -> Result<Option<SavedState>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("state file {}: {e}", self.path.display())),
        };
        let state: SavedState = toml::from_str(&text)
            .map_err(|e| format!("state file {}: {e}", self.path.display()))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "state file {}: version {} (this program writes {STATE_VERSION})",
                self.path.display(),
                state.version
            ));
        }
        self.last = Some(state.clone());
        Ok(Some(state))
    }

    /// Removes the file (nothing left to resume) and forgets what was written.
    pub fn invalidate(&mut self) -> Result<(), String> {
        self.last = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!(
                "removing the state file {}: {e}",
                self.path.display()
            )),
        }
    }

    /// Writes `state` if it differs from what was last written or read.
    pub fn save(&mut self, state: &SavedState) -> Result<(), String> {
        if self.last.as_ref() == Some(state) {
            return Ok(());
        }
        let text = toml::to_string(state).map_err(|e| format!("encoding the state: {e}"))?;
        std::fs::write(&self.tmp, text)
            .and_then(|()| std::fs::rename(&self.tmp, &self.path))
            .map_err(|e| format!("writing the state file {}: {e}", self.path.display()))?;
        self.last = Some(state.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedState {
        SavedState {
            version: STATE_VERSION,
            region_inode: 77,
            driver_attached: true,
            attach_epoch: 3,
            terms: Some(SavedTerms {
                revision: 1,
                max_msg_size: 264,
                features: 1,
            }),
            devices: vec![SavedDevice {
                dev_num: 1,
                kind: "blk".into(),
                status: 0xf,
                driver_features: vec![0x10, 0x1],
                negotiated: 0x1_0000_0010,
                generation: 3,
                queues: vec![SavedQueue {
                    size: 256,
                    ready: true,
                    desc: u64::MAX,
                    driver: 0x1000,
                    device: 0x2000,
                }],
                removed: true,
            }],
        }
    }

    #[test]
    fn round_trip_including_values_past_i64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut f = StateFile::new(&path);
        assert_eq!(f.load().unwrap(), None);
        f.save(&sample()).unwrap();
        assert!(!dir.path().join("state.tmp").exists(), "renamed into place");
        let mut again = StateFile::new(&path);
        assert_eq!(again.load().unwrap(), Some(sample()));
    }

    #[test]
    fn unchanged_state_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut f = StateFile::new(&path);
        f.save(&sample()).unwrap();
        std::fs::remove_file(&path).unwrap();
        f.save(&sample()).unwrap();
        assert!(!path.exists());
        let mut changed = sample();
        changed.driver_attached = false;
        f.save(&changed).unwrap();
        assert!(path.exists());
    }

    #[test]
    fn invalidating_removes_the_file_and_the_next_save_writes_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut f = StateFile::new(&path);
        f.save(&sample()).unwrap();
        f.invalidate().unwrap();
        assert!(!path.exists());
        assert_eq!(StateFile::new(&path).load().unwrap(), None);
        f.invalidate().unwrap();
        f.save(&sample()).unwrap();
        assert!(path.exists(), "not taken as unchanged");
    }

    #[test]
    fn foreign_or_broken_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(
            &path,
            "version = 99\nregion_inode = \"0x1\"\ndriver_attached = false\n",
        )
        .unwrap();
        assert!(StateFile::new(&path)
            .load()
            .unwrap_err()
            .contains("version 99"));
        std::fs::write(&path, "garbage").unwrap();
        assert!(StateFile::new(&path).load().is_err());
    }
}
