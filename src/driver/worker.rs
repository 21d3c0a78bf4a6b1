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
use crate::driver::conn::{After, BodyRead, Conn, Next, Phase};
use crate::driver::reactor::read_limit;
use crate::driver::shared::{Batch, Notice, Shared};
use crate::driver::tls::TlsError;
use crate::driver::transport::WriteStatus;
use crate::http::chunked::Decoder;
use crate::http::error::Refusal;
use crate::http::request::{self, BodyKind, Parsed};
use crate::obs::logging::AccessLog;
use crate::obs::stats::Gauge;
use crate::serve::handler::{Handler, Via};
use crate::serve::reply::Plan;
use crate::sys;
use crate::throttle::Throttle;

/// Lines a second about refused requests; the rest are counted, not written.
static REFUSALS: Throttle = Throttle::new(20);

/// The answer to plain HTTP on the TLS port, sent unencrypted, as nginx does.
const PLAIN_ON_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 50\r\nConnection: close\r\n\r\nThe plain HTTP request was sent to the HTTPS port\n";

/// One step of the driver: go on with the connection, or stop and wait for `Next`.
type Step = ControlFlow<Next>;

/// One worker thread's state.
pub struct Worker {
    shared: Arc<Shared>,
    handler: Handler<Shared>,
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
        let (home, token) = (conn.home(), conn.token());
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(conn)));
        if served.is_err() {
            log::error!("worker panicked while serving a connection; it was closed");
            self.shared.closed(home);
            self.shared.link(home).notify(Notice::Closed(token));
        }
    }

    /// Advances one connection as far as it can go without waiting, then hands it back.
    pub fn process(&mut self, mut conn: Box<Conn>) {
        conn.count_as(Gauge::Writing);
        let next = match self.decrypt(&mut conn) {
            Ok(_) => self.drive(&mut conn),
            Err(next) => next,
        };
        self.finish(conn, next);
    }

    /// TLS: the handshake and decryption of what the reactor read, in this worker.
    /// Returns the plaintext bytes gained, or what to do with a connection that
    /// cannot go on.
    fn decrypt(&mut self, c: &mut Conn) -> Result<usize, Next> {
        let limit = read_limit(&self.shared.settings, c.phase());
        let shared = &self.shared;
        let stats = &self.shared.stats;
        match c.decrypt(limit, clock::now_ms(), || shared.take_buffer()) {
            Ok(d) => {
                match d.handshake {
                    Some(rustls::ProtocolVersion::TLSv1_2) => &stats.tls_handshakes[0],
                    Some(_) => &stats.tls_handshakes[1],
                    None => return Ok(d.got),
                }
                .fetch_add(1, Ordering::Relaxed);
                Ok(d.got)
            }
            Err(TlsError::PlainHttp) => {
                c.refuse_plain(PLAIN_ON_TLS);
                stats.response(400);
                stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(dropped) = REFUSALS.allow() {
                    if dropped > 0 {
                        log::info!("{dropped} more refused requests were not logged");
                    }
                    log::info!("{}: plain HTTP request sent to the HTTPS port", c.peer());
                }
                Err(Next::Close)
            }
            Err(e) => {
                if matches!(e, TlsError::Protocol(_)) {
                    stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                }
                log::debug!("{}: TLS: {e}", c.peer());
                Err(Next::Close)
            }
        }
    }

    /// Waits for more input, or closes when the peer has finished sending; a TLS
    /// connection first decrypts records it already holds.
    fn wait_input(&mut self, c: &mut Conn) -> Step {
        if c.more_input() {
            match self.decrypt(c) {
                Ok(n) if n > 0 => return ControlFlow::Continue(()),
                Ok(_) => {}
                Err(next) => return ControlFlow::Break(next),
            }
        }
        ControlFlow::Break(if c.eof() { Next::Close } else { Next::Read })
    }

    fn drive(&mut self, c: &mut Conn) -> Next {
        loop {
            let step = match c.phase() {
                Phase::Write => self.write(c),
                Phase::Head => self.head(c),
                Phase::Body => self.body(c),
                Phase::Linger => {
                    c.discard_input();
                    ControlFlow::Break(if c.eof() { Next::Close } else { Next::Read })
                }
            };
            if let ControlFlow::Break(next) = step {
                return next;
            }
        }
    }

    fn write(&mut self, c: &mut Conn) -> Step {
        if !c.may_write(self.shared.settings.defer_write) {
            return ControlFlow::Break(Next::Write);
        }
        let mut sent = 0;
        let now = clock::now_ms();
        let r = c.write(&mut sent, now, || self.shared.queue_len() > 0);
        if sent > 0 {
            let stats = &self.shared.stats;
            stats.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        }
        match r {
            Ok(WriteStatus::Done) => self.written(c, now),
            Ok(WriteStatus::Blocked) | Ok(WriteStatus::Yield) => ControlFlow::Break(Next::Write),
            Err(e) => {
                log::debug!("{}: write failed: {e}", c.peer());
                ControlFlow::Break(Next::Close)
            }
        }
    }

    /// A response is out (at `now`): close, linger, or go on to the next request.
    fn written(&mut self, c: &mut Conn, now: u64) -> Step {
        let after = c.after();
        if let Some(took) = c.finish_response(self.handler.head_mut()) {
            self.shared.stats.durations.observe(took);
        }
        let after = match after {
            After::KeepAlive if !self.shared.is_draining() => After::KeepAlive,
            // Unread input (bytes after a bad head) would turn close into a reset
            // that can destroy the response: shut down writing and drain it first.
            After::KeepAlive | After::Close if !c.input().is_empty() && !c.eof() => After::Linger,
            After::KeepAlive => After::Close,
            a => a,
        };
        match after {
            After::Linger => ControlFlow::Break(Next::Linger),
            After::Close => ControlFlow::Break(Next::Close),
            After::KeepAlive => {
                c.keep_alive(now);
                if c.input().is_empty() {
                    return self.wait_input(c);
                }
                ControlFlow::Continue(())
            }
        }
    }

    fn head(&mut self, c: &mut Conn) -> Step {
        if c.input().is_empty() {
            return self.wait_input(c);
        }
        let begun = Instant::now();
        let plan = match request::parse(c.input(), &self.shared.settings.limits) {
            Ok(Parsed::Partial) => return self.wait_input(c),
            Ok(Parsed::Complete(head)) => {
                let n = head.len;
                let via = Via {
                    peer: c.peer(),
                    tls: c.tls_name(),
                    tls_version: c.tls_version(),
                };
                let plan = self.handler.respond(&via, &head);
                c.consume(n);
                plan
            }
            Err(why) => {
                refused(c, "rejected request", why);
                self.handler.reject(c.peer(), why)
            }
        };
        c.begin_request(begun);
        self.apply(c, plan);
        ControlFlow::Continue(())
    }

    /// Discards request-body bytes; once the body is over, the response goes out.
    fn body(&mut self, c: &mut Conn) -> Step {
        match c.discard_body() {
            Ok(true) => {}
            Ok(false) => return self.wait_input(c),
            Err(e) => {
                let why = Refusal::from(e);
                refused(c, "chunked body refused", why);
                // The rest of the body is unread: never parse it as a request.
                let plan = self.handler.reject(c.peer(), why);
                self.apply(c, plan);
            }
        }
        ControlFlow::Continue(())
    }

    /// Moves a planned response into the connection and picks the state that sends it.
    fn apply(&mut self, c: &mut Conn, plan: Plan) {
        let mut after = if plan.close {
            After::Close
        } else {
            After::KeepAlive
        };
        let kind = if plan.skip_body {
            // Unread body bytes may follow: answer, then linger instead of parsing them.
            c.discard_input();
            after = After::Linger;
            BodyKind::None
        } else {
            plan.request_body
        };
        let length = match kind {
            BodyKind::None => None,
            BodyKind::Length(n) => Some(n),
            BodyKind::Chunked => None,
        };
        // The client waits for this before sending the body (RFC 9110 §10.1.1).
        let send_continue =
            kind != BodyKind::None && plan.send_continue && !c.body_buffered(length);
        c.respond(self.handler.head_mut(), plan.body, after);
        if send_continue && c.send_interim(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            c.close_after();
        }
        let s = &self.shared.settings;
        let read = match kind {
            BodyKind::None => return,
            BodyKind::Length(n) => BodyRead::Length(n),
            BodyKind::Chunked => {
                BodyRead::Chunked(Box::new(Decoder::new(s.max_body, s.limits.max_header)))
            }
        };
        c.start_body(read, clock::now_ms());
    }

    fn finish(&mut self, mut c: Box<Conn>, next: Next) {
        match next {
            Next::Close => self.close(c),
            Next::Linger => {
                c.linger(clock::now_ms());
                c.count_as(Gauge::Writing);
                self.rearm(c, sys::EV_IN | sys::EV_RDHUP);
            }
            Next::Read => {
                if c.is_idle() {
                    if self.shared.is_draining() && c.served() {
                        return self.close(c);
                    }
                    c.spare_buffers(|buf| self.shared.release_buffer(buf));
                    c.count_as(Gauge::Waiting);
                } else {
                    c.count_as(Gauge::Reading);
                }
                // TLS handshake bytes the socket did not take go out on EPOLLOUT.
                let out = if c.wants_flush() { sys::EV_OUT } else { 0 };
                self.rearm(c, sys::EV_IN | sys::EV_RDHUP | out);
            }
            Next::Write => self.rearm(c, sys::EV_OUT),
        }
    }

    /// Hands the connection back to its reactor: a timer if its deadline needs one,
    /// then back in its slot with the descriptor re-armed.
    fn rearm(&self, mut c: Box<Conn>, events: u32) {
        let link = self.shared.link(c.home());
        if let Some(deadline) = c.timer_due(clock::now_ms()) {
            link.notify(Notice::Timer(c.token(), deadline));
        }
        // Ownership passes back to the reactor here.
        if let Err((token, e)) = link.park(c, events) {
            log::error!("epoll re-arm failed: {e}; closing the connection");
            link.notify(Notice::Kill(token));
        }
    }

    fn close(&self, c: Box<Conn>) {
        let (home, token) = (c.home(), c.token());
        drop(c);
        self.shared.closed(home);
        self.shared.link(home).notify(Notice::Closed(token));
    }
}

/// Logs a refused request, at most a few lines a second.
fn refused(c: &Conn, what: &str, why: Refusal) {
    if let Some(dropped) = REFUSALS.allow() {
        if dropped > 0 {
            log::info!("{dropped} more refused requests were not logged");
        }
        log::info!("{}: {what}: {}", c.peer(), why.status().code());
    }
}
