//! Hostile clients against the real binary: request smuggling, oversized heads,
//! path tricks, slow and vanishing clients, and connection exhaustion. After each
//! hostile case the server must still answer a normal request (`assert_alive`).
//!
//! Every wait is bounded: socket timeouts come from `common::IO_TIMEOUT` or are set
//! here, and polling loops have deadlines.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Sends `raw` and expects exactly one response with `status`, then a close.
fn expect_one_then_close(server: &TestServer, raw: &[u8], status: u16) {
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(raw).unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    let shown = String::from_utf8_lossy(raw);
    let rs = parse_all(&bytes, &[]);
    assert_eq!(
        rs.len(),
        1,
        "exactly one response to {shown:?}; got {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(rs[0].status, status, "{shown:?}");
    assert!(
        rs[0].closes(),
        "Connection: close expected after {status} for {shown:?}"
    );
    assert!(closed, "the connection must close after {shown:?}");
}

/// The server's resident memory, in KiB.
fn rss_kib(server: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn assert_running(server: &mut TestServer) {
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server process exited"
    );
}

/// A GET on a new connection; returns the status and how long it took.
fn timed_get(server: &TestServer, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = server.get(path);
    (r.status, t.elapsed())
}

const BIG: usize = 32 << 20;

fn big_site(root: &Path) {
    populate(root);
    let f = std::fs::File::create(root.join("big.bin")).unwrap();
    // Sparse: reads as zeros, costs no disk.
    f.set_len(BIG as u64).unwrap();
}

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
    let before = rss_kib(&server);
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
    let after = rss_kib(&server);
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

// ---------------------------------------------------------------------------
// paths
// ---------------------------------------------------------------------------

#[test]
fn traversal_spellings_are_400() {
    let server = TestServer::start(&[]);
    for path in [
        "/../hello.txt",
        "/../../../../etc/passwd",
        "/sub/../../hello.txt",
        "/..",
        "/%2e%2e/hello.txt",
        "/%2E%2E/hello.txt",
        "/%2E./hello.txt",
        "/.%2e/hello.txt",
        "/..%2fhello.txt",
        "/..%2Fetc%2Fpasswd",
        "/sub%2fhello.txt",
        "/..\\hello.txt",
        "/sub\\..\\hello.txt",
        "/%5c..%5chello.txt",
        "/..%5chello.txt",
        "/hello.txt%00",
        "/hello.txt%00.html",
        "/%00",
        "/%c0%ae%c0%ae/hello.txt",
        "/%c0%af",
        "/%e0%80%ae%e0%80%ae/hello.txt",
        "/%ff",
        "/%0d%0aX-Injected:%201",
        "/%zz",
        "/%2",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut s = server.connect();
        s.write_all(raw.as_bytes()).unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.status, 400, "{path}");
        assert!(r.header("x-injected").is_none());
        assert!(is_closed(&mut s), "{path}");
    }
    server.assert_alive();
}

#[test]
fn paths_decode_exactly_once() {
    let server = TestServer::start(&[]);
    assert_eq!(server.get("/%252e%252e/hello.txt").status, 404);
    assert_eq!(server.get("/%252e%252e%252fhello.txt").status, 404);
    let r = server.get("/hello%2etxt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    let r = server.get("/sub/../hello.txt");
    assert_eq!(r.status, 200, "`..` that stays inside the root is resolved");
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(server.get("/./sub/./index.html").status, 200);
    assert_eq!(server.get("//hello.txt").status, 200);
    assert_eq!(
        server.get("/hello.txt/").status,
        404,
        "a file named as a directory"
    );
    assert_eq!(
        server.get("/hello.txt?x=../../etc/passwd").status,
        200,
        "the query is not a path"
    );
    server.assert_alive();
}

fn symlink_site(root: &Path, outside: &Path) {
    populate(root);
    std::fs::write(outside.join("secret.txt"), b"outside\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("out.txt")).unwrap();
    std::os::unix::fs::symlink(outside, root.join("outdir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("hostname")).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("in.txt")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("sub/up.txt")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("subl")).unwrap();
}

#[test]
fn directory_redirects_stay_on_this_host() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::create_dir_all(root.join("evil.example")).unwrap();
    });
    for path in [
        "//evil.example",
        "///evil.example",
        "//evil.example?x=1",
        "/./sub",
        "//sub",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 301, "{path}");
        let location = r.header("location").unwrap();
        assert!(
            location.starts_with('/') && !location.starts_with("//"),
            "{path} -> Location: {location}"
        );
        assert!(!location.contains('\\'), "{path} -> Location: {location}");
    }
    server.assert_alive();
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&[], |root| symlink_site(root, outside.path()));
    assert_eq!(server.get("/out.txt").status, 403);
    assert_eq!(server.get("/outdir/secret.txt").status, 403);
    assert_eq!(server.get("/outdir/").status, 403);
    if Path::new("/etc/hostname").exists() {
        assert_eq!(server.get("/hostname").status, 403);
    }
    // Links that stay inside the root are fine.
    for path in ["/in.txt", "/sub/up.txt", "/subl/../hello.txt"] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, b"hello world\n", "{path}");
    }
    assert_eq!(server.get("/subl/index.html").body, b"<p>sub</p>\n");
    server.assert_alive();
}

