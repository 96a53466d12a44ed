// SPDX-License-Identifier: GPL-2.0

//! The virtio devices this program serves, behind one trait, and the `--device` syntax.
//!
//! A device only knows its virtio class: config space, feature bits and what to do with
//! buffers in its queues. Status, feature negotiation and queue setup are the transport's
//! job (`crate::transport`).

pub mod blk;
pub mod console;
pub mod rng;
pub mod vhost_user;

use std::fmt;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::str::FromStr;

use std::sync::atomic::Ordering;

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};

/// Guest RAM as this program maps it.
pub type GuestMemory = vm_memory::GuestMemoryMmap<()>;

/// A descriptor chain over guest RAM.
pub type Chain<'a> = DescriptorChain<&'a GuestMemory>;

/// Largest queue size the devices offer.
pub const QUEUE_MAX_SIZE: u16 = 256;

/// Why a device could not be created or could not process a queue.
#[derive(Debug)]
pub enum DeviceError {
    /// A configuration problem, reported before anything runs.
    Config(String),
    /// The backing file or another host resource failed.
    Io(String),
    /// The driver put something unusable in a queue.
    Queue(String),
    /// The operation does not apply to this device.
    Unsupported(&'static str),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) | Self::Io(m) | Self::Queue(m) => f.write_str(m),
            Self::Unsupported(what) => write!(f, "{what} is not supported by this device"),
        }
    }
}

impl std::error::Error for DeviceError {}

impl From<virtio_queue::Error> for DeviceError {
    fn from(e: virtio_queue::Error) -> Self {
        Self::Queue(format!("virtqueue: {e}"))
    }
}

/// One virtio device class.
pub trait VirtioDevice {
    /// Short name for logs ("rng", "blk", "console").
    fn name(&self) -> &'static str;

    /// Virtio device id.
    fn device_id(&self) -> u32;

    /// Device-class feature bits offered (the transport adds the common ones).
    fn device_features(&self) -> u64;

    /// The config space as it reads now.
    fn config(&self) -> Vec<u8>;

    /// Writes `data` at `offset` of the config space; returns whether it was applied
    /// (whole or not at all).
    fn write_config(&mut self, offset: u32, data: &[u8]) -> bool {
        let _ = (offset, data);
        false
    }

    /// Number of virtqueues.
    fn num_queues(&self) -> usize;

    /// Mask applied to the offered features, the transport's common bits included.
    fn feature_mask(&self) -> u64 {
        u64::MAX
    }

    /// Called when the driver sets DRIVER_OK, with the negotiated features.
    fn activate(&mut self, features: u64) {
        let _ = features;
    }

    /// Called when the driver sets DRIVER_OK, with the negotiated features and the queues
    /// as the driver set them up; an error makes the device need a reset.
    fn start(
        &mut self,
        features: u64,
        queues: &[Queue],
        mem: Option<&GuestMemory>,
    ) -> Result<(), DeviceError> {
        let _ = (queues, mem);
        self.activate(features);
        Ok(())
    }

    /// Whether someone else (a vhost-user backend) runs the virtqueues: then the queue
    /// state here is stale, and the device only signals queues that have used buffers
    /// and need a notification.
    fn external_queues(&self) -> bool {
        false
    }

    /// Called on a device reset.
    fn reset(&mut self) {}

    /// Handles buffers the driver made available in queue `index`; returns the indices of
    /// queues that received used buffers.
    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<Vec<usize>, DeviceError>;

    /// Feeds host data to the device (console input); returns queues with used buffers.
    fn inject(
        &mut self,
        data: &[u8],
        queues: &mut [Queue],
        mem: Option<&GuestMemory>,
    ) -> Result<Vec<usize>, DeviceError> {
        let _ = (data, queues, mem);
        Err(DeviceError::Unsupported("injecting data"))
    }

