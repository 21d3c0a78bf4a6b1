//! HTTPS with real clients: curl, `openssl s_client`, Python's `ssl`, and a rustls
//! client for raw-byte exchanges (pipelining, stalls). Certificates are made at test
//! time with the `openssl` command into a temporary directory.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls_pki_types::pem::PemObject;

/// A throwaway certificate authority and the leaf certificates it signs.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A new CA (ECDSA P-256), or `None` when openssl is missing.
    fn new() -> Option<Pki> {
        if !require_tool("openssl") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=hearth test CA",
            ],
        );
        Some(Pki { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A P-256 leaf `NAME.pem` / `NAME.key` (PKCS#8) for `cn`, valid for `days`,
    /// naming `cn`, localhost and 127.0.0.1.
    fn leaf(&self, name: &str, cn: &str, days: u32) -> (PathBuf, PathBuf) {
        let key = format!("{name}.key");
        openssl(
            self.dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ],
        );
        self.sign(name, cn, days, &key)
    }

    /// Signs `key` into `NAME.pem` for `cn`.
    fn sign(&self, name: &str, cn: &str, days: u32, key: &str) -> (PathBuf, PathBuf) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.path(&ext),
            format!(
                "basicConstraints=CA:FALSE\nsubjectAltName=DNS:{cn},DNS:localhost,IP:127.0.0.1\n"
            ),
        )
        .unwrap();
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        openssl(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-key",
                key,
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &csr,
            ],
        );
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
        (self.path(&pem), self.path(key))
    }
}

/// A running server with HTTP and HTTPS ports.
struct Server {
    child: Child,
    http: SocketAddr,
    https: SocketAddr,
    root: tempfile::TempDir,
    logs: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr_after(line: &str, scheme: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(scheme))
        .and_then(|a| a.trim_end_matches('/').parse().ok())
}

