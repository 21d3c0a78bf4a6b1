//! Accepting: the listening sockets registered with the reactor's epoll, accepts in
//! batches, the pause when descriptors run out, and the `503` past `--max-conns`.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use super::{Reactor, LISTENERS};
use crate::clock;
use crate::driver::conn::{Conn, Timeouts};
use crate::driver::tls::Tls;
use crate::driver::transport::{self, Transport};
use crate::sys::{self, EV_IN};
use crate::throttle::Throttle;

/// Connections accepted per wake-up before other events get a turn.
const ACCEPT_BATCH: usize = 256;
/// Most batches taken from one socket's queue at a graceful stop.
const BACKLOG_BATCHES: usize = 64;
/// Pause after EMFILE/ENFILE before accepting again.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// One line a second about refusing connections at `--max-conns`, whichever
/// reactor refuses them.
static OVERLOADS: Throttle = Throttle::new(1);

impl Reactor {
    pub(super) fn register_listeners(&mut self) -> io::Result<()> {
        if let Some(l) = &self.listeners {
            for (i, w) in l.watch.iter().enumerate() {
                let Some(s) = l.socket(w) else { continue };
                let token = LISTENERS - i as u64;
                self.link()
                    .epoll
                    .add(s.as_raw_fd(), EV_IN | w.flags, token)?;
            }
        }
        self.listeners_registered = true;
        Ok(())
    }

    pub(super) fn deregister_listeners(&mut self) {
        if let (Some(l), true) = (&self.listeners, self.listeners_registered) {
            for s in l.watch.iter().filter_map(|w| l.socket(w)) {
                let _ = self.link().epoll.delete(s.as_raw_fd());
            }
        }
        self.listeners_registered = false;
    }

    pub(super) fn pause_accept(&mut self, e: &io::Error) {
        // Descriptors are the process's: every reactor runs out together. One line
        // per episode, whichever reactor sees it first, not one per back-off.
        if !self.shared.accept_starved.swap(true, Ordering::AcqRel) {
            log::error!(
                "accept: {e}; pausing accepts ({} connections open)",
                self.shared.open()
            );
        }
        self.deregister_listeners();
        self.accept_paused_until = Some(clock::now_ms() + ACCEPT_BACKOFF_MS);
    }

    pub(super) fn resume_accept(&mut self) {
        self.accept_paused_until = None;
        if !self.listeners_registered {
            if let Err(e) = self.register_listeners() {
                log::error!("re-registering the listener: {e}");
            }
        }
    }

    /// Accepts up to a batch of connections from watched socket `which`; returns
    /// whether more may be waiting (the batch ran out before the queue did).
    pub(super) fn accept_batch(&mut self, which: usize) -> bool {
        let Some(l) = self.listeners.clone() else {
            return false;
        };
        let Some(w) = l.watch.get(which) else {
            return false;
        };
        let Some(listener) = l.socket(w) else {
            return false;
        };
        let tls = w.tls;
        for _ in 0..ACCEPT_BATCH {
            if !self.listeners_registered {
                return false;
            }
            match sys::accept(listener) {
                Ok((stream, peer)) => self.accepted(stream, peer, tls),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => {}
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.pause_accept(&e);
                        return false;
                    }
                    _ => {
                        log::error!("accept: {e}");
                        return false;
                    }
                },
            }
        }
        true
    }

    /// At a graceful stop: takes every connection already waiting in this
    /// reactor's accept queues (they are served in the grace period), so closing
    /// the sockets resets none that the kernel had completed. Bounded, so a flood
    /// cannot hold the stop off.
    pub(super) fn drain_backlog(&mut self) {
        let n = self.listeners.as_ref().map_or(0, |l| l.watch.len());
        for which in 0..n {
            for _ in 0..BACKLOG_BATCHES {
                if !self.accept_batch(which) {
                    break;
                }
            }
        }
    }

    pub(super) fn accepted(
        &mut self,
        stream: std::net::TcpStream,
        peer: std::net::SocketAddr,
        tls: bool,
    ) {
        let stats = &self.shared.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.link().accepted.fetch_add(1, Ordering::Relaxed);
        if self.shared.accept_starved.load(Ordering::Relaxed)
            && self.shared.accept_starved.swap(false, Ordering::AcqRel)
        {
            log::info!("accepting connections again ({} open)", self.shared.open());
        }
        // Closed connections were counted by whichever thread closed them.
        if !self.shared.admit() {
            if tls {
                // A plain 503 means nothing to a TLS client: close at once.
                self.shared.stats.response(503);
                return;
            }
            return self.refuse(stream);
        }
        // A TLS session is a few allocations, no crypto: the handshake runs in a worker.
        let transport = match (tls, &self.shared.tls) {
            (true, Some(setup)) => match Tls::new(stream, &setup.config) {
                Ok(t) => Transport::Tls(Box::new(t)),
                Err(e) => {
                    log::error!("TLS session: {e}");
                    self.shared.leave();
                    return;
                }
            },
            _ => Transport::Plain(stream),
        };
        self.shared.stats.handled.fetch_add(1, Ordering::Relaxed);
        let index = self.free.pop().unwrap_or_else(|| {
            self.next_index += 1;
            self.next_index - 1
        });
        let token = self.link().slots.token(index);
        let s = &self.shared.settings;
        let timeouts = Timeouts {
            head_ms: s.header_timeout_ms.min(s.timeout_ms),
            idle_ms: s.timeout_ms,
        };
        let stats = self.shared.stats.clone();
        let now = clock::now_ms();
        let conn = Conn::new(transport, peer, token, self.id, timeouts, now, stats);
        let conn = Box::new(conn);
        self.active += 1;
        self.link().active.fetch_add(1, Ordering::Relaxed);
        // Clients usually send the request with the handshake: try a read before the
        // first epoll registration.
        self.on_readable(conn, 0);
    }

    /// Answers a connection over `--max-conns` with 503 and closes it.
    pub(super) fn refuse(&mut self, stream: std::net::TcpStream) {
        transport::refuse(&stream, &mut self.scratch, &self.overload);
        self.shared.stats.response(503);
        if OVERLOADS.allow().is_some() {
            log::warn!(
                "--max-conns {} reached: answering new connections with 503",
                self.shared.settings.max_conns
            );
        }
    }
}
