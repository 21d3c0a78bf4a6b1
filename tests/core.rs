//! Core behaviour over real sockets: files, MIME, redirects, keep-alive, pipelining,
//! bodies, errors, big files, concurrency, timeouts and limits.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn serves_index_and_files_with_headers() {
    let srv = TestServer::start(&[]);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>index</h1>\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("15"));
    assert!(r.header("server").unwrap().starts_with("hearth/"));
    assert!(r.header("date").unwrap().ends_with(" GMT"));
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    assert!(r.header("etag").is_some());
    let css = srv.get("/style.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let sub = srv.get("/sub/");
    assert_eq!(sub.body, b"<p>sub</p>\n");
}

#[test]
fn head_has_length_but_no_body() {
    let srv = TestServer::start(&[]);
    let mut s = srv.connect();
    s.write_all(
        b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let head = read_response(&mut s, false).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("12"));
    // The next response starts right after the head: no body bytes in between.
    let get = read_response(&mut s, true).unwrap();
    assert_eq!(get.body, b"hello world\n");
}

#[test]
fn mime_types_for_common_web_files() {
    let files = [
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("a.ico", "image/x-icon"),
        ("a.woff2", "font/woff2"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.pdf", "application/pdf"),
        ("a.wasm", "application/wasm"),
        ("a.mp4", "video/mp4"),
        ("a.bin", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ];
    let srv = TestServer::start_with(&[], |root| {
        for (name, _) in files {
            std::fs::write(root.join(name), b"x").unwrap();
        }
    });
    for (name, ctype) in files {
        let r = srv.get(&format!("/{name}"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some(ctype), "{name}");
    }
}

#[test]
fn directories_redirect_and_errors_have_pages() {
    let srv = TestServer::start(&[]);
    let r = srv.get("/sub?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/?x=1"));
    let r = srv.get("/missing.html");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    assert!(String::from_utf8_lossy(&r.body).contains("404 Not Found"));
    // A directory without index.html is not listed by default.
    assert_eq!(srv.get("/empty/").status, 403);
    // A file asked for as a directory does not exist.
    assert_eq!(srv.get("/hello.txt/").status, 404);
}

#[test]
fn unreadable_file_is_forbidden() {
    use std::os::unix::fs::PermissionsExt;
    let srv = TestServer::start_with(&[], |root| {
        populate(root);
        let p = root.join("secret.txt");
        std::fs::write(&p, b"no").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    });
    assert_eq!(srv.get("/secret.txt").status, 403);
    srv.assert_alive();
}

#[test]
fn paths_are_decoded_once_and_confined_to_the_root() {
    let srv = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("a b.txt"), b"space").unwrap();
    });
    assert_eq!(srv.get("/a%20b.txt").body, b"space");
    assert_eq!(
        srv.get("/hello.txt?query=ignored&x=../../etc/passwd")
            .status,
        200
    );
    assert_eq!(srv.get("/sub/../hello.txt").status, 200);
    for bad in [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/sub/%2e%2e/%2e%2e/etc/passwd",
        "/a%2fb",
        "/a%00b",
    ] {
        let r = srv.get(bad);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.closes(), "{bad}");
    }
    srv.assert_alive();
}

