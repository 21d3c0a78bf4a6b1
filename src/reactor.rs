//! The reactor: the main thread's epoll loop. It accepts connections, reads sockets,
//! hands connections with new bytes (or room to write) to the workers, and closes
//! those whose deadline passed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::clock;
use crate::conn::{Conn, Phase, Token};
use crate::http::response;
use crate::logging::Logs;
use crate::server::{Batch, Notice, Shared};
use crate::stats::Gauge;
use crate::sys::{self, Event, SignalFd, EV_ERR, EV_HUP, EV_IN, EV_OUT, EV_RDHUP};

const LISTENER: u64 = u64::MAX;
const SIGNALS: u64 = u64::MAX - 1;
const WAKER: u64 = u64::MAX - 2;

/// Events fetched per `epoll_wait`.
const EVENTS: usize = 1024;
/// Connections accepted per wake-up before other events get a turn.
const ACCEPT_BATCH: usize = 256;
/// Pause after EMFILE/ENFILE before accepting again.
const ACCEPT_BACKOFF_MS: u64 = 100;
/// Fewest connections worth waking another worker for.
const MIN_BATCH: usize = 4;
/// Longest `epoll_wait`.
const MAX_WAIT_MS: u64 = 1000;
/// Largest body chunk read per turn.
const BODY_READ: usize = 64 * 1024;

/// Begins a graceful stop from any thread.
pub fn request_stop(shared: &Shared) {
    shared.draining.store(true, Ordering::SeqCst);
    shared.wake();
}

/// The reactor's state; lives on the main thread.
pub struct Reactor {
    shared: Arc<Shared>,
    listener: Option<TcpListener>,
    signals: Option<SignalFd>,
    notices: Receiver<Notice>,
    queue: Option<Sender<Batch>>,
    /// Connections made ready in this turn of the loop, sent when it ends.
    ready: Batch,
    logs: Option<Arc<Logs>>,
    events: Vec<Event>,
    free: Vec<u32>,
    next_index: u32,
    active: usize,
    timers: BinaryHeap<Reverse<(u64, Token)>>,
    accept_paused_until: Option<u64>,
    listener_registered: bool,
    /// Accepting failed for lack of descriptors or memory and has not succeeded since.
    accept_starved: bool,
    grace_deadline: Option<u64>,
    overload: Vec<u8>,
    scratch: Vec<u8>,
    last_overload_log: u64,
}

impl Reactor {
    /// Registers the listener, signals and waker with epoll.
    pub fn new(
        shared: Arc<Shared>,
        listener: TcpListener,
        signals: Option<SignalFd>,
        notices: Receiver<Notice>,
        queue: Sender<Batch>,
        logs: Option<Arc<Logs>>,
    ) -> io::Result<Reactor> {
        // The listener is level-triggered without ONESHOT: a backlog left after an
        // accept batch is reported again on the next wait.
        shared.epoll.add(listener.as_raw_fd(), EV_IN, LISTENER)?;
        if let Some(s) = &signals {
            shared.epoll.add(s.raw(), EV_IN, SIGNALS)?;
        }
        shared.epoll.add(shared.waker().raw(), EV_IN, WAKER)?;
        Ok(Reactor {
            shared,
            listener: Some(listener),
            signals,
            notices,
            queue: Some(queue),
            ready: Vec::with_capacity(EVENTS),
            logs,
            events: vec![sys::empty_event(); EVENTS],
            free: Vec::new(),
            next_index: 0,
            active: 0,
            timers: BinaryHeap::new(),
            accept_paused_until: None,
            listener_registered: true,
            accept_starved: false,
            grace_deadline: None,
            overload: response::overload_response(),
            scratch: vec![0; 16 * 1024],
            last_overload_log: 0,
        })
    }