#[test]
fn follow_symlinks_serves_links_out_of_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["--follow-symlinks"], |root| {
        symlink_site(root, outside.path())
    });
    let r = server.get("/out.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"outside\n");
    assert_eq!(server.get("/outdir/secret.txt").body, b"outside\n");
    if let Ok(host) = std::fs::read("/etc/hostname") {
        let r = server.get("/hostname");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, host);
    }
    assert_eq!(server.get("/in.txt").body, b"hello world\n");
    // Still no climbing out with `..` in the request.
    assert_eq!(server.get("/../hello.txt").status, 400);
    server.assert_alive();
}

#[test]
fn dotfiles_are_hidden() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join(".env"), b"SECRET=1\n").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), b"[core]\n").unwrap();
        std::fs::write(root.join("sub/.htpasswd"), b"u:p\n").unwrap();
        std::fs::create_dir_all(root.join(".well-known")).unwrap();
        std::fs::write(root.join(".well-known/security.txt"), b"Contact: x\n").unwrap();
    });
    for path in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/.git",
        "/sub/.htpasswd",
        "/%2eenv",
        "/sub/../.env",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("SECRET"));
    }
    assert_eq!(server.get("/.well-known/security.txt").status, 200);
    server.assert_alive();
}

fn listing_site(root: &Path) {
    populate(root);
    std::fs::create_dir_all(root.join("files/inner")).unwrap();
    std::fs::write(root.join("files/plain.txt"), b"p").unwrap();
    std::fs::write(root.join("files/a<b>&\"c'.txt"), b"x").unwrap();
    std::fs::write(root.join("files/<img src=x onerror=alert(1)>"), b"x").unwrap();
    std::fs::write(root.join("files/.hidden"), b"x").unwrap();
}

