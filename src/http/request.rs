//! Request heads: `httparse` plus the checks RFC 9112 asks of a server that httparse
//! leaves to its caller (bare LF/CR, framing headers, Host, limits).

use super::Status;

/// Most header fields accepted in one request (431 past it).
pub const MAX_HEADERS: usize = 100;

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
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
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

/// A request that cannot be answered normally: the status to send, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject(pub Status);

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

/// The header fields the server reads.
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
}

const FIELDS: [(&str, Field); 16] = [
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

/// Decides, for a head httparse called invalid, which status describes it best.
fn version_status(buf: &[u8]) -> Status {
    // "HTTP/x.y" with digits is a well-formed version we do not speak: 505.
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let line = &buf[..line_end];
    // method SP target SP version: anything else is a malformed line, not a version.
    if line.split(|&b| b == b' ').count() != 3 {
        return Status::BadRequest;
    }
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    let well_formed = version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if well_formed || line.starts_with(b"PRI * HTTP/2") {
        Status::VersionNotSupported
    } else {
        Status::BadRequest
    }
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

/// Checks limits on what is buffered so far when no whole head is there yet.
/// `skipped` empty lines before the request line count towards the head size, so a
/// flood of CRLFs is refused like any other oversized head.
fn partial_limits(data: &[u8], skipped: usize, limits: &Limits) -> Result<(), Reject> {
    let line_len = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    if line_len > limits.max_uri {
        return Err(Reject(Status::UriTooLong));
    }
    if skipped + data.len() > limits.max_header {
        return Err(Reject(Status::HeaderFieldsTooLarge));
    }
    Ok(())
}

/// Parses the request head at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, Reject> {
    let skip = skip_empty_lines(buf);
    let data = &buf[skip..];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            partial_limits(data, skip, limits)?;
            return Ok(Parsed::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Reject(Status::HeaderFieldsTooLarge)),
        Err(httparse::Error::Version) => return Err(Reject(version_status(data))),
        Err(_) => {
            // An over-long line can also trip the parser; report the limit first.
            partial_limits(data, skip, limits)?;
            return Err(Reject(Status::BadRequest));
        }
    };
    let head_bytes = &data[..n];
    let line_len = head_bytes.iter().position(|&b| b == b'\n').unwrap_or(n);
    if line_len > limits.max_uri {
        return Err(Reject(Status::UriTooLong));
    }
    if skip + n > limits.max_header {
        return Err(Reject(Status::HeaderFieldsTooLarge));
    }
    if !line_endings_ok(head_bytes) {
        return Err(Reject(Status::BadRequest));
    }
    let method_str = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let minor = req.version.unwrap_or(1);
    let method = classify(method_str).ok_or(Reject(Status::NotImplemented))?;

    let mut head = Head {
        method,
        method_str,
        target,
        minor,
        keep_alive: minor == 1,
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
        len: skip + n,
    };
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut lengths = 0;
    let mut te_seen = false;
    let mut te_chunked_last = false;
    let mut te_chunked_count = 0;
    let mut te_unknown = false;
    let bad = Reject(Status::BadRequest);
    for h in req.headers.iter() {
        let Some(field) = field(h.name) else { continue };
        // httparse allows obs-text (bytes over 0x7f) in values. Fields only logged
        // keep it out of the log; fields the server acts on must be text.
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => v.trim_matches([' ', '\t']),
            Err(_) if matches!(field, Field::Referer | Field::UserAgent) => continue,
            Err(_) => return Err(bad),
        };
        match field {
            Field::Host => {
                hosts += 1;
                if value.is_empty() && minor == 1 {
                    return Err(bad);
                }
            }
            Field::ContentLength => {
                lengths += 1;
                content_length = Some(parse_length(value.as_bytes()).ok_or(bad)?);
            }
            Field::TransferEncoding => {
                te_seen = true;
                for coding in value.split(',').map(|c| c.trim_matches([' ', '\t'])) {
                    if coding.is_empty() {
                        continue;
                    }
                    if eq_ci(coding, "chunked") {
                        te_chunked_count += 1;
                        te_chunked_last = true;
                    } else {
                        if te_chunked_last {
                            // chunked must be the final coding.
                            return Err(bad);
                        }
                        te_unknown = true;
                    }
                }
            }
            Field::Connection => {
                for token in value.split(',').map(|t| t.trim_matches([' ', '\t'])) {
                    if eq_ci(token, "close") {
                        head.keep_alive = false;
                    } else if eq_ci(token, "keep-alive") && minor == 0 {
                        head.keep_alive = true;
                    }
                }
            }
            Field::Expect => {
                if eq_ci(value, "100-continue") {
                    head.expect_continue = minor == 1;
                } else {
                    head.expect_other = true;
                }
            }
            Field::IfNoneMatch => head.if_none_match = Some(value),
            Field::IfModifiedSince => head.if_modified_since = Some(value),
            Field::IfMatch => head.if_match = Some(value),
            Field::IfUnmodifiedSince => head.if_unmodified_since = Some(value),
            Field::Range => head.range = Some(value),
            Field::IfRange => head.if_range = Some(value),
            Field::Origin => head.origin = Some(value),
            Field::AcrMethod => head.acr_method = Some(value),
            Field::AcrHeaders => head.acr_headers = Some(value),
            Field::Referer => head.referer = Some(value),
            Field::UserAgent => head.user_agent = Some(value),
        }
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
    if hosts > 1 || (minor == 1 && hosts == 0) {
        return Err(bad);
    }
    if te_seen {
        // §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; with
        // Content-Length it smells of smuggling; chunked must be final and single.
        if minor == 0 || lengths > 0 || te_chunked_count != 1 || !te_chunked_last {
            return Err(bad);
        }
        if te_unknown {
            return Err(Reject(Status::NotImplemented));
        }
        head.body = BodyKind::Chunked;
    } else if lengths > 1 {
        return Err(bad);
    } else if let Some(len) = content_length {
        if len > 0 {
            head.body = BodyKind::Length(len);
        }
    }
    Ok(Parsed::Complete(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_uri: 64,
        max_header: 256,
    };

    fn status_of(raw: &[u8]) -> Result<&'static str, Status> {
        match parse(raw, &LIMITS) {
            Ok(Parsed::Complete(_)) => Ok("complete"),
            Ok(Parsed::Partial) => Ok("partial"),
            Err(Reject(s)) => Err(s),
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
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Err(VersionNotSupported)),
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