    /// Runs until a graceful stop completes.
    pub fn run(mut self) -> io::Result<()> {
        loop {
            self.drain_notices();
            if self.shared.draining.load(Ordering::SeqCst) && self.grace_deadline.is_none() {
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
            let n = self.shared.epoll.wait(&mut self.events, timeout)?;
            for i in 0..n {
                let ev = self.events[i];
                match sys::event_token(&ev) {
                    LISTENER => self.accept_batch(),
                    SIGNALS => self.on_signals(),
                    WAKER => self.shared.waker().drain(),
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
        // Dropping the sender ends the workers once the queue is empty.
        self.queue = None;
        Ok(())
    }

    fn wait_timeout(&self) -> i32 {
        let now = clock::now_ms();
        let mut until = self.timers.peek().map(|Reverse((t, _))| *t);
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
        let Some(signals) = &self.signals else { return };
        while let Some(sig) = signals.next() {
            match sig {
                libc::SIGHUP => match &self.logs {
                    Some(l) => l.reopen(),
                    None => log::info!("SIGHUP: no log files to reopen"),
                },
                _ => {
                    log::info!("signal {sig}: stopping gracefully");
                    self.shared.draining.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// Stops accepting, closes idle connections and starts the grace period.
    fn begin_stop(&mut self) {
        let grace = self.shared.settings.grace_ms;
        self.grace_deadline = Some(clock::now_ms() + grace);
        if let Some(l) = self.listener.take() {
            if self.listener_registered {
                let _ = self.shared.epoll.delete(l.as_raw_fd());
            }
            // Dropping the listener closes it: new connections are refused.
        }
        self.accept_paused_until = None;
        let mut closed = 0;
        for index in 0..self.next_index {
            let token = self.shared.slots.token(index);
            if self.shared.slots.with(token, Conn::is_idle) == Some(true) {
                if let Some(c) = self.shared.slots.take(token) {
                    self.close(c);
                    closed += 1;
                }
            }
        }
        log::info!(
            "stopping: closed {closed} idle connections, {} in flight (grace {} s)",
            self.active,
            grace / 1000
        );
    }

    fn drain_notices(&mut self) {
        while let Ok(n) = self.notices.try_recv() {
            match n {
                Notice::Closed(token) => self.release(token),
                Notice::Kill(token) => {
                    if let Some(c) = self.shared.slots.take(token) {
                        self.close(c);
                    }
                }
                Notice::Timer(token, deadline) => self.timers.push(Reverse((deadline, token))),
            }
        }
    }

    /// Frees a slot whose connection is gone.
    fn release(&mut self, token: Token) {
        self.shared.slots.retire(token);
        self.free.push(token.index());
        self.active -= 1;
        if self.accept_paused_until.is_some() && self.grace_deadline.is_none() {
            self.resume_accept();
        }
    }

    /// Closes a connection the reactor holds.
    fn close(&mut self, c: Box<Conn>) {
        self.shared.stats.leave(c.gauge);
        let token = c.token;
        drop(c);
        self.release(token);
    }

    fn pause_accept(&mut self, e: &io::Error) {
        // Once per episode, not once per back-off.
        if !self.accept_starved {
            log::error!(
                "accept: {e}; pausing accepts ({} connections open)",
                self.active
            );
            self.accept_starved = true;
        }
        if let (Some(l), true) = (&self.listener, self.listener_registered) {
            let _ = self.shared.epoll.delete(l.as_raw_fd());
            self.listener_registered = false;
        }
        self.accept_paused_until = Some(clock::now_ms() + ACCEPT_BACKOFF_MS);
    }

    fn resume_accept(&mut self) {
        self.accept_paused_until = None;
        if let (Some(l), false) = (&self.listener, self.listener_registered) {
            match self.shared.epoll.add(l.as_raw_fd(), EV_IN, LISTENER) {
                Ok(()) => self.listener_registered = true,
                Err(e) => log::error!("re-registering the listener: {e}"),
            }
        }
    }

    fn accept_batch(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                return;
            };
            match sys::accept(listener) {
                Ok((stream, peer)) => {
                    self.shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if std::mem::take(&mut self.accept_starved) {
                        log::info!("accepting connections again ({} open)", self.active);
                    }
                    if self.active >= self.shared.settings.max_conns {
                        self.drain_notices();
                    }
                    if self.active >= self.shared.settings.max_conns {
                        self.refuse(stream);
                        continue;
                    }
                    self.shared.stats.handled.fetch_add(1, Ordering::Relaxed);
                    let index = self.free.pop().unwrap_or_else(|| {
                        self.next_index += 1;
                        self.next_index - 1
                    });
                    let token = self.shared.slots.token(index);
                    let s = &self.shared.settings;
                    let now = clock::now_ms();
                    let deadline = now + s.header_timeout_ms.min(s.timeout_ms);
                    let conn = Box::new(Conn::new(stream, peer, token, deadline));
                    self.active += 1;
                    self.shared.stats.enter(Gauge::Reading);
                    // Clients usually send the request with the handshake: try a read
                    // before the first epoll registration.
                    self.on_readable(conn, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => {}
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.pause_accept(&e);
                        return;
                    }
                    _ => {
                        log::error!("accept: {e}");
                        return;
                    }
                },
            }
        }
    }

    /// Answers a connection over `--max-conns` with 503 and closes it.
    fn refuse(&mut self, stream: std::net::TcpStream) {
        let fd = stream.as_raw_fd();
        // Read what already arrived, so closing does not reset the connection.
        let _ = sys::read(fd, &mut self.scratch);
        let _ = sys::send(fd, &self.overload, false);
        let _ = sys::shutdown_write(fd);
        self.shared.stats.response(503);
        let now = clock::now_ms();
        if now.saturating_sub(self.last_overload_log) >= 1000 {
            log::warn!(
                "--max-conns {} reached: answering new connections with 503",
                self.shared.settings.max_conns
            );
            self.last_overload_log = now;
        }
    }

    fn on_event(&mut self, token: Token, flags: u32) {
        let Some(conn) = self.shared.slots.take(token) else {
            return;
        };
        if flags & EV_ERR != 0 || (flags & EV_HUP != 0 && flags & EV_IN == 0) {
            log::debug!("{}: connection error or hang-up", conn.peer);
            return self.close(conn);
        }
        if matches!(conn.phase, Phase::Write) {
            if flags & EV_OUT != 0 {
                let mut conn = conn;
                conn.writable = true;
                return self.dispatch(conn);
            }
            return self.rearm(conn, EV_OUT);
        }
        self.on_readable(conn, flags);
    }

    /// Reads what the socket has; hands the connection to a worker if there is
    /// something to do, else re-arms it.
    fn on_readable(&mut self, mut conn: Box<Conn>, flags: u32) {
        let s = &self.shared.settings;
        let limit = match conn.phase {
            // One byte past the limits, so the parser sees the overflow.
            Phase::Head => s.limits.max_header.max(s.limits.max_uri) + 1,
            _ => BODY_READ,
        };
        let was_empty = conn.buf.is_empty();
        let mut got = 0;
        loop {
            if conn.buf.capacity() == 0 {
                conn.buf = self.shared.take_buffer();
            }
            if conn.buf.len() >= limit {
                break;
            }
            if conn.buf.len() == conn.buf.capacity() {
                conn.buf
                    .reserve((conn.buf.capacity()).min(limit - conn.buf.len()));
            }
            let room = (conn.buf.capacity() - conn.buf.len()).min(limit - conn.buf.len());
            match sys::read_into(conn.fd(), &mut conn.buf, room) {
                Ok(0) => {
                    conn.eof = true;
                    break;
                }
                Ok(n) => {
                    got += n;
                    // A short read drained the socket; with level-triggered ONESHOT
                    // the re-arm reports anything that arrives later.
                    if n < room {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{}: read: {e}", conn.peer);
                    return self.close(conn);
                }
            }
        }
        if flags & EV_RDHUP != 0 && got == 0 {
            conn.eof = true;
        }
        if matches!(conn.phase, Phase::Linger) {
            conn.buf.clear();
            return if conn.eof {
                self.close(conn)
            } else {
                self.rearm(conn, EV_IN | EV_RDHUP)
            };
        }
        if got > 0 {
            let now = clock::now_ms();
            match conn.phase {
                // The first bytes of a new request start its header clock.
                Phase::Head if was_empty && conn.registered => {
                    conn.deadline = now + s.header_timeout_ms;
                }
                // A body must arrive whole within --timeout of its head (set when the
                // body phase begins), however it trickles in; lingering has its own limit.
                _ => {}
            }
            return self.dispatch(conn);
        }
        if conn.eof {
            if conn.buf.is_empty() && matches!(conn.phase, Phase::Head) {
                return self.close(conn);
            }
            return self.dispatch(conn);
        }
        if conn.buf.is_empty() {
            let buf = std::mem::take(&mut conn.buf);
            self.shared.release_buffer(buf);
        }
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
        if !std::mem::replace(&mut conn.timer, true) {
            self.timers.push(Reverse((conn.deadline, conn.token)));
        }
        if let Err((token, e)) = self.shared.park(conn, events) {
            log::error!("epoll registration failed: {e}");
            if let Some(c) = self.shared.slots.take(token) {
                self.close(c);
            }
        }
    }

    /// Closes connections whose deadline passed. Deadlines only move later, so a
    /// timer that fires early is pushed back to the connection's current deadline.
    fn expire_timers(&mut self) {
        let now = clock::now_ms();
        while let Some(&Reverse((when, token))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let Some(deadline) = self.shared.slots.with(token, |c| c.deadline) else {
                // Closed (the token is stale) or a worker holds it: look again soon.
                if self.is_live(token) {
                    self.timers.push(Reverse((now + 1000, token)));
                }
                continue;
            };
            if deadline > now {
                self.timers.push(Reverse((deadline, token)));
                continue;
            }
            if let Some(c) = self.shared.slots.take(token) {
                log::debug!("{}: timed out", c.peer);
                self.close(c);
            }
        }
    }

    /// Whether `token` still names an open connection (held by a worker).
    fn is_live(&self, token: Token) -> bool {
        self.shared.slots.token(token.index()) == token
    }
}
