//! The TLS transport: a rustls server session over a TCP socket.
//!
//! The work is split as the card splits it. The reactor only moves ciphertext from
//! the socket into the connection's `inbox` (a plain `read`, no crypto). The worker
//! feeds the inbox to rustls ([`Tls::decrypt`]): the handshake, decryption, and the
//! plaintext moved into the connection's input buffer; handshake replies, session
//! tickets and alerts are flushed to the socket there too. Responses are encrypted
//! by the worker ([`Tls::write_out`]): a file body cannot be `sendfile`d through
//! TLS, so it is read with `pread` one chunk at a time, sealed, and written; a new
//! chunk is read only once the socket took the last one, so a connection holds at
//! most one chunk and its records whatever the file's size.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use crate::driver::transport::{Outgoing, WriteStatus, WRITE_QUANTUM};
use crate::http::body::Body;
use crate::sys;

/// Most ciphertext the reactor buffers for one connection before a worker has fed
/// it to rustls (two full records and change).
pub const INBOX_MAX: usize = 40 * 1024;
/// Plaintext sealed per step: three full TLS records, so a file body costs one
/// `pread` and one `writev` per 48 KiB, and rustls's 64 KiB send buffer takes
/// the whole chunk.
const CHUNK: usize = 3 * 16 * 1024;
/// The first byte of a TLS handshake record.
const HANDSHAKE: u8 = 0x16;
/// A fatal `decode_error` alert record in the clear, for input rustls refuses
/// without an alert of its own before anything was sent (a handshake message
/// longer than it accepts): the client still learns why the connection ends.
const DECODE_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];

