//! What the reactors and the workers share: the settings, the sites, the
//! counters, and one [`Link`] per reactor (its epoll, slots, notices and waker), plus
//! the types that travel between them.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};

use crate::config::settings::Settings;
use crate::config::sites::Sites;
use crate::config::tls::TlsSetup;
use crate::driver::conn::{Conn, Token};
use crate::driver::slots::Slots;
use crate::files::compress::Compressor;
use crate::obs::stats::{CompressSnapshot, Snapshot, Stats};
use crate::serve::handler::Context;
use crate::sys::{self, Epoll, EventFd};

/// Read buffers kept for reuse.
const BUFFER_POOL: usize = 512;
/// Capacity of a pooled read buffer.
pub const BUFFER_SIZE: usize = 4096;

/// Connections handed to one worker at once: a reactor splits what one `epoll_wait`
/// made ready into at most one batch per worker, so a wake-up serves many requests
/// instead of one.
// The boxes are the point: a connection moves between threads as one pointer.
#[allow(clippy::vec_box)]
pub type Batch = Vec<Box<Conn>>;

/// A message from a worker to a connection's home reactor.
#[derive(Debug, Clone, Copy)]
pub enum Notice {
    /// The worker closed this connection; its slot is free.
    Closed(Token),
    /// Re-arming failed; the reactor must close the connection in this slot.
    Kill(Token),
    /// The connection now waits in its slot: watch this deadline.
    Timer(Token, u64),
}

/// One reactor as the workers see it: where its connections wait and how to reach it.
pub struct Link {
    /// The reactor's epoll instance (workers re-arm its connections through it).
    pub epoll: Epoll,
    /// Its connection slots.
    pub slots: Slots,
    /// Connections it holds open (for the stats page).
    pub active: AtomicUsize,
    /// Entries in its timer heap (for the stats page: bounded by open connections).
    pub timers: AtomicUsize,
    /// Connections it has accepted since start (for the stats page).
    pub accepted: AtomicU64,
    notices: Sender<Notice>,
    waker: EventFd,
}

impl Link {
    /// A reactor's link and the receiving end of its notices.
    pub fn new(capacity: usize) -> io::Result<(Link, Receiver<Notice>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let link = Link {
            epoll: Epoll::new()?,
            slots: Slots::new(capacity),
            active: AtomicUsize::new(0),
            timers: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            notices: tx,
            waker: EventFd::new()?,
        };
        Ok((link, rx))
    }

    /// Tells the reactor something; `Kill` also wakes it.
    pub fn notify(&self, n: Notice) {
        let wake = matches!(n, Notice::Kill(_));
        let _ = self.notices.send(n);
        if wake {
            self.waker.wake();
        }
    }

    /// Wakes the reactor.
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// The waker's descriptor.
    pub fn waker(&self) -> &EventFd {
        &self.waker
    }

    /// Puts `conn` back in its slot and arms its descriptor for `events` (one-shot):
    /// `EPOLL_CTL_MOD`, or `EPOLL_CTL_ADD` when the descriptor is not registered yet
    /// (a connection served and closed straight from accept never is, which saves
    /// an `epoll_ctl`; one that waits pays one failed `MOD` the first time). On
    /// failure the connection stays in its slot and its token is returned.
    pub fn park(&self, conn: Box<Conn>, events: u32) -> Result<(), (Token, io::Error)> {
        let fd = conn.fd();
        let token = conn.token();
        // Level-triggered + EPOLLONESHOT: at most one thread owns a connection, and
        // re-arming reports data that is already waiting, so a read shorter than the
        // buffer can stop without the extra read that edge-triggered mode needs to
        // reach EAGAIN: `strace -c -f` over `ab -n 5000 -c 500` counted 5,222 reads
        // for 5,000 requests (edge-triggered needs at least two per request).
        let events = events | sys::EV_ONESHOT;
        // The put and the epoll_ctl happen under the slot's lock. Until the lock is
        // released the reactor cannot take the connection out (to close it on expiry
        // or stop), so epoll_ctl never runs on a descriptor that was closed, or closed
        // and reused by a new connection; and an event the re-arm reports at once waits
        // on the lock, then finds the connection in place.
        self.slots
            .put_then(conn, || match self.epoll.modify(fd, events, token.0) {
                // Closing a descriptor removes it from every epoll set, so ENOENT
                // means this connection's own descriptor was never added.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.epoll.add(fd, events, token.0)
                }
                r => r,
            })
            .map_err(|e| (token, e))
    }
}

