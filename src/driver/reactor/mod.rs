//! A reactor: one epoll loop. It accepts connections, reads sockets, hands
//! connections with new bytes (or room to write) to the workers, and closes those
//! whose deadline passed. Reactor 0 runs on the main thread and also handles signals;
//! with `--reactors N` the others run on threads `hearth-r1` …, each with its own
//! listening sockets (see `driver::listen`). A connection belongs to the reactor
//! that accepted it.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::clock;
use crate::config::reload::Trigger;
use crate::config::settings::Settings;
use crate::driver::conn::{Conn, Phase, Token};
use crate::driver::listen::Listeners;
use crate::driver::shared::{Batch, Link, Notice, Shared};
use crate::driver::timer::Timers;
use crate::http::response;
use crate::obs::logging::Logs;
use crate::sys::{self, Event, SignalFd, EV_ERR, EV_HUP, EV_IN, EV_OUT, EV_RDHUP};

mod accept;

const SIGNALS: u64 = u64::MAX - 1;
const WAKER: u64 = u64::MAX - 2;
/// Listener `i` is registered with token `LISTENERS - i`.
const LISTENERS: u64 = u64::MAX - 16;
/// Most listening sockets one reactor watches.
pub const MAX_LISTENERS: usize = 64;

/// Events fetched per `epoll_wait`.
const EVENTS: usize = 1024;
/// Fewest connections worth waking another worker for.
const MIN_BATCH: usize = 4;
/// Longest `epoll_wait`.
const MAX_WAIT_MS: u64 = 1000;
/// Largest body chunk read per turn.
const BODY_READ: usize = 64 * 1024;

/// The most bytes a connection buffers as input in `phase`: one past the head
/// limits while reading a head (so the parser sees the overflow), a body chunk
/// otherwise.
pub fn read_limit(s: &Settings, phase: Phase) -> usize {
    match phase {
        Phase::Head => s.limits.max_header.max(s.limits.max_uri) + 1,
        _ => BODY_READ,
    }
}

/// What reactor 0 alone handles: signals and the log files.
pub struct Control {
    /// SIGTERM/SIGINT/SIGHUP, delivered through a signalfd.
    pub signals: Option<SignalFd>,
    /// Kept alive for SIGHUP reopening.
    pub logs: Option<Arc<Logs>>,
    /// Reloads the configuration file on SIGHUP, when there is one.
    pub reload: Option<Trigger>,
}

/// One reactor's state; lives on its own thread.
pub struct Reactor {
    id: usize,
    shared: Arc<Shared>,
    listeners: Option<Listeners>,
    control: Option<Control>,
    notices: Receiver<Notice>,
    queue: Option<Sender<Batch>>,
    /// Connections made ready in this turn of the loop, sent when it ends.
    ready: Batch,
    events: Vec<Event>,
    free: Vec<u32>,
    next_index: u32,
    active: usize,
    timers: Timers,
    accept_paused_until: Option<u64>,
    listeners_registered: bool,
    grace_deadline: Option<u64>,
    overload: Vec<u8>,
    scratch: Vec<u8>,
}

