//! A connection's exchange, driven by a worker: decrypting, taking a planned
//! response, reading a request body, writing, and what follows the response.

use std::io;
use std::time::{Duration, Instant};

use super::*;
use crate::driver::tls::{Decrypted, TlsError};
use crate::driver::transport::{Outgoing, Transport, WriteStatus};
use crate::http::body::Body;
use crate::http::chunked::ChunkError;

impl Conn {
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
}
