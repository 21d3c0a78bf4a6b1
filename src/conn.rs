//! One client connection: its buffers, where it is in the protocol, and the
//! resumable write of a response.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use crate::http::chunked::Decoder;
use crate::stats::{Gauge, GaugeSlot, Stats};
use crate::sys;

/// Identifies a connection in epoll events: slot index in the low 32 bits, the
/// slot's generation in the high 32, so an event for a closed connection whose slot
/// was reused is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token(pub u64);

impl Token {
    /// Builds a token.
    pub fn new(index: u32, generation: u32) -> Token {
        Token((u64::from(generation) << 32) | u64::from(index))
    }

    /// The slot index.
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot generation.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// What happens once the response in `out` has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Wait for the next request on the same connection.
    KeepAlive,
    /// Close the connection (lingering first if unread input is buffered).
    Close,
    /// The client may still be sending bytes that will never be read (a refused
    /// body): shut down writing and drain input until it closes, so the close does not
    /// turn into a reset that destroys the response.
    Linger,
}

/// Where the connection is in the exchange. Each state carries what it needs, so a
/// connection cannot be, say, reading a body with no response waiting.
#[derive(Debug)]
pub enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Discarding a `Content-Length` body; the response waits in `out`.
    Body {
        /// Body bytes still to come.
        remaining: u64,
        /// What follows the response.
        after: After,
    },
    /// Discarding a chunked body; the response waits in `out`.
    Chunked {
        /// The chunk decoder.
        decoder: Box<Decoder>,
        /// What follows the response.
        after: After,
    },
    /// Writing `out`.
    Write {
        /// What follows the response.
        after: After,
        /// Epoll has reported the socket writable (`--defer-write` waits for it).
        writable: bool,
    },
    /// Our side is shut down; discarding input until the peer closes.
    Linger,
}

/// What a connection needs next from the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait until the socket is readable.
    Read,
    /// Wait until the socket is writable.
    Write,
    /// Close now.
    Close,
    /// Shut down writing, then wait for the peer to close.
    Linger,
}

/// Bytes held in memory.
#[derive(Debug)]
pub enum Bytes {
    /// Compiled into the binary (error pages).
    Static(&'static [u8]),
    /// Shared with the file cache.
    Shared(Arc<[u8]>),
    /// Made for this response (listings, stats).
    Owned(Vec<u8>),
}

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Static(b) => b,
            Bytes::Shared(b) => b,
            Bytes::Owned(b) => b,
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response body and how much of it is left.
#[derive(Debug)]
pub enum Body {
    /// No body (HEAD, 304, 204).
    Empty,
    /// In memory: bytes `pos..end`.
    Memory {
        /// The bytes.
        bytes: Bytes,
        /// Next byte to send.
        pos: usize,
        /// One past the last byte to send.
        end: usize,
    },
    /// From a file with `sendfile`: bytes `offset..end`.
    File {
        /// The open file.
        file: Arc<File>,
        /// Next byte to send.
        offset: u64,
        /// One past the last byte to send.
        end: u64,
    },
    /// Several bodies sent one after the other (a `multipart/byteranges` response:
    /// part headers in memory, ranges of a file or of memory).
    Parts(Box<Parts>),
}

/// The pieces of a [`Body::Parts`], none of them `Parts` itself.
#[derive(Debug)]
pub struct Parts {
    /// The pieces in order.
    pub pieces: Vec<Body>,
    /// The first piece not yet wholly sent.
    pub next: usize,
}

impl Body {
    /// Bytes left to send.
    pub fn remaining(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Memory { pos, end, .. } => end.saturating_sub(*pos) as u64,
            Body::File { offset, end, .. } => end.saturating_sub(*offset),
            Body::Parts(p) => p.pieces[p.next..].iter().map(Body::remaining).sum(),
        }
    }

    /// The piece being sent (itself unless it is `Parts`), skipping pieces already
    /// sent, and whether other bytes follow it.
    fn current(&mut self) -> (&mut Body, bool) {
        if matches!(self, Body::Parts(p) if p.pieces.is_empty()) {
            return (self, false);
        }
        match self {
            Body::Parts(p) => {
                while p.next + 1 < p.pieces.len() && p.pieces[p.next].remaining() == 0 {
                    p.next += 1;
                }
                let more = p.next + 1 < p.pieces.len();
                (&mut p.pieces[p.next], more)
            }
            other => (other, false),
        }
    }
}

/// The response being written.
#[derive(Debug)]
pub struct Outgoing {
    /// Encoded head (swapped in from a worker's buffer, so no copy is made).
    pub head: Vec<u8>,
    /// Bytes of `head` already sent.
    pub pos: usize,
    /// The body.
    pub body: Body,
}