#[test]
fn http11_keeps_alive_and_http10_closes() {
    let srv = TestServer::start(&[]);
    let mut s = srv.connect();
    for _ in 0..3 {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.closes());
    }
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut s, true).unwrap().closes());
    assert!(is_closed(&mut s));

    let mut s = srv.connect();
    s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.closes());
    assert!(is_closed(&mut s));

    let mut s = srv.connect();
    for _ in 0..2 {
        s.write_all(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = TestServer::start(&[]);
    let mut s = srv.connect();
    let paths = ["/hello.txt", "/style.css", "/missing", "/", "/sub/"];
    let mut raw = Vec::new();
    for p in paths {
        raw.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    s.write_all(&raw).unwrap();
    let want: [&[u8]; 5] = [
        b"hello world\n",
        b"body{}\n",
        b"",
        b"<h1>index</h1>\n",
        b"<p>sub</p>\n",
    ];
    for (p, body) in paths.iter().zip(want) {
        let r = read_response(&mut s, true).unwrap();
        if *p == "/missing" {
            assert_eq!(r.status, 404);
        } else {
            assert_eq!(r.body, body, "{p}");
        }
    }
}

#[test]
fn post_body_is_read_and_answered_405_and_connection_stays_usable() {
    let srv = TestServer::start(&[]);
    let mut s = srv.connect();
    s.write_all(b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello=world")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert!(!r.closes());
    // The body was consumed, not parsed as the next request.
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().body, b"hello world\n");
    // A body sent in pieces is read to its end too.
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"67890GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 405);
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
}

#[test]
fn unknown_method_is_501_and_garbage_is_400_with_close() {
    let srv = TestServer::start(&[]);
    let r = srv.request(b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 501);
    let mut s = srv.connect();
    s.write_all(b"\x16\x03\x01 this is not http\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.closes());
    assert!(is_closed(&mut s));
    srv.assert_alive();
}

#[test]
fn curl_fetches_a_page() {
    if !require_tool("curl") {
        return;
    }
    let srv = TestServer::start(&[]);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            &format!("http://{}/hello.txt", srv.addr),
        ])
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello world\n"), "{text}");
}

fn write_pattern_file(path: &std::path::Path, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

#[test]
fn large_file_arrives_byte_exact() {
    let mut data = Vec::new();
    let srv = TestServer::start_with(&[], |root| {
        populate(root);
        data = write_pattern_file(&root.join("big.bin"), 64 << 20);
    });
    let r = srv.get("/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some((64u64 << 20).to_string().as_str())
    );
    assert!(r.body == data, "64 MiB body differs");
}

#[test]
fn a_thousand_concurrent_keep_alive_connections() {
    // A default soft limit of 1024 descriptors is too few for this process's end.
    let limit = hearth::sys::raise_nofile_limit().unwrap_or(1024);
    assert!(
        limit >= 1100,
        "need 1100 descriptors, RLIMIT_NOFILE hard limit is {limit}"
    );
    let srv = TestServer::start(&[]);
    let addr = srv.addr;
    let mut conns: Vec<_> = (0..1000).map(|_| srv.connect()).collect();
    // Every connection is open at once; each does several requests in rounds.
    let mut ok = 0;
    for _ in 0..3 {
        for chunk in conns.chunks_mut(100) {
            for s in chunk.iter_mut() {
                s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                    .unwrap();
            }
            for s in chunk.iter_mut() {
                let r = read_response(s, true).unwrap();
                assert_eq!(r.status, 200);
                assert_eq!(r.body, b"hello world\n");
                ok += 1;
            }
        }
    }
    assert_eq!(ok, 3000, "via {addr}");
    drop(conns);
    srv.assert_alive();
}

#[test]
fn clients_killed_mid_response_do_not_hurt_others() {
    let srv = TestServer::start_with(&[], |root| {
        populate(root);
        write_pattern_file(&root.join("big.bin"), 16 << 20);
    });
    for _ in 0..20 {
        let mut s = srv.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        drop(s); // unread data: the kernel resets the connection
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    let r = srv.get("/big.bin");
    assert_eq!(r.body.len(), 16 << 20);
}

#[test]
fn connections_over_the_limit_get_503() {
    let srv = TestServer::start(&["--max-conns", "5"]);
    let mut held: Vec<_> = (0..5).map(|_| srv.connect()).collect();
    // An answer on each proves the server has accepted it (no sleep needed).
    for s in &mut held {
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(s, true).unwrap().status, 200);
    }
    let mut extra = srv.connect();
    extra
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut extra, true).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.closes());
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || srv.get("/hello.txt").status
            == 200),
        "no room after the held connections closed"
    );
}

#[test]
fn one_reactor_plus_the_worker_threads() {
    let srv = TestServer::start(&["--threads", "3", "--close-log"]);
    srv.assert_alive();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", srv.child.id()))
        .unwrap()
        .count();
    assert_eq!(
        tasks, 6,
        "main thread + 3 workers + the file watcher + the reload thread"
    );
}

#[test]
fn bad_command_lines_exit_2() {
    let bin = env!("CARGO_BIN_EXE_hearth");
    let unknown = Command::new(bin).arg("--no-such-flag").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let missing = Command::new(bin)
        .args(["--root", "/no/such/dir", "-c"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/dir"));
}

#[test]
fn sigterm_exits_zero() {
    let mut srv = TestServer::start(&[]);
    srv.assert_alive();
    let status = srv.terminate().expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn defer_write_waits_for_epollout_and_serves_the_same() {
    let mut data = Vec::new();
    let srv = TestServer::start_with(&["--defer-write"], |root| {
        populate(root);
        data = write_pattern_file(&root.join("big.bin"), 8 << 20);
    });
    let mut s = srv.connect();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().body, b"hello world\n");
    assert!(read_response(&mut s, true).unwrap().body == data);
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    srv.assert_alive();
}
