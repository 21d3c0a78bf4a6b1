//! `--try-files` (clean URLs, single-page-app fallback, `=CODE`) and `--error-page`
//! (custom bodies for error statuses), through real sockets.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const CLEAN: &[&str] = &["--try-files", "$uri $uri.html $uri/ =404"];
const SPA: &[&str] = &["--try-files", "$uri /index.html"];

/// The test site plus pages for clean URLs, hidden files that must never be served,
/// and a link to a file in `outside`, a directory beside the root.
fn site(root: &Path, outside: &Path) {
    populate(root);
    std::fs::write(root.join("about.html"), b"<p>about</p>\n").unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/index.html"), b"<p>docs</p>\n").unwrap();
    std::fs::write(root.join(".secret.html"), b"SECRET").unwrap();
    std::fs::write(root.join(".env"), b"SECRET").unwrap();
    std::fs::create_dir_all(root.join("errors")).unwrap();
    std::fs::write(root.join("errors/404.html"), b"<p>custom 404</p>\n").unwrap();
    std::fs::write(root.join("errors/4xx.txt"), b"client error\n").unwrap();
    std::fs::write(root.join("errors/5xx.html"), b"<p>server error</p>\n").unwrap();
    let target = outside.join("outside.html");
    std::fs::write(&target, b"OUTSIDE").unwrap();
    std::os::unix::fs::symlink(&target, root.join("link.html")).unwrap();
}

/// A server on [`site`], with the directory its link leads to.
struct Site {
    srv: TestServer,
    _outside: tempfile::TempDir,
}

fn start(args: &[&str]) -> Site {
    let outside = tempfile::tempdir().unwrap();
    let dir = outside.path().to_path_buf();
    Site {
        srv: TestServer::start_with(args, |root| site(root, &dir)),
        _outside: outside,
    }
}

fn assert_not_secret(r: &Response) {
    assert!(
        !r.body.windows(6).any(|w| w == b"SECRET" || w == b"OUTSID"),
        "a refused file was served: {r:?}"
    );
}

