//! epoll: the readiness flags, the event record, and an owned epoll instance.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readable (or a pending connection on a listener).
pub const EV_IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const EV_OUT: u32 = libc::EPOLLOUT as u32;
/// The peer shut down its writing side.
pub const EV_RDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Hang-up.
pub const EV_HUP: u32 = libc::EPOLLHUP as u32;
/// Error condition.
pub const EV_ERR: u32 = libc::EPOLLERR as u32;
/// Disarm after one event; re-armed with `EPOLL_CTL_MOD`.
pub const EV_ONESHOT: u32 = libc::EPOLLONESHOT as u32;
/// `EPOLLEXCLUSIVE`: of several epoll instances watching one descriptor, an event
/// wakes one (or a few) instead of all.
pub const EV_EXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;

/// One event as returned by `epoll_wait`.
pub type Event = libc::epoll_event;

/// An empty event, to size the buffer `Epoll::wait` fills.
pub fn empty_event() -> Event {
    libc::epoll_event { events: 0, u64: 0 }
}

/// The token stored with a registration.
pub fn event_token(ev: &Event) -> u64 {
    ev.u64
}

/// The readiness bits of an event.
pub fn event_flags(ev: &Event) -> u32 {
    ev.events
}

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the returned descriptor is owned below.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event for the call; a stale `fd` only fails.
        syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev))?;
        Ok(())
    }

    /// Registers `fd` for `events`, tagged with `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes (and, with `EV_ONESHOT`, re-arms) the registration of `fd`.
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Removes `fd` from the interest list.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ms` (-1: forever) and fills `events`; returns how many.
    /// An interrupted wait returns 0.
    pub fn wait(&self, events: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
        let cap = events.len().min(i32::MAX as usize) as i32;
        // SAFETY: `events` is writable for `cap` records, and `cap` is its length.
        match syscall!(epoll_wait(
            self.fd.as_raw_fd(),
            events.as_mut_ptr(),
            cap,
            timeout_ms
        )) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}
