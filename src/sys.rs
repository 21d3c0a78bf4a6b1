//! Thin wrappers over the Linux system calls the server needs.
//!
//! This is the only module with `unsafe`. Every block is one call, and every file
//! descriptor is wrapped in an owning type (`OwnedFd`, `TcpStream`, `File`) the moment
//! the kernel hands it over, so it is closed exactly once.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::mem;
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Calls a libc function and turns a `-1` return into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: each use passes valid descriptors and pointers to live, correctly
        // sized buffers; the call's contract is restated at the call site.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

// After the macro, which it uses.
mod inotify;
pub use inotify::{inotify_events, Inotify};

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
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
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

fn sockaddr_from(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller.
            let a: &libc::sockaddr_in =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which is smaller.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    syscall!(setsockopt(
        fd,
        level,
        name,
        &value as *const i32 as *const libc::c_void,
        mem::size_of::<i32>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// Options for the listening socket.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// `listen(2)` backlog.
    pub backlog: i32,
    /// Set `SO_REUSEPORT` so several processes can share the port.
    pub reuseport: bool,
    /// For an IPv6 address: accept IPv6 only (`IPV6_V6ONLY` on). Off, `::` also
    /// takes IPv4 connections (as v4-mapped addresses).
    pub v6only: bool,
}

/// Creates a non-blocking, close-on-exec listening socket with `SO_REUSEADDR`.
pub fn listen(addr: SocketAddr, opts: ListenOptions) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if opts.reuseport {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux, which saves a
    // setsockopt per connection. Responses are written whole (writev, or a head sent
    // with MSG_MORE before sendfile), so Nagle would only delay pipelined responses.
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if addr.is_ipv6() {
        // Set either way: the default comes from net.ipv6.bindv6only, which varies.
        let only = i32::from(opts.v6only);
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, only)?;
    }
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    syscall!(bind(
        fd,
        &storage as *const _ as *const libc::sockaddr,
        len as libc::socklen_t
    ))?;
    syscall!(listen(fd, opts.backlog))?;
    Ok(listener)
}

/// A duplicate of `fd` numbered 3 or above without close-on-exec, so a process this
/// one starts inherits it (the original stays close-on-exec).
pub fn dup_inheritable(fd: RawFd) -> io::Result<OwnedFd> {
    let n = syscall!(fcntl(fd, libc::F_DUPFD, 3))?;
    // SAFETY: `n` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Takes ownership of descriptor `fd`, inherited from the process that started
/// this one, as a listening socket: refused unless it is a socket in the listening
/// state; made close-on-exec and non-blocking.
pub fn adopt_listener(fd: RawFd) -> io::Result<TcpListener> {
    let mut accepting: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ACCEPTCONN,
        &mut accepting as *mut libc::c_int as *mut libc::c_void,
        &mut len
    ))?;
    if accepting != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not a listening socket"),
        ));
    }
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    // SAFETY: the descriptor is a listening socket the parent handed to this process
    // (see `upgrade::inherited`, which adopts each number once), owned by nothing else.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new connection and its peer address.
pub fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let fd = syscall!(accept4(
        listener.as_raw_fd(),
        &mut storage as *mut _ as *mut libc::sockaddr,
        &mut len,
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
    ))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let peer = sockaddr_from(&storage).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    Ok((stream, peer))
}

/// `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let n = syscall!(read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()))?;
    Ok(n as usize)
}

