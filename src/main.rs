//! The `hearth` daemon: parse flags and the configuration file, set up logging, run
//! the server.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use hearth::config::file::{self as config_file, LoadError, Loaded};
use hearth::config::reload::Reloader;
use hearth::config::settings::{self, Settings};
use hearth::config::sites::Sites;
use hearth::config::tls::{CertFiles, CertStore};
use hearth::obs::logging::Logs;
use hearth::sys::SignalFd;
use hearth::{Server, StartError};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let loaded = match load(&argv) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if loaded.config.check {
        return check(&loaded);
    }
    let cfg = &loaded.config;
    if !cfg.root.is_dir() {
        eprintln!("hearth: {}", root_problem(&cfg.root));
        return ExitCode::from(2);
    }
    // Large buffers (compression) go back to the system when freed, so memory stays
    // near the --compress-cache size; set before any thread exists.
    hearth::sys::return_large_allocations(128 * 1024);
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
    let reloader = Some(Reloader::new(argv, &loaded));
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
    for w in server.tls_warnings() {
        eprintln!("hearth: warning: {w}");
    }
    print_start(&server, cfg);
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("fatal: {e}");
            eprintln!("hearth: {e}");
            ExitCode::from(1)
        }
    }
}

/// The flags and the configuration file; on failure (or `--help`, `--version`),
/// the exit code, after clap or the file's error has been printed.
fn load(argv: &[std::ffi::OsString]) -> Result<Loaded, ExitCode> {
    match config_file::load(argv) {
        Ok(l) => Ok(l),
        Err(LoadError::Args(e)) => {
            let _ = e.print();
            Err(if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(LoadError::Config(e)) => {
            eprintln!("hearth: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// The start-up lines on stdout: warnings, each listening address, the settings.
fn print_start(server: &Server, cfg: &hearth::Config) {
    let mut out = std::io::stdout();
    for addr in server.local_addrs() {
        let _ = writeln!(out, "{}", listening_line("http", *addr));
    }
    for addr in server.tls_addrs() {
        let _ = writeln!(out, "{}", listening_line("https", *addr));
    }
    // For the scripts (stop.sh waits --grace, status.sh fetches the pages) and for
    // a person reading stdout.log: what was chosen, as the server understood it.
    let _ = writeln!(
        out,
        "hearth settings: grace={} health={} stats={} threads={} reactors={}",
        cfg.grace,
        cfg.health_path,
        cfg.stats_path.as_deref().unwrap_or(""),
        server.threads(),
        server.reactors()
    );
    let _ = out.flush();
}

/// What is wrong with a root that is not a directory, naming the absolute path a
/// relative root was resolved against.
fn root_problem(root: &Path) -> String {
    let shown = if root.is_absolute() {
        root.display().to_string()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => format!("{} ({})", root.display(), cwd.join(root).display()),
            Err(_) => root.display().to_string(),
        }
    };
    if root.exists() {
        format!("root {shown} is not a directory")
    } else {
        format!("root {shown} does not exist")
    }
}

/// `--check`: validates the settings, builds the sites (roots, headers) and loads
/// every certificate and key, like `nginx -t`. Certificates near expiry and key
/// files others can read are warned about on stderr.
fn check(loaded: &Loaded) -> ExitCode {
    let result = Settings::from_config(&loaded.config, 1024, 1 + loaded.vhosts.len())
        .and_then(|s| settings::preflight(&loaded.config).map(|()| s))
        .map_err(|e| loaded.locate(e))
        .and_then(|s| Sites::build(loaded, s.file_fds))
        .and_then(|_| CertFiles::of(loaded))
        .and_then(|files| files.map(|f| CertStore::load(&f)).transpose());
    match result {
        Ok(store) => {
            for w in store.iter().flat_map(|s| s.warnings()) {
                eprintln!("hearth: warning: {w}");
            }
            println!("configuration ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hearth: {e}");
            ExitCode::from(2)
        }
    }
}

/// The address a person on this host can open: a wildcard bind is reached through
/// loopback (`0.0.0.0` as 127.0.0.1, `::` as `[::1]`).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// `hearth listening on URL`, with the bound address after it when the URL had to
/// name another one.
fn listening_line(scheme: &str, bound: SocketAddr) -> String {
    let url = reachable(bound);
    if url == bound {
        format!("hearth listening on {scheme}://{url}/")
    } else {
        format!("hearth listening on {scheme}://{url}/ (bound to {bound})")
    }
}
