//! Sockets: listening, accepting, and moving bytes between a socket and memory or
//! a file (`read`, `writev`, `send`, `sendfile`, `shutdown`).

use std::fs::File;
use std::io;
use std::mem;
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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
    // SAFETY: `value` is a readable c_int and its size is passed.
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
    /// `TCP_DEFER_ACCEPT` seconds (0: off).
    pub defer_accept: u32,
}

/// Creates a non-blocking, close-on-exec listening socket with `SO_REUSEADDR`.
pub fn listen(addr: SocketAddr, opts: ListenOptions) -> io::Result<TcpListener> {
    let listener = bound(addr, opts)?;
    // SAFETY: no pointers.
    syscall!(listen(listener.as_raw_fd(), opts.backlog))?;
    Ok(listener)
}

/// Whether `addr` is free for a socket without `SO_REUSEPORT`: binds one (never
/// listening, so no connection can reach it) and closes it. Fails with
/// `EADDRINUSE` when anything listens there, a `SO_REUSEPORT` group included.
pub fn probe_bind(addr: SocketAddr, v6only: bool) -> io::Result<SocketAddr> {
    let opts = ListenOptions {
        backlog: 0,
        reuseport: false,
        v6only,
        defer_accept: 0,
    };
    bound(addr, opts)?.local_addr()
}

/// Whether the listening socket has `SO_REUSEPORT` set (so more sockets may join
/// its port).
pub fn reuseport_enabled(listener: &TcpListener) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `on` and `len` are live, correctly sized out-parameters.
    let r = syscall!(getsockopt(
        listener.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_REUSEPORT,
        &mut on as *mut libc::c_int as *mut libc::c_void,
        &mut len
    ));
    r.is_ok() && on != 0
}

/// A socket of `addr`'s family with the options of `opts`, bound to `addr`.
fn bound(addr: SocketAddr, opts: ListenOptions) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: no pointers; the returned descriptor is owned below.
    let fd = syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    set_listen_options(fd, addr.is_ipv6(), opts)?;
    let (storage, len) = sockaddr_to(addr);
    // SAFETY: `storage` holds an address of the family and length passed.
    syscall!(bind(
        fd,
        &storage as *const _ as *const libc::sockaddr,
        len as libc::socklen_t
    ))?;
    Ok(listener)
}

/// Sets the options of `opts` on a listening socket not yet bound (`ipv6`: of the
/// IPv6 family).
fn set_listen_options(fd: RawFd, ipv6: bool, opts: ListenOptions) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if opts.reuseport {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux, which saves a
    // setsockopt per connection. Responses are written whole (writev, or a head sent
    // with MSG_MORE before sendfile), so Nagle would only delay pipelined responses.
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if opts.defer_accept > 0 {
        // The listener reports a connection once its first data has arrived, so the
        // read right after accept finds the request: no epoll registration and no
        // second wake-up for it.
        let secs = i32::try_from(opts.defer_accept).unwrap_or(i32::MAX);
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)?;
    }
    if ipv6 {
        // Set either way: the default comes from net.ipv6.bindv6only, which varies.
        let only = i32::from(opts.v6only);
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, only)?;
    }
    Ok(())
}

/// `addr` as the kernel takes it: a `sockaddr_in` or `sockaddr_in6` in a
/// `sockaddr_storage`, and its length.
fn sockaddr_to(addr: SocketAddr) -> (libc::sockaddr_storage, usize) {
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
    (storage, len)
}

/// A duplicate of `fd` numbered 3 or above without close-on-exec, so a process this
/// one starts inherits it (the original stays close-on-exec).
pub fn dup_inheritable(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor number has no memory-safety preconditions.
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
    // SAFETY: `accepting` and `len` are live, correctly sized out-parameters.
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
    // SAFETY: fcntl on a descriptor number has no memory-safety preconditions.
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    // SAFETY: as above.
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    // SAFETY: as above.
    syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    // SAFETY: the descriptor is a listening socket the parent handed to this process
    // (see `driver::upgrade::inherited`, which adopts each number once), owned by
    // nothing else.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new connection and its peer address.
pub fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are writable and `len` holds its size.
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
    // SAFETY: `buf` is writable for `buf.len()` bytes.
    let n = syscall!(read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()))?;
    Ok(n as usize)
}

/// Reads into the spare capacity of `buf` (at most `max` bytes) and extends its length.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    // SAFETY: `spare` is writable for `want` bytes (at most its length).
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
    // SAFETY: both iovecs point at live slices of the lengths given.
    let n = syscall!(writev(fd, iov.as_ptr(), 2))?;
    Ok(n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL`, and `MSG_MORE` when more data follows at once
/// (a response head before its `sendfile` body), so head and body share segments.
pub fn send(fd: RawFd, buf: &[u8], more: bool) -> io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: `buf` is readable for `buf.len()` bytes.
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
    // SAFETY: `off` is a writable off_t; both descriptors are open.
    let n = syscall!(sendfile(out, file.as_raw_fd(), &mut off, count))? as usize;
    *offset = off as u64;
    Ok(n)
}

/// `shutdown(fd, SHUT_WR)`: sends FIN after whatever is queued.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: no pointers.
    syscall!(shutdown(fd, libc::SHUT_WR))?;
    Ok(())
}
