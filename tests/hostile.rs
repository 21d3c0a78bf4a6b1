//! Hostile clients against the real binary: request smuggling, malformed framing and
//! oversized heads. Paths, slow clients and exhaustion have files of their own
//! (`hostile_paths.rs`, `hostile_slow.rs`, `hostile_exhaustion.rs`).
//!
//! Every wait is bounded: socket timeouts come from `common::IO_TIMEOUT` or are set
//! here, and polling loops have deadlines. After each hostile case the server must
//! still answer a normal request (`assert_alive`).

mod common;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

// ---------------------------------------------------------------------------
// request smuggling and malformed framing
// ---------------------------------------------------------------------------

const SMUGGLED: &str = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn ambiguous_framing_is_rejected_and_closed() {
    let server = TestServer::start(&[]);
    let cases: &[&str] = &[
        // Content-Length together with Transfer-Encoding, either order.
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Duplicate Content-Length, equal or not, and list-valued.
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5,5\r\n\r\nhello",
        // Content-Length that is not plain decimal.
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\nhello",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5 5\r\n\r\nhello",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
        // Transfer-Encoding whose final coding is not chunked, or chunked twice.
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Header syntax: obs-fold, bare LF, bare CR, space before colon, no colon, NUL.
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\tchunked\r\n\r\n",
        "GET /hello.txt HTTP/1.1\nHost: t\n\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-A: a\rX-B: b\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-A: a\r\r\n\r\n",
        "GET /hello.txt HTTP/1.1\rHost: t\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost : t\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length\t: 5\r\n\r\nhello",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\n: empty-name\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost: t\x00\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHo\x00st: t\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nX[y]: a\r\nHost: t\r\n\r\n",
        " GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\n Host: t\r\n\r\n",
    ];
    for case in cases {
        // A second request rides behind each one: it must never be answered.
        let raw = format!("{case}{SMUGGLED}");
        expect_one_then_close(&server, raw.as_bytes(), 400);
    }
    server.assert_alive();
}

#[test]
fn unknown_transfer_coding_is_501_and_closed() {
    let server = TestServer::start(&[]);
    let raw = format!("POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{SMUGGLED}");
    expect_one_then_close(&server, raw.as_bytes(), 501);
    server.assert_alive();
}

#[test]
fn malformed_chunked_bodies_are_rejected_and_what_follows_is_never_a_request() {
    let server = TestServer::start(&[]);
    let head = "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bodies: &[&str] = &[
        " 5\r\nhello\r\n0\r\n\r\n", // space before the size
        "5 \r\nhello\r\n0\r\n\r\n", // space after the size, no extension
        "5\t\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "-1\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "10000000000000005\r\nhello\r\n0\r\n\r\n", // overflows 64 bits
        "00000000000000000000005\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",     // bare LF after the size
        "5\rhello\r\n0\r\n\r\n",     // bare CR
        "5\r\nhelloXX\r\n0\r\n\r\n", // more data than declared
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhell\r\n0\r\n\r\n", // less data than declared
        "g\r\n",
        "\r\n",
        ";ext\r\nhello\r\n0\r\n\r\n",
        "5;a=\x01\r\nhello\r\n0\r\n\r\n", // control byte in an extension
        "0\r\n bad: trailer\r\n\r\n",     // obs-fold in the trailer
        "0\r\nNoColon\r\n\r\n",
        "0\r\nX: a\n\r\n",
        "0\r\nX: a\x00\r\n\r\n",
        "0\r\n\n",
    ];
    for body in bodies {
        let raw = format!("{head}{body}{SMUGGLED}");
        expect_one_then_close(&server, raw.as_bytes(), 400);
    }
    server.assert_alive();
}

#[test]
fn bytes_after_a_bad_chunk_sent_later_are_never_answered() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    )
    .unwrap();
    thread::sleep(Duration::from_millis(200));
    s.write_all(b"loXX\r\n0\r\n\r\n").unwrap();
    let first = read_response(&mut s, true).unwrap();
    assert_eq!(first.status, 400);
    assert!(first.closes());
    // A request written after the 400 (on a socket the server has given up on).
    let _ = s.write_all(SMUGGLED.as_bytes());
    let (rest, closed) = read_until_close(&mut s);
    assert!(closed);
    assert!(
        rest.is_empty(),
        "answered after a framing error: {:?}",
        String::from_utf8_lossy(&rest)
    );
    server.assert_alive();
}

#[test]
fn a_well_framed_body_is_not_a_request() {
    // A body that looks like a request is consumed as body, not answered.
    let server = TestServer::start(&[]);
    let inner = "GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n";
    let raw = format!(
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{inner}\
         POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n\
         GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        inner.len(),
        inner.len()
    );
    let mut s = server.connect();
    s.write_all(raw.as_bytes()).unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    assert!(closed);
    let statuses: Vec<u16> = parse_all(&bytes, &[]).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [405, 405, 200]);
    server.assert_alive();
}

