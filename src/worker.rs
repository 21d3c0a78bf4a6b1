//! Worker threads and the protocol driver: take a connection off the queue, read →
//! parse → respond → write, and hand it back to its reactor re-armed for the next
//! event. Every change of a connection's [`State`] happens here; what to answer is
//! the handler's business.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, TryRecvError};

use crate::clock;
use crate::conn::{After, Conn, Next, Outgoing, State, WriteStatus};
use crate::handler::Handler;
use crate::http::chunked::{ChunkError, Decoder};
use crate::http::request::{self, BodyKind, Parsed, Reject};
use crate::http::Status;
use crate::logging::{AccessLog, Throttle};
use crate::reply::Plan;
use crate::shared::{Batch, Notice, Shared};
use crate::stats::Gauge;
use crate::sys;

/// How long a half-closed connection may keep sending before it is closed.
pub const LINGER_MS: u64 = 5_000;

/// Lines a second about refused requests; the rest are counted, not written.
static REFUSALS: Throttle = Throttle::new(20);

/// One step of the driver: go on with the connection, or stop and wait for `Next`.
type Step = ControlFlow<Next>;

/// One worker thread's state.
pub struct Worker {
    shared: Arc<Shared>,
    handler: Handler,
}

impl Worker {
    /// A worker over the shared server state.
    pub fn new(shared: Arc<Shared>, access: Option<AccessLog>) -> Worker {
        Worker {
            handler: Handler::new(shared.clone(), access),
            shared,
        }
    }