/// Starts hearth on loopback, both ports chosen by the kernel, serving the test
/// site (plus `setup`) with `cert`/`key` and extra `args`.
fn start(cert: &Path, key: &Path, args: &[&str], setup: impl FnOnce(&Path)) -> Server {
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    setup(root.path());
    let logs = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", "0"])
        .args(["--threads", "2", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
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
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut http, mut https) = (None, None);
    let mut line = String::new();
    while http.is_none() || https.is_none() {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("hearth did not start: {err}");
        }
        http = http.or(addr_after(&line, "http://"));
        https = https.or(addr_after(&line, "https://"));
    }
    // Keep reading stdout so the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Server {
        child,
        http: http.unwrap(),
        https: https.unwrap(),
        root,
        logs,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }

    fn tcp(&self, addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    /// A rustls client connection to the TLS port, asking for `sni`.
    fn tls(
        &self,
        pki: &Pki,
        sni: &str,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(pki.path("ca.pem")).unwrap();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(hearth::config::tls::provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        rustls::StreamOwned::new(conn, self.tcp(self.https))
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// Runs curl with the test CA; returns (success, stdout, stderr).
fn curl(pki: &Pki, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(pki.path("ca.pem"))
        .args(args)
        .output()
        .expect("run curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openssl s_client` against the TLS port with extra `args`; returns its output.
fn s_client(srv: &Server, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &srv.https.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn big(root: &Path) {
    let data: Vec<u8> = (0..(10u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), data).unwrap();
}

#[test]
fn curl_gets_files_ranges_conditionals_and_keep_alive_over_https() {
    let Some(pki) = Pki::new() else { return };
    if !require_tool("curl") {
        return;
    }
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &["--stats-path", "/_stats"], |root| {
        big(root);
        std::fs::write(root.join("app.js"), b"console.log(1)\n").unwrap();
        std::fs::write(root.join("app.js.gz"), b"gzipped bytes").unwrap();
    });
    // Two requests, one connection, each body intact.
    let (ok, out, err) = curl(
        &pki,
        &[
            "-w",
            "|%{http_code}|%{num_connects}|%{ssl_verify_result}\n",
            &srv.url("/hello.txt"),
            &srv.url("/hello.txt"),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "hello world\n|200|1|0\nhello world\n|200|0|0\n");
    // 10 MiB through the chunked TLS writer.
    let got = pki.path("got.bin");
    let (ok, _, err) = curl(&pki, &["-o", got.to_str().unwrap(), &srv.url("/big.bin")]);
    assert!(ok, "{err}");
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(srv.root.path().join("big.bin")).unwrap()
    );
    // A range, HEAD, a conditional request, a precompressed variant.
    let (_, out, _) = curl(&pki, &["-r", "5-9", &srv.url("/hello.txt")]);
    assert_eq!(out, " worl");
    let (_, out, _) = curl(&pki, &["-I", &srv.url("/hello.txt")]);
    assert!(out.contains("content-length: 12") || out.contains("Content-Length: 12"));
    assert_etag_revalidates_to_304(&pki, &srv.url("/hello.txt"));
    let (_, out, _) = curl(&pki, &["-H", "Accept-Encoding: gzip", &srv.url("/app.js")]);
    assert_eq!(out, "gzipped bytes");
    let (_, code, _) = curl(
        &pki,
        &["-o", "/dev/null", "-w", "%{http_code}", &srv.url("/nope")],
    );
    assert_eq!(code, "404");
    assert_stats_count_the_https_requests(&pki, &srv);
}

/// curl fetches `url`'s ETag, and a request with If-None-Match on it gets 304.
fn assert_etag_revalidates_to_304(pki: &Pki, url: &str) {
    let (_, etag, _) = curl(pki, &["-o", "/dev/null", "-w", "%header{etag}", url]);
    let (_, code, _) = curl(
        pki,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("If-None-Match: {etag}"),
            url,
        ],
    );
    assert_eq!(code, "304");
}

/// The statistics (at /_stats) count HTTPS requests like any others: at least
/// the eight TLS 1.3 handshakes made before, none of TLS 1.2, no failures.
fn assert_stats_count_the_https_requests(pki: &Pki, srv: &Server) {
    let (_, stats, _) = curl(pki, &[&srv.url("/_stats")]);
    assert!(stats.contains("Active connections"), "{stats}");
    assert!(
        stats.contains("tls_handshakes: tls1.2=0 tls1.3="),
        "{stats}"
    );
    assert!(!stats.contains("tls1.3=0\n"), "{stats}");
    assert!(stats.contains("tls_failures: 0"), "{stats}");
    // And the Prometheus exposition of the same page.
    let (_, text, _) = curl(pki, &[&srv.url("/_stats?format=prometheus")]);
    let sample = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
    };
    assert!(
        sample("hearth_tls_handshakes_total{version=\"1.3\"}") >= 8,
        "{text}"
    );
    assert_eq!(sample("hearth_tls_failures_total"), 0);
    assert!(text.contains("# TYPE hearth_tls_handshakes_total counter\n"));
}

#[test]
fn pipelined_and_keep_alive_requests_over_one_tls_connection() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &[], big);
    let mut s = srv.tls(&pki, "localhost");
    let one = b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut burst = Vec::new();
    for _ in 0..20 {
        burst.extend_from_slice(one);
    }
    burst.extend_from_slice(b"HEAD /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    burst.extend_from_slice(
        b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1000000-1000009\r\n\r\n",
    );
    s.write_all(&burst).unwrap();
    s.flush().unwrap();
    for _ in 0..20 {
        let r = read_response(&mut s, true).unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hello world\n"[..]));
    }
    let head = read_response(&mut s, false).unwrap();
    assert_eq!(head.header("content-length"), Some("10485760"));
    let range = read_response(&mut s, true).unwrap();
    assert_eq!(range.status, 206);
    let expect: Vec<u8> = (1_000_000u32..1_000_010).map(|i| (i % 251) as u8).collect();
    assert_eq!(range.body, expect);
    // A whole 10 MiB body, then the connection is still usable.
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.body.len(), 10 << 20);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    s.write_all(one).unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn request_bodies_and_100_continue_over_tls() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &[], |_| {});
    let mut s = srv.tls(&pki, "localhost");
    // A body larger than one record, read and discarded; the connection goes on.
    let body = vec![b'x'; 100_000];
    let head = format!(
        "OPTIONS /hello.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 204);
    // Expect: 100-continue gets its interim response through TLS first.
    s.write_all(
        b"OPTIONS / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 204);
    // A chunked body, then a GET on the same connection.
    s.write_all(
        b"OPTIONS / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 204);
    assert_eq!(
        get_tls(&mut s, "/hello.txt", "localhost").body,
        b"hello world\n"
    );
}

#[test]
fn openssl_sees_tls12_and_13_only_alpn_http11_and_sni() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &[], |_| {});
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let v13 = s_client(
        &srv,
        &[
            "-tls1_3",
            "-CAfile",
            ca,
            "-alpn",
            "http/1.1",
            "-servername",
            "localhost",
        ],
    );
    assert!(v13.contains("TLSv1.3"), "{v13}");
    assert!(v13.contains("ALPN protocol: http/1.1"), "{v13}");
    assert!(v13.contains("Verify return code: 0 (ok)"), "{v13}");
    let v12 = s_client(&srv, &["-tls1_2", "-CAfile", ca]);
    assert!(v12.contains("Protocol  : TLSv1.2"), "{v12}");
    assert!(v12.contains("ECDHE-ECDSA-"), "{v12}");
    // TLS 1.2 without tickets resumes from the server-side session cache.
    let again = s_client(&srv, &["-tls1_2", "-no_ticket", "-reconnect"]);
    assert!(again.contains("Reused, TLSv1.2"), "{again}");
    for old in ["-tls1_1", "-tls1"] {
        let out = s_client(&srv, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]);
        assert!(out.contains("Cipher is (NONE)"), "{old}: {out}");
        assert!(out.contains("alert"), "{old}: {out}");
    }
    // The server keeps serving after the refusals.
    let mut s = srv.tls(&pki, "localhost");
    assert_eq!(get_tls(&mut s, "/hello.txt", "localhost").status, 200);
}

