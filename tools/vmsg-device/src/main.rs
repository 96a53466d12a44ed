// SPDX-License-Identifier: GPL-2.0

//! `vmsg-device`: see `vmsg-device --help`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vmsg_device::cli::{self, Cli, Command, ServerArgs};
use vmsg_device::server::Server;
use vmsg_device::shm_server::ShmServer;

fn ivshmem_server(args: &ServerArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vmsg-device: error: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        .filter_level(args.log_level)
        .format_timestamp_millis()
        .init();
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
    env_logger::Builder::new()
        .filter_level(config.log_level)
        .format_timestamp_millis()
        .init();
    match Server::new(&config).and_then(|mut server| server.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsg-device: error: {e}");
            ExitCode::FAILURE
        }
    }
}
