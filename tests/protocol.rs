//! HTTP/1.1 requests against the real binary over raw TCP: request bodies, methods
//! and versions, request forms, keep-alive and pipelining, and the configurable
//! headers. Conditional and range requests are in `protocol_conditional.rs`.
//!
//! Every test starts its own server on an ephemeral port; every socket read has a
//! timeout (see `common::IO_TIMEOUT`), so no test can hang.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

// ---------------------------------------------------------------------------
// request bodies
// ---------------------------------------------------------------------------

#[test]
fn chunked_post_gets_405_and_the_connection_stays_usable() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value;quoted=\"a b\"\r\nhello\r\n\
          6 ; ext\r\n world\r\n\
          0\r\nX-Trailer: yes\r\nOther-Trailer: 2\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert!(!r.closes());
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
}

#[test]
fn chunked_body_sent_in_pieces() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for piece in [&b"a\r\n0123"[..], b"456789\r", b"\n0\r", b"\n\r\n"] {
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(piece).unwrap();
    }
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 405);
    s.write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().body, b"body{}\n");
}

#[test]
fn content_length_body_then_pipelined_get() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nGET / HTTP/\
          GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let bytes = read_until_close(&mut s).0;
    let rs = parse_all(&bytes, &[false, false, true]);
    assert_eq!(rs.len(), 3, "{rs:#?}");
    assert_eq!(rs[0].status, 405);
    assert_eq!(rs[1].status, 200);
    assert_eq!(
        rs[1].body, b"body{}\n",
        "the body bytes must not be parsed as a request"
    );
    assert_eq!(rs[2].status, 200);
    assert_eq!(rs[2].header("content-length"), Some("12"));
}

#[test]
fn expect_100_continue() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    // The interim response arrives before any body byte is sent.
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    // And the connection is still in sync.
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().body, b"hello world\n");

    // Chunked with Expect too.
    let mut s = server.connect();
    s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"3\r\nabc\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 405);

    // An expectation the server does not know: 417.
    let r = server.request(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\n",
    );
    assert_eq!(r.status, 417);
}

#[test]
fn body_over_max_body_is_refused_without_reading_it() {
    let server = TestServer::start(&["--max-body", "100"]);
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut s = server.connect();
        s.write_all(
            format!("POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n{expect}\r\n")
                .as_bytes(),
        )
        .unwrap();
        // Nothing of the body is sent: the answer must come anyway, with no 100 first.
        let bytes = read_until_close(&mut s).0;
        assert!(
            bytes.starts_with(b"HTTP/1.1 413 "),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        let rs = parse_all(&bytes, &[]);
        assert_eq!(rs.len(), 1);
        assert!(rs[0].closes());
    }
    // A chunked body that grows past the limit: 413 and close.
    let mut s = server.connect();
    s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n")
        .unwrap();
    let bytes = read_until_close(&mut s).0;
    let rs = parse_all(&bytes, &[]);
    assert_eq!(rs.len(), 1, "{:?}", String::from_utf8_lossy(&bytes));
    assert_eq!(rs[0].status, 413);
    // At the limit is fine.
    let r = server.request(
        format!("POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{}", "x".repeat(100))
            .as_bytes(),
    );
    assert_eq!(r.status, 405);
    server.assert_alive();
}

// ---------------------------------------------------------------------------
// methods, versions, request forms
// ---------------------------------------------------------------------------