fn get_tls(s: &mut (impl Read + Write), path: &str, host: &str) -> Response {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    read_response(s, true).expect("response")
}

#[test]
fn python_ssl_resumes_sessions_with_tls12_and_tls13() {
    let Some(pki) = Pki::new() else { return };
    if !require_tool("python3") {
        return;
    }
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &[], |_| {});
    let script = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ctx.maximum_version = version
    session = None
    for i in range(2):
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200"), data
                assert data.endswith(b"hello world\n"), data
                print(s.version(), s.selected_alpn_protocol(), s.session_reused)
                session = s.session
"#;
    let out = Command::new("python3")
        .args(["-c", script, &srv.https.port().to_string()])
        .arg(pki.path("ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "TLSv1.2 None False",
            "TLSv1.2 None True",
            "TLSv1.3 None False",
            "TLSv1.3 None True"
        ]
    );
}

/// Sent `bytes` on the HTTPS port, the server answers a TLS alert record
/// (content type 21) and closes.
fn assert_alert_and_close(srv: &Server, bytes: &[u8]) {
    let mut s = srv.tcp(srv.https);
    s.write_all(bytes).unwrap();
    let (got, closed) = read_until_close(&mut s);
    assert_eq!(got.first(), Some(&0x15), "{got:?}");
    assert!(closed);
}

#[test]
fn plain_http_garbage_and_stalled_handshakes_end_cleanly() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &["--header-timeout", "1"], |_| {});
    // Plain HTTP on the TLS port: nginx's 400, unencrypted, then close.
    let mut s = srv.tcp(srv.https);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (bytes, closed) = read_until_close(&mut s);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("plain HTTP request was sent to the HTTPS port"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{text:?}"
    );
    assert!(closed);
    // Garbage: a TLS alert record (content type 21), then close.
    assert_alert_and_close(&srv, &[0x01; 300]);
    // A handshake message longer than any allowed: alert and close.
    assert_alert_and_close(&srv, b"\x16\x03\x01\x00\x05\x01\xff\xff\xffgarbage");
    // An oversized record header: alert and close.
    assert_alert_and_close(&srv, &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01]);
    // A handshake that never finishes is closed by the header timeout.
    let mut s = srv.tcp(srv.https);
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01]).unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_close(&mut s);
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Hundreds of abandoned handshakes leave no descriptor behind.
    std::thread::sleep(Duration::from_millis(200));
    let before = srv.fds();
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = srv.tcp(srv.https);
        let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);
        held.push(s);
    }
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || srv.fds() <= before),
        "{} descriptors, {before} before",
        srv.fds()
    );
    let mut s = srv.tls(&pki, "localhost");
    assert_eq!(get_tls(&mut s, "/hello.txt", "localhost").status, 200);
}

