//! Thin wrappers over the Linux system calls the server needs.
//!
//! This is the only module with `unsafe` (`lib.rs` denies undocumented unsafe blocks
//! crate-wide). Every block is one call, and every file
//! descriptor is wrapped in an owning type (`OwnedFd`, `TcpStream`, `File`) the moment
//! the kernel hands it over, so it is closed exactly once.

use std::io;

/// Calls a libc function and turns a `-1` return into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller upholds the call's contract (live, correctly sized
        // buffers and valid pointers), stated in a SAFETY comment at each use.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

// After the macro, which they use.
mod epoll;
mod eventfd;
mod fs;
mod inotify;
mod net;
mod signal;

pub use epoll::*;
pub use eventfd::EventFd;
pub use fs::*;
pub use inotify::{inotify_events, Inotify};
pub use net::*;
pub use signal::{ignore_sigpipe, SignalFd};

/// Lowers the calling thread's scheduling priority (nice 10) for background work;
/// best effort, a failure changes nothing else.
pub fn lower_thread_priority() {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: no pointers. On Linux a thread id names one thread for PRIO_PROCESS.
    let _ = syscall!(setpriority(libc::PRIO_PROCESS, tid, 10));
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is writable storage for one rlimit.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is an initialised rlimit.
        if syscall!(setrlimit(libc::RLIMIT_NOFILE, &raised)).is_ok() {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}
