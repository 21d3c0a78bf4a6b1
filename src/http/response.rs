//! Response heads, written into a reused buffer without per-request formatting.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Status;
pub use crate::format::{http_date, parse_http_date, push_u64, unix_secs, DATE_LEN};

/// The `Server` header value.
pub const SERVER: &[u8] = concat!("hearth/", env!("CARGO_PKG_VERSION")).as_bytes();

thread_local! {
    /// (second, formatted Date) for this thread: refreshed at most once a second.
    static DATE: RefCell<(u64, [u8; DATE_LEN])> = const { RefCell::new((u64::MAX, [b' '; DATE_LEN])) };
}

/// Appends the current time as an IMF-fixdate, formatted at most once a second per thread.
pub fn push_now(buf: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = unix_secs(now);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, http_date(UNIX_EPOCH + Duration::from_secs(secs)));
        }
        buf.extend_from_slice(&d.1);
    });
}

/// Starts a response: status line, `Server`, `Date`.
pub fn begin(buf: &mut Vec<u8>, status: Status) {
    buf.extend_from_slice(status.line());
    buf.extend_from_slice(b"Server: ");
    buf.extend_from_slice(SERVER);
    buf.extend_from_slice(b"\r\nDate: ");
    push_now(buf);
    buf.extend_from_slice(b"\r\n");
}

/// Appends `Name: value\r\n`.
pub fn header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// Appends `Content-Length: n\r\n`.
pub fn content_length(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(b"Content-Length: ");
    push_u64(buf, n);
    buf.extend_from_slice(b"\r\n");
}

/// Ends the head with the connection header that matches `keep_alive` for the
/// client's version, and the blank line.
pub fn finish(buf: &mut Vec<u8>, keep_alive: bool, minor: u8) {
    if !keep_alive {
        buf.extend_from_slice(b"Connection: close\r\n\r\n");
    } else if minor == 0 {
        buf.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    } else {
        buf.extend_from_slice(b"\r\n");
    }
}

/// The whole `503` sent to connections over `--max-conns`, built once.
pub fn overload_response() -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    begin(&mut buf, Status::ServiceUnavailable);
    let page = Status::ServiceUnavailable.page();
    header(&mut buf, b"Content-Type", b"text/html; charset=utf-8");
    content_length(&mut buf, page.len() as u64);
    header(&mut buf, b"Retry-After", b"1");
    finish(&mut buf, false, 1);
    buf.extend_from_slice(page);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_in_all_three_formats() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&http_date(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(s), Some(784_111_777), "{s}");
        }
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn date_is_cached_per_second() {
        let mut a = Vec::new();
        push_now(&mut a);
        assert_eq!(a.len(), DATE_LEN);
        assert!(a.ends_with(b" GMT"));
    }

    #[test]
    fn integers() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
        }
    }
}
