//! Restart without refusing a connection: on SIGUSR2 the server starts a new
//! process of the same binary (the file at its path now, so an upgraded binary
//! takes over) with the same arguments, handing it the listening sockets. Both
//! accept from the same sockets until the old one is told to stop (SIGTERM): it
//! then stops accepting and finishes what it has, and since the sockets stay open
//! in the new process, no connection waiting in the accept queue is lost.
//!
//! The sockets travel as inherited descriptors named in `HEARTH_LISTEN_FDS`
//! (`5,6`); the new process adopts those whose address it is configured to listen
//! on and binds the others itself.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};

use crate::sys;

/// The environment variable naming the inherited listening descriptors.
pub const LISTEN_FDS: &str = "HEARTH_LISTEN_FDS";

/// The listening sockets this process was handed by the process that started it;
/// a number that is not a listening socket is logged and skipped.
pub fn inherited() -> Vec<TcpListener> {
    let Some(list) = std::env::var_os(LISTEN_FDS) else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for item in list.to_string_lossy().split(',') {
        let Ok(fd) = item.trim().parse::<i32>() else {
            log::warn!("{LISTEN_FDS}: {item:?} is not a descriptor number");
            continue;
        };
        // Each number is adopted once, and never one of the standard streams.
        if fd < 3 || seen.contains(&fd) {
            continue;
        }
        seen.push(fd);
        match sys::adopt_listener(fd) {
            Ok(l) => out.push(l),
            Err(e) => log::warn!("{LISTEN_FDS}: {e}"),
        }
    }
    out
}

/// Takes from `inherited` every socket listening on `addr` (with several
/// reactors, the old process had one per reactor); when `addr`'s port is 0, as
/// `--port 0` chose one the first time, those on the port of the first match.
pub fn take_all(inherited: &mut Vec<TcpListener>, addr: SocketAddr) -> Vec<TcpListener> {
    let matches = |a: SocketAddr, port: u16| a.ip() == addr.ip() && (port == 0 || a.port() == port);
    let Some(port) = inherited
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .find(|a| matches(*a, addr.port()))
        .map(|a| a.port())
    else {
        return Vec::new();
    };
    let (taken, rest): (Vec<TcpListener>, Vec<TcpListener>) = std::mem::take(inherited)
        .into_iter()
        .partition(|l| l.local_addr().is_ok_and(|a| matches(a, port)));
    *inherited = rest;
    taken
}

/// Starts the new process on `sockets`; returns its pid. A thread waits for it,
/// so one that fails at start-up is logged, not left a zombie.
pub fn start(sockets: &[TcpListener]) -> std::io::Result<u32> {
    let exe = current_exe()?;
    let dups = sockets
        .iter()
        .map(|l| sys::dup_inheritable(l.as_raw_fd()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let list = dups
        .iter()
        .map(|d| d.as_raw_fd().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut child = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(LISTEN_FDS, list)
        .stdin(Stdio::null())
        .spawn()?;
    // The child has its copies; these were only for it.
    drop(dups);
    let pid = child.id();
    std::thread::Builder::new()
        .name("hearth-upgrade".into())
        .spawn(move || match child.wait() {
            Ok(st) if st.success() => log::info!("the new process {pid} exited ({st})"),
            Ok(st) => log::error!("the new process {pid} exited: {st}; this one keeps serving"),
            Err(e) => log::error!("waiting for the new process {pid}: {e}"),
        })?;
    Ok(pid)
}

/// The path of this binary; when the file has been replaced since it started (an
/// upgrade), the new file at the same path.
fn current_exe() -> std::io::Result<std::path::PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe())?;
    let bytes = exe.into_os_string().into_vec();
    let bytes = match bytes.strip_suffix(b" (deleted)") {
        Some(b) => b.to_vec(),
        None => bytes,
    };
    Ok(OsString::from_vec(bytes).into())
}
