//! How a connection's bytes cross the socket. The connection owns its transport, and
//! every read and write of a client socket goes through one: the reactor and the
//! workers call the connection, never the socket.
//!
//! Two kinds: a plain TCP stream (reads into the connection's buffer, `writev` for a
//! head with a body in memory, `send` with `MSG_MORE` before a file, `sendfile` for
//! file bodies), and TLS (`tls.rs`), where the reactor reads ciphertext into the
//! transport's own buffer and the worker decrypts it and encrypts what it writes.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};

use crate::driver::tls::Tls;
use crate::http::body::Body;
use crate::sys;

/// At most this many bytes go out in one turn before the connection yields.
pub const WRITE_QUANTUM: u64 = 4 * 1024 * 1024;

/// The response being written.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Encoded head (swapped in from a worker's buffer, so no copy is made).
    pub head: Vec<u8>,
    /// Bytes of `head` already sent.
    pub pos: usize,
    /// The body.
    pub body: Body,
}

/// Result of a write attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// The whole response is out.
    Done,
    /// The socket is full: wait for `EPOLLOUT`.
    Blocked,
    /// Wrote the fairness quantum: let other connections have the worker.
    Yield,
}

/// A connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// A TCP socket, bytes as they are.
    Plain(TcpStream),
    /// TLS over a TCP socket.
    Tls(Box<Tls>),
}

impl Transport {
    /// The socket descriptor (for epoll registration).
    pub fn fd(&self) -> RawFd {
        match self {
            Transport::Plain(s) => s.as_raw_fd(),
            Transport::Tls(t) => t.fd(),
        }
    }

    /// Reads at most `room` bytes into the spare capacity of `buf`; `Ok(0)` is the
    /// peer's end of stream. Plain sockets only: TLS reads ciphertext into its own
    /// buffer ([`Tls::receive`]).
    pub fn read_into(&mut self, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::read_into(s.as_raw_fd(), buf, room),
            Transport::Tls(_) => Err(io::Error::other("TLS input goes through Tls::receive")),
        }
    }

    /// Writes what the socket takes of `bytes` now; returns how many went out.
    pub fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => sys::send(s.as_raw_fd(), bytes, false),
            Transport::Tls(t) => t.write_now(bytes),
        }
    }

    /// The TLS session, on a TLS connection.
    pub fn tls(&self) -> Option<&Tls> {
        match self {
            Transport::Tls(t) => Some(t),
            Transport::Plain(_) => None,
        }
    }

    /// The TLS session, on a TLS connection, to change.
    pub fn tls_mut(&mut self) -> Option<&mut Tls> {
        match self {
            Transport::Tls(t) => Some(t),
            Transport::Plain(_) => None,
        }
    }

    /// Shuts down the sending side (the peer reads end of stream after what was sent).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = sys::shutdown_write(s.as_raw_fd());
            }
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// Writes as much of `out` as the socket takes; `sent` is increased by the bytes
    /// written. Errors (reset, broken pipe, a file that shrank) end the connection.
    /// `others_waiting` is asked after each quantum: the connection yields the worker
    /// only when other connections are queued.
    pub fn write_out(
        &mut self,
        out: &mut Outgoing,
        sent: &mut u64,
        others_waiting: impl Fn() -> bool,
    ) -> io::Result<WriteStatus> {
        match self {
            Transport::Plain(s) => write_plain(s.as_raw_fd(), out, sent, others_waiting),
            Transport::Tls(t) => t.write_out(out, sent, others_waiting),
        }
    }
}

/// Answers a connection that will not be served (over `--max-conns`) with the
/// complete `response` and shuts it down; `scratch` takes what already arrived, so
/// closing does not reset the connection and destroy the answer.
pub fn refuse(stream: &TcpStream, scratch: &mut [u8], response: &[u8]) {
    let fd = stream.as_raw_fd();
    let _ = sys::read(fd, scratch);
    let _ = sys::send(fd, response, false);
    let _ = sys::shutdown_write(fd);
}

/// [`Transport::write_out`] over a plain socket.
fn write_plain(
    fd: RawFd,
    out: &mut Outgoing,
    sent: &mut u64,
    others_waiting: impl Fn() -> bool,
) -> io::Result<WriteStatus> {
    let mut turn = 0u64;
    loop {
        let n = match send_step(fd, out) {
            Ok(Some(n)) => n as u64,
            Ok(None) => return Ok(WriteStatus::Done),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(WriteStatus::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        *sent += n;
        turn += n;
        if turn >= WRITE_QUANTUM && !out.is_done() {
            if others_waiting() {
                return Ok(WriteStatus::Yield);
            }
            turn = 0;
        }
    }
}

/// One system call's worth of `out`: the head (with a memory body in the same
/// `writev`), then the body. Advances the positions; `None` when all is sent.
fn send_step(fd: RawFd, out: &mut Outgoing) -> io::Result<Option<usize>> {
    let head = &out.head[out.pos..];
    // A multipart body is sent piece by piece; `more` says bytes follow the piece.
    let (body, more) = out.body.current();
    if !head.is_empty() {
        let n = match body {
            Body::Memory { bytes, pos, end } => {
                sys::writev2(fd, head, &bytes.as_slice()[*pos..*end])?
            }
            Body::File { .. } | Body::Parts(_) => sys::send(fd, head, true)?,
            Body::Empty => sys::send(fd, head, more)?,
        };
        let from_head = n.min(head.len());
        out.pos += from_head;
        if let Body::Memory { pos, .. } = body {
            *pos += n - from_head;
        }
        return Ok(Some(n));
    }
    match body {
        Body::Empty | Body::Parts(_) => Ok(None),
        Body::Memory { pos, end, .. } if *pos >= *end => Ok(None),
        Body::Memory { bytes, pos, end } => {
            let n = sys::send(fd, &bytes.as_slice()[*pos..*end], more)?;
            *pos += n;
            Ok(Some(n))
        }
        Body::File { offset, end, .. } if *offset >= *end => Ok(None),
        Body::File { file, offset, end } => {
            let count = (*end - *offset).min(1 << 30) as usize;
            // sendfile advances `offset` itself.
            match sys::sendfile(fd, file, offset, count)? {
                0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
                n => Ok(Some(n)),
            }
        }
    }
}

impl Outgoing {
    /// Whether nothing is left to send.
    pub fn is_done(&self) -> bool {
        self.pos >= self.head.len() && self.body.remaining() == 0
    }

    /// Puts `bytes` before what is left of the head (the unsent part of an interim
    /// response goes out first, through the same writer).
    pub fn prepend(&mut self, bytes: &[u8]) {
        self.head.drain(..self.pos);
        self.pos = 0;
        self.head.splice(0..0, bytes.iter().copied());
    }
}