#[test]
fn directories_without_index() {
    let server = TestServer::start_with(&[], listing_site);
    assert_eq!(server.get("/empty/").status, 403);
    assert_eq!(server.get("/files/").status, 403);
    assert_eq!(
        server.get("/sub/").status,
        200,
        "a directory with index.html"
    );

    let server = TestServer::start_with(&["--autoindex"], listing_site);
    let r = server.get("/files/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("plain.txt"), "{page}");
    assert!(page.contains("inner/"), "{page}");
    assert!(
        page.contains("a&lt;b&gt;&amp;&quot;c&#39;.txt"),
        "names are HTML-escaped: {page}"
    );
    assert!(
        !page.contains("<img"),
        "no raw markup from file names: {page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains(".hidden"), "dotfiles are not listed: {page}");
    // Links are percent-encoded so they lead back to the files, and cannot end the
    // attribute or open a tag.
    assert!(page.contains("href=\"a%3Cb%3E"), "{page}");
    assert!(
        page.contains("href=\"%3Cimg%20src=x%20onerror=alert(1)%3E\""),
        "{page}"
    );
    let r = server.get("/files/a%3Cb%3E%26%22c'.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"x");
    let r = server.get("/empty/");
    assert_eq!(r.status, 200);
    server.assert_alive();
}

#[test]
fn autoindex_hrefs_lead_to_the_files() {
    let server = TestServer::start_with(&["--autoindex"], |root| {
        populate(root);
        std::fs::create_dir_all(root.join("amp")).unwrap();
        std::fs::write(root.join("amp/x&amp;y.txt"), b"x").unwrap();
    });
    let page = String::from_utf8(server.get("/amp/").body).unwrap();
    // The attribute value must decode (HTML) to a URL naming `x&amp;y.txt`: either
    // `&` HTML-escaped (`x&amp;amp;y.txt`) or percent-encoded (`x%26amp;y.txt`).
    assert!(
        page.contains("href=\"x&amp;amp;y.txt\"")
            || page.contains("href=\"x%26amp%3By.txt\"")
            || page.contains("href=\"x%26amp;y.txt\""),
        "{page}"
    );
}

#[test]
fn unreadable_and_special_files_are_403() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("locked.txt"), b"no").unwrap();
        std::fs::set_permissions(
            root.join("locked.txt"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status();
        assert!(status.is_ok_and(|s| s.success()), "mkfifo");
    });
    let r = server.get("/locked.txt");
    assert_eq!(r.status, 403);
    assert_ne!(r.body, b"no");
    // Opening a FIFO must neither hang a worker nor serve it.
    let (status, took) = timed_get(&server, "/fifo");
    assert_eq!(status, 403);
    assert!(took < Duration::from_secs(2));
    server.assert_alive();
}

// ---------------------------------------------------------------------------
// slow clients
// ---------------------------------------------------------------------------

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let server = TestServer::start(&["--header-timeout", "2", "--timeout", "3"]);
    let done = Arc::new(AtomicBool::new(false));
    let mut lorises = Vec::new();
    for _ in 0..3 {
        let addr = server.addr;
        let done = done.clone();
        lorises.push(thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let start = Instant::now();
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut r = s.try_clone().unwrap();
            r.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let _ = s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ");
            let mut buf = [0u8; 512];
            let mut answered = Vec::new();
            // One header byte every 300 ms; the read timeout paces the loop.
            while start.elapsed() < Duration::from_secs(8) {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answered.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(_) => {}
                }
                if s.write_all(b"a").is_err() {
                    break;
                }
            }
            let took = start.elapsed();
            done.store(true, Ordering::SeqCst);
            (took, answered)
        }));
    }
    // Meanwhile normal clients are served promptly.
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_millis(1800) {
        let (status, took) = timed_get(&server, "/hello.txt");
        assert_eq!(status, 200);
        worst = worst.max(took);
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a GET during the slowloris took {worst:?}"
    );
    for l in lorises {
        let (took, answered) = l.join().unwrap();
        assert!(
            took >= Duration::from_millis(1500),
            "closed too early: {took:?}"
        );
        assert!(
            took <= Duration::from_millis(4500),
            "slowloris kept the connection for {took:?}"
        );
        // Either nothing or a 408 may be sent; never the file.
        assert!(
            answered.is_empty() || answered.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&answered)
        );
    }
    assert!(done.load(Ordering::SeqCst));
    server.assert_alive();
}

#[test]
fn a_flood_of_empty_lines_is_refused_promptly() {
    let server = TestServer::start(&[]);
    let pid = server.child.id();
    let cpu_before = cpu_ticks(pid);
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let _ = s.write_all(&b"\r\n".repeat(20_000));
    // Past --max-header of empty lines is as much a too-large head as any other.
    let r = read_response(&mut s, true);
    let took = t.elapsed();
    let cpu = cpu_ticks(pid) - cpu_before;
    let status = r.map(|r| r.status).map_err(|e| e.to_string());
    assert!(
        matches!(status, Ok(400) | Ok(431)),
        "got {status:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    assert!(
        cpu < 50,
        "the server burnt {cpu} ticks of CPU on one connection"
    );
    server.assert_alive();
}

#[test]
fn a_trickled_body_is_cut_off() {
    // --timeout is documented as the time a connection may wait for a complete
    // request; a body sent a byte every 300 ms never completes in time.
    let server = TestServer::start(&["--header-timeout", "2", "--timeout", "3"]);
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 512];
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(8) {
        match s.read(&mut buf) {
            Ok(0) => closed = true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed = true,
            _ => {}
        }
        if closed || s.write_all(b"a").is_err() {
            closed = true;
            break;
        }
    }
    let took = t.elapsed();
    assert!(
        closed && took < Duration::from_secs(6),
        "a trickled body held the connection for {took:?}"
    );
    server.assert_alive();
}

