// SPDX-License-Identifier: GPL-2.0

//! Command line and TOML config file, merged into one [`Config`].
//!
//! Command-line values win over the file; devices and faults from both are used (file
//! first).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use log::LevelFilter;
use serde::Deserialize;
use virtio_msg_codec::{
    min_msg_size, MAX_MSG_SIZE, MIN_MSG_SIZE, RECOMMENDED_MSG_SIZE, TRANSPORT_REVISION_1,
};

use crate::devices::DeviceSpec;
use crate::fault::FaultSpec;
use crate::region::WINDOW_ALIGN;

/// Default size of the shared-memory region.
pub const DEFAULT_SHM_SIZE: usize = 1 << 20;
/// Default `--removal-grace-ms`: long enough for a disk to write back its cache.
pub const DEFAULT_REMOVAL_GRACE_MS: u64 = 30_000;
/// Largest `--removal-grace-ms` (a day), so that the deadline is always representable.
pub const MAX_REMOVAL_GRACE_MS: u64 = 86_400_000;
/// Smallest `--max-msg-size`: a VERSION response (28 bytes) must still fit.
pub const MIN_DEVICE_MSG_SIZE: u16 = 32;

const EXAMPLES: &str = "\
Example (start this first, then QEMU):
  truncate -s 512M /dev/shm/vmsg-ram
  vmsg-device --socket /tmp/vmsg.sock --guest-memory /dev/shm/vmsg-ram \\
      --device rng --device blk:path=disk.img --device console:output=stdout
  qemu-system-x86_64 -machine pc,memory-backend=mem -m 512M \\
      -object memory-backend-file,id=mem,size=512M,mem-path=/dev/shm/vmsg-ram,share=on \\
      -chardev socket,path=/tmp/vmsg.sock,id=ivsh \\
      -device ivshmem-doorbell,chardev=ivsh,vectors=1 ...

Split mode (the device logic can be killed and restarted under a running guest):
  vmsg-device ivshmem-server --socket /tmp/vmsg.sock --device-socket /tmp/vmsg.dev \\
      --shm-size 1M
  vmsg-device --connect /tmp/vmsg.dev --state /tmp/vmsg.state \\
      --guest-memory /dev/shm/vmsg-ram --device blk:path=disk.img
  (then QEMU as above; restart the second command at will)

