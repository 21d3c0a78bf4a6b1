//! Operations seen from the server: stats page, health path, access log, SIGHUP,
//! graceful stop.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn json_number(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    json[at + key.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn stats_counters_move_and_json_is_offered() {
    let srv = TestServer::start(&["--stats-path", "/_stats"]);
    let before = String::from_utf8(srv.get("/_stats?format=json").body).unwrap();
    for _ in 0..5 {
        srv.get("/hello.txt");
    }
    srv.get("/missing");
    let r = srv.get("/_stats?format=json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let after = String::from_utf8(r.body).unwrap();
    assert!(
        json_number(&after, "requests") >= json_number(&before, "requests") + 6,
        "{before} -> {after}"
    );
    assert!(json_number(&after, "4xx") > json_number(&before, "4xx"));
    assert!(json_number(&after, "bytes_sent") > json_number(&before, "bytes_sent"));
    assert_eq!(json_number(&after, "workers"), 2);
    let text = String::from_utf8(srv.get("/_stats").body).unwrap();
    assert!(text.starts_with("Active connections: "), "{text}");
    assert!(text.contains("server accepts handled requests\n"), "{text}");
    assert!(text.contains("Reading: "), "{text}");
}

#[test]
fn stats_are_off_by_default_and_health_answers() {
    let srv = TestServer::start(&[]);
    assert_eq!(srv.get("/_stats").status, 404);
    let h = srv.get("/healthz");
    assert_eq!(h.status, 200);
    assert_eq!(h.body, b"ok\n");
    let srv = TestServer::start(&["--health-path", "/lb-check"]);
    assert_eq!(srv.get("/lb-check").status, 200);
    assert_eq!(srv.get("/healthz").status, 404);
}

#[test]
fn stats_refuse_networks_not_allowed() {
    // 127.0.0.1 is loopback, always allowed; an allow-list never narrows that.
    let srv = TestServer::start(&["--stats-path", "/s", "--stats-allow", "10.0.0.0/8"]);
    assert_eq!(srv.get("/s").status, 200);
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn access_log_has_one_combined_line_per_request() {
    let srv = TestServer::start(&[]);
    srv.request(b"GET /hello.txt?x=1 HTTP/1.1\r\nHost: t\r\nReferer: http://r/\r\nUser-Agent: probe \"1\"\r\nConnection: close\r\n\r\n");
    srv.get("/missing");
    assert!(
        wait_for(Duration::from_secs(5), || srv
            .log("access.log")
            .lines()
            .count()
            >= 2),
        "{}",
        srv.log("access.log")
    );
    let log = srv.log("access.log");
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let first = lines[0];
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.contains(
            " +0000] \"GET /hello.txt?x=1 HTTP/1.1\" 200 12 \"http://r/\" \"probe \\x221\\x22\""
        ),
        "{first}"
    );
    assert!(
        lines[1].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{}",
        lines[1]
    );
    assert!(srv.log("server.log").contains("listening on"));
}

#[test]
fn access_log_off_and_close_log() {
    let srv = TestServer::start(&["--access-log", "off"]);
    srv.assert_alive();
    std::thread::sleep(Duration::from_millis(600));
    assert!(!srv.logs.path().join("access.log").exists());
    let srv = TestServer::start(&["-c"]);
    srv.assert_alive();
    assert!(!srv.logs.path().join("server.log").exists());
}

#[test]
fn sighup_reopens_moved_logs() {
    let srv = TestServer::start(&["--log-async"]);
    srv.assert_alive();
    assert!(wait_for(Duration::from_secs(5), || !srv
        .log("access.log")
        .is_empty()));
    let dir = srv.logs.path();
    std::fs::rename(dir.join("access.log"), dir.join("access.log.1")).unwrap();
    std::fs::rename(dir.join("server.log"), dir.join("server.log.1")).unwrap();
    send_signal(srv.child.id(), "HUP");
    assert!(
        wait_for(Duration::from_secs(5), || dir.join("server.log").exists()),
        "server.log not recreated"
    );
    srv.assert_alive();
    assert!(wait_for(Duration::from_secs(5), || srv
        .log("access.log")
        .contains("/hello.txt")));
    assert!(srv.log("server.log").contains("reopened"));
}

#[test]
fn graceful_stop_finishes_downloads_and_refuses_new_connections() {
    let mut srv = TestServer::start_with(&["--grace", "20"], |root| {
        populate(root);
        let data: Vec<u8> = (0..(32u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("big.bin"), data).unwrap();
    });
    let mut idle = srv.connect();
    idle.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_response(&mut idle, true).unwrap();
    let mut dl = srv.connect();
    dl.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    dl.read_exact(&mut first).unwrap();
    send_signal(srv.child.id(), "TERM");
    // Idle keep-alive connections are closed at once.
    assert!(is_closed(&mut idle));
    // New connections are refused.
    assert!(wait_for(Duration::from_secs(5), || {
        std::net::TcpStream::connect(srv.addr).is_err()
    }));
    // The download in flight completes, read slowly.
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match dl.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) => panic!("download cut: {e} after {} bytes", rest.len()),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &all[head_end..];
    assert_eq!(body.len(), 32 << 20);
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let status = wait_exit(&mut srv.child, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn out_of_descriptors_pauses_accepting_without_spinning() {
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    // 40 descriptors in all: a few for the server itself, the rest for clients.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(["--nofile=40:40", "--", env!("CARGO_BIN_EXE_hearth")]);
    let srv = TestServer::launch(cmd, root, &["--max-conns", "1000"]);
    let (addr, pid) = (srv.addr, srv.child.id());
    // Far more connections than descriptors: the kernel queues them in the backlog.
    let held: Vec<_> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(pid) - before;
    assert!(spent < 30, "reactor spun at EMFILE: {spent} ticks in 1 s");
    drop(held);
    // Once descriptors free up it accepts again and serves.
    let ok = wait_for(Duration::from_secs(10), || {
        let mut s = match std::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => return false,
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .is_ok()
            && read_response(&mut s, true).is_ok_and(|r| r.status == 200)
    });
    assert!(ok, "not serving after descriptors were freed");
    // Once per episode, not once per 100 ms back-off: the first episode (1.3 s
    // long here) logs one line before its recovery line. Draining the backlog of
    // clients that gave up may start a later episode, which logs its own line.
    let log = srv.log("server.log");
    let first_episode = log
        .split("accepting connections again")
        .next()
        .unwrap_or("");
    assert_eq!(first_episode.matches("pausing accepts").count(), 1, "{log}");
    assert!(log.contains("accepting connections again"), "{log}");
}

#[test]
fn queued_log_lines_are_written_before_exit() {
    let mut srv = TestServer::start(&["--log-async"]);
    for _ in 0..3 {
        srv.assert_alive();
    }
    // Stop at once: the access-log batch and the last server.log lines are still
    // queued for the log thread when the reactor finishes.
    let status = srv.terminate().expect("exits");
    assert!(status.success());
    assert_eq!(
        srv.log("access.log").lines().count(),
        3,
        "{}",
        srv.log("access.log")
    );
    assert!(
        srv.log("server.log").contains("stopped"),
        "{}",
        srv.log("server.log")
    );
}