#[test]
fn idle_connections_time_out() {
    let server = TestServer::start(&["--header-timeout", "2", "--timeout", "3"]);
    // Half a request head: cut off by --header-timeout, like the silent client.
    let half = thread::spawn({
        let addr = server.addr;
        move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.1\r\n").unwrap();
            let t = Instant::now();
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            let (_, closed) = read_until_close(&mut s);
            (t.elapsed(), closed)
        }
    });
    // Connects and says nothing.
    let silent = thread::spawn({
        let addr = server.addr;
        move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let t = Instant::now();
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            let (bytes, closed) = read_until_close(&mut s);
            (t.elapsed(), bytes, closed)
        }
    });
    // Keep-alive connection idle after one response.
    // A second request well inside the idle time is served: idle, not age, counts.
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
    thread::sleep(Duration::from_millis(1500));
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let t = Instant::now();
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    let idle = t.elapsed();
    assert!(
        closed && bytes.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        idle >= Duration::from_millis(2500) && idle <= Duration::from_millis(5000),
        "keep-alive idle closed after {idle:?}"
    );

    let (took, closed) = half.join().unwrap();
    assert!(closed, "a half-sent head was never cut off");
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_millis(4500),
        "half-sent head closed after {took:?}"
    );
    let (took, bytes, closed) = silent.join().unwrap();
    assert!(closed);
    assert!(bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 408"));
    assert!(
        took >= Duration::from_millis(1500) && took <= Duration::from_millis(4500),
        "silent client closed after {took:?}"
    );
    server.assert_alive();
}

#[test]
fn a_client_that_never_reads_is_dropped_after_the_timeout() {
    let server = TestServer::start_with(
        &[
            "--header-timeout",
            "2",
            "--timeout",
            "3",
            "--stats-path",
            "/_stats",
        ],
        big_site,
    );
    let baseline = server.active_connections();
    assert_eq!(baseline, 1, "only the stats request itself");
    let mut s = server.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let sent = Instant::now();
    thread::sleep(Duration::from_millis(1000));
    assert!(
        server.active_connections() >= 2,
        "the stalled response is still open at 1 s"
    );
    // Other clients are unaffected.
    let (status, took) = timed_get(&server, "/hello.txt");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1));
    let gone = loop {
        if server.active_connections() == 1 {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(8),
            "the stalled connection was never closed"
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        gone >= Duration::from_millis(2500) && gone <= Duration::from_millis(6000),
        "closed after {gone:?}"
    );
    // What is left in the socket buffers is less than the whole file.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    assert!(closed);
    assert!(bytes.starts_with(b"HTTP/1.1 200 "));
    assert!(bytes.len() < BIG, "got {} bytes", bytes.len());
    server.assert_alive();
}

#[test]
fn a_slow_but_steady_reader_is_not_cut_off() {
    // Progress, however slow, resets the no-progress timer.
    let server = TestServer::start_with(&["--timeout", "2"], |root| {
        populate(root);
        std::fs::write(root.join("mid.bin"), vec![7u8; 12 << 20]).unwrap();
    });
    let mut s = server.connect();
    s.write_all(b"GET /mid.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    // About 4 MiB/s, so the whole thing takes ~3 s, longer than --timeout.
    let rate = 4.0 * 1024.0 * 1024.0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("read failed after {got} bytes: {e}"),
        }
        let due = Duration::from_secs_f64(got as f64 / rate);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            thread::sleep(wait);
        }
        assert!(start.elapsed() < Duration::from_secs(30));
    }
    assert!(
        start.elapsed() > Duration::from_millis(2500),
        "the read should outlast --timeout"
    );
    assert!(got > 12 << 20, "got {got} of {} bytes", 12 << 20);
    server.assert_alive();
}

// ---------------------------------------------------------------------------
// resets and half-close
// ---------------------------------------------------------------------------

#[test]
fn clients_vanishing_mid_request_and_mid_response() {
    let mut server = TestServer::start_with(&[], big_site);
    // Half a request, then gone.
    for _ in 0..20 {
        let mut s = server.connect();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHo").unwrap();
        drop(s);
    }
    // Half a body, then gone.
    for _ in 0..10 {
        let mut s = server.connect();
        s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nabc")
            .unwrap();
        drop(s);
        let mut s = server.connect();
        s.write_all(
            b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        )
        .unwrap();
        drop(s);
    }
    server.assert_alive();
    // A big response in flight, then gone (unread data makes the close a reset).
    for _ in 0..8 {
        let mut s = server.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 100 * 1024];
        s.read_exact(&mut buf).unwrap();
        drop(s);
    }
    assert_running(&mut server);
    server.assert_alive();
    // And a pipelined batch whose client disappears before reading anything.
    let mut s = server.connect();
    for _ in 0..50 {
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    drop(s);
    assert_running(&mut server);
    server.assert_alive();
}