Window mode (the device side sees no guest RAM; the driver bounces every buffer
through a window at the end of the shared region, Documentation/shm-bus.rst):
  vmsg-device --socket /tmp/vmsg.sock --shm-size 8M --window 4M \\
      --device rng --device blk:path=disk.img
  qemu-system-x86_64 -m 512M -chardev socket,path=/tmp/vmsg.sock,id=ivsh \\
      -device ivshmem-doorbell,chardev=ivsh,vectors=1 ...
  (in split mode --window goes to the device logic, `vmsg-device --connect`,
  which lays the region out; the ivshmem server's --shm-size must leave room)

Device SPECs:
  rng[:source=PATH]                          entropy from PATH (default /dev/urandom)
  blk:path=FILE[,readonly][,serial=ID]       disk backed by FILE
  console[:output=echo|stdout|FILE][,input=FILE_OR_FIFO]
  vhost-user:socket=PATH[,type=blk][,queues=N]
                                             queues served by a vhost-user backend

Faults (--fault KIND[=N][:DEV]; without :DEV every message is affected):
  no-answer, delay=MS, bad-size, bad-id, bad-token, flood=N, vanish=N, corrupt-index=N,
  short=N, unknown-id, unsolicited, config-size=N, config-range, queue-size=N|huge,
  feature-blocks, fuzz=SEED[/PCT] (PCT percent of the messages mutated at random),
  and:
  stall=MS[@N]          once, after N messages read (default 20), the to-device ring is
                        not read for MS ms (default 500), so that it fills up (no :DEV)
  generation-churn      every GET_CONFIG answer carries a config generation one higher
                        than the device's previous one
  sticky-status         after a reset, GET_DEVICE_STATUS answers the status from before
                        it until the driver writes another
  device-event-flood=N  once the bus is up: N EVENT_DEVICE added and removed in turn for
                        a device number that does not exist, and N for the first device
                        (default 100; no :DEV)
  corrupt-consumer=N    once, after N messages read and answered (default 1), the
                        to-device consumer index is stored 5 past the producer (no :DEV)
  header-rewrite=N      once, after N messages read (default 20), the region header says
                        magic 0, slot_count 3, ring offsets past the region (no :DEV)
  doorbell-storm=N      after each message read, the driver's doorbell is rung N times
                        (default 1000) with nothing published (no :DEV)
  bad-used=id|len|idx[@N]
                        once, at the device's Nth kick (default 10), after its buffers are
                        used: a used entry with an id past the queue, the last entry's len
                        0xfffffff0, or the used index a queue size ahead (needs :DEV)
  config-storm=N        every response is followed by N EVENT_CONFIG for its device
                        (default 100), its config unchanged
  duplicate-add         at the first transport message (the bring-up adding its first
                        device), EVENT_DEVICE added, twice, for every device (no :DEV)
  late-add              the first GET_DEVICES answer leaves the device out; EVENT_DEVICE
                        added for it follows right after (needs :DEV)
  device-flap=N         from the first kick on, each of the next N messages read (default
                        20) is followed by EVENT_DEVICE removed and added (needs :DEV)
  remove-during-add=N   once, at the device's Nth message (default 1: GET_DEVICE_INFO), the
                        device is removed as the control socket's remove does (needs :DEV)
  slot-rewrite=N        a waiting message to the driver whose ring index is a multiple of N
                        (default 4) has a random byte flipped and written back, again and
                        again, while the driver may be copying it (no :DEV)

Config file (--config, TOML; command-line values win):
  socket = \"/tmp/vmsg.sock\"
  shm-size = \"1M\"
  guest-memory = \"/dev/shm/vmsg-ram\"
  # window = \"4M\"   (window mode, instead of guest-memory)
  max-msg-size = 264
  accept-revisions = [1]
  log-level = \"info\"
  devices = [\"rng\", \"blk:path=disk.img\"]
  faults = [\"delay=500:1\"]
  control = \"/tmp/vmsg.ctl\"
  removal-grace-ms = 30000";

/// Device side of the virtio-msg shared-memory bus (Documentation/shm-bus.rst).
///
/// Serves QEMU's ivshmem-doorbell device as its ivshmem server and answers the virtio-msg
/// bus and transport messages for the devices given with --device.
#[derive(Parser, Debug, Default)]
#[command(
    name = "vmsg-device",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Run only the long-lived ivshmem server of split mode.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// UNIX socket that QEMU's `-chardev socket,path=PATH` connects to.
    #[arg(long, value_name = "PATH", conflicts_with = "connect")]
    pub socket: Option<PathBuf>,
    /// Split mode: join the `vmsg-device ivshmem-server` listening on PATH (its
    /// --device-socket) instead of being the server QEMU connects to.
    #[arg(long, value_name = "PATH")]
    pub connect: Option<PathBuf>,
    /// File where the negotiated state is kept, so that a restarted process resumes
    /// (split mode) after this one was killed or died; SIGTERM removes it (the device
    /// side goes away: a successor starts fresh).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Size of the shared-memory region (bytes, or with K, M, G suffix) [default: 1M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub shm_size: Option<usize>,
    /// File backing guest RAM (QEMU's memory-backend-file mem-path, share=on).
    #[arg(long, value_name = "PATH")]
    pub guest_memory: Option<PathBuf>,
    /// Window mode: a window of SIZE bytes (a multiple of 4096, with K, M, G suffix) at the
    /// end of the shared region holds the virtqueues and every buffer; the device side
    /// then sees no guest RAM (excludes --guest-memory).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub window: Option<usize>,
    /// A device to serve; repeat for several (dev_num 0, 1, ... in order).
    #[arg(long = "device", value_name = "SPEC")]
    pub devices: Vec<DeviceSpec>,
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This side's maximum message size; also sets the ring slot size [default: 264].
    #[arg(long, value_name = "BYTES")]
    pub max_msg_size: Option<u32>,
    /// Transport revisions VERSION accepts, comma separated, or `none` [default: 1].
    #[arg(long, value_name = "LIST")]
    pub accept_revisions: Option<String>,
    /// Log level: off, error, warn, info, debug, trace [default: info]; RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LevelFilter>,
    /// Inject a fault: KIND[=N][:DEV]; repeatable.
    #[arg(long = "fault", value_name = "FAULT")]
    pub faults: Vec<FaultSpec>,
    /// Control socket for hot add/remove and console input.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Interrupt vectors per peer; must match QEMU's `vectors=` [default: 1].
    #[arg(long, value_name = "N")]
    pub vectors: Option<u32>,
    /// Slots per ring (power of two) [default: as many as fit, at most 1024].
    #[arg(long, value_name = "N")]
    pub slot_count: Option<u32>,
    /// This program's ivshmem peer id [default: 0].
    #[arg(long, value_name = "ID")]
    pub peer_id: Option<u16>,
    /// How long shutdown waits for the driver to read the removal events [default: 1000].
    #[arg(long, value_name = "MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// How long a device removed over the control socket is still served while its
    /// driver does not reset it (SET_DEVICE_STATUS 0), detach or reset the bus; then it is
    /// forgotten and its number is free again [default: 30000].
    #[arg(long, value_name = "MS")]
    pub removal_grace_ms: Option<u64>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The long-lived half of split mode: holds the shared region, the device peer's
    /// eventfds and QEMU's connection while the device logic (`vmsg-device --connect`)
    /// comes and goes.
    IvshmemServer(ServerArgs),
}

/// Options of `vmsg-device ivshmem-server`.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// UNIX socket that QEMU's `-chardev socket,path=PATH` connects to.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// UNIX socket the device logic connects to (`vmsg-device --connect PATH`).
    #[arg(long, value_name = "PATH")]
    pub device_socket: PathBuf,
    /// Size of the shared-memory region (bytes, or with K, M, G suffix; a power of two).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1M")]
    pub shm_size: usize,
    /// Interrupt vectors per peer; must match QEMU's `vectors=`.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vectors: u32,
    /// Peer id of the device side.
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub peer_id: u16,
    /// Log level: off, error, warn, info, debug, trace; RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: LevelFilter,
}

impl ServerArgs {
    /// Checks the values and turns them into the server's configuration.
    pub fn config(&self) -> Result<crate::shm_server::ShmServerConfig, String> {
        if !self.shm_size.is_power_of_two() {
            return Err(format!(
                "shm size {} is not a power of two (QEMU's ivshmem BAR2 must be one)",
                self.shm_size
            ));
        }
        if !(1..=64).contains(&self.vectors) {
            return Err(format!("vectors {} is out of range (1..=64)", self.vectors));
        }
        Ok(crate::shm_server::ShmServerConfig {
            socket: self.socket.clone(),
            device_socket: self.device_socket.clone(),
            shm_size: self.shm_size,
            vectors: self.vectors,
            device_peer_id: self.peer_id,
        })
    }
}

/// A size in the config file: a number or a string with a suffix.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn bytes(&self, key: &str) -> Result<usize, String> {
        match self {
            Self::Bytes(b) => usize::try_from(*b).map_err(|_| format!("{key} {b} is too large")),
            Self::Text(t) => parse_size(t),
        }
    }
}

