//! The configuration file: `--check`, errors naming key and line, vhosts, per-path
//! headers, SIGHUP reload on an open connection, binds, command-line overrides.

mod common;
use common::*;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

fn get_host(srv: &TestServer, path: &str, host: &str) -> Response {
    srv.request(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Polls `f` for up to ten seconds; fails the test naming `what` if it stays false.
fn eventually(what: &str, f: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(10), f),
        "timed out waiting for {what}"
    );
}

#[test]
fn check_accepts_a_good_file() {
    let root = index_site("x");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "root = {:?}\nport = 8080\nthreads = 2\ncache-control = \"max-age=60\"\n\
         header = [\"X-A: 1\"]\ncors = true\n\
         [[headers]]\npath = \"/assets/**\"\nset = {{ \"Cache-Control\" = \"immutable\" }}\n\
         [[vhost]]\nhost = \"a.example\"\nroot = {:?}\n\
         [[vhost.headers]]\npath = \"/*.html\"\nset = {{ \"X-V\" = \"1\" }}\n",
        root.path(),
        root.path()
    );
    let cfg = write_config(dir.path(), &text);
    let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration ok"
    );
}

#[test]
fn check_names_key_and_line_of_a_bad_value() {
    let root = index_site("x");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("port = \"eighty\"\n", ":2: port: invalid type: string"),
        ("threads = true\n", ":2: threads:"),
        ("header = [\"Connection: close\"]\n", ":2: header:"),
        (
            "[[vhost]]\nhost = \"a\"\nroot = \"/does/not/exist\"\n",
            ":4: root: vhost \"a\"",
        ),
        (
            "[[vhost]]\nhost = \"a\"\nport = 1\n",
            ":4: port: not allowed in [[vhost]]",
        ),
        (
            "[[headers]]\npath = \"/**\"\nset = { \"Transfer-Encoding\" = \"x\" }\n",
            ":2: headers:",
        ),
        ("port = [\n", ":2"),
    ];
    for (body, want) in cases {
        let text = format!("root = {:?}\n{body}", root.path());
        let cfg = write_config(dir.path(), &text);
        let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body:?}: {err}");
        assert!(
            err.contains(&format!("hearth.toml{want}")),
            "{body:?}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = run_hearth(&["--config", "/does/not/exist.toml", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/does/not/exist.toml"));
}

#[test]
fn unknown_key_is_an_error_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "port = 0\n\ncolour = \"blue\"\n");
    let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hearth.toml:3: colour: unknown key"), "{err}");
    // Without --check the server refuses to start, with the same message.
    let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour: unknown key"));
}

#[test]
fn vhosts_pick_the_root_by_host() {
    let (a, b) = (index_site("site a\n"), index_site("site b\n"));
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[vhost]]\nhost = \"a.example\"\nroot = {:?}\n\
         [[vhost]]\nhost = \"B.Example\"\nroot = {:?}\ncache-control = \"no-cache\"\n",
        a.path(),
        b.path()
    );
    let cfg = write_config(dir.path(), &text);
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let r = get_host(&srv, "/", "a.example");
    assert_eq!((r.status, &r.body[..]), (200, &b"site a\n"[..]));
    assert_eq!(r.header("cache-control"), None);
    // Case-insensitive, port ignored; the vhost's own keys apply to it alone.
    let r = get_host(&srv, "/", "b.EXAMPLE:8080");
    assert_eq!((r.status, &r.body[..]), (200, &b"site b\n"[..]));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    // An absolute-form target names the host too.
    let r = srv.request(b"GET http://a.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.body, b"site a\n");
    for host in ["other.example", "127.0.0.1"] {
        let r = get_host(&srv, "/", host);
        assert_eq!(r.body, b"<h1>index</h1>\n", "{host}");
    }
    assert_eq!(get_host(&srv, "/hello.txt", "a.example").status, 404);
}

