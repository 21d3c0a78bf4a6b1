//! Worker threads: take a connection off the queue, run `process()` (parse, resolve,
//! build the response head, write what the socket takes), and hand it back to the
//! reactor re-armed for the next event.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};

use crate::clock;
use crate::conn::{Body, Bytes, Conn, Outgoing, Phase, WriteStatus};
use crate::files::{self, Content, Entry, Lookup};
use crate::http::chunked::{ChunkError, Decoder};
use crate::http::precondition::{self, Decision, Validators};
use crate::http::request::{self, BodyKind, Head, Method, Parsed, Reject};
use crate::http::response::{self as resp, unix_secs};
use crate::http::Status;
use crate::logging::{self, AccessLog};
use crate::server::{Batch, Notice, Shared};
use crate::stats::Gauge;
use crate::sys;

/// How long a half-closed connection may keep sending before it is closed.
pub const LINGER_MS: u64 = 5_000;

const ALLOW: &[u8] = b"GET, HEAD, OPTIONS";

/// What the connection needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Read,
    Write,
    Close,
    Linger,
}

/// How to answer one request.
struct Plan {
    status: Status,
    body: Body,
    close: bool,
    /// Close without reading the request body (send it, then linger).
    skip_body: bool,
    request_body: BodyKind,
    send_continue: bool,
}

/// One worker thread's state: reused buffers, so a request allocates nothing.
pub struct Worker {
    shared: Arc<Shared>,
    head: Vec<u8>,
    scratch: Vec<u8>,
    path: String,
    access: Option<AccessLog>,
    /// Minor version of the request being answered.
    minor: u8,
}

impl Worker {
    /// A worker over the shared server state.
    pub fn new(shared: Arc<Shared>, access: Option<AccessLog>) -> Worker {
        Worker {
            shared,
            head: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(256),
            path: String::with_capacity(256),
            access,
            minor: 1,
        }
    }

    /// Serves connections from the queue until it is closed.
    pub fn run(mut self, queue: Receiver<Batch>) {
        loop {
            let batch = match queue.try_recv() {
                Ok(b) => b,
                Err(TryRecvError::Empty) => {
                    // Idle: hand the access-log batch over before sleeping.
                    if let Some(a) = &mut self.access {
                        a.flush();
                    }
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
                let token = conn.token;
                // A bug must cost one connection, not a worker thread: the connection
                // (and its descriptor) is dropped while unwinding and its slot freed.
                let served =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(conn)));
                if served.is_err() {
                    log::error!("worker panicked while serving a connection; it was closed");
                    self.shared.notify(Notice::Closed(token));
                }
            }
            self.shared.stats.busy.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(a) = &mut self.access {
            a.flush();
        }
    }

    /// Advances one connection as far as it can go without waiting, then hands it back.
    pub fn process(&mut self, mut conn: Box<Conn>) {
        set_gauge(&self.shared, &mut conn, Gauge::Writing);
        let next = self.drive(&mut conn);
        self.finish(conn, next);
    }