#[test]
fn redirect_https_sends_308_to_the_same_target() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    // A key file others can read: the server starts, and says so.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let srv = start(&cert, &key, &["--redirect-https"], |_| {});
    assert!(wait_until(Duration::from_secs(5), || srv
        .log("server.log")
        .contains("readable by others")));
    let mut s = srv.tcp(srv.http);
    let r = get_on(&mut s, "/a/b.txt?x=1&y=2", "example.test:8080", "");
    assert_eq!(r.status, 308);
    let expect = format!("https://example.test:{}/a/b.txt?x=1&y=2", srv.https.port());
    assert_eq!(r.header("location"), Some(expect.as_str()));
    let r = get_on(&mut s, "/", "[::1]", "");
    assert_eq!(
        r.header("location"),
        Some(format!("https://[::1]:{}/", srv.https.port()).as_str())
    );
    // HTTPS itself answers.
    let mut t = srv.tls(&pki, "localhost");
    assert_eq!(get_tls(&mut t, "/hello.txt", "localhost").status, 200);
}

/// Writes a configuration file with a vhost `a.test` that has its own certificate
/// and a vhost `b.test` that has none.
fn vhost_config(pki: &Pki, srv_root: &Path, a_cert: &Path, a_key: &Path) -> PathBuf {
    let a_root = srv_root.join("a");
    let b_root = srv_root.join("b");
    std::fs::create_dir_all(&a_root).unwrap();
    std::fs::create_dir_all(&b_root).unwrap();
    std::fs::write(a_root.join("who.txt"), b"a\n").unwrap();
    std::fs::write(b_root.join("who.txt"), b"b\n").unwrap();
    let file = pki.path("hearth.toml");
    std::fs::write(
        &file,
        format!(
            "[[vhost]]\nhost = \"a.test\"\nroot = {:?}\ntls-cert = {:?}\ntls-key = {:?}\n\n\
             [[vhost]]\nhost = \"b.test\"\nroot = {:?}\n",
            a_root, a_cert, a_key, b_root
        ),
    )
    .unwrap();
    file
}

fn subject(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or("")
        .trim()
}

#[test]
fn sni_picks_the_vhost_certificate_and_a_mismatched_host_gets_421() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("top", "localhost", 30);
    let (a_cert, a_key) = pki.leaf("a", "a.test", 30);
    let tmp = tempfile::tempdir().unwrap();
    let config = vhost_config(&pki, tmp.path(), &a_cert, &a_key);
    let srv = start(&cert, &key, &["--config", config.to_str().unwrap()], |_| {});
    let ca = pki.path("ca.pem");
    let out = s_client(
        &srv,
        &["-servername", "a.test", "-CAfile", ca.to_str().unwrap()],
    );
    assert!(subject(&out).contains("CN = a.test"), "{out}");
    let out = s_client(&srv, &["-noservername"]);
    assert!(subject(&out).contains("CN = localhost"), "{out}");
    let out = s_client(&srv, &["-servername", "unknown.test"]);
    assert!(subject(&out).contains("CN = localhost"), "{out}");
    // SNI a.test, Host a.test: its own site.
    let mut s = srv.tls(&pki, "a.test");
    assert_eq!(get_tls(&mut s, "/who.txt", "a.test").body, b"a\n");
    // SNI a.test, Host b.test (which has the top-level certificate): 421.
    let r = get_tls(&mut s, "/who.txt", "b.test");
    assert_eq!(r.status, 421);
    // SNI localhost (top-level certificate), Host b.test: same certificate, served.
    let mut s = srv.tls(&pki, "localhost");
    assert_eq!(get_tls(&mut s, "/who.txt", "b.test").body, b"b\n");
    // Host a.test on a connection that got the top-level certificate: 421.
    assert_eq!(get_tls(&mut s, "/who.txt", "a.test").status, 421);
}

