//! Request heads: the request line parsed here, header fields by `httparse`, plus the
//! checks RFC 9112 asks of a server that httparse leaves to its caller (bare LF/CR,
//! framing headers, Host, limits).

use super::error::Refusal;
use super::grammar::host_ok;

mod line;
use line::{request_line, Line};

/// Most header fields accepted in one request (431 past it).
pub const MAX_HEADERS: usize = 100;

/// Longest method token read. The longest method the server knows has 7 bytes, so a
/// longer token is refused (501) as soon as it is seen rather than after `max_uri` bytes.
const MAX_METHOD: usize = 32;

/// Request methods the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// OPTIONS
    Options,
    /// POST, PUT, DELETE, PATCH, TRACE, CONNECT: known, never allowed on files.
    Other,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Limits enforced while the head is read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line (414).
    pub max_uri: usize,
    /// Largest head (431).
    pub max_header: usize,
}

/// The parts of a request head the server acts on, borrowed from the read buffer.
#[derive(Debug)]
pub struct Head<'a> {
    /// Method class.
    pub method: Method,
    /// The method token as sent (for the access log).
    pub method_str: &'a str,
    /// Request target as sent.
    pub target: &'a str,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 and any higher 1.x (RFC 9110 §2.5).
    pub minor: u8,
    /// Keep the connection open after the response.
    pub keep_alive: bool,
    /// Body framing.
    pub body: BodyKind,
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub expect_continue: bool,
    /// An `Expect` value other than 100-continue was sent.
    pub expect_other: bool,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Access-Control-Request-Method`.
    pub acr_method: Option<&'a str>,
    /// `Access-Control-Request-Headers`.
    pub acr_headers: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<&'a str>,
    /// `Authorization` (basic authentication).
    pub authorization: Option<&'a str>,
    /// `Host`, as sent and validated (port included), for picking a virtual host.
    pub host: Option<&'a str>,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

/// Outcome of looking at the buffered bytes.
// Returned once per request straight into a match; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole head.
    Complete(Head<'a>),
    /// Not yet a whole head, and within limits: read more.
    Partial,
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn classify(method: &str) -> Option<Method> {
    Some(match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "POST" | "PUT" | "DELETE" | "PATCH" | "TRACE" | "CONNECT" => Method::Other,
        _ => return None,
    })
}

/// The field names the server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    IfNoneMatch,
    IfModifiedSince,
    IfMatch,
    IfUnmodifiedSince,
    Range,
    IfRange,
    Origin,
    AcrMethod,
    AcrHeaders,
    Referer,
    UserAgent,
    AcceptEncoding,
    Authorization,
}

const FIELDS: [(&str, Field); 18] = [
    ("host", Field::Host),
    ("content-length", Field::ContentLength),
    ("transfer-encoding", Field::TransferEncoding),
    ("connection", Field::Connection),
    ("expect", Field::Expect),
    ("if-none-match", Field::IfNoneMatch),
    ("if-modified-since", Field::IfModifiedSince),
    ("if-match", Field::IfMatch),
    ("if-unmodified-since", Field::IfUnmodifiedSince),
    ("range", Field::Range),
    ("if-range", Field::IfRange),
    ("origin", Field::Origin),
    ("access-control-request-method", Field::AcrMethod),
    ("access-control-request-headers", Field::AcrHeaders),
    ("referer", Field::Referer),
    ("user-agent", Field::UserAgent),
    ("accept-encoding", Field::AcceptEncoding),
    ("authorization", Field::Authorization),
];

fn field(name: &str) -> Option<Field> {
    FIELDS.iter().find(|(n, _)| eq_ci(name, n)).map(|&(_, f)| f)
}

/// Every LF must follow a CR and every CR must precede an LF (RFC 9112 §2.2 lets a
/// server reject bare CR and LF; accepting them invites request smuggling).
fn line_endings_ok(head: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return false,
            b'\r' if head.get(i + 1) != Some(&b'\n') => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

/// Skips the empty lines a client may send before the request line (RFC 9112 §2.2).
fn skip_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    while buf.len() >= i + 2 && buf[i] == b'\r' && buf[i + 1] == b'\n' {
        i += 2;
    }
    i
}

/// Parses a strictly decimal `Content-Length` value.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// What the framing and Host fields said, gathered over all fields before deciding
/// (RFC 9112 §3.2, §6).
#[derive(Debug, Default)]
struct Framing {
    hosts: u32,
    lengths: u32,
    content_length: Option<u64>,
    te_seen: bool,
    te_chunked_last: bool,
    te_chunked: u32,
    te_unknown: bool,
}

impl Framing {
    fn host(&mut self, value: &str, minor: u8) -> Result<(), Refusal> {
        self.hosts += 1;
        // An empty Host is only for a target without an authority; HTTP/1.1 clients
        // always have one to send.
        let ok = if value.is_empty() {
            minor == 0
        } else {
            host_ok(value.as_bytes())
        };
        if ok {
            Ok(())
        } else {
            Err(Refusal::Malformed)
        }
    }

    fn content_length(&mut self, value: &str) -> Result<(), Refusal> {
        self.lengths += 1;
        let len = parse_length(value.as_bytes()).ok_or(Refusal::Malformed)?;
        self.content_length = Some(len);
        Ok(())
    }

    fn transfer_encoding(&mut self, value: &str) -> Result<(), Refusal> {
        self.te_seen = true;
        for coding in value.split(',').map(|c| c.trim_matches([' ', '\t'])) {
            if coding.is_empty() {
                continue;
            }
            if eq_ci(coding, "chunked") {
                self.te_chunked += 1;
                self.te_chunked_last = true;
            } else if self.te_chunked_last {
                // chunked must be the final coding.
                return Err(Refusal::Malformed);
            } else {
                self.te_unknown = true;
            }
        }
        Ok(())
    }

    /// The body framing all fields together describe, or why there is none.
    fn body(&self, minor: u8) -> Result<BodyKind, Refusal> {
        let bad = Refusal::Malformed;
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
        if self.hosts > 1 || (minor == 1 && self.hosts == 0) {
            return Err(bad);
        }
        if self.te_seen {
            // §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; with
            // Content-Length it smells of smuggling; chunked must be final and single.
            if minor == 0 || self.lengths > 0 || self.te_chunked != 1 || !self.te_chunked_last {
                return Err(bad);
            }
            if self.te_unknown {
                return Err(Refusal::UnknownCoding);
            }
            return Ok(BodyKind::Chunked);
        }
        match (self.lengths, self.content_length) {
            (n, _) if n > 1 => Err(bad),
            (_, Some(len)) if len > 0 => Ok(BodyKind::Length(len)),
            _ => Ok(BodyKind::None),
        }
    }
}

impl<'a> Head<'a> {
    /// A head with the request line's facts and every field still unset.
    fn new(method: Method, line: &Line<'a>, len: usize) -> Head<'a> {
        Head {
            method,
            method_str: line.method,
            target: line.target,
            minor: line.minor,
            keep_alive: line.minor == 1,
            body: BodyKind::None,
            expect_continue: false,
            expect_other: false,
            if_none_match: None,
            if_modified_since: None,
            if_match: None,
            if_unmodified_since: None,
            range: None,
            if_range: None,
            origin: None,
            acr_method: None,
            acr_headers: None,
            referer: None,
            user_agent: None,
            accept_encoding: None,
            authorization: None,
            host: None,
            len,
        }
    }

    /// Records one field the server reads.
    fn apply(
        &mut self,
        framing: &mut Framing,
        field: Field,
        value: &'a str,
    ) -> Result<(), Refusal> {
        match field {
            Field::Host => {
                framing.host(value, self.minor)?;
                self.host = Some(value);
            }
            Field::ContentLength => framing.content_length(value)?,
            Field::TransferEncoding => framing.transfer_encoding(value)?,
            Field::Connection => {
                for token in value.split(',').map(|t| t.trim_matches([' ', '\t'])) {
                    if eq_ci(token, "close") {
                        self.keep_alive = false;
                    } else if eq_ci(token, "keep-alive") && self.minor == 0 {
                        self.keep_alive = true;
                    }
                }
            }
            Field::Expect => {
                if eq_ci(value, "100-continue") {
                    self.expect_continue = self.minor == 1;
                } else {
                    self.expect_other = true;
                }
            }
            Field::IfNoneMatch => self.if_none_match = Some(value),
            Field::IfModifiedSince => self.if_modified_since = Some(value),
            Field::IfMatch => self.if_match = Some(value),
            Field::IfUnmodifiedSince => self.if_unmodified_since = Some(value),
            Field::Range => self.range = Some(value),
            Field::IfRange => self.if_range = Some(value),
            Field::Origin => self.origin = Some(value),
            Field::AcrMethod => self.acr_method = Some(value),
            Field::AcrHeaders => self.acr_headers = Some(value),
            Field::Referer => self.referer = Some(value),
            Field::UserAgent => self.user_agent = Some(value),
            Field::Authorization => self.authorization = Some(value),
            Field::AcceptEncoding => {
                // Several fields form one list, which cannot be joined without
                // copying; the unencoded file is right for any list.
                self.accept_encoding = match self.accept_encoding {
                    None => Some(value),
                    Some(_) => Some("identity"),
                }
            }
        }
        Ok(())
    }
}

/// Checks limits on what is buffered so far when no whole head is there yet.
/// `skipped` empty lines before the request line count towards the head size, so a
/// flood of CRLFs is refused like any other oversized head.
fn partial_limits(data: &[u8], skipped: usize, limits: &Limits) -> Result<(), Refusal> {
    if skipped + data.len() > limits.max_header {
        return Err(Refusal::HeadTooLarge);
    }
    Ok(())
}

/// Parses the request head at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, Refusal> {
    let skip = skip_empty_lines(buf);
    let data = &buf[skip..];
    let Some(line) = request_line(data, limits)? else {
        partial_limits(data, skip, limits)?;
        return Ok(Parsed::Partial);
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (n, fields) = match httparse::parse_headers(&data[line.len..], &mut headers) {
        Ok(httparse::Status::Complete((n, fields))) => (line.len + n, fields),
        Ok(httparse::Status::Partial) => {
            partial_limits(data, skip, limits)?;
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge),
        Err(_) => {
            // An oversized head can also trip the parser; report the limit first.
            partial_limits(data, skip, limits)?;
            return Err(Refusal::Malformed);
        }
    };
    if skip + n > limits.max_header {
        return Err(Refusal::HeadTooLarge);
    }
    if !line_endings_ok(&data[..n]) {
        return Err(Refusal::Malformed);
    }
    let method = classify(line.method).ok_or(Refusal::UnknownMethod)?;
    let mut head = Head::new(method, &line, skip + n);
    let mut framing = Framing::default();
    for h in fields {
        let Some(field) = field(h.name) else { continue };
        // httparse allows obs-text (bytes over 0x7f) in values. Fields only logged
        // keep it out of the log; fields the server acts on must be text.
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => v.trim_matches([' ', '\t']),
            Err(_) if matches!(field, Field::Referer | Field::UserAgent) => continue,
            Err(_) => return Err(Refusal::Malformed),
        };
        head.apply(&mut framing, field, value)?;
    }
    head.body = framing.body(head.minor)?;
    Ok(Parsed::Complete(head))
}

#[cfg(test)]
mod tests;
