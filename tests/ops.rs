//! Operations seen from the server: stats page, health path, access log, SIGHUP,
//! graceful stop.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
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

/// A non-loopback IPv4 address of this host (from the kernel's local routing
/// table), to reach the server from an address that is not loopback.
fn local_non_loopback_v4() -> Option<Ipv4Addr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let lines: Vec<&str> = trie.lines().collect();
    lines.windows(2).find_map(|w| {
        let ip: Ipv4Addr = w[0].trim().strip_prefix("|-- ")?.parse().ok()?;
        let local = w[1].trim() == "/32 host LOCAL";
        (local && !ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })
}

/// GET `path` from `ip` (connecting to the server's port on that address, so the
/// kernel uses it as the source address too).
fn get_via(srv: &TestServer, ip: Ipv4Addr, path: &str) -> Response {
    let mut s = TcpStream::connect(SocketAddr::from((ip, srv.addr.port()))).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut s, true).expect("response")
}

#[test]
fn stats_refuse_networks_not_allowed() {
    // Loopback is always allowed, so the refusal needs a client on another
    // address: this host's own non-loopback address, bound on all interfaces.
    let Some(ip) = local_non_loopback_v4() else {
        if std::env::var_os("CI").is_some() {
            panic!("no non-loopback IPv4 address on this host to test the refusal from");
        }
        eprintln!("skipped: no non-loopback IPv4 address on this host");
        return;
    };
    let srv = TestServer::start(&[
        "--bind",
        "0.0.0.0",
        "--stats-path",
        "/s",
        "--stats-allow",
        "10.0.0.0/8",
        "--stats-allow",
        "fd00::/8",
    ]);
    let refused = get_via(&srv, ip, "/s");
    assert_eq!(refused.status, 403, "stats served to {ip}");
    assert!(!String::from_utf8_lossy(&refused.body).contains("Active connections"));
    // The same client may read the files, and loopback may read the stats.
    assert_eq!(get_via(&srv, ip, "/hello.txt").status, 200);
    assert_eq!(srv.get("/s").status, 200);

    // Its network on the allow-list lets it in.
    let net = format!("{ip}/32");
    let srv = TestServer::start(&[
        "--bind",
        "0.0.0.0",
        "--stats-path",
        "/s",
        "--stats-allow",
        &net,
    ]);
    let allowed = get_via(&srv, ip, "/s");
    assert_eq!(
        allowed.status, 200,
        "stats refused to {ip} with {net} allowed"
    );
    assert!(String::from_utf8_lossy(&allowed.body).starts_with("Active connections: "));
}

#[test]
fn access_log_has_one_combined_line_per_request() {
    let srv = TestServer::start(&[]);
    srv.request(b"GET /hello.txt?x=1 HTTP/1.1\r\nHost: t\r\nReferer: http://r/\r\nUser-Agent: probe \"1\"\r\nConnection: close\r\n\r\n");
    srv.get("/missing");
    assert!(
        wait_until(Duration::from_secs(5), || srv
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
    // Each worker hands its lines to the log thread in batches, so two requests
    // served by two workers may be logged in either order.
    let first = lines
        .iter()
        .find(|l| l.contains("/hello.txt"))
        .unwrap_or_else(|| panic!("no /hello.txt line in {log}"));
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.contains(
            " +0000] \"GET /hello.txt?x=1 HTTP/1.1\" 200 12 \"http://r/\" \"probe \\x221\\x22\""
        ),
        "{first}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /missing HTTP/1.1\" 404 ")),
        "{log}"
    );
    assert!(srv.log("server.log").contains("listening on"));
}

#[test]
fn access_log_off_and_close_log() {
    let mut srv = TestServer::start(&["--access-log", "off"]);
    srv.assert_alive();
    // A clean stop writes whatever was queued: after it, nothing more can come.
    assert!(srv.terminate().expect("exits").success());
    assert!(srv.log("server.log").contains("stopped"));
    assert!(!srv.logs.path().join("access.log").exists());
    let srv = TestServer::start(&["-c"]);
    srv.assert_alive();
    assert!(!srv.logs.path().join("server.log").exists());
}