#[test]
fn sighup_reloads_certificates_and_keeps_them_when_the_new_ones_fail() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let live_cert = pki.path("live.pem");
    let live_key = pki.path("live.key");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let srv = start(&live_cert, &live_key, &[], |_| {});
    let mut open = srv.tls(&pki, "localhost");
    assert_eq!(get_tls(&mut open, "/hello.txt", "localhost").status, 200);
    let serial = |srv: &Server| {
        let out = s_client(srv, &["-servername", "localhost"]);
        subject(&out).to_string()
    };
    assert!(serial(&srv).contains("CN = localhost"));
    // A new certificate for another name: new handshakes get it.
    let (new_cert, new_key) = pki.leaf("renewed", "renewed.test", 30);
    std::fs::copy(&new_cert, &live_cert).unwrap();
    std::fs::copy(&new_key, &live_key).unwrap();
    send_signal(srv.child.id(), "HUP");
    assert!(wait_until(Duration::from_secs(5), || serial(&srv)
        .contains("CN = renewed.test")));
    // The connection opened before keeps working.
    assert_eq!(get_tls(&mut open, "/hello.txt", "localhost").status, 200);
    // A broken certificate: the running one stays, one error names the file.
    std::fs::write(&live_cert, b"not a certificate\n").unwrap();
    send_signal(srv.child.id(), "HUP");
    assert!(wait_until(Duration::from_secs(5), || srv
        .log("server.log")
        .contains("reload of TLS certificates failed")));
    let log = srv.log("server.log");
    assert!(log.contains(live_cert.to_str().unwrap()), "{log}");
    assert!(serial(&srv).contains("CN = renewed.test"));
    assert!(!log.contains("PRIVATE KEY"));
}

#[test]
fn sighup_with_a_config_file_reloads_vhost_certificates() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("top", "localhost", 30);
    let (a_cert, a_key) = pki.leaf("a", "a.test", 30);
    let (a2_cert, a2_key) = pki.leaf("a2", "a-renewed.test", 30);
    let tmp = tempfile::tempdir().unwrap();
    let config = vhost_config(&pki, tmp.path(), &a_cert, &a_key);
    let srv = start(&cert, &key, &["--config", config.to_str().unwrap()], |_| {});
    let a = || subject(&s_client(&srv, &["-servername", "a.test"])).to_string();
    assert!(a().contains("CN = a.test"));
    // The file now names other files for the vhost.
    vhost_config(&pki, tmp.path(), &a2_cert, &a2_key);
    send_signal(srv.child.id(), "HUP");
    assert!(wait_until(Duration::from_secs(5), || a()
        .contains("CN = a-renewed.test")));
    // The top-level certificate is unchanged.
    let out = s_client(&srv, &["-noservername"]);
    assert!(subject(&out).contains("CN = localhost"), "{out}");
    assert!(srv.log("server.log").contains("TLS certificates reloaded"));
}

