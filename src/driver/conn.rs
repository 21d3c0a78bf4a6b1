//! One client connection: its buffers, where it is in the protocol, its deadline and
//! the transport its bytes go through. Its fields are private: the reactor and the
//! workers move it on with named transitions (`receive`, `respond`, `start_body`,
//! `write`, `keep_alive`, `linger`), and every deadline is set here.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::tls::{Decrypted, TlsError};
use crate::driver::transport::{Outgoing, Transport, WriteStatus};
use crate::http::body::Body;
use crate::http::chunked::{ChunkError, Decoder};
use crate::obs::stats::{Gauge, GaugeSlot, Stats};

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

    // --- Reading (reactor) -------------------------------------------------------

    /// Reads what the socket has, at most up to `limit` buffered bytes, taking a
    /// buffer from `new_buf` when the connection holds none. Returns the bytes read;
    /// end of stream sets [`Conn::eof`]. The first bytes of a new request start its
    /// head clock at `now`.
    pub fn receive(
        &mut self,
        limit: usize,
        now: u64,
        new_buf: impl FnOnce() -> Vec<u8>,
    ) -> io::Result<usize> {
        if let Transport::Tls(t) = &mut self.transport {
            // Ciphertext only: the worker decrypts it (and starts the head clock).
            let (got, eof) = t.receive(new_buf)?;
            self.eof |= eof;
            if matches!(self.state, State::Linger) {
                t.discard_input();
            }
            return Ok(got);
        }
        let was_empty = self.buf.is_empty();
        if self.buf.capacity() == 0 {
            self.buf = new_buf();
        }
        let got = self.fill(limit)?;
        if matches!(self.state, State::Linger) {
            self.buf.clear();
        } else if got > 0 && was_empty && matches!(self.state, State::Head) {
            // A body must arrive whole within --timeout of its head (set when the
            // body phase begins), however it trickles in; lingering has its own limit.
            self.deadline = now + self.timeouts.head_ms;
        }
        Ok(got)
    }

    fn fill(&mut self, limit: usize) -> io::Result<usize> {
        let mut got = 0;
        loop {
            if self.buf.len() >= limit {
                return Ok(got);
            }
            if self.buf.len() == self.buf.capacity() {
                let grow = self.buf.capacity().max(64).min(limit - self.buf.len());
                self.buf.reserve(grow);
            }
            let room = (self.buf.capacity() - self.buf.len()).min(limit - self.buf.len());
            match self.transport.read_into(&mut self.buf, room) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(got);
                }
                Ok(n) => {
                    got += n;
                    // A short read drained the socket; with level-triggered ONESHOT
                    // the re-arm reports anything that arrives later.
                    if n < room {
                        return Ok(got);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The peer hung up its sending side (EPOLLRDHUP with nothing to read).
    pub fn hung_up(&mut self) {
        self.eof = true;
    }

    /// The read buffers that hold nothing, for the pool.
    pub fn spare_buffers(&mut self, mut give: impl FnMut(Vec<u8>)) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            give(std::mem::take(&mut self.buf));
        }
        if let Some(b) = self.transport.tls_mut().and_then(|t| t.spare_buffer()) {
            give(b);
        }
    }

    /// Epoll reported the socket writable.
    pub fn mark_writable(&mut self) {
        if let State::Write { writable, .. } = &mut self.state {
            *writable = true;
        }
    }

    // --- The exchange (worker) ---------------------------------------------------

    /// TLS: runs what the reactor read through the session (handshake, decryption)
    /// and moves plaintext into the input buffer, up to `limit` buffered bytes,
    /// taking a buffer from `new_buf` when the connection holds none. The first
    /// bytes of a new request start its head clock at `now`. Returns what was
    /// gained (nothing on a plain connection).
    pub fn decrypt(
        &mut self,
        limit: usize,
        now: u64,
        new_buf: impl FnOnce() -> Vec<u8>,
    ) -> Result<Decrypted, TlsError> {
        let Transport::Tls(t) = &mut self.transport else {
            return Ok(Decrypted::default());
        };
        if !t.has_input() && !t.wants_flush() {
            return Ok(Decrypted::default());
        }
        let was_empty = self.buf.is_empty();
        if self.buf.capacity() == 0 {
            self.buf = new_buf();
        }
        let d = t.decrypt(&mut self.buf, limit)?;
        self.eof |= d.closed;
        match self.state {
            State::Linger => self.buf.clear(),
            State::Head if d.got > 0 && was_empty => {
                self.deadline = now + self.timeouts.head_ms;
            }
            _ => {}
        }
        Ok(d)
    }

    /// Whether received bytes wait in the transport (TLS records not yet decrypted,
    /// or plaintext the input buffer had no room for).
    pub fn more_input(&self) -> bool {
        self.transport.tls().is_some_and(|t| t.has_input())
    }

    /// Whether sealed TLS bytes (handshake, alerts) wait for the socket to take them.
    pub fn wants_flush(&self) -> bool {
        self.transport.tls().is_some_and(|t| t.wants_flush())
    }

    /// A client spoke plain HTTP to the TLS port: sends it `response` unencrypted
    /// and shuts the connection down.
    pub fn refuse_plain(&mut self, response: &[u8]) {
        if let Some(t) = self.transport.tls_mut() {
            t.refuse_plain(response);
        }
        self.buf.clear();
    }

    /// Takes a planned response: `head` is swapped in (the caller gets the previous,
    /// empty buffer back to reuse) and `body` follows it. The response is written
    /// next, unless [`Conn::start_body`] says a request body comes first.
    pub fn respond(&mut self, head: &mut Vec<u8>, body: Body, after: After) {
        std::mem::swap(&mut self.out.head, head);
        head.clear();
        self.out.pos = 0;
        self.out.body = body;
        self.state = State::Write {
            after,
            writable: false,
        };
    }

    /// The connection closes once the response is out, whatever was planned.
    pub fn close_after(&mut self) {
        if let State::Write { after, .. } = &mut self.state {
            *after = After::Close;
        }
    }

    /// A request body is to be read (and discarded) before the response goes out;
    /// it must arrive within `--timeout` from `now`.
    pub fn start_body(&mut self, body: BodyRead, now: u64) {
        let after = self.after();
        self.deadline = now + self.timeouts.idle_ms;
        self.state = match body {
            BodyRead::Length(remaining) => State::Body { remaining, after },
            BodyRead::Chunked(decoder) => State::Chunked { decoder, after },
        };
    }

    /// Whether the whole request body of `length` bytes (`None`: chunked, some of it)
    /// is already buffered.
    pub fn body_buffered(&self, length: Option<u64>) -> bool {
        match length {
            Some(n) => self.buf.len() as u64 >= n,
            None => !self.buf.is_empty(),
        }
    }

    /// Sends an interim response (`100 Continue`) ahead of the final one. What the
    /// socket does not take now goes out first when the response is written.
    pub fn send_interim(&mut self, bytes: &[u8]) -> io::Result<()> {
        let n = loop {
            match self.transport.write_now(bytes) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                r => break r?,
            }
        };
        if n < bytes.len() {
            self.out.prepend(&bytes[n..]);
        }
        Ok(())
    }

    /// Discards buffered body bytes; true once the body is over and the response
    /// is due. A malformed or oversized chunked body is an error.
    pub fn discard_body(&mut self) -> Result<bool, ChunkError> {
        let (taken, done, after) = match &mut self.state {
            State::Body { remaining, after } => {
                let take = (*remaining).min(self.buf.len() as u64);
                *remaining -= take;
                (take as usize, *remaining == 0, *after)
            }
            State::Chunked { decoder, after } => {
                let n = decoder.feed(&self.buf)?;
                (n, decoder.is_done(), *after)
            }
            _ => return Ok(true),
        };
        self.buf.drain(..taken);
        if done {
            self.state = State::Write {
                after,
                writable: false,
            };
        }
        Ok(done)
    }

    /// Whether the write may go ahead: with `defer`, only once epoll reported the
    /// socket writable (the report is used up).
    pub fn may_write(&mut self, defer: bool) -> bool {
        match &mut self.state {
            State::Write { writable, .. } => !defer || std::mem::take(writable),
            _ => false,
        }
    }

    /// Writes as much of the response as the socket takes; progress at `now` moves
    /// the deadline. `sent` is increased by the bytes written.
    pub fn write(
        &mut self,
        sent: &mut u64,
        now: u64,
        others_waiting: impl Fn() -> bool,
    ) -> io::Result<WriteStatus> {
        let before = *sent;
        let r = self
            .transport
            .write_out(&mut self.out, sent, others_waiting);
        if *sent > before {
            self.deadline = now + self.timeouts.idle_ms;
        }
        r
    }

    /// What follows the response in progress (or planned).
    pub fn after(&self) -> After {
        match &self.state {
            State::Body { after, .. }
            | State::Chunked { after, .. }
            | State::Write { after, .. } => *after,
            State::Head => After::KeepAlive,
            State::Linger => After::Linger,
        }
    }

    /// The head of a request was complete at `at` (its response time runs from
    /// there).
    pub fn begin_request(&mut self, at: Instant) {
        self.started = Some(at);
    }

    /// The response is out: keeps the larger of the connection's head buffer and
    /// `spare` in `spare` (an idle connection holds none). Returns how long it took
    /// from the request's complete head.
    pub fn finish_response(&mut self, spare: &mut Vec<u8>) -> Option<Duration> {
        if self.out.head.capacity() > spare.capacity() {
            std::mem::swap(&mut self.out.head, spare);
        }
        self.out = Outgoing::default();
        self.served = true;
        self.started.take().map(|t| t.elapsed())
    }

    /// Goes on to the next request at `now`: idle (`--timeout`) when nothing is
    /// buffered, else its head clock has started.
    pub fn keep_alive(&mut self, now: u64) {
        self.state = State::Head;
        self.deadline = now
            + if self.buf.is_empty() {
                self.timeouts.idle_ms
            } else {
                self.timeouts.head_ms
            };
    }

    /// Shuts down writing and drains input until the peer closes, for at most
    /// [`LINGER_MS`] from `now`.
    pub fn linger(&mut self, now: u64) {
        self.transport.shutdown_write();
        self.state = State::Linger;
        self.discard_input();
        self.deadline = now + LINGER_MS;
    }

    /// Drops buffered input that will never be parsed (after a refused head).
    pub fn discard_input(&mut self) {
        self.buf.clear();
        if let Some(t) = self.transport.tls_mut() {
            t.discard_input();
        }
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
