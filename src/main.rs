//! The `hearth` daemon: parse flags, set up logging, run the server.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use hearth::logging::Logs;
use hearth::sys::SignalFd;
use hearth::{Config, Server, StartError};

fn main() -> ExitCode {
    let cfg = match Config::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !cfg.root.is_dir() {
        eprintln!("hearth: root {:?} is not a directory", cfg.root);
        return ExitCode::from(2);
    }
    // Block the handled signals before any thread exists, so every thread inherits
    // the mask and they arrive only through the signalfd.
    let signals = match SignalFd::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hearth: signalfd: {e}");
            return ExitCode::from(1);
        }
    };
    let logs = match Logs::init(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hearth: log files in {:?}: {e}", cfg.log_dir);
            return ExitCode::from(1);
        }
    };
    let server = match Server::bind(&cfg, Some(signals), Some(logs)) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            eprintln!("hearth: {e}");
            return ExitCode::from(match e {
                StartError::Config(_) => 2,
                StartError::Io(..) => 1,
            });
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "hearth listening on http://{}", server.local_addr());
    let _ = out.flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("fatal: {e}");
            eprintln!("hearth: {e}");
            ExitCode::from(1)
        }
    }
}
