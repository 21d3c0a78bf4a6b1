//! From a parsed request to a response: the static-file handler, directory
//! redirects and listings, the health and stats pages, and OPTIONS. It knows nothing
//! of sockets or connection state; the driver in `worker.rs` sends what it plans.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::access_log::LogFormat;
use crate::config::settings::Settings;
use crate::config::site::Site;
use crate::config::sites::Sites;
use crate::config::tls::TlsSetup;
use crate::files::compress::Compressor;
use crate::files::{self, Entry};
use crate::http::body::Bytes;
use crate::http::error::{Refusal, Then};
use crate::http::request::{BodyKind, Head, Method};
use crate::http::Status;
use crate::obs::logging::{self, AccessLog};
use crate::obs::stats::{Snapshot, Stats};
use crate::serve::reply::{Frame, Plan, Reply};
use crate::serve::routes;

mod auth;
mod file;
mod pages;

/// Methods served.
const ALLOW: &[u8] = b"GET, HEAD, OPTIONS";

/// What the handler knows of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// The client's address.
    pub peer: &'a SocketAddr,
    /// On an HTTPS connection, the server name its handshake asked for (SNI), if
    /// any; `None` on plain HTTP.
    pub tls: Option<Option<&'a str>>,
    /// On an HTTPS connection, its TLS version (`TLSv1.3`), for the access log.
    pub tls_version: Option<&'static str>,
}

/// What serving reads from the running server. The driver's shared state provides
/// it, so serving never imports the driver.
pub trait Context {
    /// The sites of the running configuration (a reload swaps in new ones).
    fn sites(&self) -> &ArcSwap<Sites>;
    /// The process-wide settings.
    fn settings(&self) -> &Settings;
    /// The counters.
    fn stats(&self) -> &Stats;
    /// Whether a graceful stop has begun.
    fn is_draining(&self) -> bool;
    /// A snapshot of the counters for the statistics page.
    fn snapshot(&self) -> Snapshot;
    /// The cache of variants compressed on the fly.
    fn compressor(&self) -> &Compressor;
    /// The HTTPS certificates, when TLS is on (for `421` decisions).
    fn tls(&self) -> Option<&TlsSetup> {
        None
    }
}

/// A worker's request handler, with its reused buffers: answering a request for a
/// cached file allocates nothing.
pub struct Handler<C> {
    ctx: Arc<C>,
    head: Vec<u8>,
    scratch: Vec<u8>,
    path: String,
    /// Scratch for a `--try-files` candidate before it is normalised.
    candidate: String,
    /// Scratch for the `[[headers]]` rules a path matches.
    matched: Vec<usize>,
    /// The user basic authentication let in for this request, for the log (empty:
    /// none).
    user: String,
    access: Option<AccessLog>,
}

impl<C: Context> Handler<C> {
    /// A handler over the running server's `ctx`, writing to `access` if the log is on.
    pub fn new(ctx: Arc<C>, access: Option<AccessLog>) -> Handler<C> {
        Handler {
            ctx,
            head: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(256),
            path: String::with_capacity(256),
            candidate: String::with_capacity(256),
            matched: Vec::with_capacity(8),
            user: String::new(),
            access,
        }
    }

    /// The encoded head of the last plan; the driver swaps it into the connection.
    pub fn head_mut(&mut self) -> &mut Vec<u8> {
        &mut self.head
    }

    /// Hands buffered access-log lines to the log thread.
    pub fn flush_log(&mut self) {
        if let Some(a) = &mut self.access {
            a.flush();
        }
    }

    /// Plans the response to a parsed request and logs it.
    pub fn respond(&mut self, via: &Via<'_>, h: &Head<'_>) -> Plan {
        // One load per request: the sites stay the same until the plan is made, even
        // if a reload swaps in new ones meanwhile.
        let sites = self.ctx.sites().load();
        let host = request_host(h);
        let site = sites.pick(host);
        let timed = site.log_format == LogFormat::Json
            && self
                .access
                .as_ref()
                .is_some_and(|a| a.wants(&site.access_log));
        let begun = timed.then(std::time::Instant::now);
        self.user.clear();
        let plan = match self.tls_policy(site, via, h) {
            Some(plan) => plan,
            None => self.route(site, via.peer, h),
        };
        let request = Some((h, host, begun.map(|t| t.elapsed())));
        self.record(site, via, request, &plan);
        plan
    }

    /// Plans the error response to a request that could not be parsed (or whose
    /// body was refused), which closes the connection, and logs it.
    pub fn reject(&mut self, peer: &SocketAddr, why: Refusal) -> Plan {
        let frame = Frame {
            head_only: false,
            close: true,
            minor: 1,
        };
        let sites = self.ctx.sites().load();
        // Before a request exists, no error page: the built-in one, with no file work
        // for a connection that is closing anyway.
        let site = sites.default_site();
        let plan = self.error_body(site, why.status(), frame, None, None);
        let via = Via {
            peer,
            tls: None,
            tls_version: None,
        };
        self.record(site, &via, None, &plan);
        unread(plan, why)
    }

