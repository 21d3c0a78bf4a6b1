//! Test harness: starts the real `hearth` binary on an ephemeral loopback port with a
//! temporary document root, and speaks raw HTTP to it with socket timeouts.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Socket read/write timeout for every test connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server with its own root and log directory; killed on drop.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    pub logs: tempfile::TempDir,
}

/// Writes the small default test site into `root`.
pub fn populate(root: &Path) {
    std::fs::write(root.join("index.html"), b"<h1>index</h1>\n").unwrap();
    std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("style.css"), b"body{}\n").unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/index.html"), b"<p>sub</p>\n").unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
}

impl TestServer {
    /// Starts a server on the default test site with extra flags.
    pub fn start(args: &[&str]) -> TestServer {
        Self::start_with(args, populate)
    }

    /// Starts a server after `setup` has filled the root.
    pub fn start_with(args: &[&str], setup: impl FnOnce(&Path)) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        setup(root.path());
        Self::start_in(root, args)
    }

    /// Starts a server on an existing root (e.g. to restart on the same files).
    pub fn start_in(root: tempfile::TempDir, args: &[&str]) -> TestServer {
        Self::launch(Command::new(env!("CARGO_BIN_EXE_hearth")), root, args)
    }

    /// Starts the server with `cmd`, which must end by naming the binary (so a
    /// wrapper such as `prlimit ... --` can come first), on `root`.
    pub fn launch(mut cmd: Command, root: tempfile::TempDir, args: &[&str]) -> TestServer {
        let logs = tempfile::tempdir().unwrap();
        let threads: &[&str] = if args.iter().any(|a| *a == "--threads" || *a == "-t") {
            &[]
        } else {
            &["--threads", "2"]
        };
        let bind: &[&str] = if args.contains(&"--bind") {
            &[]
        } else {
            &["--bind", "127.0.0.1"]
        };
        let mut child = cmd
            .args(bind)
            .args(["--port", "0"])
            .args(threads)
            .arg("--root")
            .arg(root.path())
            .arg("--log-dir")
            .arg(logs.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hearth");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read startup line");
        // "hearth listening on http://ADDR", maybe followed by " (bound to ...)".
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .map(|a| a.trim_end_matches('/'))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("no address in startup line {line:?}; stderr: {err}")
            });
        TestServer {
            child,
            addr,
            root,
            logs,
        }
    }

    /// Path of a file in the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A new connection with timeouts set.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn request(&self, raw: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(raw).unwrap();
        read_response(&mut s, !raw.starts_with(b"HEAD")).expect("response")
    }

    /// GET `path` with HTTP/1.1 and Connection: close.
    pub fn get(&self, path: &str) -> Response {
        self.request(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// Asserts the server still serves a normal request (after a hostile one).
    pub fn assert_alive(&self) {
        let r = self.get("/hello.txt");
        assert_eq!(r.status, 200, "liveness probe failed");
        assert_eq!(r.body, b"hello world\n");
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        send_signal(self.child.id(), "TERM");
        wait_exit(&mut self.child, Duration::from_secs(15))
    }

    /// `Active connections: N` from the text statistics page at `/_stats` (the
    /// server must run with `--stats-path /_stats`); counts the asking connection.
    pub fn active_connections(&self) -> i64 {
        let r = self.get("/_stats");
        assert_eq!(r.status, 200, "start the server with --stats-path /_stats");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("Active connections: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no active count in {text}"))
    }

    /// The server's log directory contents of `name`.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` with `Host: host` and `extra` header lines (each ending in CRLF) on a
/// keep-alive connection, and reads the response.
pub fn get_on(s: &mut TcpStream, path: &str, host: &str, extra: &str) -> Response {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes())
        .unwrap();
    read_response(s, true).expect("response")
}

/// The binary on a loopback port chosen by the kernel, without log files, serving
/// `root`; add flags and run it.
pub fn hearth_on(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(["--bind", "127.0.0.1", "--port", "0", "-c", "--root"])
        .arg(root);
    cmd
}

/// Sends a signal with the shell's built-in `kill` (keeps tests free of unsafe code,
/// and needs nothing beyond an essential Debian system).
pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {pid}"))
        .status();
}

/// Polls `cond` every 20 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when `tool` is on PATH (or in /usr/sbin, where haproxy and nginx live).
/// When it is missing: under CI (the `CI` variable set, where `.ci/run` installs
/// every tool) the test fails; elsewhere it prints `skipped: TOOL not installed`
/// and the caller returns early.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {tool} || test -x /usr/sbin/{tool} || test -x /sbin/{tool}"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is not installed, and CI is set: .ci/run installs it");
    }
    eprintln!("skipped: {tool} not installed");
    false
}

