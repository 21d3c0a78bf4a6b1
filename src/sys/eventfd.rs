//! eventfd: a counter another thread writes to wake an epoll loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::net::read;

/// An eventfd used to wake the reactor from another thread.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: no pointers; the returned descriptor is owned below.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// The descriptor, to register with epoll.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Adds one to the counter, making the fd readable.
    pub fn wake(&self) {
        let one: u64 = 1;
        // A full counter (EAGAIN) still leaves the fd readable, which is all we need.
        // SAFETY: `one` is 8 readable bytes, the size eventfd requires.
        let _ = syscall!(write(
            self.fd.as_raw_fd(),
            &one as *const u64 as *const libc::c_void,
            8
        ));
    }

    /// Resets the counter.
    pub fn drain(&self) {
        let mut v = [0u8; 8];
        let _ = read(self.fd.as_raw_fd(), &mut v);
    }
}