    /// Serves connections from the queue until it is closed.
    pub fn run(mut self, queue: Receiver<Batch>) {
        loop {
            let batch = match queue.try_recv() {
                Ok(b) => b,
                Err(TryRecvError::Empty) => {
                    // Idle: hand the access-log batch over before sleeping.
                    self.handler.flush_log();
                    match queue.recv() {
                        Ok(c) => c,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.shared.stats.busy.fetch_add(1, Ordering::Relaxed);
            for conn in batch {
                self.serve(conn);
            }
            self.shared.stats.busy.fetch_sub(1, Ordering::Relaxed);
        }
        self.handler.flush_log();
    }

    /// Runs `process` so that a bug costs one connection, not a worker thread: the
    /// connection (its descriptor and its place in the gauges) is dropped while
    /// unwinding, and its slot freed.
    fn serve(&mut self, conn: Box<Conn>) {
        let (home, token) = (conn.home, conn.token);
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(conn)));
        if served.is_err() {
            log::error!("worker panicked while serving a connection; it was closed");
            self.shared.link(home).notify(Notice::Closed(token));
        }
    }

    /// Advances one connection as far as it can go without waiting, then hands it back.
    pub fn process(&mut self, mut conn: Box<Conn>) {
        conn.gauge.set(Gauge::Writing);
        let next = self.drive(&mut conn);
        self.finish(conn, next);
    }

    fn drive(&mut self, c: &mut Conn) -> Next {
        loop {
            let step = match c.state {
                State::Write { .. } => self.write(c),
                State::Head => self.head(c),
                State::Body { .. } => body(c),
                State::Chunked { .. } => self.chunked(c),
                State::Linger => {
                    c.buf.clear();
                    ControlFlow::Break(wait_input(c))
                }
            };
            if let ControlFlow::Break(next) = step {
                return next;
            }
        }
    }

    fn write(&mut self, c: &mut Conn) -> Step {
        let State::Write { after, writable } = &mut c.state else {
            return ControlFlow::Continue(());
        };
        let after = *after;
        if self.shared.settings.defer_write && !std::mem::take(writable) {
            return ControlFlow::Break(Next::Write);
        }
        let mut sent = 0;
        let r = c.write_out(&mut sent, || self.shared.queue_len() > 0);
        let now = clock::now_ms();
        if sent > 0 {
            let stats = &self.shared.stats;
            stats.bytes_sent.fetch_add(sent, Ordering::Relaxed);
            c.deadline = now + self.shared.settings.timeout_ms;
        }
        match r {
            Ok(WriteStatus::Done) => self.written(c, after, now),
            Ok(WriteStatus::Blocked) | Ok(WriteStatus::Yield) => ControlFlow::Break(Next::Write),
            Err(e) => {
                log::debug!("{}: write failed: {e}", c.peer);
                ControlFlow::Break(Next::Close)
            }
        }
    }

    /// A response is out (at `now`): close, linger, or go on to the next request.
    fn written(&mut self, c: &mut Conn, after: After, now: u64) -> Step {
        // Keep the larger head buffer in this worker for the next response; an idle
        // connection holds none.
        let head = self.handler.head_mut();
        if c.out.head.capacity() > head.capacity() {
            std::mem::swap(&mut c.out.head, head);
        }
        c.out = Outgoing::default();
        c.served = true;
        if let Some(t) = c.started.take() {
            self.shared.stats.durations.observe(t.elapsed());
        }
        let after = match after {
            After::KeepAlive if !self.shared.is_draining() => After::KeepAlive,
            // Unread input (bytes after a bad head) would turn close into a reset
            // that can destroy the response: shut down writing and drain it first.
            After::KeepAlive | After::Close if !c.buf.is_empty() && !c.eof => After::Linger,
            After::KeepAlive => After::Close,
            a => a,
        };
        let s = &self.shared.settings;
        match after {
            After::Linger => ControlFlow::Break(Next::Linger),
            After::Close => ControlFlow::Break(Next::Close),
            After::KeepAlive => {
                c.state = State::Head;
                if c.buf.is_empty() {
                    c.deadline = now + s.timeout_ms;
                    return ControlFlow::Break(wait_input(c));
                }
                // The next request has begun arriving: its head clock starts now.
                c.deadline = now + s.header_timeout_ms.min(s.timeout_ms);
                ControlFlow::Continue(())
            }
        }
    }

    fn head(&mut self, c: &mut Conn) -> Step {
        if c.buf.is_empty() {
            return ControlFlow::Break(wait_input(c));
        }
        let begun = Instant::now();
        let plan = match request::parse(&c.buf, &self.shared.settings.limits) {
            Ok(Parsed::Partial) => return ControlFlow::Break(wait_input(c)),
            Ok(Parsed::Complete(head)) => {
                let n = head.len;
                let plan = self.handler.respond(&c.peer, &head);
                c.buf.drain(..n);
                plan
            }
            Err(Reject(status)) => {
                refused(c, "rejected request", status);
                self.handler.reject(&c.peer, status)
            }
        };
        c.started = Some(begun);
        self.apply(c, plan);
        ControlFlow::Continue(())
    }

    fn chunked(&mut self, c: &mut Conn) -> Step {
        let State::Chunked { decoder, after } = &mut c.state else {
            return ControlFlow::Continue(());
        };
        match decoder.feed(&c.buf) {
            Ok(n) => {
                c.buf.drain(..n);
                if !decoder.is_done() {
                    return ControlFlow::Break(wait_input(c));
                }
                c.state = State::Write {
                    after: *after,
                    writable: false,
                };
            }
            Err(e) => {
                let status = match e {
                    ChunkError::Malformed => Status::BadRequest,
                    ChunkError::TooLarge => Status::PayloadTooLarge,
                };
                refused(c, "chunked body refused", status);
                // The rest of the body is unread: never parse it as a request.
                let plan = self.handler.reject(&c.peer, status).skipping_body();
                self.apply(c, plan);
            }
        }
        ControlFlow::Continue(())
    }

    /// Moves a planned response into the connection and picks the state that sends it.
    fn apply(&mut self, c: &mut Conn, plan: Plan) {
        let head = self.handler.head_mut();
        std::mem::swap(&mut c.out.head, head);
        head.clear();
        c.out.pos = 0;
        c.out.body = plan.body;
        let mut after = if plan.close {
            After::Close
        } else {
            After::KeepAlive
        };
        let s = &self.shared.settings;
        let kind = if plan.skip_body {
            // Unread body bytes may follow: answer, then linger instead of parsing them.
            c.buf.clear();
            after = After::Linger;
            BodyKind::None
        } else {
            plan.request_body
        };
        if kind != BodyKind::None {
            c.deadline = clock::now_ms() + s.timeout_ms;
            // The client waits for this before sending the body (RFC 9110 §10.1.1).
            if plan.send_continue
                && !body_buffered(c, kind)
                && sys::send(c.fd(), b"HTTP/1.1 100 Continue\r\n\r\n", false).is_err()
            {
                after = After::Close;
            }
        }
        c.state = match kind {
            BodyKind::None => State::Write {
                after,
                writable: false,
            },
            BodyKind::Length(remaining) => State::Body { remaining, after },
            BodyKind::Chunked => State::Chunked {
                decoder: Box::new(Decoder::new(s.max_body, s.limits.max_header)),
                after,
            },
        };
    }

    fn finish(&mut self, mut c: Box<Conn>, next: Next) {
        match next {
            Next::Close => self.close(c),
            Next::Linger => {
                let _ = sys::shutdown_write(c.fd());
                c.state = State::Linger;
                c.buf.clear();
                c.deadline = clock::now_ms() + LINGER_MS;
                c.gauge.set(Gauge::Writing);
                self.rearm(c, sys::EV_IN | sys::EV_RDHUP);
            }
            Next::Read => {
                if c.is_idle() {
                    if self.shared.is_draining() && c.served {
                        return self.close(c);
                    }
                    self.shared.release_buffer(std::mem::take(&mut c.buf));
                    c.gauge.set(Gauge::Waiting);
                } else {
                    c.gauge.set(Gauge::Reading);
                }
                self.rearm(c, sys::EV_IN | sys::EV_RDHUP);
            }
            Next::Write => self.rearm(c, sys::EV_OUT),
        }
    }

    /// Hands the connection back to its reactor: a timer if its deadline needs one,
    /// then back in its slot with the descriptor re-armed.
    fn rearm(&self, mut c: Box<Conn>, events: u32) {
        let link = self.shared.link(c.home);
        if c.needs_timer(clock::now_ms()) {
            c.timer_at = Some(c.deadline);
            link.notify(Notice::Timer(c.token, c.deadline));
        }
        // Ownership passes back to the reactor here.
        if let Err((token, e)) = link.park(c, events) {
            log::error!("epoll re-arm failed: {e}; closing the connection");
            link.notify(Notice::Kill(token));
        }
    }

    fn close(&self, c: Box<Conn>) {
        let link = self.shared.link(c.home);
        let token = c.token;
        drop(c);
        link.notify(Notice::Closed(token));
    }
}

/// Discards request-body bytes; once the body is over, the response goes out.
fn body(c: &mut Conn) -> Step {
    let State::Body { remaining, after } = &mut c.state else {
        return ControlFlow::Continue(());
    };
    let take = (*remaining).min(c.buf.len() as u64) as usize;
    c.buf.drain(..take);
    *remaining -= take as u64;
    if *remaining > 0 {
        return ControlFlow::Break(wait_input(c));
    }
    c.state = State::Write {
        after: *after,
        writable: false,
    };
    ControlFlow::Continue(())
}

/// Waits for more input, or closes when the peer has finished sending.
fn wait_input(c: &Conn) -> Next {
    if c.eof {
        Next::Close
    } else {
        Next::Read
    }
}

/// Logs a refused request, at most a few lines a second.
fn refused(c: &Conn, what: &str, status: Status) {
    if let Some(dropped) = REFUSALS.allow() {
        if dropped > 0 {
            log::info!("{dropped} more refused requests were not logged");
        }
        log::info!("{}: {what}: {}", c.peer, status.code());
    }
}

/// True if the whole request body is already in the buffer.
fn body_buffered(c: &Conn, kind: BodyKind) -> bool {
    match kind {
        BodyKind::Length(n) => c.buf.len() as u64 >= n,
        _ => !c.buf.is_empty(),
    }
}
