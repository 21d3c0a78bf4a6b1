//! The configuration surface under hostile or careless input: header rules, the
//! authority of absolute-form targets, roots that move, descriptors per site, reload
//! cost, files rewritten while served, command-line lists and diagnostics.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `--check` on `text` (written as hearth.toml in `dir`): exit code and stderr.
fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    let cfg = write_config(dir, text);
    let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn get_host(srv: &TestServer, path: &str, host: &str) -> Response {
    srv.request(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn eventually(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(wait_until(limit, f), "timed out waiting for {what}");
}

#[test]
fn absolute_form_authority_follows_the_host_grammar() {
    let (a, b) = (index_site("site a\n"), index_site("site b\n"));
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[vhost]]\nhost = \"a.example\"\nroot = {:?}\n\
         [[vhost]]\nhost = \"b.example\"\nroot = {:?}\n",
        a.path(),
        b.path()
    );
    let cfg = write_config(dir.path(), &text);
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    for target in [
        "http://b.example:80@a.example/",
        "http://user@a.example/",
        "http://b.example:1:2/",
        "http://b.example:x/",
        "http:///index.html",
    ] {
        let r = srv.request(
            format!("GET {target} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 400, "{target}");
    }
    let r = srv.request(b"GET http://b.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!((r.status, &r.body[..]), (200, &b"site b\n"[..]));
    // A fully qualified name (trailing dot) picks the same site.
    for host in ["a.example.", "A.EXAMPLE.:80"] {
        let r = get_host(&srv, "/", host);
        assert_eq!((r.status, &r.body[..]), (200, &b"site a\n"[..]), "{host}");
    }
    let r = srv.request(b"GET http://a.example./ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.body, b"site a\n");
}

#[test]
fn header_rules_may_not_set_the_servers_own_headers() {
    let dir = tempfile::tempdir().unwrap();
    let root = index_site("x");
    let owned = [
        "Content-Type",
        "ETag",
        "Content-Encoding",
        "Date",
        "Content-Range",
        "Access-Control-Allow-Origin",
        "Last-Modified",
        "Vary",
    ];
    for name in owned {
        let text = format!(
            "root = {:?}\n[[headers]]\npath = \"/**\"\nset = {{ \"{name}\" = \"x\" }}\n",
            root.path()
        );
        let (code, err) = check(dir.path(), &text);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(err.contains("hearth.toml:2: headers:"), "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
        let out = run_hearth(&[
            "--root",
            root.path().to_str().unwrap(),
            "--header",
            &format!("{name}: x"),
            "--check",
        ]);
        assert_eq!(out.status.code(), Some(2), "--header {name}");
    }
    // A name must be a token: no `X-A: b` smuggling a colon into the name.
    let text = format!(
        "root = {:?}\n[[headers]]\npath = \"/**\"\nset = {{ \"X-A: b\" = \"c\" }}\n",
        root.path()
    );
    let (code, err) = check(dir.path(), &text);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a header name"), "{err}");
    // Cache-Control has its own flag; two --header of one name are refused.
    for args in [
        &["--header", "Cache-Control: no-cache"][..],
        &["--header", "X-A: 1", "--header", "x-a: 2"],
    ] {
        let mut all = vec!["--root", root.path().to_str().unwrap(), "--check"];
        all.extend_from_slice(args);
        assert_eq!(run_hearth(&all).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn header_rules_never_duplicate_the_servers_headers() {
    let dir = tempfile::tempdir().unwrap();
    // A rule replaces a --header (and the built-in nosniff) of the same name; the
    // response carries one of each (read_response refuses duplicates).
    let text = "[[headers]]\npath = \"/*.txt\"\n\
                set = { \"X-A\" = \"rule\", \"x-content-type-options\" = \"none\" }\n";
    let cfg = write_config(dir.path(), text);
    let srv = TestServer::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--header",
        "X-A: flag",
        "--cors",
        "*",
        "--precompressed",
        "on",
    ]);
    std::fs::write(srv.path("hello.txt.gz"), b"gz").unwrap();
    let r = srv.request(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-a"), Some("rule"));
    assert_eq!(r.header("x-content-type-options"), Some("none"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = srv.get("/index.html");
    assert_eq!(r.header("x-a"), Some("flag"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn cors_and_a_precompressed_sibling_send_one_vary() {
    // CORS for one origin and a precompressed sibling: one Vary naming both.
    let srv = TestServer::start(&["--cors", "https://a.example"]);
    std::fs::write(srv.path("hello.txt.gz"), b"gz").unwrap();
    for path in ["/hello.txt", "/index.html"] {
        let mut s = srv.connect();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let (raw, _) = read_until_close(&mut s);
        let head = String::from_utf8_lossy(&raw);
        let head = head
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let vary: Vec<&str> = head.lines().filter(|l| l.starts_with("vary:")).collect();
        let want = if path == "/hello.txt" {
            "vary: origin, accept-encoding"
        } else {
            "vary: origin"
        };
        assert_eq!(vary, [want], "{path}: {head}");
    }
}

#[test]
fn header_rules_match_the_file_served() {
    let dir = tempfile::tempdir().unwrap();
    let text = "cache-control = \"max-age=31536000, immutable\"\n\
                try-files = \"$uri $uri/ =404\"\n\
                [[headers]]\npath = \"/**/*.html\"\nset = { \"Cache-Control\" = \"no-cache\" }\n";
    let cfg = write_config(dir.path(), text);
    let srv = TestServer::start_with(&["--config", cfg.to_str().unwrap()], |root| {
        populate(root);
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/index.html"), b"docs\n").unwrap();
    });
    for path in ["/", "/index.html", "/docs/", "/docs", "/docs/index.html"] {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
    }
    let r = srv.get("/hello.txt");
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=31536000, immutable")
    );
    // A conditional request for a directory gets the same headers in its 304.
    let etag = srv.get("/docs/").header("etag").unwrap().to_string();
    let r = srv.request(
        format!(
            "GET /docs/ HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        (r.status, r.header("cache-control")),
        (304, Some("no-cache"))
    );
}

#[test]
fn a_sites_own_lists_replace_the_command_lines() {
    let dir = tempfile::tempdir().unwrap();
    let v = index_site("v\n");
    std::fs::write(v.path().join("v404.html"), b"vhost 404\n").unwrap();
    let text = format!(
        "[[vhost]]\nhost = \"v.example\"\nroot = {:?}\n\
         error-page = [\"404=/v404.html\"]\nheader = [\"X-V: 1\"]\n",
        v.path()
    );
    let cfg = write_config(dir.path(), &text);
    let srv = TestServer::start_with(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--error-page",
            "404=/404.html",
            "--header",
            "X-Cli: 1",
        ],
        |root| {
            populate(root);
            std::fs::write(root.join("404.html"), b"default 404\n").unwrap();
        },
    );
    let r = get_host(&srv, "/missing", "v.example");
    assert_eq!((r.status, &r.body[..]), (404, &b"vhost 404\n"[..]));
    assert_eq!((r.header("x-v"), r.header("x-cli")), (Some("1"), None));
    let r = get_host(&srv, "/missing", "other.example");
    assert_eq!((r.status, &r.body[..]), (404, &b"default 404\n"[..]));
    assert_eq!((r.header("x-v"), r.header("x-cli")), (None, Some("1")));
}

#[test]
fn every_configuration_error_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = index_site("x");
    let r = format!("root = {:?}\n", root.path());
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, b"").unwrap();
    for (text, want) in bad_configurations(&r, &a_file) {
        let (code, err) = check(dir.path(), &text);
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(&format!("hearth.toml{want}")), "{text}: {err}");
    }
    // The same pid-file and log-dir problems from the command line are refused too.
    for args in [
        &["--log-dir", a_file.to_str().unwrap()][..],
        &["--pid-file", "/does/not/exist/hearth.pid"],
    ] {
        let mut all = vec!["--root", root.path().to_str().unwrap(), "--check"];
        all.extend_from_slice(args);
        let out = run_hearth(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// Configurations (`r` sets a good root; `a_file` is a plain file) that
/// --check must refuse, each with the `:line: key...` its error must name.
fn bad_configurations(r: &str, a_file: &Path) -> Vec<(String, &'static str)> {
    vec![
        (
            format!("{r}[[vhost]]\nhost = \"a.example\"\n[[vhost]]\nhost = \"A.example\"\n"),
            ":5: host: vhost \"a.example\" is given twice",
        ),
        (
            format!("{r}cache-control = \"a\\u0001b\"\n"),
            ":2: cache-control:",
        ),
        (format!("{r}cors = \"a\\u0001b\"\n"), ":2: cors:"),
        (
            format!("{r}[[vhost]]\nhost = \"v.example\"\ncache-control = \"a\\u0001b\"\n"),
            ":4: cache-control: vhost \"v.example\"",
        ),
        (
            format!("{r}[[vhost]]\nhost = \"v.example\"\nroot = \"/does/not/exist\"\n"),
            ":4: root: vhost \"v.example\"",
        ),
        (format!("{r}log-dir = {a_file:?}\n"), ":2: log-dir:"),
        (
            format!("{r}pid-file = \"/does/not/exist/hearth.pid\"\n"),
            ":2: pid-file:",
        ),
        (format!("{r}max-uri = 3\n"), ":2: max-uri:"),
        (
            format!("{r}access-log = \"/does/not/exist/access.log\"\n"),
            ":2: access-log:",
        ),
        (
            format!("{r}[[vhost]]\nhost = \"v.example\"\ntry-files = \"$uri\"\n"),
            ":4: try-files: vhost \"v.example\"",
        ),
        // TEST-NET-1: documentation addresses no host has.
        (format!("{r}bind = [\"192.0.2.1\"]\n"), ":2: bind:"),
        (
            format!("{r}[[vhost]]\nhost = \"a.example:8080\"\n"),
            ":3: host:",
        ),
        (format!("{r}[[vhost]]\nhost = \"a example\"\n"), ":3: host:"),
        (
            format!("{r}[[vhost]]\nhost = \"a\\texample\"\n"),
            ":3: host:",
        ),
    ]
}

#[test]
fn a_failed_reload_without_log_files_is_written_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "cache-control = \"gen-1\"\n");
    let mut srv = TestServer::start(&["--config", cfg.to_str().unwrap(), "--close-log"]);
    assert_eq!(srv.get("/hello.txt").header("cache-control"), Some("gen-1"));
    write_config(dir.path(), "cache-control = [\n");
    send_signal(srv.child.id(), "HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(srv.get("/hello.txt").header("cache-control"), Some("gen-1"));
    srv.terminate();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut srv.child.stderr.take().unwrap(), &mut err);
    assert!(
        err.contains("reload of") && err.contains("hearth.toml:1"),
        "{err}"
    );
}

/// A server started by hand (for a root that is not a temporary directory of its
/// own), killed on drop.
struct Running {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        use std::io::BufRead;
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn hearth");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("startup line");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Running { child, addr }
    }

    fn get(&self, path: &str) -> Option<Response> {
        let mut s = std::net::TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
        read_response(&mut s, true).ok()
    }

    fn body(&self, path: &str) -> Vec<u8> {
        self.get(path).map(|r| r.body).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points the symbolic link `link` at `target` atomically (a rename over it).
fn switch_link(link: &Path, target: &Path) {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[test]
fn a_root_deleted_or_moved_and_made_again_is_served() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), b"v1\n").unwrap();
    let srv = Running::start(hearth_on(&root));
    assert_eq!(srv.body("/"), b"v1\n");

    // rm -rf root; mkdir root; echo v2 > root/index.html
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), b"v2\n").unwrap();
    eventually("the recreated root", Duration::from_secs(3), || {
        srv.body("/") == b"v2\n"
    });

    // mv root root.old; mkdir root
    std::fs::rename(&root, base.path().join("root.old")).unwrap();
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), b"v3\n").unwrap();
    eventually("the new root after a move", Duration::from_secs(3), || {
        srv.body("/") == b"v3\n"
    });
    // A root missing for a while is picked up once it exists again.
    std::fs::rename(&root, base.path().join("root.v3")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), b"v4\n").unwrap();
    eventually("the root made again", Duration::from_secs(3), || {
        srv.body("/") == b"v4\n"
    });
}

#[test]
fn a_symlinked_root_follows_its_switch_with_or_without_sighup() {
    let base = tempfile::tempdir().unwrap();
    for (rel, body) in [
        ("rel1", "release 1\n"),
        ("rel2", "release 2\n"),
        ("rel3", "release 3\n"),
    ] {
        std::fs::create_dir(base.path().join(rel)).unwrap();
        std::fs::write(base.path().join(rel).join("index.html"), body).unwrap();
    }
    let current = base.path().join("current");
    switch_link(&current, Path::new("rel1"));
    let srv = Running::start(hearth_on(&current));
    assert_eq!(srv.body("/"), b"release 1\n");
    // The deploy: switch the link, then SIGHUP (no --config).
    switch_link(&current, Path::new("rel2"));
    send_signal(srv.child.id(), "HUP");
    eventually(
        "the new release after SIGHUP",
        Duration::from_secs(2),
        || srv.body("/") == b"release 2\n",
    );
    // Without a signal it is noticed within a second or two.
    switch_link(&current, Path::new("rel3"));
    eventually(
        "the new release without a signal",
        Duration::from_secs(3),
        || srv.body("/") == b"release 3\n",
    );
    // And with a configuration file and vhosts.
    let dir = tempfile::tempdir().unwrap();
    switch_link(&current, Path::new("rel1"));
    let cfg = write_config(
        dir.path(),
        &format!("[[vhost]]\nhost = \"v.example\"\nroot = {current:?}\n"),
    );
    let mut cmd = hearth_on(base.path());
    cmd.arg("--config").arg(&cfg);
    let srv = Running::start(cmd);
    let body = |srv: &Running| {
        let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        get_on(&mut s, "/", "v.example", "Connection: close\r\n").body
    };
    assert_eq!(body(&srv), b"release 1\n");
    switch_link(&current, Path::new("rel2"));
    send_signal(srv.child.id(), "HUP");
    eventually("the vhost's new release", Duration::from_secs(3), || {
        body(&srv) == b"release 2\n"
    });
}

/// A configuration with `n` `[[headers]]` rules over `root`.
fn many_rules(root: &Path, n: usize) -> String {
    let mut text = format!("root = {root:?}\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[headers]]\npath = \"/r{i}/**\"\nset = {{ \"X-R{i}\" = \"v\" }}\n"
        ));
    }
    text
}

#[test]
fn check_time_grows_linearly_with_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = index_site("x");
    let time = |n: usize| {
        let cfg = write_config(dir.path(), &many_rules(root.path(), n));
        let start = Instant::now();
        let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        start.elapsed()
    };
    let (small, large) = (time(1000), time(8000));
    println!("--check: 1000 rules {small:?}, 8000 rules {large:?}");
    // Eight times the rules: linear is about 8x, quadratic about 64x. Loose, for a
    // busy machine and an unoptimised build.
    assert!(
        large < small * 24,
        "1000 rules {small:?}, 8000 rules {large:?}"
    );
}