// ---------------------------------------------------------------------------
// limits
// ---------------------------------------------------------------------------

#[test]
fn long_request_line_is_414() {
    let server = TestServer::start(&[]);
    let long = "a".repeat(9000); // default --max-uri is 8 KiB
    expect_one_then_close(
        &server,
        format!("GET /{long} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        414,
    );
    // Also when the line never ends.
    let mut s = server.connect();
    s.write_all(format!("GET /{long}").as_bytes()).unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 414);
    assert!(is_closed(&mut s));
    server.assert_alive();

    let server = TestServer::start(&["--max-uri", "100"]);
    let at_limit = format!("/{}", "b".repeat(100 - "GET  HTTP/1.1\r".len() - 1));
    let r = server.request(
        format!("GET {at_limit} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 404, "a request line at the limit is fine");
    let over = format!("/{}", "b".repeat(101));
    expect_one_then_close(
        &server,
        format!("GET {over} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        414,
    );
    server.assert_alive();
}

#[test]
fn large_heads_are_431() {
    let server = TestServer::start(&[]);
    // Over --max-header (16 KiB by default) in many small lines.
    let mut raw = String::from("GET /hello.txt HTTP/1.1\r\nHost: t\r\n");
    for i in 0..400 {
        raw.push_str(&format!("X-Pad-{i}: {}\r\n", "v".repeat(40)));
    }
    raw.push_str("\r\n");
    expect_one_then_close(&server, raw.as_bytes(), 431);

    // More than 100 header fields, however small.
    let mut raw = String::from("GET /hello.txt HTTP/1.1\r\nHost: t\r\n");
    for i in 0..101 {
        raw.push_str(&format!("X-{i}: 1\r\n"));
    }
    raw.push_str("\r\n");
    expect_one_then_close(&server, raw.as_bytes(), 431);

    // Exactly 100 fields is fine.
    let mut raw = String::from("GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for i in 0..98 {
        raw.push_str(&format!("X-{i}: 1\r\n"));
    }
    raw.push_str("\r\n");
    let r = server.request(raw.as_bytes());
    assert_eq!(r.status, 200);

    let server = TestServer::start(&["--max-header", "1024"]);
    let raw = format!(
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "z".repeat(1100)
    );
    expect_one_then_close(&server, raw.as_bytes(), 431);
    server.assert_alive();
}

#[test]
fn two_megabyte_header_is_refused_without_growing_memory() {
    let mut server = TestServer::start(&[]);
    let before = rss_kib(server.child.id());
    let mut handles = Vec::new();
    for _ in 0..4 {
        let addr = server.addr;
        handles.push(thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Huge: ")
                .unwrap();
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < 2 << 20 {
                match s.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break, // the server may stop reading: tolerated
                }
            }
            let _ = s.write_all(b"\r\n\r\n");
            let (bytes, closed) = read_until_close(&mut s);
            (bytes, closed)
        }));
    }
    for h in handles {
        let (bytes, closed) = h.join().unwrap();
        assert!(closed, "the connection must be closed");
        // The 431 is sent before the client has finished; a reset may in principle
        // destroy it, but the server lingers to avoid that, so expect it.
        assert!(
            bytes.starts_with(b"HTTP/1.1 431 "),
            "got {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        );
    }
    assert_running(&mut server);
    let after = rss_kib(server.child.id());
    assert!(
        after < before + 16 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
    server.assert_alive();
}

#[test]
fn huge_declared_lengths() {
    let server = TestServer::start(&[]);
    for len in ["1048577", "9223372036854775807", "9999999999999999999"] {
        let raw = format!(
            "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n{SMUGGLED}"
        );
        expect_one_then_close(&server, raw.as_bytes(), 413);
    }
    let raw = format!("POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{SMUGGLED}");
    expect_one_then_close(&server, raw.as_bytes(), 413);
    server.assert_alive();
}

#[test]
fn many_pipelined_requests_are_all_answered_in_order() {
    let server = TestServer::start(&[]);
    let n = 2000;
    let mut raw = Vec::new();
    for i in 0..n {
        let p = if i % 2 == 0 {
            "/hello.txt"
        } else {
            "/style.css"
        };
        raw.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    raw.extend_from_slice(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut s = server.connect();
    let mut w = s.try_clone().unwrap();
    // Written from another thread: the server may stop reading until we read.
    let writer = thread::spawn(move || w.write_all(&raw).is_ok());
    let (bytes, closed) = read_until_close(&mut s);
    assert!(writer.join().unwrap());
    assert!(closed);
    let rs = parse_all(&bytes, &[]);
    assert_eq!(rs.len(), n + 1);
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.status, 200);
        let want: &[u8] = if i % 2 == 0 {
            b"hello world\n"
        } else {
            b"body{}\n"
        };
        assert_eq!(r.body, want, "response {i} out of order");
    }
    server.assert_alive();
}