#[test]
fn clean_urls_try_the_file_the_html_file_then_the_directory() {
    let s = start(CLEAN);
    let srv = &s.srv;
    let about = srv.get("/about");
    assert_eq!(about.status, 200);
    assert_eq!(about.body, b"<p>about</p>\n");
    assert_eq!(
        about.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(about.header("etag").is_some());
    assert_eq!(srv.get("/about.html").body, b"<p>about</p>\n");
    // A directory with an index is served in place, without a redirect.
    for path in ["/docs", "/docs/"] {
        let docs = srv.get(path);
        assert_eq!(docs.status, 200, "{path}");
        assert_eq!(docs.body, b"<p>docs</p>\n", "{path}");
        assert_eq!(docs.header("location"), None, "{path}");
    }
    assert_eq!(srv.get("/").body, b"<h1>index</h1>\n");
    let css = srv.get("/style.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(srv.get("/missing").status, 404);
    // Every candidate is held to the dotfile and symlink rules.
    for path in ["/.secret", "/.secret.html", "/link", "/link.html"] {
        let r = srv.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_not_secret(&r);
    }
    let head = srv.request(b"HEAD /about HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    assert!(head.body.is_empty());
}

#[test]
fn spa_fallback_serves_the_index_with_200() {
    let s = start(SPA);
    let srv = &s.srv;
    let route = srv.get("/app/route?x=1");
    assert_eq!(route.status, 200);
    assert_eq!(route.body, b"<h1>index</h1>\n");
    assert_eq!(
        route.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // The fallback is a file response like any other: conditional requests work.
    let etag = route.header("etag").expect("etag").to_string();
    let again = srv.request(
        format!(
            "GET /deep/link HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(again.status, 304);
    let css = srv.get("/style.css");
    assert_eq!((css.status, &css.body[..]), (200, &b"body{}\n"[..]));
    assert_eq!(srv.get("/hello.txt").body, b"hello world\n");
    // Hidden files and links out of the root fall through to the index, never served.
    for path in ["/.env", "/.secret.html", "/link.html"] {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, b"<h1>index</h1>\n", "{path}");
        assert_not_secret(&r);
    }
    // Traversal is refused before any candidate or the fallback is tried.
    for path in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/a%2f..%2f..",
        "/a%zz",
    ] {
        let r = srv.get(path);
        assert_eq!(r.status, 400, "{path}");
        assert!(r.closes(), "{path}");
    }
}

#[test]
fn equals_code_is_terminal_and_other_methods_are_unaffected() {
    let s = start(&["--try-files", "$uri =403"]);
    let srv = &s.srv;
    assert_eq!(srv.get("/hello.txt").status, 200);
    assert_eq!(srv.get("/nothing/here").status, 403);
    // The existing directory is not a file: =403 too, no redirect.
    let sub = srv.get("/sub");
    assert_eq!((sub.status, sub.header("location")), (403, None));
    assert_eq!(srv.get("/sub/").body, b"<p>sub</p>\n");

    let s = start(SPA);
    let srv = &s.srv;
    let post = srv.request(
        b"POST /app/route HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    let del = srv.request(b"DELETE /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(del.status, 405);
    let opt = srv.request(b"OPTIONS /app/route HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(opt.status, 204);
    let health = srv.get("/healthz");
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
}

#[test]
fn error_pages_keep_the_status_and_use_the_file() {
    let s = start(&[
        "--error-page",
        "404=/errors/404.html",
        "--error-page",
        "4xx=/errors/4xx.txt",
    ]);
    let srv = &s.srv;
    let r = srv.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, b"<p>custom 404</p>\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("18"));
    for validator in ["etag", "last-modified", "accept-ranges"] {
        assert_eq!(r.header(validator), None, "{validator}");
    }
    // A conditional request cannot turn an error page into a 304.
    let cond = srv.request(
        b"GET /missing HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(cond.status, 404);
    // The wildcard covers the other 4xx; the exact code wins for 404.
    let forbidden = srv.get("/empty/");
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.body, b"client error\n");
    assert_eq!(
        forbidden.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let post = srv
        .request(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!((post.status, &post.body[..]), (405, &b"client error\n"[..]));
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    let range = srv.request(
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=500-\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(range.status, 416);
    assert_eq!(range.header("content-range"), Some("bytes */12"));
    assert_eq!(range.body, b"client error\n");
    let bad = srv.get("/../x");
    assert_eq!((bad.status, &bad.body[..]), (400, &b"client error\n"[..]));
    assert!(bad.closes());
    // Redirects keep their Location and their own page.
    let redirect = srv.get("/sub");
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/sub/"));
    assert_ne!(redirect.body, b"client error\n");
    srv.assert_alive();
}

#[test]
fn error_pages_answer_head_without_a_body_and_keep_the_connection() {
    let s = start(&["--error-page", "404=/errors/404.html"]);
    let srv = &s.srv;
    let mut c = srv.connect();
    c.write_all(b"HEAD /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_response(&mut c, false).unwrap();
    assert_eq!(head.status, 404);
    assert_eq!(head.header("content-length"), Some("18"));
    assert!(!head.closes());
    c.write_all(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let get = read_response(&mut c, true).unwrap();
    assert_eq!(
        (get.status, &get.body[..]),
        (404, &b"<p>custom 404</p>\n"[..])
    );
    c.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let ok = read_response(&mut c, true).unwrap();
    assert_eq!((ok.status, &ok.body[..]), (200, &b"hello world\n"[..]));
    // Pipelined: an error page between two files.
    c.write_all(
        b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let (bytes, closed) = read_until_close(&mut c);
    assert!(closed);
    let all = parse_all(&bytes, &[]);
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].status, &all[0].body[..]),
        (404, &b"<p>custom 404</p>\n"[..])
    );
    assert_eq!((all[1].status, &all[1].body[..]), (200, &b"body{}\n"[..]));
}

#[test]
fn a_missing_or_unusable_error_page_falls_back_to_the_built_in_one() {
    let s = start(&[
        "--error-page",
        "404=/nope.html",
        "--error-page",
        "403=/docs",
        "--error-page",
        "405=/link.html",
    ]);
    let srv = &s.srv;
    let r = srv.get("/missing");
    assert_eq!(r.status, 404);
    assert!(String::from_utf8_lossy(&r.body).contains("404 Not Found"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let dir = srv.get("/empty/");
    assert_eq!(dir.status, 403);
    assert!(String::from_utf8_lossy(&dir.body).contains("403 Forbidden"));
    let post = srv
        .request(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_not_secret(&post);
    srv.assert_alive();
}

#[test]
fn large_error_pages_and_try_files_together() {
    let page: Vec<u8> = (0..200 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let big = page.clone();
    let srv = TestServer::start_with(
        &[
            "--try-files",
            "$uri $uri.html =404",
            "--error-page",
            "404=/big.html",
        ],
        move |root| {
            populate(root);
            std::fs::write(root.join("big.html"), &big).unwrap();
        },
    );
    let r = srv.get("/nothing");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, page);
    assert_eq!(r.header("etag"), None);
    assert_eq!(srv.get("/big").status, 200);
}

#[test]
fn equals_code_gets_the_error_page_of_its_class() {
    let s = start(&[
        "--try-files",
        "$uri =503",
        "--error-page",
        "5xx=/errors/5xx.html",
    ]);
    let srv = &s.srv;
    let r = srv.get("/gone");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, b"<p>server error</p>\n");
    assert_eq!(srv.get("/missing").status, 503);
    assert_eq!(srv.get("/about.html").status, 200);
}

/// Runs the binary with `args`; returns its exit code and stderr, killing it if it
/// is still running after a few seconds (it should have refused the flags).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let root = tempfile::tempdir().unwrap();
    let mut child = hearth_on(root.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.and_then(|s| s.code()), err)
}

#[test]
fn bad_values_exit_2_with_a_clear_message() {
    for (args, says) in [
        (&["--try-files", "$uri"][..], "at least two items"),
        (&["--try-files", "$uri =200"][..], "=CODE"),
        (&["--try-files", "$uri =404 /index.html"][..], "last item"),
        (&["--try-files", "$uri $args"][..], "only variable"),
        (&["--try-files", "$uri /../x"][..], "not a valid path"),
        (&["--error-page", "404"][..], "CODE=PATH"),
        (&["--error-page", "200=/x.html"][..], "400 to 599"),
        (&["--error-page", "4xx=x.html"][..], "PATH must name a file"),
        (&["--error-page", "404=/.x.html"][..], "hidden"),
    ] {
        let (code, err) = refused(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
