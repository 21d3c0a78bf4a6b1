//! The request parser, table-driven: each raw head and the result or status it gets.

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

/// A request whose Host header is `host`.
fn with_host(host: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

#[test]
fn host_grammar_accepts() {
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
    // Empty: allowed without an authority in HTTP/1.0 only (RFC 9112 §3.2).
    assert_eq!(
        status_of(b"GET / HTTP/1.0\r\nHost:\r\n\r\n"),
        Ok("complete")
    );
}

#[test]
fn host_grammar_refuses() {
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
    // Empty in HTTP/1.1: refused (RFC 9112 §3.2).
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
        b"http://b.example:80@a.example/",
        b"http://user@a.example/",
        b"http://b.example:1:2/",
        b"http://a.example:x/",
        b"http:///x",
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
