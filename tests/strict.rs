//! Protocol strictness against the real binary (RFC 9110/9112): what lies outside the
//! grammar of a Host, a request target, a method or a chunk extension is refused with
//! 400 (501 for an over-long method) and the connection closes; a higher HTTP/1.x minor
//! version is served as HTTP/1.1.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends `raw` on a new connection, expects one response with `status` and
/// `Connection: close`, then the close itself with nothing more sent: bytes after the
/// refused head are never read as a request.
fn refused(server: &TestServer, raw: &[u8], status: u16) {
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    let mut s = server.connect();
    // The server may refuse and close before it has read everything.
    let _ = s.write_all(raw);
    let r = read_response(&mut s, true).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
    assert_eq!(r.status, status, "{shown:?}");
    assert!(r.closes(), "Connection: close expected for {shown:?}");
    assert_closed_quietly(&mut s, &shown);
}

/// Reads to EOF (bounded by the socket timeout) and checks no response came.
fn assert_closed_quietly(s: &mut TcpStream, shown: &str) {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no close after {shown:?}: {e}"),
    }
    assert!(
        !rest.windows(5).any(|w| w == b"HTTP/"),
        "a second response after {shown:?}: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

const NEXT: &[u8] = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn host_outside_the_uri_host_grammar_is_400() {
    let server = TestServer::start(&[]);
    for host in [
        "a@b",
        "user:pass@t",
        "t/p",
        "a, b",
        "a,b",
        "a b",
        "t:80x",
        "t:80:80",
        "[::1",
        "[::1]x",
        "[zz::1]",
        "t?q",
        "t#f",
        "t%zz",
        "t\\u",
        "\"t\"",
        "t\x01",
    ] {
        let raw = [
            b"GET /hello.txt HTTP/1.1\r\nHost: ".as_slice(),
            host.as_bytes(),
            b"\r\n\r\n",
            NEXT,
        ]
        .concat();
        refused(&server, &raw, 400);
    }
    for host in [
        "t",
        "example.com:8080",
        "example.com:",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "xn--bcher-kva.example",
    ] {
        let r = server.request(
            format!("GET /hello.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.body, b"hello world\n");
    }
    // Missing Host: unchanged (400 in HTTP/1.1, allowed in HTTP/1.0).
    refused(&server, b"GET /hello.txt HTTP/1.1\r\n\r\n", 400);
    let r = server.request(b"GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    server.assert_alive();
}

#[test]
fn malformed_chunk_extensions_are_400_and_close() {
    let server = TestServer::start(&[]);
    for ext in [
        &b";"[..],
        b"; ",
        b";bad[=x",
        b";=x",
        b";a=",
        b";a=\"open",
        b";a=\"q\"x",
        b";a b",
        b";a ",
        b";;a",
    ] {
        let raw = [
            b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5"
                .as_slice(),
            ext,
            b"\r\nhello\r\n0\r\n\r\n",
            NEXT,
        ]
        .concat();
        refused(&server, &raw, 400);
    }
    // Well-formed extensions are read and ignored; the connection stays usable.
    let mut s = server.connect();
    s.write_all(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5 ; a = b ; q=\"x \\\" y\";flag\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    s.write_all(NEXT).unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 405);
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
    server.assert_alive();
}

#[test]
fn long_method_is_501_not_414() {
    let server = TestServer::start(&[]);
    let method = "A".repeat(100 * 1024);
    refused(
        &server,
        format!("{method} /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        501,
    );
    // Also while the method has not ended yet.
    refused(&server, method.as_bytes(), 501);
    // A long target keeps 414.
    let target = format!("/{}", "a".repeat(9000));
    refused(
        &server,
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        414,
    );
    server.assert_alive();
}

#[test]
fn raw_bytes_outside_the_target_grammar_are_400() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("café.txt"), b"cafe\n").unwrap();
        std::fs::write(root.join("a{b}.txt"), b"braces\n").unwrap();
    });
    for target in [
        &b"/caf\xc3\xa9.txt"[..],
        b"/a{b}.txt",
        b"/hello.txt#top",
        b"/a|b",
        b"/a^b",
        b"/a\"b",
        b"/a<b>",
        b"/a`b",
        b"/a%zz",
        b"/a[1]",
        b"/\x80",
    ] {
        let raw = [
            b"GET ".as_slice(),
            target,
            b" HTTP/1.1\r\nHost: t\r\n\r\n",
            NEXT,
        ]
        .concat();
        refused(&server, &raw, 400);
    }
    // The same names percent-encoded are served.
    for (target, body) in [
        ("/caf%C3%A9.txt", &b"cafe\n"[..]),
        ("/a%7Bb%7D.txt", b"braces\n"),
    ] {
        let r = server.get(target);
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.body, body);
    }
    server.assert_alive();
}

#[test]
fn http_1_9_is_answered_as_http_1_1() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    // Two requests on one connection: 1.1 keep-alive semantics, then a close asked for.
    s.write_all(
        b"GET /hello.txt HTTP/1.9\r\nHost: t\r\n\r\n\
          GET /style.css HTTP/1.2\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    assert!(
        bytes.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    let mut rest = bytes.as_slice();
    let first = read_response(&mut rest, true).unwrap();
    assert_eq!(first.body, b"hello world\n");
    assert!(!first.closes());
    assert!(rest.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let second = read_response(&mut rest, true).unwrap();
    assert_eq!(second.body, b"body{}\n");
    assert!(second.closes());
    // Like HTTP/1.1, it needs a Host.
    refused(&server, b"GET /hello.txt HTTP/1.9\r\n\r\n", 400);
    // Other versions keep their answers.
    refused(&server, b"GET /hello.txt HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    refused(&server, b"GET /hello.txt HTTP/0.9\r\nHost: t\r\n\r\n", 505);
    refused(&server, b"GET /hello.txt HTTP/1.10\r\nHost: t\r\n\r\n", 400);
    server.assert_alive();
}