#[test]
fn a_file_that_shrinks_while_it_is_sent_ends_the_connection() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("shrink.bin"), vec![1u8; 32 << 20]).unwrap();
    });
    let mut s = server.connect();
    s.write_all(b"GET /shrink.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    s.read_exact(&mut buf).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(server.path("shrink.bin"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    // The promised length can no longer be sent: the connection must end (not hang
    // until the timeout, and not carry on with other bytes).
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (rest, closed) = read_until_close(&mut s);
    assert!(closed, "still open after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(buf.len() + rest.len() < 32 << 20);
    assert!(
        rest.iter().all(|&b| b == 1 || b == 0),
        "bytes that are not the file's"
    );
    server.assert_alive();
}

#[test]
fn half_closed_client_still_gets_its_answer() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    half_close(&s);
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    assert!(is_closed(&mut s));

    // Half-close in the middle of a head: no answer owed, the connection just ends.
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHo").unwrap();
    half_close(&s);
    let (bytes, closed) = read_until_close(&mut s);
    assert!(closed);
    assert!(
        bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    server.assert_alive();
}

#[test]
fn half_closed_client_gets_every_pipelined_answer() {
    // RFC 9112 §9.3: a server answers pipelined requests in order; a client's FIN
    // only says it will send nothing more.
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    half_close(&s);
    let (bytes, closed) = read_until_close(&mut s);
    assert!(closed);
    let statuses: Vec<u16> = parse_all(&bytes, &[]).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
    server.assert_alive();
}

/// `n` pipelined GETs padded with a filler header to exactly `total` bytes.
fn pipelined_exactly(n: usize, total: usize) -> Vec<u8> {
    let mut reqs: Vec<String> = (0..n)
        .map(|_| "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_string())
        .collect();
    let used: usize = reqs.iter().map(String::len).sum();
    let pad = total - used - "X-Pad: \r\n".len();
    reqs[0] = format!(
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(pad)
    );
    let raw = reqs.concat().into_bytes();
    assert_eq!(raw.len(), total);
    raw
}

#[test]
fn half_closed_client_gets_every_pipelined_answer_at_buffer_boundary() {
    // 4096 bytes is the size of the server's pooled read buffer: the read fills it
    // exactly, the next read sees the FIN, and the connection is marked eof while
    // three whole requests are still buffered.
    let server = TestServer::start(&[]);
    for total in [4096, 8192] {
        let mut s = server.connect();
        s.write_all(&pipelined_exactly(3, total)).unwrap();
        half_close(&s);
        let (bytes, closed) = read_until_close(&mut s);
        assert!(closed);
        let statuses: Vec<u16> = parse_all(&bytes, &[]).iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [200, 200, 200],
            "{total} bytes of pipelined requests, then FIN"
        );
    }
}

#[test]
fn nothing_is_answered_after_connection_close() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    assert!(closed);
    let rs = parse_all(&bytes, &[]);
    assert_eq!(rs.len(), 1, "{:?}", String::from_utf8_lossy(&bytes));
    assert_eq!(rs[0].body, b"hello world\n");

    // The same with the second request sent after the first answer.
    let mut s = server.connect();
    s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    let _ = s.write_all(b"GET /style.css HTTP/1.0\r\n\r\n");
    let (rest, closed) = read_until_close(&mut s);
    assert!(closed);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    server.assert_alive();
}

