// SPDX-License-Identifier: GPL-2.0

//! `vmsg-device`: see `vmsg-device --help`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vmsg_device::cli::{self, Cli, Command, ServerArgs};
use vmsg_device::server::Server;
use vmsg_device::shm_server::ShmServer;

/// Logs at `level`; `RUST_LOG`, when set, has the last word (env_logger's syntax: a level, or
/// `module=level` directives such as `vmsg_device::server=trace`).
fn init_logging(level: log::LevelFilter) {
    env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .format_timestamp_millis()
        .init();
}

fn ivshmem_server(args: &ServerArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmsg-device: error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.log_level);
    match ShmServer::new(&config).and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsg-device: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(Command::IvshmemServer(args)) = cli.command.take() {
        return ivshmem_server(&args);
    }
    let config = match cli::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmsg-device: error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);
    match Server::new(&config).and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsg-device: error: {e}");
            ExitCode::FAILURE
        }
    }
}
