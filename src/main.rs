//! The `hearth` daemon: parse flags and the configuration file, set up logging, run
//! the server.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use hearth::config_file::{self, LoadError, Loaded};
use hearth::logging::Logs;
use hearth::reload::Reloader;
use hearth::settings::Settings;
use hearth::site::Sites;
use hearth::sys::SignalFd;
use hearth::{Server, StartError};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let loaded = match config_file::load(&argv) {
        Ok(l) => l,
        Err(LoadError::Args(e)) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(LoadError::Config(e)) => {
            eprintln!("hearth: {e}");
            return ExitCode::from(2);
        }
    };
    if loaded.config.check {
        return check(&loaded);
    }
    let cfg = &loaded.config;
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
    let logs = match Logs::init(cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hearth: log files in {:?}: {e}", cfg.log_dir);
            return ExitCode::from(1);
        }
    };
    let reloader = Reloader::new(argv, &loaded);
    let server = match Server::bind_loaded(&loaded, reloader, Some(signals), Some(logs)) {
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
    for addr in server.local_addrs() {
        let _ = writeln!(out, "hearth listening on {}", url(*addr));
    }
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

/// `--check`: validates the settings and builds the sites (roots, headers), like
/// `nginx -t`.
fn check(loaded: &Loaded) -> ExitCode {
    let result = Settings::from_config(&loaded.config, 1024)
        .map_err(|e| loaded.locate(e))
        .and_then(|_| Sites::build(loaded));
    match result {
        Ok(_) => {
            println!("configuration ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::from(2)
        }
    }
}

/// A URL a person can click for a bound address: the wildcard addresses become
/// loopback, IPv6 goes in brackets.
fn url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, addr.port()))
}