#[test]
fn options() {
    let server = TestServer::start(&[]);
    for target in ["/hello.txt", "*", "/"] {
        let r = one(
            &server,
            &format!("OPTIONS {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 204, "OPTIONS {target}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
        assert!(r.body.is_empty());
        assert!(
            r.header("access-control-allow-methods").is_none(),
            "no CORS unless --cors"
        );
    }
    // `*` is only for OPTIONS.
    assert_eq!(
        server.request(b"GET * HTTP/1.1\r\nHost: t\r\n\r\n").status,
        400
    );
}

#[test]
fn unknown_and_disallowed_methods() {
    let server = TestServer::start(&[]);
    let r = server.request(b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 501);
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = one(
            &server,
            &format!("{m} /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    }
    server.assert_alive();
}

#[test]
fn unsupported_versions_get_505() {
    let server = TestServer::start(&[]);
    for raw in [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        // HTTP/1.2 and later 1.x minors are served as HTTP/1.1 (tests/strict.rs).
        b"GET /hello.txt HTTP/2.0\r\nHost: t\r\n\r\n",
        b"GET /hello.txt HTTP/3.0\r\nHost: t\r\n\r\n",
    ] {
        let mut s = server.connect();
        s.write_all(raw).unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.status, 505, "{:?}", String::from_utf8_lossy(raw));
        assert!(is_closed(&mut s));
    }
    server.assert_alive();
}

#[test]
fn garbage_gets_400_and_close() {
    let server = TestServer::start(&[]);
    for raw in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n"[..],
        b"hello there\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /hello.txt\r\n\r\n",
        b"GET /hello.txt HTTX/1.1\r\nHost: t\r\n\r\n",
        b"GET  /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /hello.txt HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        b"GET hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let mut s = server.connect();
        s.write_all(raw).unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert!(is_closed(&mut s), "{:?}", String::from_utf8_lossy(raw));
    }
    server.assert_alive();
}

#[test]
fn space_in_target_is_a_bad_request_not_a_version_error() {
    // "GET /hel lo.txt HTTP/1.1" has four tokens: a malformed request line. The version
    // the client speaks is HTTP/1.1, so 505 is the wrong answer.
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(b"GET /hel lo.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 400);
    assert!(is_closed(&mut s));
    server.assert_alive();
}

#[test]
fn absolute_form_is_served() {
    let server = TestServer::start(&[]);
    for target in [
        "http://host/hello.txt",
        "HTTP://example.com:8080/hello.txt",
        "http://host/hello.txt?x=1",
    ] {
        let r = one(
            &server,
            &format!("GET {target} HTTP/1.1\r\nHost: host\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.body, b"hello world\n");
    }
    let r = one(
        &server,
        "GET http://host HTTP/1.1\r\nHost: host\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>index</h1>\n");
    assert_eq!(
        server
            .request(b"GET ftp://host/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        400
    );
}

#[test]
fn host_header_rules() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut s, true).unwrap().status,
        400,
        "HTTP/1.1 without Host"
    );
    assert!(is_closed(&mut s));
    assert_eq!(
        server
            .request(b"GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            .status,
        400,
        "two Hosts"
    );
    assert_eq!(
        server
            .request(b"GET /hello.txt HTTP/1.1\r\nHost:\r\n\r\n")
            .status,
        400,
        "empty Host"
    );
    // HTTP/1.0 needs no Host, and closes by default.
    let bytes = exchange(&server, b"GET /hello.txt HTTP/1.0\r\n\r\n");
    let rs = parse_all(&bytes, &[]);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 200);
    assert_eq!(rs[0].body, b"hello world\n");
    server.assert_alive();
}

#[test]
fn leading_empty_lines_are_tolerated() {
    let server = TestServer::start(&[]);
    let r = one(
        &server,
        "\r\n\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    // Also between keep-alive requests (some clients send an extra CRLF after a body).
    let mut s = server.connect();
    s.write_all(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().body, b"hello world\n");
    assert_eq!(read_response(&mut s, true).unwrap().body, b"body{}\n");
}

#[test]
fn keep_alive_and_pipelining() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    let mut raw = Vec::new();
    for p in ["/hello.txt", "/style.css", "/", "/sub/", "/missing"] {
        raw.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    raw.extend_from_slice(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(&raw).unwrap();
    let rs = parse_all(&read_until_close(&mut s).0, &[]);
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 404, 200]);
    assert_eq!(rs[2].body, b"<h1>index</h1>\n");
    assert_eq!(rs[3].body, b"<p>sub</p>\n");
    assert!(!rs[0].closes());
    assert!(rs[5].closes());
}

#[test]
fn http_1_0_keep_alive() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("keep-alive")
    );
    s.write_all(b"GET /style.css HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.body, b"body{}\n");
    assert!(r.closes());
    assert!(is_closed(&mut s));
}

#[test]
fn head_has_headers_but_no_body() {
    let server = TestServer::start(&[]);
    let r = one(
        &server,
        "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("etag").is_some());
    let date = httpdate::parse_http_date(r.header("date").expect("Date")).expect("an HTTP date");
    let skew = date
        .duration_since(SystemTime::now())
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(5), "Date is {skew:?} off");

    // Error and redirect answers to HEAD carry no body either: a request pipelined
    // behind each one is answered cleanly.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"HEAD /missing HTTP/1.1\r\nHost: t\r\n\r\nHEAD /sub HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /empty/ HTTP/1.1\r\nHost: t\r\n\r\nPOST /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let rs = parse_all(
        &read_until_close(&mut s).0,
        &[true, true, true, false, false],
    );
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 301, 403, 405, 200]);
    assert!(
        rs[0].header("content-length").is_some_and(|l| l != "0"),
        "HEAD announces the page length"
    );
    assert_eq!(rs[4].body, b"hello world\n");
}

#[test]
fn directory_without_slash_redirects() {
    let server = TestServer::start(&[]);
    let r = server.get("/sub?a=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/?a=1"));
}

// ---------------------------------------------------------------------------
// configurable headers
// ---------------------------------------------------------------------------

#[test]
fn default_nosniff_and_no_cors() {
    let server = TestServer::start(&[]);
    for r in [server.get("/hello.txt"), server.get("/missing")] {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r.header("access-control-allow-origin").is_none());
    }
    assert!(server.get("/hello.txt").header("cache-control").is_none());
}

#[test]
fn cors() {
    let server = TestServer::start(&["--cors"]);
    let r = get_with(&server, "/hello.txt", "Origin: https://example.com\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        server.get("/missing").header("access-control-allow-origin"),
        Some("*")
    );

    let r = one(
        &server,
        "OPTIONS /hello.txt HTTP/1.1\r\nHost: t\r\nOrigin: https://example.com\r\n\
         Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: x-requested-with, range\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r
        .header("access-control-allow-methods")
        .expect("Access-Control-Allow-Methods");
    assert!(
        methods.contains("GET") && methods.contains("HEAD"),
        "{methods}"
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("x-requested-with, range")
    );
    assert!(r.header("allow").is_some());

    // A specific origin.
    let server = TestServer::start(&["--cors", "https://app.example"]);
    let r = server.get("/hello.txt");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn cache_control_and_extra_headers() {
    let server = TestServer::start(&[
        "--cache-control",
        "max-age=60",
        "--header",
        "X-Test: 1",
        "--header",
        "X-Other: a b",
    ]);
    let r = server.get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(r.header("x-test"), Some("1"));
    assert_eq!(r.header("x-other"), Some("a b"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = get_with(
        &server,
        "/hello.txt",
        &format!("If-None-Match: {}\r\n", r.header("etag").unwrap()),
    );
    assert_eq!(r.status, 304);
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=60"),
        "a 304 repeats Cache-Control"
    );
    let r = server.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-test"), Some("1"));
}
