// SPDX-License-Identifier: GPL-2.0

//! `vmsg-device`: see `vmsg-device --help`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vmsg_device::cli::{self, Cli};
use vmsg_device::server::Server;

fn main() -> ExitCode {
    let config = match cli::load(Cli::parse()) {
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
