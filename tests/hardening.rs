//! Timers, configured headers, panics and log flooding: what a hostile client or a
//! careless configuration could do to the server's bookkeeping.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Writes `partial` and then one byte every half second until the server closes
/// the connection; returns how long that took.
fn trickle_until_closed(s: &mut std::net::TcpStream, partial: &[u8]) -> Duration {
    let start = Instant::now();
    s.write_all(partial).unwrap();
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
        if s.write_all(b"a").is_err() {
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut b = [0u8; 512];
        match std::io::Read::read(s, &mut b) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            _ => {}
        }
    }
    start.elapsed()
}

#[test]
fn a_new_head_after_a_keep_alive_response_gets_the_header_timeout() {
    let srv = TestServer::start(&["--timeout", "30", "--header-timeout", "2"]);
    let mut s = srv.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(500));
    let took = trickle_until_closed(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\nX: ");
    assert!(
        took < Duration::from_millis(4500),
        "closed after {took:?}, not after the 2 s header timeout"
    );
}

#[test]
fn a_partial_pipelined_head_gets_the_header_timeout() {
    let srv = TestServer::start(&["--timeout", "30", "--header-timeout", "2"]);
    let mut s = srv.connect();
    let took = trickle_until_closed(
        &mut s,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX-a: ",
    );
    assert!(
        took < Duration::from_millis(4500),
        "closed after {took:?}, not after the 2 s header timeout"
    );
}

/// The `reactor_timers` array from the JSON stats page, summed.
fn timer_entries(srv: &TestServer) -> usize {
    let body = String::from_utf8(srv.get("/_stats?format=json").body).unwrap();
    let list = body
        .split("\"reactor_timers\":[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("no reactor_timers in {body}"));
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(|n| n.parse::<usize>().unwrap())
        .sum()
}

#[test]
fn the_timer_store_stays_bounded_under_connection_churn() {
    let srv = TestServer::start(&["--stats-path", "/_stats", "--timeout", "60"]);
    // Each connection waits for its request in a slot (so it gets a timer entry),
    // then goes away: 3,000 entries that would otherwise live for 60 s.
    for _ in 0..3000 {
        let s = srv.connect();
        drop(s);
    }
    let settled = wait_until(Duration::from_secs(10), || {
        srv.active_connections() <= 1 && timer_entries(&srv) <= 1100
    });
    assert!(
        settled,
        "{} timer entries for {} open connections",
        timer_entries(&srv),
        srv.active_connections()
    );
}

#[test]
fn framing_and_hop_by_hop_headers_are_refused_in_configuration() {
    for header in [
        "Content-Length: 0",
        "Transfer-Encoding: chunked",
        "Connection: close",
        "keep-alive: timeout=1",
        "Upgrade: websocket",
    ] {
        let root = tempfile::tempdir().unwrap();
        let out = hearth_on(root.path())
            .args(["--header", header])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "--header {header:?} was accepted"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("set by the server"), "{err}");
    }
}

/// The `connections` object of the JSON stats page: (active, writing).
fn gauges(srv: &TestServer) -> (i64, i64) {
    let body = String::from_utf8(srv.get("/_stats?format=json").body).unwrap();
    let field = |name: &str| -> i64 {
        body.split(&format!("\"{name}\":"))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    (field("active"), field("writing"))
}

#[test]
fn a_panic_while_serving_leaves_the_counters_right() {
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.env("HEARTH_DEBUG_PANIC_PATH", "/boom");
    let srv = TestServer::launch(cmd, root, &["--stats-path", "/_stats"]);
    for _ in 0..5 {
        let mut s = srv.connect();
        s.write_all(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (_, closed) = read_until_close(&mut s);
        assert!(closed, "the connection of the panicking request stays open");
    }
    srv.assert_alive();
    // Only the stats request itself is open and being answered.
    let right = wait_until(Duration::from_secs(5), || gauges(&srv) == (1, 1));
    assert!(right, "gauges after 5 panics: {:?}", gauges(&srv));
    assert!(srv.log("server.log").contains("worker panicked"));
}

#[test]
fn refused_requests_are_logged_at_a_bounded_rate() {
    let srv = TestServer::start(&[]);
    for _ in 0..200 {
        let mut s = srv.connect();
        s.write_all(b"BAD\x01 / HTTP/1.1\r\n\r\n").unwrap();
        let _ = read_until_close(&mut s);
    }
    // A refusal in a later second reports how many lines were left out.
    std::thread::sleep(Duration::from_millis(1100));
    let mut s = srv.connect();
    s.write_all(b"BAD\x01 / HTTP/1.1\r\n\r\n").unwrap();
    let _ = read_until_close(&mut s);
    let reported = wait_until(Duration::from_secs(5), || {
        srv.log("server.log")
            .contains("more refused requests were not logged")
    });
    let log = srv.log("server.log");
    let lines = log
        .lines()
        .filter(|l| l.contains("rejected request"))
        .count();
    assert!(reported, "no count of dropped lines in:\n{log}");
    assert!(lines <= 60, "{lines} refusal lines for 201 refusals");
    srv.assert_alive();
}