/// Why a TLS connection cannot go on.
#[derive(Debug)]
pub enum TlsError {
    /// The client spoke plain HTTP to the TLS port.
    PlainHttp,
    /// A protocol error (the alert has been sent, as far as the socket took it).
    Protocol(rustls::Error),
    /// The socket failed.
    Io(io::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::PlainHttp => f.write_str("plain HTTP request sent to the HTTPS port"),
            TlsError::Protocol(e) => write!(f, "{e}"),
            TlsError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What one [`Tls::decrypt`] produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct Decrypted {
    /// Plaintext bytes added to the input buffer.
    pub got: usize,
    /// The client sent `close_notify`: nothing more will come.
    pub closed: bool,
    /// The handshake completed in this call, with this version (1.2 or 1.3).
    pub handshake: Option<rustls::ProtocolVersion>,
}

/// A TLS connection's socket, session and buffers.
pub struct Tls {
    stream: TcpStream,
    session: ServerConnection,
    /// Ciphertext read by the reactor, not yet fed to rustls.
    inbox: Vec<u8>,
    /// Plaintext rustls has decrypted that the input buffer had no room for yet.
    pending: usize,
    /// File bytes read for sealing; allocated while a file body is being sent.
    chunk: Vec<u8>,
    /// The first bytes were looked at (plain HTTP is told apart from a handshake).
    sniffed: bool,
    /// Some ciphertext has gone out (after that, alerts must come from rustls).
    sent_any: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("fd", &self.stream.as_raw_fd())
            .field("handshaking", &self.session.is_handshaking())
            .field("inbox", &self.inbox.len())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// A server session over a freshly accepted socket.
    pub fn new(stream: TcpStream, config: &Arc<ServerConfig>) -> Result<Tls, rustls::Error> {
        Ok(Tls {
            stream,
            session: ServerConnection::new(config.clone())?,
            inbox: Vec::new(),
            pending: 0,
            chunk: Vec::new(),
            sniffed: false,
            sent_any: false,
        })
    }

    /// The socket descriptor.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// The server name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.session.server_name()
    }

    /// The TLS version agreed on, once the handshake has settled it.
    pub fn version(&self) -> Option<&'static str> {
        match self.session.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
            rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
            _ => None,
        }
    }

    // --- Reactor side: ciphertext only ---------------------------------------------

    /// Reads what the socket has into the inbox (at most [`INBOX_MAX`] buffered),
    /// taking a buffer from `new_buf` when it holds none. Returns the bytes read and
    /// whether the peer ended the stream.
    pub fn receive(&mut self, new_buf: impl FnOnce() -> Vec<u8>) -> io::Result<(usize, bool)> {
        if self.inbox.capacity() == 0 {
            self.inbox = new_buf();
        }
        let fd = self.stream.as_raw_fd();
        let mut got = 0;
        loop {
            let len = self.inbox.len();
            if len >= INBOX_MAX {
                return Ok((got, false));
            }
            if len == self.inbox.capacity() {
                self.inbox.reserve(len.max(4096).min(INBOX_MAX - len));
            }
            let room = (self.inbox.capacity() - len).min(INBOX_MAX - len);
            match sys::read_into(fd, &mut self.inbox, room) {
                Ok(0) => return Ok((got, true)),
                Ok(n) => {
                    got += n;
                    if n < room {
                        return Ok((got, false));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((got, false)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether received bytes wait to be decrypted or moved to the input buffer.
    pub fn has_input(&self) -> bool {
        !self.inbox.is_empty() || self.pending > 0
    }

    /// Drops input that will never be read (a lingering connection).
    pub fn discard_input(&mut self) {
        self.inbox.clear();
        // Plaintext rustls holds is dropped by reading it out.
        let mut sink = [0u8; 1024];
        while self.pending > 0 {
            match self.session.reader().read(&mut sink) {
                Ok(n) if n > 0 => self.pending = self.pending.saturating_sub(n),
                _ => break,
            }
        }
        self.pending = 0;
    }

    /// The inbox, when it holds nothing, for the buffer pool.
    pub fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        (self.inbox.is_empty() && self.inbox.capacity() > 0)
            .then(|| std::mem::take(&mut self.inbox))
    }

    // --- Worker side: handshake, decryption, encryption ------------------------------

    /// Feeds the inbox to rustls and moves decrypted bytes into `plain` until it
    /// holds `limit` bytes; flushes what the session has to send (handshake
    /// messages, tickets, alerts). Ciphertext that found no room stays for the next
    /// call ([`Tls::has_input`]).
    pub fn decrypt(&mut self, plain: &mut Vec<u8>, limit: usize) -> Result<Decrypted, TlsError> {
        if !self.sniffed && !self.inbox.is_empty() {
            self.sniffed = true;
            // A TLS connection starts with a handshake record; a letter is the start
            // of a request line (nginx: "plain HTTP request was sent to HTTPS port").
            if self.inbox[0] != HANDSHAKE && self.inbox[0].is_ascii_uppercase() {
                return Err(TlsError::PlainHttp);
            }
        }
        let mut out = Decrypted::default();
        let was_handshaking = self.session.is_handshaking();
        let mut fed = 0;
        let result = loop {
            out.got += self.take_plain(plain, limit);
            if fed == self.inbox.len() || out.closed || self.pending > 0 {
                break Ok(());
            }
            match self.session.read_tls(&mut &self.inbox[fed..]) {
                Ok(0) => break Ok(()),
                Ok(n) => fed += n,
                Err(e) => break Err(TlsError::Io(e)),
            }
            match self.session.process_new_packets() {
                Ok(state) => {
                    self.pending = state.plaintext_bytes_to_read();
                    out.closed = state.peer_has_closed();
                }
                Err(e) => break Err(TlsError::Protocol(e)),
            }
        };
        self.inbox.drain(..fed);
        // Handshake replies and alerts go out now; a full socket keeps them for the
        // next turn (the driver re-arms for EPOLLOUT while any are held).
        let flushed = self.flush();
        if matches!(result, Err(TlsError::Protocol(_))) && !self.sent_any {
            let _ = sys::send(self.stream.as_raw_fd(), &DECODE_ERROR_ALERT, false);
        }
        result?;
        flushed.map_err(TlsError::Io)?;
        if was_handshaking && !self.session.is_handshaking() {
            out.handshake = self.session.protocol_version();
        }
        Ok(out)
    }

    /// Moves decrypted bytes into `plain`, up to `limit` buffered; returns how many.
    fn take_plain(&mut self, plain: &mut Vec<u8>, limit: usize) -> usize {
        let start = plain.len();
        let want = self.pending.min(limit.saturating_sub(start));
        if want == 0 {
            return 0;
        }
        plain.resize(start + want, 0);
        let n = self.session.reader().read(&mut plain[start..]).unwrap_or(0);
        plain.truncate(start + n);
        self.pending -= n.min(self.pending);
        n
    }

    /// Whether sealed bytes wait for the socket.
    pub fn wants_flush(&self) -> bool {
        self.session.wants_write()
    }

    /// Writes sealed bytes until none are left (`Ok(true)`) or the socket is full.
    fn flush(&mut self) -> io::Result<bool> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut &self.stream) {
                Ok(n) => self.sent_any |= n > 0,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Seals `bytes` (an interim response) and sends what the socket takes now; the
    /// rest goes out ahead of the response.
    pub fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.session.writer().write_all(bytes)?;
        self.flush()?;
        Ok(bytes.len())
    }

    /// Sends `close_notify` and shuts down the sending side.
    pub fn shutdown_write(&mut self) {
        self.session.send_close_notify();
        let _ = self.flush();
        let _ = sys::shutdown_write(self.stream.as_raw_fd());
    }

    /// Answers a client that spoke plain HTTP with `response`, unencrypted, and shuts
    /// the connection down.
    pub fn refuse_plain(&mut self, response: &[u8]) {
        let fd = self.stream.as_raw_fd();
        let _ = sys::send(fd, response, false);
        let _ = sys::shutdown_write(fd);
        self.inbox.clear();
    }

    /// Seals and writes as much of `out` as the socket takes; `sent` is increased by
    /// the plaintext bytes sealed. `others_waiting` is asked after each quantum.
    pub fn write_out(
        &mut self,
        out: &mut Outgoing,
        sent: &mut u64,
        others_waiting: impl Fn() -> bool,
    ) -> io::Result<WriteStatus> {
        let mut turn = 0u64;
        loop {
            // What was sealed goes first: nothing new is read or sealed until the
            // socket has taken it, which bounds the memory a connection holds.
            if !self.flush()? {
                return Ok(WriteStatus::Blocked);
            }
            if out.is_done() {
                self.chunk = Vec::new();
                return Ok(WriteStatus::Done);
            }
            if turn >= WRITE_QUANTUM {
                if others_waiting() {
                    return Ok(WriteStatus::Yield);
                }
                turn = 0;
            }
            let n = self.seal_step(out)?;
            *sent += n;
            turn += n;
        }
    }

    /// Seals up to one record of `out`: what is left of the head, then body bytes.
    fn seal_step(&mut self, out: &mut Outgoing) -> io::Result<u64> {
        // The piece being sent: the body itself, or the next part of a multipart one.
        let (body, _) = out.body.current();
        let head = &out.head[out.pos..];
        // Head and the start of the body share a record.
        let room = CHUNK.saturating_sub(head.len());
        let n = match body {
            Body::Memory { bytes, pos, end } => {
                let body = &bytes.as_slice()[*pos..(*end).min(*pos + room)];
                let n = self.seal(head, body)?;
                let from_head = n.min(head.len());
                *pos += n - from_head;
                out.pos += from_head;
                n
            }
            Body::File { file, offset, end } if *offset < *end && room > 0 => {
                let want = ((*end - *offset) as usize).min(room);
                if self.chunk.capacity() < CHUNK {
                    self.chunk = Vec::with_capacity(CHUNK);
                }
                self.chunk.resize(want, 0);
                let got = loop {
                    match file.read_at(&mut self.chunk[..want], *offset) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => break r?,
                    }
                };
                if got == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
                }
                let n = seal(&mut self.session, head, &self.chunk[..got])?;
                let from_head = n.min(head.len());
                // A chunk rustls did not take is read again next time.
                *offset += (n - from_head) as u64;
                out.pos += from_head;
                n
            }
            Body::File { .. } | Body::Empty | Body::Parts(_) => {
                let n = self.seal(head, &[])?;
                out.pos += n;
                n
            }
        };
        Ok(n as u64)
    }

    fn seal(&mut self, a: &[u8], b: &[u8]) -> io::Result<usize> {
        seal(&mut self.session, a, b)
    }
}

/// Hands `a` then `b` to the session as plaintext (sealed into shared records);
/// returns how many bytes it took.
fn seal(session: &mut ServerConnection, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let n = session
        .writer()
        .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])?;
    if n == 0 && a.len() + b.len() > 0 {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "TLS session took no bytes",
        ));
    }
    Ok(n)
}

impl Drop for Tls {
    fn drop(&mut self) {
        // A clean end for the client (a truncation is otherwise indistinguishable
        // from an attack); best effort, without waiting for the socket.
        if !self.session.is_handshaking() {
            self.session.send_close_notify();
            let _ = self.flush();
        }
    }
}
