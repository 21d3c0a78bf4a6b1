//! Several reactors in one process (`--reactors N`): thread names, one connection
//! budget, statistics per reactor, stop and reload with all of them.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

/// Thread names of a process, from /proc.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// The numbers in a JSON array field of the stats page.
fn json_list(srv: &TestServer, field: &str) -> Vec<usize> {
    let body = String::from_utf8(srv.get("/_stats?format=json").body).unwrap();
    body.split(&format!("\"{field}\":["))
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn extra_reactors_are_named_threads_beside_the_workers() {
    let srv = TestServer::start(&["--reactors", "3", "--threads", "2"]);
    // The threads start once the listening line is out: wait for them.
    let pid = srv.child.id();
    wait_until(Duration::from_secs(5), || {
        thread_names(pid).iter().any(|n| n == "hearth-r2")
    });
    let names = thread_names(pid);
    for want in ["hearth", "hearth-r1", "hearth-r2", "hearth-w0", "hearth-w1"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "hearth-r3"), "{names:?}");
}

#[test]
fn the_chosen_layout_is_printed_at_start() {
    let root = tempfile::tempdir().unwrap();
    let out = hearth_on(root.path())
        .args(["--threads", "3", "--reactors", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("threads=3 reactors=2"), "{line}");
}

#[test]
fn zero_reactors_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let out = hearth_on(root.path())
        .args(["--reactors", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_connection_is_served_whichever_reactor_takes_it() {
    let srv = TestServer::start(&["--reactors", "4", "--stats-path", "/_stats"]);
    let addr = srv.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut ok = 0;
                for _ in 0..50 {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        .unwrap();
                    let (bytes, closed) = read_until_close(&mut s);
                    let rs = parse_all(&bytes, &[false, false]);
                    if closed && rs.len() == 2 && rs.iter().all(|r| r.status == 200) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(ok, 400);
    assert_eq!(json_list(&srv, "reactor_active").len(), 4);
    let idle = wait_until(Duration::from_secs(5), || {
        json_list(&srv, "reactor_active").iter().sum::<usize>() == 1
    });
    assert!(idle, "{:?}", json_list(&srv, "reactor_active"));
}

#[test]
fn accepted_connections_are_counted_per_reactor() {
    let srv = TestServer::start(&["--reactors", "4", "--stats-path", "/_stats"]);
    for _ in 0..40 {
        let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (bytes, closed) = read_until_close(&mut s);
        assert!(closed && parse_all(&bytes, &[false])[0].status == 200);
    }
    // The stats request is a connection of its own, accepted before the snapshot.
    let accepted = json_list(&srv, "reactor_accepted");
    assert_eq!(accepted.len(), 4);
    assert_eq!(accepted.iter().sum::<usize>(), 41, "{accepted:?}");
    let text = String::from_utf8(srv.get("/_stats").body).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("reactor_accepted:"))
        .unwrap_or_else(|| panic!("no reactor_accepted in {text}"));
    let counts: Vec<usize> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 4);
    assert_eq!(counts.iter().sum::<usize>(), 42, "{counts:?}");
}

#[test]
fn max_conns_is_one_budget_over_all_reactors() {
    let srv = TestServer::start(&["--reactors", "3", "--max-conns", "4"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = srv.connect();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, true).unwrap().status, 200);
        held.push(s);
    }
    for _ in 0..3 {
        let mut s = srv.connect();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, true).unwrap().status, 503);
    }
    held.clear();
    let back = wait_until(Duration::from_secs(5), || {
        srv.get("/hello.txt").status == 200
    });
    assert!(back, "still refusing after the held connections closed");
}

#[test]
fn a_graceful_stop_ends_every_reactor() {
    let mut srv = TestServer::start(&["--reactors", "3", "--grace", "5"]);
    let mut idle = Vec::new();
    for _ in 0..6 {
        let mut s = srv.connect();
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut s, true).unwrap().status, 200);
        idle.push(s);
    }
    let status = srv.terminate().expect("exited within the bound");
    assert!(status.success(), "{status:?}");
    for s in &mut idle {
        assert!(is_closed(s));
    }
}

/// Connections the kernel completed and queued on the reactors' own sockets when
/// the stop begins are accepted and answered, not reset by the sockets' close.
#[test]
fn a_graceful_stop_answers_the_connections_already_queued() {
    let mut srv = TestServer::start(&["--reactors", "3", "--grace", "5"]);
    assert_eq!(srv.get("/hello.txt").status, 200);
    let pid = srv.child.id();
    // Frozen, the server accepts nothing: the connections wait in the queues.
    send_signal(pid, "STOP");
    let mut queued: Vec<std::net::TcpStream> = (0..24)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
            s
        })
        .collect();
    send_signal(pid, "TERM");
    send_signal(pid, "CONT");
    for s in &mut queued {
        let (bytes, closed) = read_until_close(s);
        assert!(closed);
        let r = parse_all(&bytes, &[false]);
        assert_eq!(r.first().map(|r| r.status), Some(200), "{bytes:?}");
    }
    let status = wait_exit(&mut srv.child, Duration::from_secs(15)).expect("exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_reopens_logs_with_several_reactors() {
    let srv = TestServer::start(&["--reactors", "2"]);
    assert_eq!(srv.get("/hello.txt").status, 200);
    let log = srv.logs.path().join("access.log");
    assert!(wait_until(Duration::from_secs(5), || log.exists()));
    std::fs::rename(&log, srv.logs.path().join("access.log.1")).unwrap();
    send_signal(srv.child.id(), "HUP");
    let reopened = wait_until(Duration::from_secs(5), || {
        let _ = srv.get("/hello.txt");
        srv.log("access.log").contains("/hello.txt")
    });
    assert!(reopened, "access.log was not reopened after SIGHUP");
}

/// Each reactor has a SO_REUSEPORT socket of its own by default: the kernel hashes
/// connections over them, so every reactor takes a share.
#[test]
fn connections_spread_over_every_reactor_by_default() {
    let srv = TestServer::start(&["--reactors", "4", "--stats-path", "/_stats"]);
    for _ in 0..200 {
        let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
        let (_, closed) = read_until_close(&mut s);
        assert!(closed);
    }
    let accepted = json_list(&srv, "reactor_accepted");
    assert_eq!(accepted.iter().sum::<usize>(), 201, "{accepted:?}");
    // 50 each on average; below 15 is more than five deviations off a fair hash.
    assert!(accepted.iter().all(|&n| n >= 15), "{accepted:?}");
}

/// A socket per reactor must not let a second server join the port unasked.
#[test]
fn a_second_server_on_the_same_port_is_refused_with_several_reactors() {
    let first = TestServer::start(&["--reactors", "2"]);
    let port = first.addr.port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--port", &port, "--bind", "127.0.0.1", "--reactors", "2"])
        .args(["--access-log", "off", "--close-log"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    assert_eq!(first.get("/hello.txt").status, 200);
}

/// The other layout stays available: one socket, EPOLLEXCLUSIVE.
#[test]
fn exclusive_accept_spread_serves_every_connection() {
    let srv = TestServer::start(&[
        "--reactors",
        "3",
        "--accept-spread",
        "exclusive",
        "--stats-path",
        "/_stats",
    ]);
    for _ in 0..30 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    let accepted = json_list(&srv, "reactor_accepted");
    assert_eq!(accepted.iter().sum::<usize>(), 31, "{accepted:?}");
}