#[test]
fn sighup_reopens_moved_logs() {
    let srv = TestServer::start(&["--log-async"]);
    srv.assert_alive();
    assert!(wait_until(Duration::from_secs(5), || !srv
        .log("access.log")
        .is_empty()));
    let dir = srv.logs.path();
    std::fs::rename(dir.join("access.log"), dir.join("access.log.1")).unwrap();
    std::fs::rename(dir.join("server.log"), dir.join("server.log.1")).unwrap();
    send_signal(srv.child.id(), "HUP");
    assert!(
        wait_until(Duration::from_secs(5), || dir.join("server.log").exists()),
        "server.log not recreated"
    );
    srv.assert_alive();
    assert!(wait_until(Duration::from_secs(5), || srv
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
    assert!(wait_until(Duration::from_secs(5), || {
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

#[test]
fn out_of_descriptors_pauses_accepting_without_spinning() {
    out_of_descriptors("1");
}

#[test]
fn out_of_descriptors_pauses_every_reactor_and_logs_once() {
    out_of_descriptors("3");
}

fn out_of_descriptors(reactors: &str) {
    if !require_tool("prlimit") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    // 40 descriptors in all: a few for the server itself, the rest for clients.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(["--nofile=40:40", "--", env!("CARGO_BIN_EXE_hearth")]);
    let srv = TestServer::launch(cmd, root, &["--max-conns", "1000", "--reactors", reactors]);
    let (addr, pid) = (srv.addr, srv.child.id());
    // Far more connections than descriptors: the kernel queues them in the backlog.
    let held: Vec<_> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || srv
            .log("server.log")
            .contains("pausing accepts")),
        "never ran out of descriptors: {}",
        srv.log("server.log")
    );
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(pid) - before;
    assert!(spent < 30, "reactor spun at EMFILE: {spent} ticks in 1 s");
    drop(held);
    // Once descriptors free up it accepts again and serves.
    let ok = wait_until(Duration::from_secs(10), || {
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

// ---------------------------------------------------------------------------
// the command line as a new user meets it
// ---------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// Runs the binary with `args` in `cwd` until it exits (it must, quickly).
fn run_bin(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hearth");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_log_level_lists_the_levels() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_bin(dir.path(), &["--log-level", "loud"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("off, error, warn, info, debug, trace"),
        "{err}"
    );
    // Any case is accepted, as before.
    let (code, _, err) = run_bin(dir.path(), &["--log-level", "DEBUG", "--version"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn zero_threads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_bin(dir.path(), &["--threads", "0", "-c"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--threads") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn a_missing_relative_root_is_reported_with_its_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_bin(dir.path(), &["--root", "site", "-c"]);
    assert_eq!(code, Some(2), "{err}");
    let abs = dir.path().canonicalize().unwrap().join("site");
    assert!(err.contains(&abs.display().to_string()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    std::fs::write(dir.path().join("site"), "a file").unwrap();
    let (code, _, err) = run_bin(dir.path(), &["--root", "site", "-c"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn help_groups_the_flags_and_tells_examples_signals_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, help, _) = run_bin(dir.path(), &["--help"]);
    assert_eq!(code, Some(0));
    for want in [
        "Listening:",
        "Files:",
        "HTTP:",
        "Limits:",
        "Logging:",
        "Operations:",
        "Examples:",
        "SIGTERM",
        "SIGHUP",
        "Exit codes:",
        "--timeout <SECONDS>",
        "--max-body <BYTES>",
        "--root <DIR>",
        "--stats-path <PATH>",
        "--stats-allow <CIDR>",
        "--bind <ADDR>",
        "--threads <N>",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
}

/// Starts the binary bound to `bind` and returns its first two stdout lines.
fn startup_lines(bind: &str) -> Option<(String, String)> {
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--bind", bind, "--port", "0", "-c", "--stats-path", "/_s"])
        .arg("--root")
        .arg(root.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn hearth");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    use std::io::BufRead;
    let ok = out.read_line(&mut first).is_ok_and(|n| n > 0)
        && out.read_line(&mut second).is_ok_and(|n| n > 0);
    let _ = child.kill();
    let _ = child.wait();
    ok.then_some((first, second))
}

#[test]
fn the_listening_line_gives_an_address_a_person_can_open() {
    let (line, settings) = startup_lines("0.0.0.0").expect("startup lines");
    let url = line
        .strip_prefix("hearth listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{line:?}"));
    let port: u16 = url
        .split_whitespace()
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(
        line.trim_end()
            .ends_with(&format!("(bound to 0.0.0.0:{port})")),
        "{line:?}"
    );
    assert!(
        settings.starts_with("hearth settings: grace=10 health=/healthz stats=/_s threads="),
        "{settings:?}"
    );
    // A specific address is printed as it is.
    let (line, _) = startup_lines("127.0.0.1").expect("startup lines");
    assert!(!line.contains("bound to"), "{line:?}");
    // The IPv6 wildcard is reached through [::1] (where the host has IPv6).
    match startup_lines("::") {
        Some((line, _)) => assert!(
            line.starts_with("hearth listening on http://[::1]:")
                && line.contains("(bound to [::]:"),
            "{line:?}"
        ),
        None => eprintln!("skipped: no IPv6 on this host"),
    }
}

/// The value of the Prometheus sample `name` (labels included) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn prometheus_metrics_at_the_metrics_path() {
    let srv = TestServer::start(&["--metrics-path", "/metrics", "--stats-path", "/_stats"]);
    for _ in 0..3 {
        assert_eq!(srv.get("/hello.txt").status, 200);
    }
    srv.get("/missing");
    // A duration is recorded just after the response's last byte is written, so
    // the client can ask for the metrics a moment before it lands: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = srv.get("/metrics");
        let text = String::from_utf8_lossy(&r.body);
        let done = text.contains("hearth_request_duration_seconds_count")
            && sample(&text, "hearth_request_duration_seconds_count") >= 4.0;
        if done || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(sample(&text, "hearth_requests_total{code=\"2xx\"}") >= 3.0);
    assert!(sample(&text, "hearth_requests_total{code=\"4xx\"}") >= 1.0);
    assert!(sample(&text, "hearth_bytes_sent_total") > 0.0);
    assert!(sample(&text, "hearth_connections_active") >= 1.0);
    assert!(sample(&text, "hearth_connections_accepted_total") >= 5.0);
    assert_eq!(sample(&text, "hearth_workers"), 2.0);
    assert!(sample(&text, "hearth_reactor_connections{reactor=\"0\"}") >= 0.0);
    assert_eq!(sample(&text, "hearth_config_generation"), 1.0);
    let count = sample(&text, "hearth_request_duration_seconds_count");
    assert!(count >= 4.0, "{text}");
    assert_eq!(
        sample(&text, "hearth_request_duration_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    for name in [
        "hearth_requests_total counter",
        "hearth_request_duration_seconds histogram",
        "hearth_connections_active gauge",
        "hearth_compress_cache_hits_total counter",
    ] {
        assert!(text.contains(&format!("# TYPE {name}\n")), "{name}");
    }
    // The same from the statistics page.
    let r = srv.get("/_stats?format=prometheus");
    assert_eq!(r.status, 200);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("# TYPE hearth_bytes_sent_total counter"));
    // Off unless set.
    let plain = TestServer::start(&[]);
    assert_eq!(plain.get("/metrics").status, 404);
}

#[test]
fn metrics_follow_the_stats_allow_rules() {
    let Some(ip) = local_non_loopback_v4() else {
        eprintln!("skipped: no non-loopback IPv4 address on this host");
        return;
    };
    let args = ["--bind", "0.0.0.0", "--metrics-path", "/metrics"];
    let srv = TestServer::start(&args);
    assert_eq!(get_via(&srv, ip, "/metrics").status, 403);
    assert_eq!(srv.get("/metrics").status, 200);
    let net = format!("{ip}/32");
    let mut allowed = args.to_vec();
    allowed.extend(["--stats-allow", &net]);
    let srv = TestServer::start(&allowed);
    assert_eq!(get_via(&srv, ip, "/metrics").status, 200);
}

#[test]
fn an_unknown_stats_format_is_a_400_naming_the_formats() {
    let srv = TestServer::start(&["--stats-path", "/_stats"]);
    let r = srv.get("/_stats?format=prom");
    assert_eq!(r.status, 400);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("text, json and prometheus"), "{body}");
    assert_eq!(srv.get("/_stats?format=text").status, 200);
    assert_eq!(srv.get("/_stats?other=1").status, 200);
    let r = srv.get("/_stats?format=json");
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("\"config_generation\":1"));
}

#[test]
fn counters_survive_a_reload_and_the_generation_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hearth.toml");
    std::fs::write(&cfg, "cache-control = \"max-age=1\"\n").unwrap();
    let srv = TestServer::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--metrics-path",
        "/metrics",
    ]);
    for _ in 0..5 {
        srv.get("/hello.txt");
    }
    let metrics = || String::from_utf8(srv.get("/metrics").body).unwrap();
    let before = metrics();
    let ok = "hearth_requests_total{code=\"2xx\"}";
    std::fs::write(&cfg, "cache-control = \"max-age=2\"\n").unwrap();
    send_signal(srv.child.id(), "HUP");
    assert!(
        wait_until(Duration::from_secs(5), || sample(
            &metrics(),
            "hearth_config_generation"
        ) == 2.0),
        "the reload was not counted"
    );
    let after = metrics();
    assert!(
        sample(&after, ok) > sample(&before, ok),
        "{before}\n{after}"
    );
    assert!(sample(&after, "hearth_bytes_sent_total") > sample(&before, "hearth_bytes_sent_total"));
    assert!(
        sample(&after, "hearth_request_duration_seconds_count")
            >= sample(&before, "hearth_request_duration_seconds_count")
    );
    // A broken file: counted as failed, the reason on the statistics page.
    std::fs::write(&cfg, "cache-control = [\n").unwrap();
    send_signal(srv.child.id(), "HUP");
    assert!(wait_until(Duration::from_secs(5), || {
        sample(&metrics(), "hearth_config_reloads_failed_total") == 1.0
    }));
    assert_eq!(sample(&metrics(), "hearth_config_generation"), 2.0);
}
