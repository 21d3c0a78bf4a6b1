//! Request heads: the request line parsed here, header fields by `httparse`, plus the
//! checks RFC 9112 asks of a server that httparse leaves to its caller (bare LF/CR,
//! framing headers, Host, limits).

use super::error::Refusal;
use super::grammar::{host_ok, target_ok, TARGET, TCHAR};

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
}

const FIELDS: [(&str, Field); 17] = [
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

/// The request line, once all of it is buffered.
struct Line<'a> {
    method: &'a str,
    target: &'a str,
    minor: u8,
    /// Bytes of the line, CRLF included.
    len: usize,
}

/// Parses `method SP request-target SP HTTP-version CRLF` (RFC 9112 §3). `Ok(None)`:
/// a valid prefix, read more. Errors are found as soon as the bytes that show them
/// arrive, so a long bad line is refused before it is all buffered.
fn request_line<'a>(data: &'a [u8], limits: &Limits) -> Result<Option<Line<'a>>, Refusal> {
    let bad = Refusal::Malformed;
    let method_len = data.iter().take_while(|&&b| TCHAR[usize::from(b)]).count();
    if method_len > MAX_METHOD {
        return Err(Refusal::UnknownMethod);
    }
    match data.get(method_len) {
        // A lone CR may be the first half of an empty line before the request line.
        None => return Ok(None),
        Some(b'\r') if method_len == 0 && data.len() == 1 => return Ok(None),
        Some(b' ') if method_len > 0 => {}
        Some(_) => return Err(bad),
    }
    let start = method_len + 1;
    let target_len = data[start..]
        .iter()
        .take_while(|&&b| TARGET[usize::from(b)])
        .count();
    let end = start + target_len;
    // The line counts towards the limit up to its CR. Once the target alone leaves no
    // room for the version, the line cannot fit, whether or not it has ended.
    if end + " HTTP/1.1\r".len() > limits.max_uri {
        return Err(Refusal::UriTooLong);
    }
    match data.get(end) {
        None => return Ok(None),
        Some(b' ') if target_len > 0 => {}
        Some(_) => return Err(bad),
    }
    let Some(minor) = version(&data[end + 1..])? else {
        return Ok(None);
    };
    let target = &data[start..end];
    if !target_ok(target) {
        return Err(bad);
    }
    // Both are ASCII by the byte classes above, so these never fail.
    let method = std::str::from_utf8(&data[..method_len]).map_err(|_| bad)?;
    let target = std::str::from_utf8(target).map_err(|_| bad)?;
    Ok(Some(Line {
        method,
        target,
        minor,
        len: end + 1 + VERSION_SHAPE.len(),
    }))
}

/// `HTTP/d.d` and the line's CRLF; the digits are checked separately.
const VERSION_SHAPE: &[u8; 10] = b"HTTP/0.0\r\n";