    /// A host file whose readability means [`VirtioDevice::read_input`] has data.
    fn input_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Reads what [`VirtioDevice::input_fd`] has; `None` at end of input.
    fn read_input(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// How many chains wait in `queue`'s avail ring; an error if that is more than the queue
/// holds. Checked before the device writes anything into the queue (notification
/// suppression included): such a ring may be memory the driver no longer owns.
pub fn waiting(queue: &Queue, mem: &GuestMemory) -> Result<u16, DeviceError> {
    let avail = queue.avail_idx(mem, Ordering::Acquire)?;
    let n = avail.0.wrapping_sub(queue.next_avail());
    if n > queue.size() {
        return Err(virtio_queue::Error::InvalidAvailRingIndex.into());
    }
    Ok(n)
}

/// Takes the next chain the driver made available in `queue`, if there is one.
///
/// An avail ring that cannot be used is an error, not "nothing available": an index more
/// than the queue size ahead (memory the driver no longer owns, or garbage), or an entry
/// that cannot be read. `Queue::pop_descriptor_chain` returns `None` for those, and logs
/// each time, so that a caller looping until the ring is empty would spin and log for
/// ever. The caller stops the queue instead (the device needs a reset).
pub fn next_chain<'a>(
    queue: &mut Queue,
    mem: &'a GuestMemory,
) -> Result<Option<Chain<'a>>, DeviceError> {
    let next = queue.next_avail();
    if waiting(queue, mem)? == 0 {
        return Ok(None);
    }
    // The driver only moves the index on: the iterator, which loads it again, has at least
    // one entry, and `None` from it means the entry could not be read.
    match queue.iter(mem)?.next() {
        Some(chain) => Ok(Some(chain)),
        None => Err(DeviceError::Queue(format!(
            "virtqueue: available ring entry {next} cannot be read"
        ))),
    }
}

/// Pops every available chain of `queue`, hands it to `handle` (which returns the number
/// of bytes it wrote into the chain) and returns it as used; re-enables notifications and
/// rechecks so that no buffer is left behind. Returns whether any buffer was used. An
/// avail ring that cannot be used ([`next_chain`]) ends it with an error.
pub fn drain_queue<F>(
    queue: &mut Queue,
    mem: &GuestMemory,
    mut handle: F,
) -> Result<bool, DeviceError>
where
    F: FnMut(Chain<'_>) -> u32,
{
    let mut used = false;
    loop {
        waiting(queue, mem)?;
        queue.disable_notification(mem)?;
        while let Some(chain) = next_chain(queue, mem)? {
            let head = chain.head_index();
            let len = handle(chain);
            queue.add_used(mem, head, len)?;
            used = true;
        }
        if !queue.enable_notification(mem)? {
            break;
        }
    }
    Ok(used)
}

/// Where console output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleOutput {
    /// Back to the guest through the receive queue.
    Echo,
    /// To this program's standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// A device as the command line or config file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// virtio-rng; random bytes from `source` (default `/dev/urandom`; a regular file is
    /// read in a loop, which makes the bytes predictable for tests).
    Rng {
        /// Where the bytes come from.
        source: Option<PathBuf>,
    },
    /// virtio-blk over a file.
    Blk {
        /// The backing file.
        path: PathBuf,
        /// Refuse writes (VIRTIO_BLK_F_RO).
        readonly: bool,
        /// What GET_ID returns (at most 20 bytes).
        serial: Option<String>,
    },
    /// virtio-console with one port.
    Console {
        /// Where guest output goes.
        output: ConsoleOutput,
        /// A file or FIFO whose data is sent to the guest.
        input: Option<PathBuf>,
    },
    /// A device whose queues an external vhost-user backend serves.
    VhostUser {
        /// The backend's UNIX socket.
        socket: PathBuf,
        /// Device id and config size.
        kind: vhost_user::Kind,
        /// Number of virtqueues.
        queues: u16,
    },
}

