//! inotify: a descriptor that reports changes in watched directories, read by one
//! thread for the life of the process.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An inotify instance, created non-blocking and close-on-exec.
#[derive(Debug)]
pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`.
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: no pointers; the returned descriptor is owned below.
        let fd = syscall!(inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Inotify { fd })
    }

    /// Watches `path` (a directory) for `mask`; returns the watch descriptor. Adding
    /// a directory already watched returns its descriptor again.
    pub fn add_watch(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let c = super::fs::c_path(path.as_os_str().as_bytes())?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        syscall!(inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask))
    }

    /// Removes a watch; the kernel then queues `IN_IGNORED` for it.
    pub fn rm_watch(&self, wd: i32) -> io::Result<()> {
        // SAFETY: no pointers; an unknown watch only fails.
        syscall!(inotify_rm_watch(self.fd.as_raw_fd(), wd))?;
        Ok(())
    }

    /// Reads queued events into `buf` (at least 4096 bytes, so any one event fits);
    /// `WouldBlock` when none are queued. Walk them with [`inotify_events`].
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        super::read(self.fd.as_raw_fd(), buf)
    }

    /// Bytes of events queued and not yet read (`FIONREAD`), without taking them.
    pub fn pending(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int, and `n` is one.
        syscall!(ioctl(
            self.fd.as_raw_fd(),
            libc::FIONREAD,
            &mut n as *mut libc::c_int
        ))?;
        Ok(n.max(0) as usize)
    }

    /// Blocks until events are queued (or a signal interrupts).
    pub fn wait(&self) -> io::Result<()> {
        let mut fds = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` holds the one pollfd record the count says.
        match syscall!(poll(fds.as_mut_ptr(), 1, -1)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The `(wd, mask)` of each `struct inotify_event` in bytes that [`Inotify::read`]
/// filled. Parsed from bytes with bounds checks, so a short record ends the walk.
pub fn inotify_events(buf: &[u8]) -> impl Iterator<Item = (i32, u32)> + '_ {
    // wd (4), mask (4), cookie (4), len (4), then `len` bytes of name.
    const HEAD: usize = 16;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let word = |at: usize| -> Option<[u8; 4]> { rest.get(at..at + 4)?.try_into().ok() };
        let wd = i32::from_ne_bytes(word(0)?);
        let mask = u32::from_ne_bytes(word(4)?);
        let len = u32::from_ne_bytes(word(12)?) as usize;
        rest = rest.get(HEAD + len..)?;
        Some((wd, mask))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_with_bounds() {
        let mut buf = Vec::new();
        for (wd, mask, name) in [(1i32, 2u32, &b""[..]), (3, 4, b"name\0\0\0\0")] {
            buf.extend_from_slice(&wd.to_ne_bytes());
            buf.extend_from_slice(&mask.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes());
            buf.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            buf.extend_from_slice(name);
        }
        let all: Vec<_> = inotify_events(&buf).collect();
        assert_eq!(all, [(1, 2), (3, 4)]);
        // A truncated record is not reported.
        assert_eq!(inotify_events(&buf[..buf.len() - 1]).count(), 1);
    }
}