    fn drive(&mut self, c: &mut Conn) -> Next {
        // Copies, so `self` stays free for the `&mut self` calls below.
        let (limits, timeout_ms, defer_write) = {
            let s = &self.shared.settings;
            (s.limits, s.timeout_ms, s.defer_write)
        };
        loop {
            match &mut c.phase {
                Phase::Write => {
                    if defer_write && !std::mem::take(&mut c.writable) {
                        return Next::Write;
                    }
                    let mut sent = 0;
                    let r = c.write_out(&mut sent, || self.shared.queue_len() > 0);
                    if sent > 0 {
                        self.shared
                            .stats
                            .bytes_sent
                            .fetch_add(sent, Ordering::Relaxed);
                        c.deadline = clock::now_ms() + timeout_ms;
                    }
                    match r {
                        Ok(WriteStatus::Done) => {
                            // Keep the larger head buffer in this worker for the next
                            // response; an idle connection holds none.
                            if c.out.head.capacity() > self.head.capacity() {
                                std::mem::swap(&mut c.out.head, &mut self.head);
                            }
                            c.out = Outgoing::default();
                            if c.close_after || self.shared.draining.load(Ordering::Relaxed) {
                                // Unread input (a body we refused, bytes after a bad
                                // head) would turn close into a reset that can destroy
                                // the response: shut down writing and drain it first.
                                let unread = c.unread_input || (!c.buf.is_empty() && !c.eof);
                                return if unread { Next::Linger } else { Next::Close };
                            }
                            c.phase = Phase::Head;
                            if c.buf.is_empty() {
                                if c.eof {
                                    return Next::Close;
                                }
                                c.deadline = clock::now_ms() + timeout_ms;
                                return Next::Read;
                            }
                        }
                        Ok(WriteStatus::Blocked) | Ok(WriteStatus::Yield) => return Next::Write,
                        Err(e) => {
                            log::debug!("{}: write failed: {e}", c.peer);
                            return Next::Close;
                        }
                    }
                }
                Phase::Head => {
                    if c.buf.is_empty() {
                        return if c.eof { Next::Close } else { Next::Read };
                    }
                    let plan = match request::parse(&c.buf, &limits) {
                        Ok(Parsed::Partial) => return if c.eof { Next::Close } else { Next::Read },
                        Ok(Parsed::Complete(head)) => {
                            let n = head.len;
                            let plan = self.respond(&c.peer, &head);
                            c.buf.drain(..n);
                            plan
                        }
                        Err(Reject(status)) => {
                            log::info!("{}: rejected request: {}", c.peer, status.code());
                            let plan = self.error(status, false, true, None);
                            self.log_access(&c.peer, None, &plan);
                            plan
                        }
                    };
                    self.apply(c, plan);
                }
                Phase::Body { remaining } => {
                    let take = (*remaining).min(c.buf.len() as u64) as usize;
                    c.buf.drain(..take);
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        c.phase = Phase::Write;
                    } else {
                        return if c.eof { Next::Close } else { Next::Read };
                    }
                }
                Phase::Chunked(dec) => match dec.feed(&c.buf) {
                    Ok(n) => {
                        c.buf.drain(..n);
                        if dec.is_done() {
                            c.phase = Phase::Write;
                        } else {
                            return if c.eof { Next::Close } else { Next::Read };
                        }
                    }
                    Err(e) => {
                        let status = match e {
                            ChunkError::Malformed => Status::BadRequest,
                            ChunkError::TooLarge => Status::PayloadTooLarge,
                        };
                        log::info!("{}: chunked body refused: {}", c.peer, status.code());
                        let plan = self.error(status, false, true, None);
                        self.log_access(&c.peer, None, &plan);
                        // The rest of the body is unread: never parse it as a request.
                        c.buf.clear();
                        c.unread_input = true;
                        self.apply(c, plan);
                    }
                },
                Phase::Linger => {
                    c.buf.clear();
                    return if c.eof { Next::Close } else { Next::Read };
                }
            }
        }
    }

    /// Moves a planned response into the connection.
    fn apply(&mut self, c: &mut Conn, plan: Plan) {
        std::mem::swap(&mut c.out.head, &mut self.head);
        self.head.clear();
        c.out.pos = 0;
        c.out.body = plan.body;
        c.close_after = plan.close;
        if plan.skip_body {
            // Unread body bytes may follow: answer, then linger instead of parsing them.
            c.buf.clear();
            c.phase = Phase::Write;
            c.unread_input = true;
            return;
        }
        if plan.request_body != BodyKind::None {
            c.deadline = clock::now_ms() + self.shared.settings.timeout_ms;
        }
        c.phase = match plan.request_body {
            BodyKind::None => Phase::Write,
            BodyKind::Length(n) => Phase::Body { remaining: n },
            BodyKind::Chunked => Phase::Chunked(Box::new(Decoder::new(
                self.shared.settings.max_body,
                self.shared.settings.limits.max_header,
            ))),
        };
        if plan.send_continue
            && plan.request_body != BodyKind::None
            && !body_buffered(c, plan.request_body)
        {
            // The client waits for this before sending the body (RFC 9110 §10.1.1).
            if sys::send(c.fd(), resp_continue(), false).is_err() {
                c.close_after = true;
            }
        }
    }

    fn finish(&mut self, mut c: Box<Conn>, next: Next) {
        match next {
            Next::Close => self.close(c),
            Next::Linger => {
                let _ = sys::shutdown_write(c.fd());
                c.phase = Phase::Linger;
                c.buf.clear();
                c.deadline = clock::now_ms() + LINGER_MS;
                set_gauge(&self.shared, &mut c, Gauge::Writing);
                self.rearm(c, sys::EV_IN | sys::EV_RDHUP);
            }
            Next::Read => {
                if c.is_idle() {
                    if self.shared.draining.load(Ordering::Relaxed) {
                        return self.close(c);
                    }
                    self.shared.release_buffer(std::mem::take(&mut c.buf));
                    set_gauge(&self.shared, &mut c, Gauge::Waiting);
                } else {
                    set_gauge(&self.shared, &mut c, Gauge::Reading);
                }
                self.rearm(c, sys::EV_IN | sys::EV_RDHUP);
            }
            Next::Write => self.rearm(c, sys::EV_OUT),
        }
    }

    /// Puts the connection back in its slot, then re-arms its descriptor.
    fn rearm(&self, mut c: Box<Conn>, events: u32) {
        if !std::mem::replace(&mut c.timer, true) {
            self.shared.notify(Notice::Timer(c.token, c.deadline));
        }
        // Ownership passes back to the reactor here.
        if let Err((token, e)) = self.shared.park(c, events) {
            log::error!("epoll re-arm failed: {e}; closing the connection");
            self.shared.notify(Notice::Kill(token));
        }
    }

    fn close(&self, c: Box<Conn>) {
        self.shared.stats.leave(c.gauge);
        let token = c.token;
        drop(c);
        self.shared.notify(Notice::Closed(token));
    }

    fn log_access(&mut self, peer: &SocketAddr, h: Option<&Head<'_>>, plan: &Plan) {
        let code = plan.status.code();
        self.shared.stats.response(code);
        let Some(access) = &mut self.access else {
            return;
        };
        let bytes = match &plan.body {
            Body::Empty => 0,
            Body::Memory { pos, end, .. } => (end - pos) as u64,
            Body::File { offset, end, .. } => end - offset,
        };
        access.record(&logging::Entry {
            peer,
            request: h.map(|h| (h.method_str, h.target, h.minor)),
            status: code,
            bytes,
            referer: h.and_then(|h| h.referer),
            user_agent: h.and_then(|h| h.user_agent),
        });
    }

    /// Decides the response to a parsed request and encodes its head into `self.head`.
    fn respond(&mut self, peer: &SocketAddr, h: &Head<'_>) -> Plan {
        self.minor = h.minor;
        let plan = self.route(peer, h);
        self.minor = 1;
        self.log_access(peer, Some(h), &plan);
        plan
    }

    fn route(&mut self, peer: &SocketAddr, h: &Head<'_>) -> Plan {
        // A half-closed client (eof) still gets every buffered request answered; the
        // connection closes once they are, without forcing close on this response.
        let close = !h.keep_alive || self.shared.draining.load(Ordering::Relaxed);
        let head_only = h.method == Method::Head;
        if h.expect_other {
            return self
                .error(Status::ExpectationFailed, head_only, true, None)
                .skipping_body();
        }
        if let BodyKind::Length(n) = h.body {
            if n > self.shared.settings.max_body {
                return self
                    .error(Status::PayloadTooLarge, head_only, true, None)
                    .skipping_body();
            }
        }
        let mut plan = self.target(peer, close, h);
        plan.request_body = h.body;
        plan.send_continue = h.expect_continue;
        plan
    }

    fn target(&mut self, peer: &SocketAddr, close: bool, h: &Head<'_>) -> Plan {
        let head_only = h.method == Method::Head;
        if h.target == "*" {
            return if h.method == Method::Options {
                self.options(h, close)
            } else {
                self.error(Status::BadRequest, head_only, true, None)
            };
        }
        let Some(origin_form) = origin_form(h.target) else {
            return self.error(Status::BadRequest, head_only, true, None);
        };
        let (path, query) = match origin_form.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (origin_form, None),
        };
        if path.contains('#') {
            return self.error(Status::BadRequest, head_only, true, None);
        }
        let s = &self.shared.settings;
        let health = !s.health_path.is_empty() && path == s.health_path;
        let stats = s.stats_path.as_deref() == Some(path);
        if health && h.method != Method::Options {
            if h.method == Method::Other {
                return self.error(Status::MethodNotAllowed, head_only, close, None);
            }
            let (status, body): (Status, &'static [u8]) =
                if self.shared.draining.load(Ordering::Relaxed) {
                    (Status::ServiceUnavailable, b"draining\n")
                } else {
                    (Status::Ok, b"ok\n")
                };
            return self.memory(
                status,
                "text/plain; charset=utf-8",
                Bytes::Static(body),
                head_only,
                close,
            );
        }
        if stats && h.method != Method::Options {
            if !self.shared.settings.stats_allowed(peer.ip()) {
                return self.error(Status::Forbidden, head_only, close, None);
            }
            if h.method == Method::Other {
                return self.error(Status::MethodNotAllowed, head_only, close, None);
            }
            let snap = self
                .shared
                .stats
                .snapshot(self.shared.queue_len(), self.shared.settings.workers);
            let json = query.is_some_and(|q| q.split('&').any(|kv| kv == "format=json"));
            let (ctype, text) = if json {
                ("application/json", snap.json())
            } else {
                ("text/plain; charset=utf-8", snap.text())
            };
            return self.memory(
                Status::Ok,
                ctype,
                Bytes::Owned(text.into_bytes()),
                head_only,
                close,
            );
        }
        match h.method {
            Method::Options => self.options(h, close),
            Method::Other => self.error(Status::MethodNotAllowed, head_only, close, None),
            Method::Get | Method::Head => self.file(h, path, query, close),
        }
    }

    fn file(&mut self, h: &Head<'_>, path: &str, query: Option<&str>, close: bool) -> Plan {
        let head_only = h.method == Method::Head;
        if let Err(status) = files::normalize(path, &mut self.scratch, &mut self.path) {
            return self.error(status, head_only, true, None);
        }
        match self.shared.files.lookup(&self.path) {
            Lookup::File(entry) => self.entry(h, &entry, close),
            Lookup::Redirect => {
                // Built from the normalised path, so `//host`-style targets cannot turn
                // the redirect into one to another site.
                let mut location =
                    Vec::with_capacity(self.path.len() + 8 + query.map_or(0, str::len));
                location.push(b'/');
                for part in files::encode_path(&self.path) {
                    location.extend_from_slice(part.as_bytes());
                }
                location.push(b'/');
                if let Some(q) = query {
                    location.push(b'?');
                    location.extend_from_slice(q.as_bytes());
                }
                self.error(
                    Status::MovedPermanently,
                    head_only,
                    close,
                    Some((b"Location", &location)),
                )
            }
            Lookup::Listing(html) => self.memory(
                Status::Ok,
                "text/html; charset=utf-8",
                Bytes::Shared(html),
                head_only,
                close,
            ),
            Lookup::Error(status) => self.error(status, head_only, close, None),
        }
    }

    fn entry(&mut self, h: &Head<'_>, e: &Arc<Entry>, close: bool) -> Plan {
        let head_only = h.method == Method::Head;
        let v = Validators {
            etag: &e.etag,
            mtime: e.mtime,
            now: unix_secs(std::time::SystemTime::now()) + 1,
        };
        let (start, end, status) =
            match precondition::evaluate(h, &v, e.len, h.method == Method::Get, true) {
                Decision::Full => (0, e.len, Status::Ok),
                Decision::Partial(a, b) => (a, b + 1, Status::PartialContent),
                Decision::NotModified => {
                    self.begin(Status::NotModified);
                    self.validators(e);
                    resp::finish(&mut self.head, !close, h.minor);
                    return plan(Status::NotModified, Body::Empty, close);
                }
                Decision::PreconditionFailed => {
                    return self.error(Status::PreconditionFailed, head_only, close, None)
                }
                Decision::Unsatisfiable => {
                    let mut range = b"bytes */".to_vec();
                    resp::push_u64(&mut range, e.len);
                    return self.error(
                        Status::RangeNotSatisfiable,
                        head_only,
                        close,
                        Some((b"Content-Range", &range)),
                    );
                }
            };
        self.begin(status);
        let b = &mut self.head;
        resp::header(b, b"Content-Type", e.content_type.as_bytes());
        resp::content_length(b, end - start);
        if status == Status::PartialContent {
            b.extend_from_slice(b"Content-Range: bytes ");
            resp::push_u64(b, start);
            b.push(b'-');
            resp::push_u64(b, end - 1);
            b.push(b'/');
            resp::push_u64(b, e.len);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        self.validators(e);
        resp::finish(&mut self.head, !close, h.minor);
        let body = if head_only || start == end {
            Body::Empty
        } else {
            match &e.content {
                Content::Memory(m) => Body::Memory {
                    bytes: Bytes::Shared(m.clone()),
                    pos: start as usize,
                    end: end as usize,
                },
                Content::Disk(f) => Body::File {
                    file: f.clone(),
                    offset: start,
                    end,
                },
            }
        };
        plan(status, body, close)
    }

    /// ETag, Last-Modified and Cache-Control of a file response.
    fn validators(&mut self, e: &Entry) {
        let b = &mut self.head;
        resp::header(b, b"Last-Modified", &e.last_modified);
        resp::header(b, b"ETag", e.etag.as_bytes());
        if let Some(cc) = &self.shared.settings.cache_control {
            resp::header(b, b"Cache-Control", cc.as_bytes());
        }
    }

    fn options(&mut self, h: &Head<'_>, close: bool) -> Plan {
        self.begin(Status::NoContent);
        let s = &self.shared.settings;
        let b = &mut self.head;
        resp::header(b, b"Allow", ALLOW);
        if s.cors.is_some() && h.origin.is_some() && h.acr_method.is_some() {
            resp::header(b, b"Access-Control-Allow-Methods", ALLOW);
            if let Some(req) = h.acr_headers.filter(|v| {
                v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_, ".contains(&c))
            }) {
                resp::header(b, b"Access-Control-Allow-Headers", req.as_bytes());
            }
            resp::header(b, b"Access-Control-Max-Age", b"86400");
        }
        resp::finish(b, !close, h.minor);
        plan(Status::NoContent, Body::Empty, close)
    }

    /// A response with an in-memory body.
    fn memory(
        &mut self,
        status: Status,
        ctype: &str,
        bytes: Bytes,
        head_only: bool,
        close: bool,
    ) -> Plan {
        self.begin(status);
        let len = match &bytes {
            Bytes::Static(b) => b.len(),
            Bytes::Shared(b) => b.len(),
            Bytes::Owned(b) => b.len(),
        };
        resp::header(&mut self.head, b"Content-Type", ctype.as_bytes());
        resp::content_length(&mut self.head, len as u64);
        resp::header(&mut self.head, b"Cache-Control", b"no-store");
        resp::finish(&mut self.head, !close, self.minor);
        let body = if head_only {
            Body::Empty
        } else {
            Body::Memory {
                bytes,
                pos: 0,
                end: len,
            }
        };
        plan(status, body, close)
    }

    /// An error (or redirect) page, with one optional extra header.
    fn error(
        &mut self,
        status: Status,
        head_only: bool,
        close: bool,
        extra: Option<(&[u8], &[u8])>,
    ) -> Plan {
        self.begin(status);
        let page = status.page();
        let b = &mut self.head;
        resp::header(b, b"Content-Type", b"text/html; charset=utf-8");
        resp::content_length(b, page.len() as u64);
        if matches!(status, Status::MethodNotAllowed | Status::NotImplemented) {
            resp::header(b, b"Allow", ALLOW);
        }
        if let Some((name, value)) = extra {
            resp::header(b, name, value);
        }
        resp::finish(b, !close, self.minor);
        let body = if head_only {
            Body::Empty
        } else {
            Body::Memory {
                bytes: Bytes::Static(page),
                pos: 0,
                end: page.len(),
            }
        };
        plan(status, body, close)
    }

    /// Status line, Server, Date and the configured headers.
    fn begin(&mut self, status: Status) {
        self.head.clear();
        resp::begin(&mut self.head, status);
        self.head
            .extend_from_slice(&self.shared.settings.extra_headers);
    }
}