#[test]
fn access_log_lines_cannot_be_forged() {
    let server = TestServer::start(&[]);
    let r = server.request(
        "GET /hello.txt?q=%22x%22 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         User-Agent: evil\" 200 1 \"-\" \"forged\\ \u{e9}\r\nReferer: http://r/\"\r\n\r\n"
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    // The log is written in batches: wait (bounded) for the line.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = server.log("access.log");
        if log.contains("evil") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "no access-log line; log: {log:?}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let line = log.lines().find(|l| l.contains("evil")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("forged")).count(), 1);
    // Request, referer and user agent: exactly six quote characters remain unescaped.
    assert_eq!(line.matches('"').count(), 6, "{line}");
    assert!(
        line.contains("evil\\x22 200 1 \\x22-\\x22 \\x22forged\\x5C \\xC3\\xA9\""),
        "{line}"
    );
    assert!(line.contains("\"http://r/\\x22\""), "{line}");
    server.assert_alive();
}

// ---------------------------------------------------------------------------
// resource exhaustion
// ---------------------------------------------------------------------------

#[test]
fn max_conns_answers_503_and_recovers() {
    let server = TestServer::start(&["--max-conns", "50"]);
    let mut idle: Vec<TcpStream> = (0..50).map(|_| server.connect()).collect();
    // The 51st is refused politely.
    let mut s = server.connect();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.closes());
    assert!(r.header("retry-after").is_some());
    assert!(is_closed(&mut s));
    // Even with a request already sent.
    let r = server.request(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 503);

    // The held connections still work.
    idle[0]
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle[0], true).unwrap().status, 200);

    // Closing some frees room for new clients.
    idle.truncate(40);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = server.get("/hello.txt");
        if r.status == 200 {
            assert_eq!(r.body, b"hello world\n");
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            Instant::now() < deadline,
            "no room after closing 10 connections"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Ten can be opened again, and an eleventh is refused. Accepts come in
    // arrival order, so the nine are in before the GET that follows them; the GET
    // waits only for the server to let go of the probes above.
    let more: Vec<TcpStream> = (0..9).map(|_| server.connect()).collect();
    assert!(
        wait_until(Duration::from_secs(5), || server.get("/hello.txt").status
            == 200),
        "the 50th connection was refused"
    );
    let mut extra = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            let mut e = server.connect();
            e.write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let served = read_response(&mut e, true).is_ok_and(|r| r.body == b"body{}\n");
            if served {
                extra = Some(e);
            }
            served
        }),
        "no room for a 50th held connection"
    );
    let mut late = server.connect();
    assert_eq!(read_response(&mut late, true).unwrap().status, 503);
    drop((idle, more, extra));
    assert!(
        wait_until(Duration::from_secs(5), || server.get("/hello.txt").status
            == 200),
        "no room after every client left"
    );
}

#[test]
fn max_conns_recovers_when_idle_clients_time_out() {
    // The held connections are never closed by the client: the header timeout frees them.
    let server = TestServer::start(&["--max-conns", "20", "--header-timeout", "2"]);
    let held: Vec<TcpStream> = (0..20).map(|_| server.connect()).collect();
    let mut s = server.connect();
    assert_eq!(read_response(&mut s, true).unwrap().status, 503);
    let start = Instant::now();
    loop {
        let r = server.get("/hello.txt");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "still refused after {:?}",
            start.elapsed()
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        start.elapsed() > Duration::from_millis(1000),
        "served too soon: the limit was not in force"
    );
    drop(held);
    server.assert_alive();
}

/// The test process's open-files soft limit.
fn nofile_soft() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn thousands_of_idle_connections_plus_load() {
    // 10,000 idle connections is too heavy for `cargo test` on a small machine; 2,000
    // (or what this process's open-files limit allows) plus 200 requests on top.
    let want = 2000usize;
    let n = want.min(nofile_soft().saturating_sub(300));
    if n < want {
        eprintln!("open-files limit allows only {n} idle connections (wanted {want})");
    }
    let mut server = TestServer::start(&["--header-timeout", "60", "--timeout", "60"]);
    let t0 = Instant::now();
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(server.connect());
    }
    // 200 requests from 4 clients, each on a new connection.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr;
            thread::spawn(move || {
                let mut worst = Duration::ZERO;
                for i in 0..50 {
                    let t = Instant::now();
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let p = if i % 2 == 0 {
                        "/hello.txt"
                    } else {
                        "/style.css"
                    };
                    s.write_all(
                        format!("GET {p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                            .as_bytes(),
                    )
                    .unwrap();
                    let r = read_response(&mut s, true).unwrap();
                    assert_eq!(r.status, 200);
                    worst = worst.max(t.elapsed());
                }
                worst
            })
        })
        .collect();
    for h in handles {
        let worst = h.join().unwrap();
        assert!(
            worst < Duration::from_secs(2),
            "a request took {worst:?} with {n} idle connections"
        );
    }
    // Every idle connection is still there and answers.
    for s in idle.iter_mut() {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    for s in idle.iter_mut() {
        let r = read_response(s, true).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world\n");
    }
    assert_running(&mut server);
    drop(idle);
    eprintln!("{n} idle connections + 200 requests: {:?}", t0.elapsed());
    server.assert_alive();
}