/// The config file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    socket: Option<PathBuf>,
    shm_size: Option<SizeValue>,
    guest_memory: Option<PathBuf>,
    window: Option<SizeValue>,
    #[serde(default)]
    devices: Vec<String>,
    max_msg_size: Option<u32>,
    accept_revisions: Option<Vec<u32>>,
    log_level: Option<String>,
    #[serde(default)]
    faults: Vec<String>,
    control: Option<PathBuf>,
    vectors: Option<u32>,
    slot_count: Option<u32>,
    peer_id: Option<u16>,
    shutdown_timeout_ms: Option<u64>,
    removal_grace_ms: Option<u64>,
}

/// Everything the program needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// ivshmem server socket: ours, or (with `connect`) the one we join.
    pub socket: PathBuf,
    /// Split mode: join an ivshmem server instead of being one.
    pub connect: bool,
    /// State file for resuming after a restart.
    pub state: Option<PathBuf>,
    /// Region size.
    pub shm_size: usize,
    /// Guest RAM file.
    pub guest_memory: Option<PathBuf>,
    /// Window mode: size of the window at the end of the region (no guest RAM).
    pub window: Option<usize>,
    /// Devices, dev_num 0, 1, ... in order.
    pub devices: Vec<DeviceSpec>,
    /// This side's maximum message size.
    pub max_msg_size: u16,
    /// Ring slot size derived from it.
    pub slot_size: u32,
    /// Slots per ring, if fixed.
    pub slot_count: Option<u32>,
    /// Revisions VERSION accepts.
    pub accept_revisions: Vec<u32>,
    /// Log level.
    pub log_level: LevelFilter,
    /// Active faults.
    pub faults: Vec<FaultSpec>,
    /// Control socket.
    pub control: Option<PathBuf>,
    /// Vectors per peer.
    pub vectors: u32,
    /// This program's peer id.
    pub peer_id: u16,
    /// Shutdown wait.
    pub shutdown_timeout: Duration,
    /// How long a removed device is served at most while its driver does not reset it.
    pub removal_grace: Duration,
}