/// Reads `HTTP-version CRLF`. A higher 1.x minor is answered as HTTP/1.1 (RFC 9110
/// §2.5), so the result is 0 or 1; another major version is 505.
fn version(v: &[u8]) -> Result<Option<u8>, Refusal> {
    for (i, (&b, &want)) in v.iter().zip(VERSION_SHAPE).enumerate() {
        let ok = match i {
            5 | 7 => b.is_ascii_digit(),
            _ => b == want,
        };
        if !ok {
            return Err(Refusal::Malformed);
        }
    }
    if v.len() < VERSION_SHAPE.len() {
        return Ok(None);
    }
    match (v[5], v[7]) {
        (b'1', b'0') => Ok(Some(0)),
        (b'1', _) => Ok(Some(1)),
        _ => Err(Refusal::BadVersion),
    }
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
mod tests {
    use super::*;
    use crate::http::Status;

    const LIMITS: Limits = Limits {
        max_uri: 64,
        max_header: 256,
    };

    fn status_of(raw: &[u8]) -> Result<&'static str, Status> {
        match parse(raw, &LIMITS) {
            Ok(Parsed::Complete(_)) => Ok("complete"),
            Ok(Parsed::Partial) => Ok("partial"),
            Err(r) => Err(r.status()),
        }
    }

    #[test]
    fn table() {
        use Status::{BadRequest, NotImplemented, VersionNotSupported};
        let cases: &[(&[u8], Result<&str, Status>)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok("complete")),
            (b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok("complete")),
            (b"GET / HTTP/1.0\r\n\r\n", Ok("complete")),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Ok("partial")),
            (b"GET / HTTP/1.1\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\nHost: a\n\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Err(VersionNotSupported)),
            (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", Err(VersionNotSupported)),
            (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", Err(BadRequest)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Err(VersionNotSupported)),
            (b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", Err(BadRequest)),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Err(BadRequest)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: caf\xe9\r\n\r\n", Ok("complete")),
            (b"GET / HTTP/1.1\r\nHost: a\xe9\r\n\r\n", Err(BadRequest)),
            (b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", Err(NotImplemented)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", Err(BadRequest)),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(BadRequest),
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(NotImplemented)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Err(BadRequest)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ok("complete")),
        ];
        for (raw, want) in cases {
            assert_eq!(status_of(raw), *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    fn head(raw: &[u8]) -> Head<'_> {
        match parse(raw, &LIMITS) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn host_grammar() {
        let with_host = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        for good in [
            "a",
            "example.com",
            "example.com:8080",
            "example.com:",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::ffff:1.2.3.4]",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%20b",
            "sub_delims!$&'()*+;=",
        ] {
            assert_eq!(
                status_of(with_host(good).as_bytes()),
                Ok("complete"),
                "{good}"
            );
        }
        for bad in [
            "a@b",
            "u:p@h",
            "h/p",
            "a, b",
            "a,b",
            "a b",
            "a\tb",
            "h:8x",
            "h:80:90",
            "[::1",
            "[::g]",
            "[::1]x",
            "[]",
            "[v1]",
            "%zz",
            "a%2",
            "h?q",
            "h#f",
            "\"h\"",
            "h\\x",
            "[::1%25eth0]",
        ] {
            assert_eq!(
                status_of(with_host(bad).as_bytes()),
                Err(Status::BadRequest),
                "{bad:?}"
            );
        }
        // Empty: allowed without an authority in HTTP/1.0 only (RFC 9112 §3.2).
        assert_eq!(
            status_of(b"GET / HTTP/1.0\r\nHost:\r\n\r\n"),
            Ok("complete")
        );
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
            Err(Status::BadRequest)
        );
    }

    #[test]
    fn target_grammar() {
        let with_target = |t: &[u8]| [b"GET ", t, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        for good in [
            &b"/"[..],
            b"*",
            b"/a/b.txt?x=1&y=%2F;z=(a)!$'*+,@:~",
            b"/caf%C3%A9",
            b"http://[::1]:8080/x?y",
            b"http://host/x",
            b"host:443",
        ] {
            assert_eq!(
                status_of(&with_target(good)),
                Ok("complete"),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        for bad in [
            &b"/caf\xc3\xa9"[..],
            b"/\x80",
            b"/\xff",
            b"/a\"b",
            b"/a<b>",
            b"/a\\b",
            b"/a^b",
            b"/a`b",
            b"/a{b}",
            b"/a|b",
            b"/a#frag",
            b"/a%zz",
            b"/a%2",
            b"/a[1]",
            b"http://host/a[1]",
            b"/a\x7f",
        ] {
            assert_eq!(
                status_of(&with_target(bad)),
                Err(Status::BadRequest),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn higher_minor_versions_are_http_1_1() {
        for v in [b'2', b'9'] {
            let raw = [b"GET / HTTP/1.".as_slice(), &[v], b"\r\nHost: a\r\n\r\n"].concat();
            let h = head(&raw);
            assert_eq!(h.minor, 1);
            assert!(h.keep_alive);
        }
        // As HTTP/1.1: Host is required and Connection: close is honoured.
        assert_eq!(
            status_of(b"GET / HTTP/1.9\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert!(!head(b"GET / HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert_eq!(head(b"GET / HTTP/1.0\r\n\r\n").minor, 0);
    }

    #[test]
    fn long_method_is_not_a_long_uri() {
        let method = vec![b'A'; 100 * 1024];
        // Refused from the first bytes, whether or not the line has ended.
        assert_eq!(
            status_of(&method[..MAX_METHOD + 1]),
            Err(Status::NotImplemented)
        );
        assert_eq!(status_of(&method), Err(Status::NotImplemented));
        let whole = [&method[..], b" / HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert_eq!(status_of(&whole), Err(Status::NotImplemented));
        assert_eq!(status_of(&method[..MAX_METHOD]), Ok("partial"));
        // A long target still gets 414.
        let target = [b"GET /".as_slice(), &[b'a'; 100], b" HTTP/1.1\r\n"].concat();
        assert_eq!(status_of(&target), Err(Status::UriTooLong));
    }

    #[test]
    fn a_lone_cr_before_the_request_line_waits_for_its_lf() {
        assert_eq!(status_of(b"\r"), Ok("partial"));
        assert_eq!(status_of(b"\r\n\r"), Ok("partial"));
        assert_eq!(status_of(b"\rX"), Err(Status::BadRequest));
    }

    #[test]
    fn limits_apply_while_partial() {
        let long_line = [b"GET /".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(status_of(&long_line), Err(Status::UriTooLong));
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < 300 {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(status_of(&big), Err(Status::HeaderFieldsTooLarge));
        let crlfs = b"\r\n".repeat(200);
        assert_eq!(status_of(&crlfs), Err(Status::HeaderFieldsTooLarge));
    }

    #[test]
    fn connection_semantics() {
        let get = |raw: &[u8]| match parse(raw, &LIMITS) {
            Ok(Parsed::Complete(h)) => h.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(get(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!get(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!get(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(get(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }
}