/// Gets /hello.txt on a new connection each time until `stop`, and returns
/// the slowest request made while `measuring`, how many were served and how
/// many failed.
fn fresh_connection_client(
    addr: std::net::SocketAddr,
    stop: &std::sync::atomic::AtomicBool,
    measuring: &std::sync::atomic::AtomicBool,
) -> (Duration, u32, u32) {
    use std::sync::atomic::Ordering;
    let (mut worst, mut served, mut failed) = (Duration::ZERO, 0u32, 0u32);
    while !stop.load(Ordering::Relaxed) {
        let counted = measuring.load(Ordering::Relaxed);
        let start = Instant::now();
        // A new connection each time: accepting is what a reload on a
        // reactor used to hold up.
        let ok = std::net::TcpStream::connect(addr).is_ok_and(|mut s| {
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .is_ok()
                && read_response(&mut s, true).is_ok_and(|r| r.status == 200)
        });
        if counted {
            worst = worst.max(start.elapsed());
        }
        if ok {
            served += 1;
        } else {
            failed += 1;
        }
    }
    (worst, served, failed)
}

#[test]
fn a_reload_of_many_rules_delays_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    let cfg = write_config(dir.path(), &many_rules(root.path(), 5000));
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap(), "--access-log", "off"]);
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    // Latency counts once the server is warm (its first requests fill caches).
    let measuring = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop, measuring) = (srv.addr, stop.clone(), measuring.clone());
            std::thread::spawn(move || fresh_connection_client(addr, &stop, &measuring))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let reloads = 3;
    for i in 1..=reloads {
        send_signal(srv.child.id(), "HUP");
        eventually("the reload", Duration::from_secs(30), || {
            srv.log("server.log")
                .matches("configuration reloaded")
                .count()
                >= i
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (mut worst, mut served, mut failed) = (Duration::ZERO, 0, 0);
    for c in clients {
        let (w, s, f) = c.join().unwrap();
        worst = worst.max(w);
        served += s;
        failed += f;
    }
    println!(
        "{reloads} reloads of 5000 rules: {served} requests, {failed} failed, slowest {worst:?}"
    );
    assert_eq!(failed, 0);
    assert!(served > 0);
    // Loose: an unoptimised build on a machine shared with compilers. Reloading on
    // a reactor held new connections for the whole build (about a second).
    assert!(
        worst < Duration::from_millis(600),
        "slowest request {worst:?}"
    );
}

#[test]
fn a_small_file_rewritten_while_requested_is_never_a_500() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let srv = TestServer::start(&["--threads", "2", "--access-log", "off"]);
    let path = srv.path("hot.txt");
    std::fs::write(&path, vec![b'a'; 8000]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u8;
            while !stop.load(Ordering::Relaxed) {
                // Truncated, then written again: the rewrite in place.
                std::fs::write(&path, vec![b'a' + i % 26; 8000]).unwrap();
                i = i.wrapping_add(1);
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop) = (srv.addr, stop.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut statuses = std::collections::BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = get_on(&mut s, "/hot.txt", "t", "");
                    *statuses.entry(r.status).or_insert(0u32) += 1;
                    if r.status == 200 {
                        // One version of the file (maybe one caught mid-write, or
                        // empty just after the truncation), never a mix.
                        let first = r.body.first().copied();
                        assert!(r.body.iter().all(|b| Some(*b) == first), "mixed body");
                    }
                }
                statuses
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let mut all = std::collections::BTreeMap::new();
    for r in readers {
        for (status, n) in r.join().unwrap() {
            *all.entry(status).or_insert(0) += n;
        }
    }
    println!("statuses: {all:?}");
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), [200], "{all:?}");
    // Any error line about it is throttled: a few a second at most.
    let errors = srv.log("server.log").matches("ERROR").count();
    let secs = started.elapsed().as_secs() as usize + 1;
    assert!(errors <= 5 * secs, "{errors} error lines");
}