fn check(args: &[&str]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--check")
        .arg("--root")
        .arg(root.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_loads_keys_of_every_format_and_refuses_mismatches() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let (other_cert, _) = pki.leaf("other", "other.test", 30);
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let (code, out) = check(&["--tls-cert", &arg(&cert), "--tls-key", &arg(&key)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("configuration ok"));
    // SEC1 EC and PKCS#1 RSA keys load too.
    openssl(
        pki.dir.path(),
        &["ec", "-in", "leaf.key", "-out", "leaf.sec1.key"],
    );
    assert!(std::fs::read_to_string(pki.path("leaf.sec1.key"))
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    let (code, out) = check(&[
        "--tls-cert",
        &arg(&cert),
        "--tls-key",
        &arg(&pki.path("leaf.sec1.key")),
    ]);
    assert_eq!(code, Some(0), "{out}");
    openssl(
        pki.dir.path(),
        &["genrsa", "-traditional", "-out", "rsa.key", "2048"],
    );
    assert!(std::fs::read_to_string(pki.path("rsa.key"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    let (rsa_cert, rsa_key) = pki.sign("rsa", "rsa.test", 30, "rsa.key");
    let (code, out) = check(&["--tls-cert", &arg(&rsa_cert), "--tls-key", &arg(&rsa_key)]);
    assert_eq!(code, Some(0), "{out}");
    // A key for another certificate: exit 2, naming the key file.
    let (code, out) = check(&["--tls-cert", &arg(&other_cert), "--tls-key", &arg(&key)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("does not match") && out.contains(&arg(&key)),
        "{out}"
    );
    // A vhost whose key is not its certificate's: exit 2, naming the vhost's key.
    let tmp = tempfile::tempdir().unwrap();
    let config = vhost_config(&pki, tmp.path(), &other_cert, &key);
    let (code, out) = check(&[
        "--config",
        &arg(&config),
        "--tls-cert",
        &arg(&cert),
        "--tls-key",
        &arg(&key),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("does not match") && out.contains(&arg(&other_cert)),
        "{out}"
    );
}

#[test]
fn check_refuses_missing_tls_files_and_a_cert_without_its_key() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    // Unreadable or missing files: exit 2, naming the file.
    let (code, out) = check(&["--tls-cert", "/nonexistent/c.pem", "--tls-key", &arg(&key)]);
    assert_eq!(code, Some(2));
    assert!(out.contains("/nonexistent/c.pem"), "{out}");
    // One without the other.
    let (code, _) = check(&["--tls-cert", &arg(&cert)]);
    assert_eq!(code, Some(2));
}

#[test]
fn check_warns_of_an_expiring_cert_and_a_key_others_can_read() {
    let Some(pki) = Pki::new() else { return };
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    // Expiring soon, and a key others can read: warnings, still ok.
    let (soon, soon_key) = pki.leaf("soon", "localhost", 3);
    std::fs::set_permissions(
        &soon_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let (code, out) = check(&["--tls-cert", &arg(&soon), "--tls-key", &arg(&soon_key)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("expires in 2 days") || out.contains("expires in 3 days"),
        "{out}"
    );
    assert!(out.contains("readable by others"), "{out}");
    assert!(!out.contains("BEGIN"), "{out}");
}

#[test]
fn graceful_stop_finishes_a_tls_download() {
    let Some(pki) = Pki::new() else { return };
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let mut srv = start(&cert, &key, &["--grace", "20"], big);
    let mut idle = srv.tls(&pki, "localhost");
    assert_eq!(get_tls(&mut idle, "/hello.txt", "localhost").status, 200);
    let mut dl = srv.tls(&pki, "localhost");
    dl.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    dl.read_exact(&mut first).unwrap();
    send_signal(srv.child.id(), "TERM");
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match dl.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) => panic!("download cut: {e} after {} bytes", rest.len()),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(all.len() - head_end, 10 << 20);
    let status = wait_exit(&mut srv.child, Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}

#[test]
fn json_access_log_names_the_tls_version() {
    let Some(pki) = Pki::new() else { return };
    if !require_tool("curl") {
        return;
    }
    let (cert, key) = pki.leaf("leaf", "localhost", 30);
    let srv = start(&cert, &key, &["--log-format", "json"], |_| {});
    let (ok, _, err) = curl(&pki, &["--tlsv1.3", &srv.url("/hello.txt?tls")]);
    assert!(ok, "{err}");
    let plain = format!("http://127.0.0.1:{}/hello.txt?plain", srv.http.port());
    let (ok, _, err) = curl(&pki, &[&plain]);
    assert!(ok, "{err}");
    assert!(wait_until(Duration::from_secs(10), || {
        srv.log("access.log").lines().count() >= 2
    }));
    let log = srv.log("access.log");
    let line = |q: &str| {
        log.lines()
            .find(|l| l.contains(q))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("\"query\":\"tls\"").contains("\"tls\":\"TLSv1.3\""),
        "{log}"
    );
    let plain = line("\"query\":\"plain\"");
    assert!(!plain.is_empty() && !plain.contains("\"tls\""), "{log}");
}
