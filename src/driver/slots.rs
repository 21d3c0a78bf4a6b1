//! Where idle connections wait for their next event.
//!
//! A slot holds a connection while epoll watches it; the reactor takes it out when an
//! event arrives and the queue moves it to a worker; the worker puts it back *before*
//! re-arming the descriptor. `EPOLLONESHOT` makes that hand-back race-free, and the
//! per-slot lock is uncontended: it only orders the two sides' memory.

use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::driver::conn::{Conn, Token};

const SEGMENT: usize = 1024;

#[derive(Debug, Default)]
struct Inner {
    generation: u32,
    conn: Option<Box<Conn>>,
}

type Segment = Box<[Mutex<Inner>]>;

/// The slot table, grown a segment at a time so memory follows the number of
/// connections actually open, not `--max-conns`.
#[derive(Debug)]
pub struct Slots {
    segments: Box<[OnceLock<Segment>]>,
}

impl Slots {
    /// Room for `capacity` slots.
    pub fn new(capacity: usize) -> Slots {
        let n = capacity.div_ceil(SEGMENT).max(1);
        Slots {
            segments: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    fn slot(&self, index: u32) -> &Mutex<Inner> {
        let i = index as usize;
        let seg = self.segments[i / SEGMENT]
            .get_or_init(|| (0..SEGMENT).map(|_| Mutex::new(Inner::default())).collect());
        &seg[i % SEGMENT]
    }

    /// The token a new connection in slot `index` gets.
    pub fn token(&self, index: u32) -> Token {
        Token::new(index, self.slot(index).lock().generation)
    }

    /// Stores `conn` in its slot. Ownership passes to whoever takes it next.
    pub fn put(&self, conn: Box<Conn>) {
        self.put_then(conn, || ());
    }

    /// Stores `conn` in its slot and runs `then` before anyone else may take it out:
    /// the slot's lock is held across both.
    pub fn put_then<R>(&self, conn: Box<Conn>, then: impl FnOnce() -> R) -> R {
        let token = conn.token();
        let mut slot = self.slot(token.index()).lock();
        debug_assert_eq!(slot.generation, token.generation());
        slot.conn = Some(conn);
        then()
    }

    /// Takes the connection for `token` out of its slot: `None` if the token is stale
    /// (the connection closed) or a worker holds it.
    pub fn take(&self, token: Token) -> Option<Box<Conn>> {
        let mut slot = self.slot(token.index()).lock();
        if slot.generation != token.generation() {
            return None;
        }
        slot.conn.take()
    }

    /// Runs `f` on the connection in `token`'s slot, if it is there.
    pub fn with<R>(&self, token: Token, f: impl FnOnce(&Conn) -> R) -> Option<R> {
        let slot = self.slot(token.index()).lock();
        if slot.generation != token.generation() {
            return None;
        }
        slot.conn.as_deref().map(f)
    }

    /// Runs `f` on the connection in `token`'s slot, if it is there, mutably.
    pub fn with_mut<R>(&self, token: Token, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        let mut slot = self.slot(token.index()).lock();
        if slot.generation != token.generation() {
            return None;
        }
        slot.conn.as_deref_mut().map(f)
    }

    /// Retires `token`: later events and timers carrying it are ignored.
    pub fn retire(&self, token: Token) {
        let mut slot = self.slot(token.index()).lock();
        if slot.generation == token.generation() {
            slot.generation = slot.generation.wrapping_add(1);
            slot.conn = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn conn(token: Token) -> Box<Conn> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let stats = Arc::new(crate::obs::stats::Stats::default());
        let peer = s.local_addr().unwrap();
        let timeouts = crate::driver::conn::Timeouts {
            head_ms: 1000,
            idle_ms: 1000,
        };
        let t = crate::driver::transport::Transport::Plain(s);
        Box::new(Conn::new(t, peer, token, 0, timeouts, 0, stats))
    }

    /// The re-arm after a put runs under the slot's lock: whoever takes the
    /// connection (the reactor closing it on expiry) waits until the re-arm is done,
    /// so it can never close the descriptor under the epoll_ctl.
    #[test]
    fn nobody_takes_a_connection_before_put_then_returns() {
        let slots = Arc::new(Slots::new(8));
        let token = slots.token(3);
        let rearmed = Arc::new(AtomicBool::new(false));
        let (s, r) = (slots.clone(), rearmed.clone());
        let taker = std::thread::spawn(move || loop {
            if let Some(c) = s.take(token) {
                return (r.load(Ordering::SeqCst), c);
            }
            std::thread::yield_now();
        });
        slots.put_then(conn(token), || {
            std::thread::sleep(Duration::from_millis(100));
            rearmed.store(true, Ordering::SeqCst);
        });
        let (seen_rearmed, _) = taker.join().unwrap();
        assert!(
            seen_rearmed,
            "the connection was taken before its re-arm finished"
        );
    }

    #[test]
    fn retired_tokens_are_stale() {
        let slots = Slots::new(8);
        let token = slots.token(1);
        slots.put(conn(token));
        slots.retire(token);
        assert!(slots.take(token).is_none());
        assert_ne!(slots.token(1), token);
    }
}
