//! Dates and numbers written as bytes: the HTTP date formats and decimal integers,
//! shared by response heads, the file cache (Last-Modified) and the access log.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// Formats `t` as an IMF-fixdate.
pub fn http_date(t: SystemTime) -> [u8; DATE_LEN] {
    let mut out = [b' '; DATE_LEN];
    let s = httpdate::fmt_http_date(t);
    let n = s.len().min(DATE_LEN);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// Parses any of the three HTTP date formats into seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Seconds since the epoch of `t` (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Appends the decimal form of `n`.
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}