/// CPU time (user + system, in clock ticks) process `pid` has used; 0 once it is
/// gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// Reads until the server closes (EOF or reset) or the read timeout passes.
/// Returns the bytes and whether the connection was seen closed.
pub fn read_until_close(s: &mut impl Read) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// Splits a byte stream into the responses it holds (`heads[i]` is true if response
/// `i` answers a HEAD request, so it has no body; missing entries mean false).
/// Panics on trailing bytes that are not a whole response.
pub fn parse_all(bytes: &[u8], heads: &[bool]) -> Vec<Response> {
    let mut cur = std::io::Cursor::new(bytes);
    let mut out = Vec::new();
    while (cur.position() as usize) < bytes.len() {
        let body = !heads.get(out.len()).copied().unwrap_or(false);
        match read_response(&mut cur, body) {
            Ok(r) => out.push(r),
            Err(e) => panic!(
                "trailing bytes that are not a response ({e}): {:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }
    out
}

/// Sends `raw` on a new connection and returns every byte the server sends before
/// it closes the connection.
pub fn exchange(server: &TestServer, raw: &[u8]) -> Vec<u8> {
    let mut s = server.connect();
    s.write_all(raw).unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    assert!(closed, "no close after {} bytes", bytes.len());
    bytes
}

/// One request with `Connection: close`: the single response, and asserts that
/// nothing follows it (no stray body bytes after a 304 or 204, say).
pub fn one(server: &TestServer, raw: &str) -> Response {
    let bytes = exchange(server, raw.as_bytes());
    let rs = parse_all(&bytes, &[raw.starts_with("HEAD")]);
    assert_eq!(
        rs.len(),
        1,
        "expected exactly one response to {raw:?}, got {rs:#?}"
    );
    rs.into_iter().next().unwrap()
}

/// A GET of `path` with extra header lines (each ending in CRLF), closing after.
pub fn get_with(server: &TestServer, path: &str, extra: &str) -> Response {
    one(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// Waits up to `limit` for a child to exit.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Waits up to `limit` for a child to exit; kills and reaps it if it does not.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let status = wait_exit(child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// True if the response says the connection closes.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one response from `s`. `body` is false for HEAD (no body follows).
/// Interim 1xx responses are skipped.
pub fn read_response(s: &mut impl Read, body: bool) -> std::io::Result<Response> {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("eof in head after {head:?}"),
                ));
            }
            head.push(byte[0]);
            if head.len() > 64 * 1024 {
                panic!("response head too large");
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        let mut headers = HashMap::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (n, v) = l.split_once(':').expect("header colon");
            let prev = headers.insert(n.trim().to_ascii_lowercase(), v.trim().to_string());
            assert!(
                prev.is_none() || n.eq_ignore_ascii_case("vary"),
                "duplicate header {n}"
            );
        }
        if (100..200).contains(&status) {
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let no_body = !body || status == 204 || status == 304;
        if !no_body {
            if let Some(len) = resp.header("content-length") {
                let len: usize = len.parse().unwrap();
                resp.body = vec![0; len];
                s.read_exact(&mut resp.body)?;
            } else {
                s.read_to_end(&mut resp.body)?;
            }
        }
        return Ok(resp);
    }
}

/// True if the peer closed the connection (EOF or reset) within the timeout.
pub fn is_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Half-closes the writing side.
pub fn half_close(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}

// Helpers for hostile-client tests.

/// Sends `raw` and expects exactly one response with `status`, then a close.
pub fn expect_one_then_close(server: &TestServer, raw: &[u8], status: u16) {
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

/// Fails if the server process has exited.
pub fn assert_running(server: &mut TestServer) {
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server process exited"
    );
}

/// A GET on a new connection; returns the status and how long it took.
pub fn timed_get(server: &TestServer, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = server.get(path);
    (r.status, t.elapsed())
}

/// The size of `big.bin` in [`big_site`].
pub const BIG: usize = 32 << 20;

/// The default site plus a sparse `big.bin` of [`BIG`] bytes.
pub fn big_site(root: &Path) {
    populate(root);
    let f = std::fs::File::create(root.join("big.bin")).unwrap();
    // Sparse: reads as zeros, costs no disk.
    f.set_len(BIG as u64).unwrap();
}

/// Resident set size of process `pid` in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes `text` as `hearth.toml` in `dir`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("hearth.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A directory holding `index.html` with `body`.
pub fn index_site(body: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("index.html"), body).unwrap();
    d
}

/// Runs the binary to completion (`--check` never starts serving).
pub fn run_hearth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .expect("run hearth")
}