impl DeviceSpec {
    /// Builds the device, opening its files.
    pub fn build(&self) -> Result<Box<dyn VirtioDevice>, DeviceError> {
        Ok(match self {
            Self::Rng { source } => Box::new(rng::Rng::new(source.as_deref())?),
            Self::Blk {
                path,
                readonly,
                serial,
            } => Box::new(blk::Blk::open(path, *readonly, serial.as_deref())?),
            Self::Console { output, input } => {
                Box::new(console::Console::new(output.clone(), input.as_deref())?)
            }
            Self::VhostUser {
                socket,
                kind,
                queues,
            } => Box::new(vhost_user::VhostUser::connect(socket, *kind, *queues)?),
        })
    }
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("on" | "true" | "yes" | "1") => Ok(true),
        Some("off" | "false" | "no" | "0") => Ok(false),
        Some(v) => Err(format!("{key}: '{v}' is not a boolean")),
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    /// `rng[:source=PATH]`, `blk:path=PATH[,readonly][,serial=ID]`,
    /// `console[:output=echo|stdout|PATH][,input=PATH]`,
    /// `vhost-user:socket=PATH[,type=blk][,queues=N]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, opts) = s.split_once(':').unwrap_or((s, ""));
        let mut pairs = Vec::new();
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            pairs.push((k, v));
        }
        let need = |k: &str, v: Option<&str>| -> Result<String, String> {
            v.map(str::to_owned)
                .ok_or_else(|| format!("device '{kind}': option {k} needs a value"))
        };
        let unknown = |k: &str| format!("device '{kind}': unknown option '{k}'");
        match kind {
            "rng" => {
                let mut source = None;
                for (k, v) in pairs {
                    match k {
                        "source" => source = Some(PathBuf::from(need(k, v)?)),
                        _ => return Err(unknown(k)),
                    }
                }
                Ok(Self::Rng { source })
            }
            "blk" => {
                let (mut path, mut readonly, mut serial) = (None, false, None);
                for (k, v) in pairs {
                    match k {
                        "path" => path = Some(PathBuf::from(need(k, v)?)),
                        "readonly" | "ro" => readonly = parse_bool(k, v)?,
                        "serial" => {
                            let id = need(k, v)?;
                            if id.len() > blk::ID_BYTES {
                                return Err(format!("blk: serial '{id}' is longer than 20 bytes"));
                            }
                            serial = Some(id);
                        }
                        _ => return Err(unknown(k)),
                    }
                }
                let path = path.ok_or("device 'blk' needs path=FILE")?;
                Ok(Self::Blk {
                    path,
                    readonly,
                    serial,
                })
            }
            "console" => {
                let (mut output, mut input) = (ConsoleOutput::Echo, None);
                for (k, v) in pairs {
                    match k {
                        "output" => {
                            output = match need(k, v)?.as_str() {
                                "echo" => ConsoleOutput::Echo,
                                "stdout" | "-" => ConsoleOutput::Stdout,
                                p => ConsoleOutput::File(PathBuf::from(p)),
                            }
                        }
                        "input" => input = Some(PathBuf::from(need(k, v)?)),
                        _ => return Err(unknown(k)),
                    }
                }
                Ok(Self::Console { output, input })
            }
            "vhost-user" => {
                let (mut socket, mut kind, mut queues) = (None, None, 1u16);
                for (k, v) in pairs {
                    match k {
                        "socket" => socket = Some(PathBuf::from(need(k, v)?)),
                        "type" => {
                            let t = need(k, v)?;
                            kind = Some(vhost_user::Kind::by_name(&t).ok_or_else(|| {
                                format!("vhost-user: unknown type '{t}' (known: blk)")
                            })?);
                        }
                        "queues" => {
                            queues = need(k, v)?
                                .parse()
                                .ok()
                                .filter(|n| (1..=64).contains(n))
                                .ok_or("vhost-user: queues must be 1 to 64")?;
                        }
                        _ => return Err(unknown(k)),
                    }
                }
                let socket = socket.ok_or("device 'vhost-user' needs socket=PATH")?;
                let kind = match kind {
                    Some(k) => k,
                    None => vhost_user::Kind::by_name("blk").ok_or("vhost-user: no blk kind")?,
                };
                Ok(Self::VhostUser {
                    socket,
                    kind,
                    queues,
                })
            }
            other => Err(format!(
                "unknown device kind '{other}' (known: rng, blk, console, vhost-user)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_specs() {
        assert_eq!(
            "rng".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Rng { source: None })
        );
        assert_eq!(
            "rng:source=/tmp/x".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Rng {
                source: Some("/tmp/x".into())
            })
        );
        assert_eq!(
            "blk:path=disk.img,readonly,serial=abc".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Blk {
                path: "disk.img".into(),
                readonly: true,
                serial: Some("abc".into())
            })
        );
        assert_eq!(
            "console:output=stdout,input=/tmp/fifo".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Console {
                output: ConsoleOutput::Stdout,
                input: Some("/tmp/fifo".into())
            })
        );
        assert_eq!(
            "vhost-user:socket=/tmp/vu.sock,type=blk,queues=2".parse::<DeviceSpec>(),
            Ok(DeviceSpec::VhostUser {
                socket: "/tmp/vu.sock".into(),
                kind: vhost_user::Kind {
                    device_id: 2,
                    config_size: 60
                },
                queues: 2
            })
        );
        assert_eq!(
            "console".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Console {
                output: ConsoleOutput::Echo,
                input: None
            })
        );
    }

    #[test]
    fn rejects_bad_device_specs() {
        assert!("blk".parse::<DeviceSpec>().unwrap_err().contains("path="));
        assert!("net"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .contains("unknown device kind"));
        assert!("rng:speed=3"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .contains("unknown option"));
        assert!("blk:path=x,serial=123456789012345678901"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .contains("20 bytes"));
        assert!("blk:path=x,readonly=maybe".parse::<DeviceSpec>().is_err());
        assert!("vhost-user:type=blk"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .contains("socket="));
        assert!("vhost-user:socket=s,type=gpu"
            .parse::<DeviceSpec>()
            .unwrap_err()
            .contains("unknown type"));
        assert!("vhost-user:socket=s,queues=0"
            .parse::<DeviceSpec>()
            .is_err());
    }
}
