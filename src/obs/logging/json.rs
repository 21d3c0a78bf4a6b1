//! The JSON access-log format: one object per line, every string escaped as JSON
//! requires (quotes, backslashes and control characters; the rest is UTF-8 as sent).
//!
//! `{"time":"2026-12-05T11:33:07Z","remote_addr":"127.0.0.1","host":"a.test",
//! "method":"GET","path":"/x","query":null,"protocol":"HTTP/1.1","status":200,
//! "bytes":5,"request_time":0.000,"user":"bob","referer":null,"user_agent":"curl"}`
//! (on one line), with `"tls":"TLSv1.3"` after `protocol` on HTTPS connections.

use super::access::{civil, push_ip, push_time, Entry, TimeCache};
use crate::format::push_u64;

thread_local! {
    static ISO_TIME: TimeCache<20> = const { std::cell::RefCell::new((u64::MAX, [b' '; 20])) };
}

/// `2026-11-23T11:08:00Z` for seconds since the epoch.
fn iso_time(secs: u64) -> [u8; 20] {
    let (y, mo, d, h, mi, s) = civil(secs);
    let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
    let mut out = [b' '; 20];
    let n = text.len().min(20);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// Appends the time as `2026-11-23T11:08:00Z`, formatted once a second per thread.
fn push_iso_time(buf: &mut Vec<u8>) {
    push_time(&ISO_TIME, iso_time, buf);
}

/// Appends `s` as a JSON string.
fn push_str(b: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'"' => b.extend_from_slice(b"\\\""),
            b'\\' => b.extend_from_slice(b"\\\\"),
            b'\n' => b.extend_from_slice(b"\\n"),
            b'\r' => b.extend_from_slice(b"\\r"),
            b'\t' => b.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                b.extend_from_slice(b"\\u00");
                b.push(HEX[(c >> 4) as usize]);
                b.push(HEX[(c & 15) as usize]);
            }
            _ => b.push(c),
        }
    }
    b.push(b'"');
}

/// Appends `"key":` and `v` as a string, or `null`.
fn field(b: &mut Vec<u8>, key: &str, v: Option<&str>) {
    b.extend_from_slice(b",\"");
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(b"\":");
    match v {
        Some(v) => push_str(b, v),
        None => b.extend_from_slice(b"null"),
    }
}

/// Appends one line in the JSON format.
pub(super) fn line(b: &mut Vec<u8>, e: &Entry<'_>) {
    b.extend_from_slice(b"{\"time\":\"");
    push_iso_time(b);
    b.extend_from_slice(b"\",\"remote_addr\":\"");
    push_ip(b, e.peer);
    b.push(b'"');
    field(b, "host", e.host);
    let (method, path, query, protocol) = match e.request {
        Some((m, target, minor)) => {
            let (p, q) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            let proto = if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" };
            (Some(m), Some(p), q, Some(proto))
        }
        None => (None, None, None, None),
    };
    field(b, "method", method);
    field(b, "path", path);
    field(b, "query", query);
    field(b, "protocol", protocol);
    if e.tls.is_some() {
        field(b, "tls", e.tls);
    }
    b.extend_from_slice(b",\"status\":");
    push_u64(b, u64::from(e.status));
    b.extend_from_slice(b",\"bytes\":");
    push_u64(b, e.bytes);
    b.extend_from_slice(b",\"request_time\":");
    let us = e.request_time.map_or(0, |t| t.as_micros() as u64);
    push_u64(b, us / 1_000_000);
    b.push(b'.');
    let frac = us % 1_000_000;
    for div in [100_000, 10_000, 1_000, 100, 10, 1] {
        b.push(b'0' + (frac / div % 10) as u8);
    }
    field(b, "user", e.user);
    field(b, "referer", e.referer);
    field(b, "user_agent", e.user_agent);
    b.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nulls() {
        let peer = "127.0.0.1:5".parse().unwrap();
        let e = Entry {
            peer: &peer,
            request: Some(("GET", "/a\"b?x=\\1", 1)),
            status: 200,
            bytes: 5,
            referer: None,
            user_agent: Some("ua\u{1}\n"),
            host: Some("h"),
            user: Some("bob"),
            request_time: Some(std::time::Duration::from_micros(1_234_567)),
            tls: None,
        };
        let mut b = Vec::new();
        line(&mut b, &e);
        let s = String::from_utf8(b).unwrap();
        assert!(s.starts_with("{\"time\":\""), "{s}");
        let want = ",\"remote_addr\":\"127.0.0.1\",\"host\":\"h\",\"method\":\"GET\",\
            \"path\":\"/a\\\"b\",\"query\":\"x=\\\\1\",\"protocol\":\"HTTP/1.1\",\
            \"status\":200,\"bytes\":5,\"request_time\":1.234567,\"user\":\"bob\",\
            \"referer\":null,\"user_agent\":\"ua\\u0001\\n\"}\n";
        assert!(s.ends_with(want), "{s}");
    }
}