/// Parses `4096`, `64K`, `1M`, `2G` (powers of 1024; `KiB`, `MiB`, `GiB` too).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &t[digits.len()..];
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}': unknown size suffix '{suffix}'")),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size"))?;
    n.checked_mul(mult)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses `1,2`, `1` or `none`.
pub fn parse_revisions(s: &str) -> Result<Vec<u32>, String> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|r| {
            r.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{r}' is not a revision number"))
        })
        .collect()
}

fn read_file_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Merges the command line with the config file it names and checks every value.
pub fn load(cli: Cli) -> Result<Config, String> {
    let file = match &cli.config {
        Some(p) => read_file_config(p)?,
        None => FileConfig::default(),
    };
    if cli.command.is_some() {
        return Err("a subcommand takes no device options".into());
    }
    let connect = cli.connect.is_some();
    let socket = cli
        .connect
        .or(cli.socket)
        .or(file.socket)
        .ok_or("no socket: give --socket PATH (or socket = \"PATH\" in the config file)")?;
    let shm_size = match (cli.shm_size, file.shm_size) {
        (Some(s), _) => s,
        (None, Some(v)) => v.bytes("shm-size")?,
        (None, None) => DEFAULT_SHM_SIZE,
    };
    if !shm_size.is_power_of_two() {
        return Err(format!(
            "shm size {shm_size} is not a power of two (QEMU's ivshmem BAR2 must be one)"
        ));
    }
    let max = cli
        .max_msg_size
        .or(file.max_msg_size)
        .unwrap_or(u32::from(RECOMMENDED_MSG_SIZE));
    let max_msg_size = u16::try_from(max)
        .ok()
        .filter(|m| *m >= MIN_DEVICE_MSG_SIZE)
        .ok_or_else(|| {
            format!(
                "max message size {max} is out of range ({MIN_DEVICE_MSG_SIZE}..={MAX_MSG_SIZE})"
            )
        })?;
    let accept_revisions = match (cli.accept_revisions, file.accept_revisions) {
        (Some(s), _) => parse_revisions(&s)?,
        (None, Some(v)) => v,
        (None, None) => vec![TRANSPORT_REVISION_1],
    };
    for &r in &accept_revisions {
        if min_msg_size(r).is_none() {
            return Err(format!(
                "transport revision {r} is not supported by this program (it implements revision {TRANSPORT_REVISION_1})"
            ));
        }
    }
    let log_level = match (cli.log_level, file.log_level) {
        (Some(l), _) => l,
        (None, Some(s)) => s.parse().map_err(|_| {
            format!("log level '{s}' is not one of off, error, warn, info, debug, trace")
        })?,
        (None, None) => LevelFilter::Info,
    };
    let mut devices = file
        .devices
        .iter()
        .map(|d| d.parse::<DeviceSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    devices.extend(cli.devices);
    let mut faults = file
        .faults
        .iter()
        .map(|f| f.parse::<FaultSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    faults.extend(cli.faults);
    let vectors = cli.vectors.or(file.vectors).unwrap_or(1);
    if !(1..=64).contains(&vectors) {
        return Err(format!("vectors {vectors} is out of range (1..=64)"));
    }
    let slot_size = u32::from(max_msg_size).next_multiple_of(8).max(64);
    let guest_memory = cli.guest_memory.or(file.guest_memory);
    let window = match (cli.window, file.window) {
        (Some(w), _) => Some(w),
        (None, Some(v)) => Some(v.bytes("window")?),
        (None, None) => None,
    };
    if let Some(w) = window {
        if w == 0 || w % WINDOW_ALIGN != 0 {
            return Err(format!(
                "window size {w} is not a positive multiple of {WINDOW_ALIGN} bytes"
            ));
        }
        if guest_memory.is_some() {
            return Err("--window and --guest-memory exclude each other: in window mode the device side sees no guest RAM, only the window (drop one of them, on the command line or in the config file)".into());
        }
    }
    let removal_grace_ms = cli
        .removal_grace_ms
        .or(file.removal_grace_ms)
        .unwrap_or(DEFAULT_REMOVAL_GRACE_MS);
    if removal_grace_ms > MAX_REMOVAL_GRACE_MS {
        return Err(format!(
            "removal grace {removal_grace_ms} ms is more than a day ({MAX_REMOVAL_GRACE_MS} ms)"
        ));
    }
    let removal_grace = Duration::from_millis(removal_grace_ms);
    Ok(Config {
        socket,
        connect,
        state: cli.state,
        shm_size,
        guest_memory,
        window,
        devices,
        max_msg_size,
        slot_size,
        slot_count: cli.slot_count.or(file.slot_count),
        accept_revisions,
        log_level,
        faults,
        control: cli.control.or(file.control),
        vectors,
        peer_id: cli.peer_id.or(file.peer_id).unwrap_or(0),
        shutdown_timeout: Duration::from_millis(
            cli.shutdown_timeout_ms
                .or(file.shutdown_timeout_ms)
                .unwrap_or(1000),
        ),
        removal_grace,
    })
}

/// Returns whether `max_msg_size` lets any VERSION succeed (it must reach the minimum).
pub fn size_allows_negotiation(max_msg_size: u16) -> bool {
    max_msg_size >= MIN_MSG_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultKind;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["vmsg-device"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn defaults() {
        let c = load(cli(&["--socket", "/tmp/s"])).unwrap();
        assert_eq!(c.shm_size, 1 << 20);
        assert_eq!(c.max_msg_size, 264);
        assert_eq!(c.slot_size, 264);
        assert_eq!(c.accept_revisions, vec![1]);
        assert_eq!(c.log_level, LevelFilter::Info);
        assert_eq!(c.vectors, 1);
        assert!(c.devices.is_empty());
        assert_eq!(c.removal_grace, Duration::from_secs(30));
        let c = load(cli(&["--socket", "/tmp/s", "--removal-grace-ms", "250"])).unwrap();
        assert_eq!(c.removal_grace, Duration::from_millis(250));
        let e = load(cli(&["--socket", "s", "--removal-grace-ms", "86400001"])).unwrap_err();
        assert!(e.contains("more than a day"), "{e}");
    }

    #[test]
    fn slot_size_rounds_up() {
        let c = load(cli(&["--socket", "s", "--max-msg-size", "100"])).unwrap();
        assert_eq!((c.max_msg_size, c.slot_size), (100, 104));
        let c = load(cli(&["--socket", "s", "--max-msg-size", "40"])).unwrap();
        assert_eq!(c.slot_size, 64);
        assert!(!size_allows_negotiation(c.max_msg_size));
    }

    #[test]
    fn clear_errors() {
        assert!(load(cli(&[])).unwrap_err().contains("--socket"));
        let e = load(cli(&["--socket", "s", "--accept-revisions", "1,2"])).unwrap_err();
        assert!(e.contains("revision 2 is not supported"), "{e}");
        let e = load(cli(&["--socket", "s", "--shm-size", "1000000"])).unwrap_err();
        assert!(e.contains("not a power of two"), "{e}");
        let e = load(cli(&["--socket", "s", "--max-msg-size", "70000"])).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        assert!(Cli::try_parse_from(["x", "--device", "toaster"]).is_err());
        assert!(Cli::try_parse_from(["x", "--fault", "explode"]).is_err());
        assert!(Cli::try_parse_from(["x", "--log-level", "loud"]).is_err());
    }

    #[test]
    fn no_revisions_is_allowed() {
        let c = load(cli(&["--socket", "s", "--accept-revisions", "none"])).unwrap();
        assert!(c.accept_revisions.is_empty());
    }

    #[test]
    fn config_file_merges_under_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            r#"
socket = "/from/file"
shm-size = "2M"
max-msg-size = 512
accept-revisions = [1]
log-level = "debug"
devices = ["rng", "console:output=stdout"]
faults = ["delay=10:1"]
"#,
        )
        .unwrap();
        let c = load(cli(&[
            "--config",
            path.to_str().unwrap(),
            "--socket",
            "/from/cli",
            "--device",
            "rng",
            "--fault",
            "bad-id",
        ]))
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/from/cli"));
        assert_eq!(c.shm_size, 2 << 20);
        assert_eq!(c.max_msg_size, 512);
        assert_eq!(c.log_level, LevelFilter::Debug);
        assert_eq!(c.devices.len(), 3);
        assert_eq!(
            c.faults[0].kind,
            FaultKind::Delay(Duration::from_millis(10))
        );
        assert_eq!(c.faults[1].kind, FaultKind::BadId);
    }

    #[test]
    fn window_option() {
        let c = load(cli(&["--socket", "s"])).unwrap();
        assert_eq!(c.window, None);
        let c = load(cli(&[
            "--socket",
            "s",
            "--shm-size",
            "8M",
            "--window",
            "4M",
        ]))
        .unwrap();
        assert_eq!(c.window, Some(4 << 20));
        assert_eq!(c.guest_memory, None);
        let c = load(cli(&["--socket", "s", "--window", "8192"])).unwrap();
        assert_eq!(c.window, Some(8192));
        for bad in ["1000", "0", "6K"] {
            let e = load(cli(&["--socket", "s", "--window", bad])).unwrap_err();
            assert!(e.contains("multiple of 4096"), "{bad}: {e}");
        }
        assert!(Cli::try_parse_from(["x", "--window", "big"]).is_err());
    }

    #[test]
    fn window_and_guest_memory_exclude_each_other() {
        let e = load(cli(&[
            "--socket",
            "s",
            "--window",
            "4M",
            "--guest-memory",
            "/dev/shm/ram",
        ]))
        .unwrap_err();
        assert!(
            e.contains("--window and --guest-memory exclude each other"),
            "{e}"
        );
        // Also when one of them comes from the config file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "guest-memory = \"/dev/shm/ram\"\n").unwrap();
        let e = load(cli(&[
            "--config",
            path.to_str().unwrap(),
            "--socket",
            "s",
            "--window",
            "4M",
        ]))
        .unwrap_err();
        assert!(e.contains("exclude each other"), "{e}");
        std::fs::write(&path, "window = \"64K\"\n").unwrap();
        let c = load(cli(&["--config", path.to_str().unwrap(), "--socket", "s"])).unwrap();
        assert_eq!(c.window, Some(64 * 1024));
        std::fs::write(&path, "window = 8192\n").unwrap();
        let c = load(cli(&["--config", path.to_str().unwrap(), "--socket", "s"])).unwrap();
        assert_eq!(c.window, Some(8192));
    }

    #[test]
    fn config_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "sockett = 1\n").unwrap();
        let e = load(cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(e.contains("bad.toml") && e.contains("sockett"), "{e}");
    }
}
