//! The request line: `method SP request-target SP HTTP-version CRLF` (RFC 9112 §3),
//! checked byte by byte as it arrives.

use super::{Limits, MAX_METHOD};
use crate::http::error::Refusal;
use crate::http::grammar::{target_ok, TARGET, TCHAR};

/// The request line, once all of it is buffered.
pub(super) struct Line<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The request target, as sent.
    pub target: &'a str,
    /// The HTTP/1 minor version: 0 or 1.
    pub minor: u8,
    /// Bytes of the line, CRLF included.
    pub len: usize,
}

/// Parses `method SP request-target SP HTTP-version CRLF` (RFC 9112 §3). `Ok(None)`:
/// a valid prefix, read more. Errors are found as soon as the bytes that show them
/// arrive, so a long bad line is refused before it is all buffered.
pub(super) fn request_line<'a>(
    data: &'a [u8],
    limits: &Limits,
) -> Result<Option<Line<'a>>, Refusal> {
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