#[test]
fn path_headers_match_globs() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[headers]]\npath = \"/**\"\nset = { \"X-All\" = \"1\", \"X-Which\" = \"all\" }\n\
                [[headers]]\npath = \"/sub/**\"\nset = { \"X-Which\" = \"sub\" }\n\
                [[headers]]\npath = \"/*.txt\"\nset = { \"Cache-Control\" = \"no-cache\" }\n";
    let cfg = write_config(dir.path(), text);
    let srv = TestServer::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--cache-control",
        "max-age=5",
    ]);
    let r = srv.get("/sub/index.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-all"), Some("1"));
    assert_eq!(r.header("x-which"), Some("sub"), "the last match wins");
    assert_eq!(r.header("cache-control"), Some("max-age=5"));
    // A rule's Cache-Control replaces --cache-control (read_response refuses duplicates).
    let r = srv.get("/hello.txt");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-which"), Some("all"));
    // `*` does not cross a slash; rules match the decoded, normalised path.
    assert_eq!(
        srv.get("/sub/../hello.txt").header("cache-control"),
        Some("no-cache")
    );
    assert_eq!(srv.get("/%73ub/index.html").header("x-which"), Some("sub"));
    let r = srv.request(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.header("cache-control")),
        (304, Some("no-cache"))
    );
}

#[test]
fn sighup_reloads_on_an_open_connection_and_keeps_a_good_config_over_a_broken_one() {
    let (a, b) = (index_site("old root\n"), index_site("new root\n"));
    let dir = tempfile::tempdir().unwrap();
    let config = |root: &Path, gen: u32| {
        format!(
            "[defaults]\ncache-control = \"gen-{gen}\"\n\
             [[defaults.headers]]\npath = \"/**\"\nset = {{ \"X-Gen\" = \"{gen}\" }}\n\
             [[vhost]]\nhost = \"v.example\"\nroot = {root:?}\n"
        )
    };
    let cfg = write_config(dir.path(), &config(a.path(), 1));
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut s = srv.connect();
    let r = get_on(&mut s, "/", "v.example", "");
    assert_eq!(
        (r.body.as_slice(), r.header("x-gen")),
        (&b"old root\n"[..], Some("1"))
    );

    write_config(dir.path(), &config(b.path(), 2));
    send_signal(srv.child.id(), "HUP");
    eventually("the new configuration on the open connection", || {
        let r = get_on(&mut s, "/", "v.example", "");
        r.header("x-gen") == Some("2")
    });
    let r = get_on(&mut s, "/", "v.example", "");
    assert_eq!(r.body, b"new root\n");
    assert_eq!(r.header("cache-control"), Some("gen-2"));
    assert_eq!(
        get_on(&mut s, "/hello.txt", "t", "").header("x-gen"),
        Some("2")
    );

    // A broken file: logged with its name, the running configuration stays.
    write_config(dir.path(), "cache-control = [\n");
    send_signal(srv.child.id(), "HUP");
    eventually("the failed reload in server.log", || {
        let log = srv.log("server.log");
        log.contains("reload of") && log.contains("hearth.toml")
    });
    let r = get_on(&mut s, "/", "v.example", "");
    assert_eq!(
        (r.body.as_slice(), r.header("x-gen")),
        (&b"new root\n"[..], Some("2"))
    );

    // A process-level key that changed is reported as ignored, and the rest applies.
    write_config(
        dir.path(),
        &format!("max-body = 7\n{}", config(a.path(), 3)),
    );
    send_signal(srv.child.id(), "HUP");
    eventually("the ignored key in server.log", || {
        srv.log("server.log").contains("max-body changed")
    });
    assert_eq!(
        get_on(&mut s, "/", "v.example", "").header("x-gen"),
        Some("3")
    );
}

#[test]
fn binds_ipv4_and_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: this machine has no ::1");
        return;
    }
    for extra in ["::1", "::"] {
        let srv = TestServer::start(&["--bind", extra]);
        let v6 = SocketAddr::new("::1".parse().unwrap(), srv.addr.port());
        for addr in [srv.addr, v6] {
            let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
                .unwrap();
            let r = read_response(&mut s, true).unwrap();
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"hello world\n"[..]),
                "{extra} {addr}"
            );
        }
    }
}

#[test]
fn command_line_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "cache-control = \"from-file\"\nheader = [\"X-File: 1\"]\ncors = \"https://a.example\"\n";
    let cfg = write_config(dir.path(), text);
    let srv = TestServer::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--cache-control",
        "from-cli",
    ]);
    let r = srv.get("/hello.txt");
    assert_eq!(r.header("cache-control"), Some("from-cli"));
    assert_eq!(r.header("x-file"), Some("1"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    drop(srv);
    // A repeatable flag on the command line replaces the file's values.
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap(), "--header", "X-Cli: 2"]);
    let r = srv.get("/hello.txt");
    assert_eq!((r.header("x-file"), r.header("x-cli")), (None, Some("2")));
    assert_eq!(r.header("cache-control"), Some("from-file"));
}