    /// Plans the error response to a parsed request refused for `why`, with the
    /// site's error page; the connection closes.
    fn refuse(&mut self, site: &Site, why: Refusal, frame: Frame) -> Plan {
        let frame = Frame {
            close: true,
            ..frame
        };
        let plan = self.error(site, why.status(), frame, None);
        unread(plan, why)
    }

    /// Counts the response and logs it where the site's lines go. `request` is the
    /// parsed request, the host it named and how long planning took (if measured).
    fn record(
        &mut self,
        site: &Site,
        via: &Via<'_>,
        request: Option<(&Head<'_>, Option<&str>, Option<Duration>)>,
        plan: &Plan,
    ) {
        let code = plan.status.code();
        self.ctx.stats().response(code);
        if let Some(access) = &mut self.access {
            let h = request.map(|r| r.0);
            access.record(
                &site.access_log,
                site.log_format,
                &logging::Entry {
                    peer: via.peer,
                    request: h.map(|h| (h.method_str, h.target, h.minor)),
                    status: code,
                    bytes: plan.body_len(),
                    referer: h.and_then(|h| h.referer),
                    user_agent: h.and_then(|h| h.user_agent),
                    host: request.and_then(|r| r.1),
                    user: (!self.user.is_empty()).then_some(self.user.as_str()),
                    request_time: request.and_then(|r| r.2),
                    tls: via.tls_version,
                },
            );
        }
    }

    fn route(&mut self, site: &Site, peer: &SocketAddr, h: &Head<'_>) -> Plan {
        // A half-closed client (eof) still gets every buffered request answered; the
        // connection closes once they are, without forcing close on this response.
        let frame = Frame {
            head_only: h.method == Method::Head,
            close: !h.keep_alive || self.ctx.is_draining(),
            minor: h.minor,
        };
        let refused = if h.expect_other {
            Some(Refusal::Expectation)
        } else {
            match h.body {
                BodyKind::Length(n) if n > self.ctx.settings().max_body => {
                    Some(Refusal::BodyTooLarge)
                }
                _ => None,
            }
        };
        if let Some(why) = refused {
            return self.refuse(site, why, frame);
        }
        let mut plan = self.target(site, peer, frame, h);
        plan.request_body = h.body;
        plan.send_continue = h.expect_continue;
        plan
    }

    fn target(&mut self, site: &Site, peer: &SocketAddr, frame: Frame, h: &Head<'_>) -> Plan {
        if h.target == "*" {
            return match h.method {
                Method::Options => self.options(site, h, frame),
                _ => self.refuse(site, Refusal::Malformed, frame),
            };
        }
        let Some(origin_form) = origin_form(h.target) else {
            return self.refuse(site, Refusal::Malformed, frame);
        };
        let (path, query) = match origin_form.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (origin_form, None),
        };
        if path.contains('#') {
            return self.refuse(site, Refusal::Malformed, frame);
        }
        #[cfg(debug_assertions)]
        debug_panic(path);
        let s = self.ctx.settings();
        if h.method != Method::Options {
            if !s.health_path.is_empty() && path == s.health_path {
                return self.health(site, h, frame);
            }
            if s.stats_path.as_deref() == Some(path) {
                return self.stats(site, peer, h, query, frame);
            }
            if s.metrics_path.as_deref() == Some(path) {
                return self.stats(site, peer, h, Some("format=prometheus"), frame);
            }
        }
        let site = if site.redirects.is_empty() && !site.has_locations() {
            site
        } else {
            match self.routed(site, h, path, query, frame) {
                Ok(site) => site,
                Err(plan) => return plan,
            }
        };
        match h.method {
            Method::Options => self.options(site, h, frame),
            Method::Other => self.error(site, Status::MethodNotAllowed, frame, None),
            Method::Get | Method::Head => {
                if let Some(auth) = &site.auth {
                    if let Some(refused) = self.authorize(site, auth, h, frame) {
                        return refused;
                    }
                }
                self.file(site, h, path, query, frame)
            }
        }
    }