impl Reactor {
    /// Reactor `id`: registers its listeners, waker and (reactor 0) signals with its
    /// epoll.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        listeners: Listeners,
        control: Option<Control>,
        notices: Receiver<Notice>,
        queue: Sender<Batch>,
    ) -> io::Result<Reactor> {
        let link = shared.link(id);
        if let Some(s) = control.as_ref().and_then(|c| c.signals.as_ref()) {
            link.epoll.add(s.raw(), EV_IN, SIGNALS)?;
        }
        link.epoll.add(link.waker().raw(), EV_IN, WAKER)?;
        let mut r = Reactor {
            id,
            shared,
            listeners: Some(listeners),
            control,
            notices,
            queue: Some(queue),
            ready: Vec::with_capacity(EVENTS),
            events: vec![sys::empty_event(); EVENTS],
            free: Vec::new(),
            next_index: 0,
            active: 0,
            timers: Timers::default(),
            accept_paused_until: None,
            listeners_registered: false,
            grace_deadline: None,
            overload: response::overload_response(),
            scratch: vec![0; 16 * 1024],
        };
        r.register_listeners()?;
        Ok(r)
    }

    fn link(&self) -> &Link {
        self.shared.link(self.id)
    }

    /// Runs until a graceful stop completes.
    pub fn run(mut self) -> io::Result<()> {
        loop {
            self.drain_notices();
            if self.shared.is_draining() && self.grace_deadline.is_none() {
                self.begin_stop();
            }
            if let Some(deadline) = self.grace_deadline {
                if self.active == 0 {
                    break;
                }
                if clock::now_ms() >= deadline {
                    log::warn!("grace period over; closing {} connections", self.active);
                    break;
                }
            }
            let timeout = self.wait_timeout();
            let n = self
                .shared
                .link(self.id)
                .epoll
                .wait(&mut self.events, timeout)?;
            for i in 0..n {
                let ev = self.events[i];
                match sys::event_token(&ev) {
                    SIGNALS => self.on_signals(),
                    WAKER => self.link().waker().drain(),
                    t if t <= LISTENERS && t > LISTENERS - MAX_LISTENERS as u64 => {
                        self.accept_batch((LISTENERS - t) as usize);
                    }
                    t => self.on_event(Token(t), sys::event_flags(&ev)),
                }
            }
            self.flush_ready();
            self.expire_timers();
            if let Some(until) = self.accept_paused_until {
                if clock::now_ms() >= until {
                    self.resume_accept();
                }
            }
        }
        // Dropping the sender ends the workers once every reactor has stopped and the
        // queue is empty.
        self.queue = None;
        Ok(())
    }

    fn wait_timeout(&self) -> i32 {
        let now = clock::now_ms();
        let mut until = self.timers.next();
        for t in [
            self.accept_paused_until,
            self.grace_deadline.map(|_| now + 50),
        ]
        .into_iter()
        .flatten()
        {
            until = Some(until.map_or(t, |u| u.min(t)));
        }
        // At most a second: timers that workers report arrive through the notice
        // queue, which is read once per turn of the loop.
        match until {
            None => MAX_WAIT_MS as i32,
            Some(t) => t.saturating_sub(now).min(MAX_WAIT_MS) as i32,
        }
    }

    fn on_signals(&mut self) {
        let Some(control) = &self.control else { return };
        let Some(signals) = &control.signals else {
            return;
        };
        while let Some(sig) = signals.next() {
            match sig {
                libc::SIGHUP => {
                    match &control.logs {
                        Some(l) => l.reopen(),
                        None => log::info!("SIGHUP: no log files to reopen"),
                    }
                    // The sites' own access logs; a reload opens new ones anyway,
                    // but one that fails keeps these.
                    self.shared.sites.load().reopen_logs();
                    // Built on the reload thread: this reactor goes on serving.
                    if let Some(r) = &control.reload {
                        r.reload();
                    }
                }
                libc::SIGUSR2 => self.upgrade(),
                _ => {
                    log::info!("signal {sig}: stopping gracefully");
                    self.shared.request_stop();
                }
            }
        }
    }

    /// SIGUSR2: starts a new process on this one's listening sockets (see
    /// `upgrade.rs`); this one goes on serving until it is told to stop.
    fn upgrade(&self) {
        if self.shared.is_draining() {
            log::warn!("SIGUSR2 while stopping: no new process started");
            return;
        }
        let Some(l) = &self.listeners else { return };
        match crate::driver::upgrade::start(&l.all) {
            Ok(pid) => log::info!(
                "SIGUSR2: started pid {pid} on the same sockets; SIGTERM this one (pid {}) once it answers",
                std::process::id()
            ),
            Err(e) => log::error!("SIGUSR2: could not start a new process: {e}"),
        }
    }

    /// Stops accepting, closes idle connections and starts the grace period.
    fn begin_stop(&mut self) {
        let grace = self.shared.settings.grace_ms;
        self.grace_deadline = Some(clock::now_ms() + grace);
        if self.listeners_registered {
            self.drain_backlog();
        }
        self.deregister_listeners();
        // The last reactor to let go closes the sockets: new connections are refused.
        self.listeners = None;
        self.accept_paused_until = None;
        let mut closed = 0;
        for index in 0..self.next_index {
            let token = self.link().slots.token(index);
            // Only between requests: a connection accepted but not yet read may hold
            // a request in flight, which is answered (a restart hands the socket to a
            // new process, and a client must not see its connection dropped).
            if self.link().slots.with(token, Conn::is_kept_alive) == Some(true) {
                if let Some(c) = self.link().slots.take(token) {
                    self.close(c);
                    closed += 1;
                }
            }
        }
        log::info!(
            "stopping: reactor {} closed {closed} idle connections, {} in flight (grace {} s)",
            self.id,
            self.active,
            grace / 1000
        );
    }

    fn drain_notices(&mut self) {
        while let Ok(n) = self.notices.try_recv() {
            match n {
                Notice::Closed(token) => self.release(token),
                Notice::Kill(token) => {
                    if let Some(c) = self.link().slots.take(token) {
                        self.close(c);
                    }
                }
                Notice::Timer(token, deadline) => self.timers.push(deadline, token),
            }
        }
    }

    /// Frees a slot whose connection is gone (and already counted as closed).
    fn release(&mut self, token: Token) {
        self.link().slots.retire(token);
        self.free.push(token.index());
        self.active -= 1;
        if self.accept_paused_until.is_some() && self.grace_deadline.is_none() {
            self.resume_accept();
        }
    }

    /// Closes a connection the reactor holds.
    fn close(&mut self, c: Box<Conn>) {
        let token = c.token();
        drop(c);
        self.shared.closed(self.id);
        self.release(token);
    }

    fn on_event(&mut self, token: Token, flags: u32) {
        let Some(mut conn) = self.link().slots.take(token) else {
            return;
        };
        if flags & EV_ERR != 0 || (flags & EV_HUP != 0 && flags & EV_IN == 0) {
            log::debug!("{}: connection error or hang-up", conn.peer());
            return self.close(conn);
        }
        if conn.phase() == Phase::Write {
            if flags & EV_OUT != 0 {
                conn.mark_writable();
                return self.dispatch(conn);
            }
            return self.rearm(conn, EV_OUT);
        }
        if flags & EV_OUT != 0 && conn.wants_flush() {
            // TLS handshake bytes the socket did not take: a worker sends them (and
            // decrypts whatever came meanwhile).
            return self.dispatch(conn);
        }
        self.on_readable(conn, flags);
    }

    /// Reads what the socket has; hands the connection to a worker if there is
    /// something to do, else re-arms it.
    fn on_readable(&mut self, mut conn: Box<Conn>, flags: u32) {
        let limit = read_limit(&self.shared.settings, conn.phase());
        let shared = &self.shared;
        let got = match conn.receive(limit, clock::now_ms(), || shared.take_buffer()) {
            Ok(n) => n,
            Err(e) => {
                log::debug!("{}: read: {e}", conn.peer());
                return self.close(conn);
            }
        };
        if flags & EV_RDHUP != 0 && got == 0 {
            conn.hung_up();
        }
        if conn.phase() == Phase::Linger {
            return if conn.eof() {
                self.close(conn)
            } else {
                self.rearm(conn, EV_IN | EV_RDHUP)
            };
        }
        if got > 0 {
            return self.dispatch(conn);
        }
        if conn.eof() {
            if conn.is_idle() {
                return self.close(conn);
            }
            return self.dispatch(conn);
        }
        conn.spare_buffers(|buf| self.shared.release_buffer(buf));
        self.rearm(conn, EV_IN | EV_RDHUP);
    }

    /// Queues the connection for the worker pool (sent at the end of this turn).
    fn dispatch(&mut self, conn: Box<Conn>) {
        self.ready.push(conn);
    }

    /// Hands this turn's ready connections to the workers, in at most one batch per
    /// worker. Ownership passes to whichever worker receives a batch.
    fn flush_ready(&mut self) {
        let n = self.ready.len();
        if n == 0 {
            return;
        }
        let Some(q) = &self.queue else { return };
        let parts = self
            .shared
            .settings
            .workers
            .min(n.div_ceil(MIN_BATCH))
            .max(1);
        let size = n.div_ceil(parts);
        self.shared.queued.fetch_add(n, Ordering::Relaxed);
        let mut failed = Vec::new();
        while !self.ready.is_empty() {
            let at = self.ready.len().saturating_sub(size);
            let batch: Batch = self.ready.split_off(at);
            if let Err(e) = q.send(batch) {
                failed.extend(e.into_inner());
            }
        }
        for conn in failed {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            self.close(conn);
        }
    }

    /// Puts a connection the reactor holds back in its slot and re-arms it.
    fn rearm(&mut self, mut conn: Box<Conn>, events: u32) {
        if let Some(deadline) = conn.timer_due(clock::now_ms()) {
            self.timers.push(deadline, conn.token());
        }
        if let Err((token, e)) = self.link().park(conn, events) {
            log::error!("epoll registration failed: {e}");
            if let Some(c) = self.link().slots.take(token) {
                self.close(c);
            }
        }
    }

    /// Closes connections whose deadline passed. An entry whose connection has a
    /// later deadline re-arms the timer for it, unless an earlier entry is pending.
    fn expire_timers(&mut self) {
        let now = clock::now_ms();
        while let Some((_, token)) = self.timers.pop_due(now) {
            // Disjoint fields: the slots are read while the timer heap takes a push.
            let timers = &mut self.timers;
            let expired = self.shared.links[self.id].slots.with_mut(token, |c| {
                if c.expired(now) {
                    return true;
                }
                if let Some(deadline) = c.timer_due(now) {
                    timers.push(deadline, token);
                }
                false
            });
            // None: closed (the token is stale) or a worker holds it, and the worker
            // asks for a timer when it hands the connection back.
            if expired == Some(true) {
                if let Some(c) = self.link().slots.take(token) {
                    log::debug!("{}: timed out", c.peer());
                    self.close(c);
                }
            }
        }
        let link = &self.shared.links[self.id];
        self.timers
            .compact(|token| link.slots.token(token.index()) == token);
        link.timers.store(self.timers.len(), Ordering::Relaxed);
    }
}
