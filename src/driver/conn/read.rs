//! A connection's reading side, run by its reactor: bytes from the socket into the
//! input buffer, end of stream, and the buffers it can give back.

use std::io;

use super::*;
use crate::driver::transport::Transport;

impl Conn {
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
}