    /// For a site with redirects or locations: the first `[[redirect]]` matching
    /// the normalised path answers (`Err`), else the location whose prefix is the
    /// longest (or the site) answers the request.
    fn routed<'s>(
        &mut self,
        site: &'s Site,
        h: &Head<'_>,
        path: &str,
        query: Option<&str>,
        frame: Frame,
    ) -> Result<&'s Site, Plan> {
        if let Err(status) = files::normalize(path, &mut self.scratch, &mut self.path) {
            let frame = Frame {
                close: true,
                ..frame
            };
            return Err(self.error(site, status, frame, None));
        }
        if !site.redirects.is_empty() {
            self.candidate.clear();
            self.candidate.push('/');
            self.candidate.push_str(&self.path);
            // `$host`: an absolute-form authority is held to Host's grammar too (no
            // userinfo or path that would turn the target into another site).
            let host = request_host(h)
                .filter(|a| crate::http::grammar::host_ok(a.as_bytes()))
                .map_or("", host_without_port);
            let mut location = Vec::new();
            for r in &site.redirects {
                if r.target(&self.candidate, host, query, &mut location) {
                    let extra = Some((&b"Location"[..], &location[..]));
                    return Err(self.error(site, r.status, frame, extra));
                }
            }
        }
        Ok(site.locate(&self.path))
    }

    /// A generated response (health, stats, listings): never cached.
    fn memory(
        &mut self,
        site: &Site,
        status: Status,
        frame: Frame,
        ctype: &str,
        bytes: Bytes,
    ) -> Plan {
        self.start(site, status, frame)
            .header(b"Content-Type", ctype.as_bytes())
            .header(b"Cache-Control", b"no-store")
            .memory(bytes)
    }

    /// An error (or redirect) page, with one optional extra header. The body is the
    /// site's `--error-page` file for the status when there is one (never for
    /// redirects), else the built-in page; neither carries validators.
    fn error(
        &mut self,
        site: &Site,
        status: Status,
        frame: Frame,
        extra: Option<(&[u8], &[u8])>,
    ) -> Plan {
        let page = site.error_pages.page(&site.files, status);
        self.error_body(site, status, frame, extra, page)
    }

    /// An error page with `page`'s type and bytes, or the built-in page.
    fn error_body(
        &mut self,
        site: &Site,
        status: Status,
        frame: Frame,
        extra: Option<(&[u8], &[u8])>,
        page: Option<Arc<Entry>>,
    ) -> Plan {
        let ctype = page
            .as_ref()
            .map_or("text/html; charset=utf-8", |e| e.content_type);
        let allow = matches!(status, Status::MethodNotAllowed | Status::NotImplemented);
        let mut reply = self
            .start(site, status, frame)
            .header(b"Content-Type", ctype.as_bytes())
            .header_opt(b"Allow", allow.then_some(ALLOW));
        if let Some((name, value)) = extra {
            reply = reply.header(name, value);
        }
        match page {
            Some(e) => reply.body(e.len, routes::whole_body(&e)),
            None => reply.memory(Bytes::Static(status.page())),
        }
    }

    fn start(&mut self, site: &Site, status: Status, frame: Frame) -> Reply<'_> {
        begin(&mut self.head, site, status, frame)
    }
}

/// Starts a response in `head` with the site's configured headers.
fn begin<'a>(head: &'a mut Vec<u8>, site: &Site, status: Status, frame: Frame) -> Reply<'a> {
    Reply::new(head, status, frame, &site.extra_headers)
}

/// In debug builds, a request for the path in `HEARTH_DEBUG_PANIC_PATH` panics, so
/// tests can check that a panic costs one connection and leaves the counters right.
#[cfg(debug_assertions)]
fn debug_panic(path: &str) {
    static PATH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = PATH.get_or_init(|| std::env::var("HEARTH_DEBUG_PANIC_PATH").ok());
    if armed.as_deref() == Some(path) {
        panic!("HEARTH_DEBUG_PANIC_PATH requested");
    }
}

/// The host a request names: the authority of an absolute-form target, which
/// RFC 9112 §3.2.2 says takes precedence over `Host`, else the `Host` field.
fn request_host<'a>(h: &Head<'a>) -> Option<&'a str> {
    absolute_form(h.target).map_or(h.host, |(authority, _)| Some(authority))
}

/// An `http://` or `https://` target (scheme in any case) split into its authority
/// and what follows it (`""`, or from the first `/` or `?`).
fn absolute_form(target: &str) -> Option<(&str, &str)> {
    let scheme = ["http://", "https://"].into_iter().find(|p| {
        target
            .as_bytes()
            .get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes()))
    })?;
    let rest = &target[scheme.len()..];
    Some(rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len())))
}

/// A `Host` value without its port: `a.example:8080` -> `a.example`, `[::1]:80` ->
/// `[::1]` (brackets kept, for a URL).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Where a directory named without its slash redirects: built from the normalised
/// path, so `//host`-style targets cannot turn it into a redirect to another site.
fn redirect_location(path: &str, query: Option<&str>) -> Vec<u8> {
    let mut location = Vec::with_capacity(path.len() + 8 + query.map_or(0, str::len));
    location.push(b'/');
    for part in files::encode_path(path) {
        location.extend_from_slice(part.as_bytes());
    }
    location.push(b'/');
    if let Some(q) = query {
        location.push(b'?');
        location.extend_from_slice(q.as_bytes());
    }
    location
}

/// The origin-form part of a target: itself, or the path of an absolute-form target.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    match absolute_form(target)?.1 {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// A refusal's plan, reading no more of a body that follows where `why` says so.
fn unread(plan: Plan, why: Refusal) -> Plan {
    match why.then() {
        Then::CloseUnread => plan.skipping_body(),
        Then::Close => plan,
    }
}

#[cfg(test)]
mod tests {
    use super::{host_without_port, origin_form};

    #[test]
    fn hosts_without_ports() {
        assert_eq!(host_without_port("a.example:8080"), "a.example");
        assert_eq!(host_without_port("a.example"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("10.0.0.1:80"), "10.0.0.1");
    }

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