/// What every reactor and worker shares.
pub struct Shared {
    /// Derived settings.
    pub settings: Settings,
    /// The sites of the running configuration. A reload swaps in a new one; a worker
    /// loads it once per request (no lock, no reference-count traffic on the hot
    /// path) and keeps that one until the response is planned. Shared with the
    /// reload thread, which swaps them.
    pub sites: Arc<ArcSwap<Sites>>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Variants compressed on the fly, for every site (they outlive a reload).
    pub compressor: Compressor,
    /// HTTPS: the rustls configuration and certificates, when TLS is on (the
    /// reload thread holds it too, to swap certificates).
    pub tls: Option<Arc<TlsSetup>>,
    /// Set once a stop has begun.
    pub draining: AtomicBool,
    /// Accepting failed for lack of descriptors or memory and has not succeeded
    /// since, in any reactor (so the episode is logged once).
    pub accept_starved: AtomicBool,
    /// One link per reactor; a connection's `home` indexes it.
    pub links: Box<[Link]>,
    /// Connections handed to the queue and not yet taken by a worker.
    pub queued: AtomicUsize,
    /// Open connections over all reactors: `--max-conns` is one budget.
    open: AtomicUsize,
    buffers: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
}

impl Shared {
    /// Shared state over `links`.
    pub fn new(
        settings: Settings,
        sites: Sites,
        tls: Option<TlsSetup>,
        links: Vec<Link>,
    ) -> Shared {
        Shared {
            compressor: Compressor::new(settings.compress_cache),
            settings,
            sites: Arc::new(ArcSwap::from_pointee(sites)),
            stats: Arc::new(Stats::default()),
            tls: tls.map(Arc::new),
            draining: AtomicBool::new(false),
            accept_starved: AtomicBool::new(false),
            links: links.into_boxed_slice(),
            queued: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            buffers: crossbeam_channel::bounded(BUFFER_POOL),
        }
    }

    /// The link of reactor `home`.
    pub fn link(&self, home: usize) -> &Link {
        &self.links[home]
    }

    /// Claims room for one more connection under `--max-conns`; false when full.
    pub fn admit(&self) -> bool {
        let max = self.settings.max_conns;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back the room of a closed connection.
    pub fn leave(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts a connection of reactor `home` as gone, by whichever thread closed
    /// it: the room under `--max-conns` and the reactor's gauge are given back at
    /// once, not when the reactor next wakes to recycle the slot (which may be a
    /// second later, and another reactor may be refusing connections meanwhile).
    pub fn closed(&self, home: usize) {
        self.leave();
        self.link(home).active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open connections over all reactors.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Begins a graceful stop from any thread: every reactor is woken to see it.
    pub fn request_stop(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for l in self.links.iter() {
            l.wake();
        }
    }

    /// Whether a graceful stop has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Connections waiting in the work queue.
    pub fn queue_len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A read buffer from the pool, or a new one.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .1
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER_SIZE))
    }

    /// Returns a read buffer to the pool (oversized ones are freed).
    pub fn release_buffer(&self, mut buf: Vec<u8>) {
        if buf.capacity() == BUFFER_SIZE {
            buf.clear();
            let _ = self.buffers.0.try_send(buf);
        }
    }
}

impl Context for Shared {
    fn sites(&self) -> &ArcSwap<Sites> {
        &self.sites
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn tls(&self) -> Option<&TlsSetup> {
        self.tls.as_deref()
    }

    fn is_draining(&self) -> bool {
        Shared::is_draining(self)
    }

    fn compressor(&self) -> &Compressor {
        &self.compressor
    }

    /// A snapshot of the counters, with each reactor's open connections.
    fn snapshot(&self) -> Snapshot {
        let per_reactor = self
            .links
            .iter()
            .map(|l| {
                (
                    l.active.load(Ordering::Relaxed),
                    l.timers.load(Ordering::Relaxed),
                    l.accepted.load(Ordering::Relaxed),
                )
            })
            .collect();
        let mut snap = self
            .stats
            .snapshot(self.queue_len(), self.settings.workers, per_reactor);
        let c = self.compressor.counts();
        snap.compress = CompressSnapshot {
            hits: c.hits,
            misses: c.misses,
            compressions: c.compressions,
            bytes: c.bytes,
            entries: c.entries,
            evictions: c.evictions,
        };
        snap
    }
}
