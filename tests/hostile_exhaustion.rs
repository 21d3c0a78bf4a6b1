//! Connection exhaustion against the real binary: `--max-conns`, descriptor limits
//! and thousands of idle connections under load.
//!
//! Every wait is bounded: socket timeouts come from `common::IO_TIMEOUT` or are set
//! here, and polling loops have deadlines. After each hostile case the server must
//! still answer a normal request (`assert_alive`).

mod common;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// resource exhaustion
// ---------------------------------------------------------------------------

/// GETs /hello.txt until it is served (each refusal a 503), within `limit`
/// of closing 10 of the held connections.
fn get_served_once_room_is_freed(server: &TestServer, limit: Duration) {
    let deadline = Instant::now() + limit;
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
}

/// A new keep-alive connection whose GET /style.css was served, or None.
fn served_keep_alive_connection(server: &TestServer) -> Option<TcpStream> {
    let mut e = server.connect();
    e.write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let served = read_response(&mut e, true).is_ok_and(|r| r.body == b"body{}\n");
    served.then_some(e)
}

#[test]
fn max_conns_answers_503_and_recovers() {
    // Silent connections must reach the server at once to hold their slots.
    let server = TestServer::start(&["--max-conns", "50", "--defer-accept", "0"]);
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
    get_served_once_room_is_freed(&server, Duration::from_secs(5));
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
            extra = served_keep_alive_connection(&server);
            extra.is_some()
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

/// By default a connection is accepted once its first bytes arrive: clients that
/// connect and say nothing take no slot until the wait is over, and are then
/// accepted and held to the header timeout like any other.
#[test]
fn silent_connections_wait_in_the_kernel_with_defer_accept() {
    let server = TestServer::start(&["--max-conns", "5", "--header-timeout", "2"]);
    let silent: Vec<TcpStream> = (0..5).map(|_| server.connect()).collect();
    // Five silent clients do not fill five slots: a real request is served.
    assert_eq!(server.get("/hello.txt").status, 200);
    // Once the wait is over they are accepted, then the header timeout closes them.
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        // A 408 or nothing, then the close; never the 15-second read timeout.
        let closed = loop {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        };
        assert!(closed, "a silent connection was never closed");
    }
    assert_eq!(server.get("/hello.txt").status, 200);
}

#[test]
fn max_conns_recovers_when_idle_clients_time_out() {
    // The held connections are never closed by the client: the header timeout frees them.
    let server = TestServer::start(&[
        "--max-conns",
        "20",
        "--header-timeout",
        "2",
        "--defer-accept",
        "0",
    ]);
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

/// Fifty GETs, each on a new connection, each served; returns the slowest.
fn fifty_gets_on_new_connections(addr: std::net::SocketAddr) -> Duration {
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
        s.write_all(format!("GET {p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.status, 200);
        worst = worst.max(t.elapsed());
    }
    worst
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
            thread::spawn(move || fifty_gets_on_new_connections(addr))
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
