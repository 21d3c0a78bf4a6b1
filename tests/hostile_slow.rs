//! Slow, vanishing and half-closed clients against the real binary: slowloris,
//! trickled bodies, idle and non-reading clients, resets mid-response, half-close.
//!
//! Every wait is bounded: socket timeouts come from `common::IO_TIMEOUT` or are set
//! here, and polling loops have deadlines. After each hostile case the server must
//! still answer a normal request (`assert_alive`).

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// slow clients
// ---------------------------------------------------------------------------

/// Sends a request head one byte every 300 ms (for at most 8 s) until the
/// server closes, then sets `done`; returns how long the connection lasted
/// and what the server sent.
fn slowloris(addr: std::net::SocketAddr, done: &AtomicBool) -> (Duration, Vec<u8>) {
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
}

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let server = TestServer::start(&["--header-timeout", "2", "--timeout", "3"]);
    let done = Arc::new(AtomicBool::new(false));
    let mut lorises = Vec::new();
    for _ in 0..3 {
        let addr = server.addr;
        let done = done.clone();
        lorises.push(thread::spawn(move || slowloris(addr, &done)));
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

/// Connects, sends `bytes` and waits (at most 8 s) for the server to close;
/// returns how long that took from the send, what it sent, and whether it closed.
fn send_then_wait_for_close(addr: std::net::SocketAddr, bytes: &[u8]) -> (Duration, Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (got, closed) = read_until_close(&mut s);
    (t.elapsed(), got, closed)
}

#[test]
fn idle_connections_time_out() {
    let server = TestServer::start(&["--header-timeout", "2", "--timeout", "3"]);
    // Half a request head: cut off by --header-timeout, like the silent client.
    let addr = server.addr;
    let half =
        thread::spawn(move || send_then_wait_for_close(addr, b"GET /hello.txt HTTP/1.1\r\n"));
    // Connects and says nothing.
    let silent = thread::spawn(move || send_then_wait_for_close(addr, b""));
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

    let (took, _, closed) = half.join().unwrap();
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
