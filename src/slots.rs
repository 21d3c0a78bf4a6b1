//! Where idle connections wait for their next event.
//!
//! A slot holds a connection while epoll watches it; the reactor takes it out when an
//! event arrives and the queue moves it to a worker; the worker puts it back *before*
//! re-arming the descriptor. `EPOLLONESHOT` makes that hand-back race-free, and the
//! per-slot lock is uncontended: it only orders the two sides' memory.

use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::conn::{Conn, Token};

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
        let token = conn.token;
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
