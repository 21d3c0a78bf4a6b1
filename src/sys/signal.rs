//! Signals: SIGPIPE ignored, and the stop and reload signals read from a signalfd.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Ignores SIGPIPE, so a write to a reset connection fails with EPIPE instead.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN is async-signal-safe and has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The signals the server handles: SIGTERM, SIGINT (stop), SIGHUP (reopen logs).
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

fn handled_set() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is valid storage; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is valid, writable storage for a sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

impl SignalFd {
    /// Blocks the handled signals in the calling thread (threads spawned later inherit
    /// the mask) and returns a signalfd that reads them. Call before spawning threads.
    pub fn new() -> io::Result<SignalFd> {
        let set = handled_set();
        // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: `set` is an initialised sigset_t.
        let fd = syscall!(signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// The descriptor, to register with epoll.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal number, if any.
    pub fn next(&self) -> Option<i32> {
        // SAFETY: an all-zero signalfd_siginfo is a valid value of the type.
        let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes, one signalfd_siginfo.
        match syscall!(read(
            self.fd.as_raw_fd(),
            &mut info as *mut _ as *mut libc::c_void,
            size
        )) {
            Ok(n) if n as usize == size => Some(info.ssi_signo as i32),
            _ => None,
        }
    }
}