impl Default for Outgoing {
    fn default() -> Self {
        Outgoing {
            head: Vec::new(),
            pos: 0,
            body: Body::Empty,
        }
    }
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

/// At most this many bytes go out in one turn before the connection yields.
const WRITE_QUANTUM: u64 = 4 * 1024 * 1024;

/// One client connection. Owned by exactly one thread at a time: its reactor (in its
/// slot) or a worker (after the queue handed it over).
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Slot and generation.
    pub token: Token,
    /// The reactor that accepted the connection: its slots, timers and epoll.
    pub home: usize,
    /// Client address.
    pub peer: SocketAddr,
    /// Received bytes not yet consumed.
    pub buf: Vec<u8>,
    /// Protocol state.
    pub state: State,
    /// The response in progress.
    pub out: Outgoing,
    /// The peer has shut down its sending side (read returned 0): buffered requests
    /// are still answered, then the connection closes.
    pub eof: bool,
    /// Millisecond deadline on the shared clock; past it the connection is closed.
    pub deadline: u64,
    /// The earliest entry the home reactor's timer heap holds for this connection,
    /// if one is pending; a deadline before it needs a new entry.
    pub timer_at: Option<u64>,
    /// The stats gauge the connection is counted in (left when it is dropped).
    pub gauge: GaugeSlot,
    /// When the head of the request being answered was complete, for the
    /// request-duration histogram.
    pub started: Option<Instant>,
    /// A response has been sent on this connection.
    pub served: bool,
}

impl Conn {
    /// A new connection of reactor `home`, counted as reading.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        token: Token,
        home: usize,
        deadline: u64,
        stats: Arc<Stats>,
    ) -> Conn {
        Conn {
            stream,
            token,
            home,
            peer,
            buf: Vec::new(),
            state: State::Head,
            out: Outgoing::default(),
            eof: false,
            deadline,
            timer_at: None,
            gauge: GaugeSlot::new(stats, Gauge::Reading),
            started: None,
            served: false,
        }
    }

    /// Whether the timer heap needs a new entry for the current deadline: none is
    /// pending, or the one pending fires after the deadline (it moved earlier).
    pub fn needs_timer(&self, now: u64) -> bool {
        match self.timer_at {
            Some(at) => at > self.deadline || at <= now,
            None => true,
        }
    }

    /// The socket descriptor.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// True when idle between requests: nothing buffered, nothing to write.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head) && self.buf.is_empty()
    }

    /// True when idle after at least one response: a keep-alive connection that a
    /// stop may close. (A new connection may have its first request on the way.)
    pub fn is_kept_alive(&self) -> bool {
        self.served && self.is_idle()
    }

    /// Writes as much of `out` as the socket takes; `sent` is increased by the bytes
    /// written. Errors (reset, broken pipe, a file that shrank) end the connection.
    /// `others_waiting` is asked after each quantum: the connection yields the worker
    /// only when other connections are queued.
    pub fn write_out(
        &mut self,
        sent: &mut u64,
        others_waiting: impl Fn() -> bool,
    ) -> io::Result<WriteStatus> {
        let fd = self.stream.as_raw_fd();
        let out = &mut self.out;
        let mut turn = 0u64;
        loop {
            let head = &out.head[out.pos..];
            let (body, more) = out.body.current();
            let result = if !head.is_empty() {
                match body {
                    Body::Memory { bytes, pos, end } => {
                        sys::writev2(fd, head, &bytes.as_slice()[*pos..*end])
                    }
                    Body::File { .. } | Body::Parts(_) => sys::send(fd, head, true),
                    Body::Empty => sys::send(fd, head, more),
                }
            } else {
                match body {
                    Body::Empty | Body::Parts(_) => return Ok(WriteStatus::Done),
                    Body::Memory { bytes, pos, end } => {
                        if pos >= end {
                            return Ok(WriteStatus::Done);
                        }
                        sys::send(fd, &bytes.as_slice()[*pos..*end], more)
                    }
                    Body::File { file, offset, end } => {
                        if offset >= end {
                            return Ok(WriteStatus::Done);
                        }
                        let count = (*end - *offset).min(1 << 30) as usize;
                        match sys::sendfile(fd, file, offset, count) {
                            Ok(0) => {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "file shrank",
                                ))
                            }
                            Ok(n) => {
                                *sent += n as u64;
                                turn += n as u64;
                                if turn >= WRITE_QUANTUM && (*offset < *end || more) {
                                    if others_waiting() {
                                        return Ok(WriteStatus::Yield);
                                    }
                                    turn = 0;
                                }
                                continue;
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            };
            match result {
                Ok(n) => {
                    *sent += n as u64;
                    turn += n as u64;
                    let from_head = n.min(out.head.len() - out.pos);
                    out.pos += from_head;
                    if let (Body::Memory { pos, .. }, _) = out.body.current() {
                        *pos += n - from_head;
                    }
                    if turn >= WRITE_QUANTUM {
                        if others_waiting() {
                            return Ok(WriteStatus::Yield);
                        }
                        turn = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(WriteStatus::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