#[test]
fn every_site_can_open_files_when_connections_fill_the_descriptors() {
    if !require_tool("prlimit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let roots: Vec<_> = (0..20)
        .map(|i| index_site(&format!("site {i}\n")))
        .collect();
    let mut text = String::new();
    for (i, r) in roots.iter().enumerate() {
        text.push_str(&format!(
            "[[vhost]]\nhost = \"v{i}.example\"\nroot = {:?}\n",
            r.path()
        ));
    }
    let cfg = write_config(dir.path(), &text);
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=128:128", "--", env!("CARGO_BIN_EXE_hearth")]);
    let srv = TestServer::launch(cmd, root, &["--config", cfg.to_str().unwrap()]);
    let mut s = srv.connect();
    assert_eq!(get_on(&mut s, "/", "v0.example", "").status, 200);
    // Far more connections than descriptors; the server takes what it may.
    let held: Vec<_> = (0..150)
        .filter_map(|_| std::net::TcpStream::connect(srv.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..20 {
        let r = get_on(&mut s, "/", &format!("v{i}.example"), "");
        assert_eq!(
            (r.status, r.body),
            (200, format!("site {i}\n").into_bytes()),
            "v{i}"
        );
    }
    let r = get_on(&mut s, "/hello.txt", "t", "");
    assert_eq!(r.status, 200);
    // A reload builds a second set of sites while the first is open.
    send_signal(srv.child.id(), "HUP");
    eventually("the reload", Duration::from_secs(10), || {
        srv.log("server.log").contains("configuration reloaded")
    });
    for i in 0..20 {
        let r = get_on(&mut s, "/", &format!("v{i}.example"), "");
        assert_eq!(r.status, 200, "v{i} after the reload");
    }
    assert!(
        !srv.log("server.log").contains("reload of"),
        "{}",
        srv.log("server.log")
    );
    drop(held);
}

#[test]
fn a_reload_storm_under_load_serves_every_request_consistently() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (a, b) = (index_site("gen a\n"), index_site("gen b\n"));
    let dir = tempfile::tempdir().unwrap();
    let config = |root: &Path, gen: &str| {
        format!(
            "[[vhost]]\nhost = \"v.example\"\nroot = {root:?}\n\
             [[vhost.headers]]\npath = \"/**\"\nset = {{ \"X-Gen\" = \"{gen}\" }}\n"
        )
    };
    let cfg = write_config(dir.path(), &config(a.path(), "a"));
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap(), "--access-log", "off"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop) = (srv.addr, stop.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut served = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let r = get_on(&mut s, "/", "v.example", "");
                    assert_eq!(r.status, 200);
                    // Root and headers come from one configuration, never a mix.
                    let gen = r.header("x-gen").unwrap_or("none").to_string();
                    assert_eq!(r.body, format!("gen {gen}\n").into_bytes());
                    served += 1;
                }
                served
            })
        })
        .collect();
    for i in 0..40 {
        let (root, gen) = if i % 2 == 0 {
            (b.path(), "b")
        } else {
            (a.path(), "a")
        };
        // Replaced whole, as a deploy tool would: a reload never reads half a file.
        let tmp = dir.path().join("hearth.toml.tmp");
        std::fs::write(&tmp, config(root, gen)).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        send_signal(srv.child.id(), "HUP");
        std::thread::sleep(Duration::from_millis(25));
    }
    stop.store(true, Ordering::Relaxed);
    let served: u32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    println!("reload storm: {served} requests");
    assert!(served > 0);
    assert!(
        !srv.log("server.log").contains("reload of"),
        "a reload failed"
    );
    srv.assert_alive();
}
