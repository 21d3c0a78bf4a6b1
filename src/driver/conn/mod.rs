//! One client connection: its buffers, where it is in the protocol, its deadline and
//! the transport its bytes go through. Its fields are private: the reactor and the
//! workers move it on with named transitions (`receive`, `respond`, `start_body`,
//! `write`, `keep_alive`, `linger`), and every deadline is set here.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use crate::driver::transport::{Outgoing, Transport};
use crate::http::chunked::Decoder;
use crate::obs::stats::{Gauge, GaugeSlot, Stats};

mod exchange;
mod read;

/// How long a half-closed connection may keep sending before it is closed.
pub const LINGER_MS: u64 = 5_000;

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

/// What happens once the response has been written.
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
enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Discarding a `Content-Length` body; the response waits in `out`.
    Body { remaining: u64, after: After },
    /// Discarding a chunked body; the response waits in `out`.
    Chunked { decoder: Box<Decoder>, after: After },
    /// Writing `out`; `writable`: epoll has reported the socket writable
    /// (`--defer-write` waits for it).
    Write { after: After, writable: bool },
    /// Our side is shut down; discarding input until the peer closes.
    Linger,
}

/// The phase a connection is in, as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Discarding a request body before the response goes out.
    Body,
    /// Writing a response.
    Write,
    /// Shut down for writing, draining input until the peer closes.
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

/// The request body that follows a head, as the connection reads it.
#[derive(Debug)]
pub enum BodyRead {
    /// `Content-Length` bytes.
    Length(u64),
    /// A chunked body, decoded (and discarded) by this decoder.
    Chunked(Box<Decoder>),
}

/// The two clocks a connection runs on, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Milliseconds to send a complete request head (`--header-timeout`, at most
    /// `--timeout`).
    pub head_ms: u64,
    /// Milliseconds idle between requests, or without progress in a body or a write
    /// (`--timeout`).
    pub idle_ms: u64,
}

/// One client connection. Owned by exactly one thread at a time: its reactor (in its
/// slot) or a worker (after the queue handed it over).
#[derive(Debug)]
pub struct Conn {
    transport: Transport,
    token: Token,
    home: usize,
    peer: SocketAddr,
    /// Received bytes not yet consumed.
    buf: Vec<u8>,
    state: State,
    out: Outgoing,
    /// The peer has shut down its sending side (read returned 0): buffered requests
    /// are still answered, then the connection closes.
    eof: bool,
    timeouts: Timeouts,
    /// Millisecond deadline on the shared clock; past it the connection is closed.
    deadline: u64,
    /// The earliest entry the home reactor's timer heap holds for this connection,
    /// if one is pending; a deadline before it needs a new entry.
    timer_at: Option<u64>,
    /// The stats gauge the connection is counted in (left when it is dropped).
    gauge: GaugeSlot,
    /// When the head of the request being answered was complete, for the
    /// request-duration histogram.
    started: Option<Instant>,
    /// A response has been sent on this connection.
    served: bool,
}

impl Conn {
    /// A new connection of reactor `home`, accepted at `now`, counted as reading;
    /// its head clock runs from `now`.
    pub fn new(
        transport: Transport,
        peer: SocketAddr,
        token: Token,
        home: usize,
        timeouts: Timeouts,
        now: u64,
        stats: Arc<Stats>,
    ) -> Conn {
        Conn {
            transport,
            token,
            home,
            peer,
            buf: Vec::new(),
            state: State::Head,
            out: Outgoing::default(),
            eof: false,
            timeouts,
            deadline: now + timeouts.head_ms,
            timer_at: None,
            gauge: GaugeSlot::new(stats, Gauge::Reading),
            started: None,
            served: false,
        }
    }

    /// Slot and generation.
    pub fn token(&self) -> Token {
        self.token
    }

    /// The reactor that accepted the connection: its slots, timers and epoll.
    pub fn home(&self) -> usize {
        self.home
    }

    /// Client address.
    pub fn peer(&self) -> &SocketAddr {
        &self.peer
    }

    /// The socket descriptor (for epoll registration).
    pub fn fd(&self) -> RawFd {
        self.transport.fd()
    }

    /// The phase of the exchange.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Head => Phase::Head,
            State::Body { .. } | State::Chunked { .. } => Phase::Body,
            State::Write { .. } => Phase::Write,
            State::Linger => Phase::Linger,
        }
    }

    /// Whether the peer has finished sending.
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// True when idle between requests: nothing buffered, nothing to write.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
            && self.buf.is_empty()
            && !self.transport.tls().is_some_and(|t| t.has_input())
    }

    /// On a TLS connection: the server name the client asked for (SNI), if any.
    /// `None` on a plain connection.
    pub fn tls_name(&self) -> Option<Option<&str>> {
        self.transport.tls().map(|t| t.server_name())
    }

    /// On an HTTPS connection, the TLS version its handshake agreed on.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.transport.tls().and_then(|t| t.version())
    }

    /// True when idle after at least one response: a keep-alive connection that a
    /// stop may close. (A new connection may have its first request on the way.)
    pub fn is_kept_alive(&self) -> bool {
        self.served && self.is_idle()
    }

    /// Whether a response has been sent on this connection.
    pub fn served(&self) -> bool {
        self.served
    }

    /// Received bytes not yet consumed.
    pub fn input(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` received bytes (a parsed head).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Counts the connection in gauge `g` of the statistics.
    pub fn count_as(&mut self, g: Gauge) {
        self.gauge.set(g);
    }

    // --- Deadlines (reactor's timer heap) ----------------------------------------

    /// Whether the deadline has passed at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.deadline <= now
    }

    /// The deadline the home reactor's timer heap needs a new entry for, if any:
    /// none is pending, or the one pending fires after the deadline (it moved
    /// earlier). The entry is then counted as pending.
    pub fn timer_due(&mut self, now: u64) -> Option<u64> {
        let needed = match self.timer_at {
            Some(at) => at > self.deadline || at <= now,
            None => true,
        };
        needed.then(|| {
            self.timer_at = Some(self.deadline);
            self.deadline
        })
    }
}