/// Reads into the spare capacity of `buf` (at most `max` bytes) and extends its length.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    let n = syscall!(read(fd, spare.as_mut_ptr() as *mut libc::c_void, want))? as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Writes `a` then `b` with one `writev(2)`; either may be empty.
pub fn writev2(fd: RawFd, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    let n = syscall!(writev(fd, iov.as_ptr(), 2))?;
    Ok(n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL`, and `MSG_MORE` when more data follows at once
/// (a response head before its `sendfile` body), so head and body share segments.
pub fn send(fd: RawFd, buf: &[u8], more: bool) -> io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    let n = syscall!(send(
        fd,
        buf.as_ptr() as *const libc::c_void,
        buf.len(),
        flags
    ))?;
    Ok(n as usize)
}

/// `sendfile(2)` of up to `count` bytes of `file` from `*offset`, advancing it.
/// The file position itself is untouched, so one open file can serve many responses.
pub fn sendfile(out: RawFd, file: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    let n = syscall!(sendfile(out, file.as_raw_fd(), &mut off, count))? as usize;
    *offset = off as u64;
    Ok(n)
}

/// `shutdown(fd, SHUT_WR)`: sends FIN after whatever is queued.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    syscall!(shutdown(fd, libc::SHUT_WR))?;
    Ok(())
}

/// Ignores SIGPIPE, so a write to a reset connection fails with EPIPE instead.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN is async-signal-safe and has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Serves allocations of `bytes` or more straight from `mmap`, so they go back to
/// the system when freed. glibc otherwise raises that threshold after the first
/// large free and keeps later large buffers (a file read to be compressed, an
/// encoder's tables) in its per-thread arenas, where freed memory stays resident:
/// the compression cache would then cost its size plus every buffer ever used.
/// Call before threads start. Without glibc, nothing is done.
pub fn return_large_allocations(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        // SAFETY: mallopt only changes allocator tuning; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if syscall!(setrlimit(libc::RLIMIT_NOFILE, &raised)).is_ok() {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// An eventfd used to wake the reactor from another thread.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
    pub fn new() -> io::Result<EventFd> {
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

/// The signals the server handles: SIGTERM, SIGINT (stop), SIGHUP (reopen logs,
/// reload), SIGUSR2 (start a new process on the same sockets).
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
        libc::sigaddset(&mut set, libc::SIGUSR2);
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

/// A path for a syscall: `EINVAL` if it holds a NUL byte.
fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens a directory as an `O_PATH` handle, the anchor for `open_beneath`.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path.as_os_str().as_bytes())?;
    let fd = syscall!(open(
        c.as_ptr(),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC
    ))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct open_how` of openat2(2) (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `rel` (relative, no leading slash) under the directory `dir` read-only,
/// non-blocking (a FIFO must not stall a worker) and close-on-exec.
///
/// With `beneath`, `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` makes the kernel
/// refuse (EXDEV) any resolution, symbolic links included, that leaves `dir`.
/// Returns `ENOSYS` where the kernel lacks `openat2`.
pub fn open_at(dir: &OwnedFd, rel: &[u8], beneath: bool) -> io::Result<File> {
    let c = c_path(rel)?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    let fd = if beneath {
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        };
        syscall!(syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            mem::size_of::<OpenHow>(),
        ))? as RawFd
    } else {
        syscall!(openat(dir.as_raw_fd(), c.as_ptr(), flags))?
    };
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The parts of `struct stat` the file cache compares and the listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Device.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Hard links; 0 once the file has been deleted.
    pub nlink: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Status change time: seconds and nanoseconds.
    pub ctime: (i64, i64),
}

impl FileStat {
    fn from_raw(st: &libc::stat) -> FileStat {
        FileStat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size.max(0) as u64,
            mode: st.st_mode,
            nlink: st.st_nlink,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    // SAFETY: an all-zero stat is a valid value of the type; fstat overwrites it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    syscall!(fstat(fd.as_raw_fd(), &mut st))?;
    Ok(FileStat::from_raw(&st))
}

/// `fstatat(2)` of `rel` (relative, non-empty) under the directory `dir`; a final
/// symbolic link is followed only with `follow`. The path is copied to the stack, so
/// a per-request check allocates nothing.
pub fn stat_at(dir: BorrowedFd<'_>, rel: &[u8], follow: bool) -> io::Result<FileStat> {
    let mut path = [0u8; 4096];
    if rel.is_empty() || rel.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if rel.len() >= path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    path[..rel.len()].copy_from_slice(rel);
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: an all-zero stat is a valid value of the type; fstatat overwrites it.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    syscall!(fstatat(
        dir.as_raw_fd(),
        path.as_ptr() as *const libc::c_char,
        &mut st,
        flags
    ))?;
    Ok(FileStat::from_raw(&st))
}

/// Reads the next entries of the open directory `dir` into `buf` with `getdents64(2)`;
/// returns the bytes filled, 0 at the end. Walk them with [`dirents`].
pub fn getdents(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let n = syscall!(syscall(
        libc::SYS_getdents64,
        dir.as_raw_fd(),
        buf.as_mut_ptr(),
        buf.len()
    ))?;
    Ok(n as usize)
}

/// The `(name, d_type)` of each `struct linux_dirent64` in bytes that [`getdents`]
/// filled. Parsed from bytes with bounds checks, so a short record ends the walk.
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = (&[u8], u8)> {
    // d_ino (8), d_off (8), d_reclen (2), d_type (1), then the NUL-terminated name.
    const NAME: usize = 19;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes([*rest.get(16)?, *rest.get(17)?]) as usize;
        if len < NAME || len > rest.len() {
            return None;
        }
        let (rec, tail) = rest.split_at(len);
        rest = tail;
        let name = &rec[NAME..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some((&name[..end], rec[18]))
    })
}
