//! The configuration surface under hostile or careless input: header rules, the
//! authority of absolute-form targets, roots that move, descriptors per site, reload
//! cost, files rewritten while served, command-line lists and diagnostics.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Writes `text` as `hearth.toml` in `dir`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("hearth.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A directory holding `index.html` with `body`.
fn site(body: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("index.html"), body).unwrap();
    d
}

/// Runs the binary to completion (`--check` never starts serving).
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .expect("run hearth")
}

/// `--check` on `text` (written as hearth.toml in `dir`): exit code and stderr.
fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    let cfg = write_config(dir, text);
    let out = run(&["--config", cfg.to_str().unwrap(), "--check"]);
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

#[allow(dead_code)]
fn eventually(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(wait_until(limit, f), "timed out waiting for {what}");
}

#[test]
fn absolute_form_authority_follows_the_host_grammar() {
    let (a, b) = (site("site a\n"), site("site b\n"));
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
fn header_rules_never_duplicate_the_servers_headers() {
    let dir = tempfile::tempdir().unwrap();
    let root = site("x");
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
        let out = run(&[
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
        assert_eq!(run(&all).status.code(), Some(2), "{args:?}");
    }

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