fn plan(status: Status, body: Body, close: bool) -> Plan {
    Plan {
        status,
        body,
        close,
        skip_body: false,
        request_body: BodyKind::None,
        send_continue: false,
    }
}

impl Plan {
    fn skipping_body(mut self) -> Plan {
        self.skip_body = true;
        self.close = true;
        self
    }
}

fn resp_continue() -> &'static [u8] {
    b"HTTP/1.1 100 Continue\r\n\r\n"
}

/// True if the whole request body is already in the buffer.
fn body_buffered(c: &Conn, kind: BodyKind) -> bool {
    match kind {
        BodyKind::Length(n) => c.buf.len() as u64 >= n,
        _ => !c.buf.is_empty(),
    }
}

/// The origin-form part of a target: itself, or the path of an absolute-form target.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return None;
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some(&rest[i..]),
        Some(_) => None,
        None => Some("/"),
    }
}

fn set_gauge(shared: &Shared, c: &mut Conn, g: Gauge) {
    if c.gauge != g {
        shared.stats.leave(c.gauge);
        shared.stats.enter(g);
        c.gauge = g;
    }
}

#[cfg(test)]
mod tests {
    use super::origin_form;

    #[test]
    fn absolute_form() {
        assert_eq!(origin_form("/a?b"), Some("/a?b"));
        assert_eq!(origin_form("http://host/a/b?c"), Some("/a/b?c"));
        assert_eq!(origin_form("HTTP://host"), Some("/"));
        assert_eq!(origin_form("https://host:8080/x"), Some("/x"));
        assert_eq!(origin_form("ftp://host/x"), None);
        assert_eq!(origin_form("host/x"), None);
    }
}
