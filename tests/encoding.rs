//! Precompressed siblings (`F.br`, `F.zst`, `F.gz`) through real sockets: which one
//! `Accept-Encoding` picks, their headers and entity tags, conditional and range
//! requests on them, stale siblings, and entity tags that agree across roots.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, SystemTime};

const JS: &[u8] = b"console.log('hello, world');\n";
const BR: &[u8] = b"brotli bytes";
const ZST: &[u8] = b"zstandard bytes";
const GZ: &[u8] = b"gzip bytes, a few more";

fn site(root: &Path) {
    populate(root);
    std::fs::write(root.join("app.js"), JS).unwrap();
    std::fs::write(root.join("app.js.br"), BR).unwrap();
    std::fs::write(root.join("app.js.zst"), ZST).unwrap();
    std::fs::write(root.join("app.js.gz"), GZ).unwrap();
    std::fs::write(root.join("only.css"), b"p{}\n").unwrap();
    std::fs::write(root.join("only.css.gz"), b"gz css").unwrap();
}

/// A request for `path` with `Accept-Encoding: accept` (none when empty) and extra
/// header lines.
fn get_enc(server: &TestServer, method: &str, path: &str, accept: &str, extra: &str) -> Response {
    let ae = if accept.is_empty() {
        String::new()
    } else {
        format!("Accept-Encoding: {accept}\r\n")
    };
    server.request(
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{ae}{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn encoding(r: &Response) -> Option<&str> {
    r.header("content-encoding")
}

#[test]
fn each_encoding_is_served_with_the_original_type_and_vary() {
    let server = TestServer::start_with(&[], site);
    let plain = get_enc(&server, "GET", "/app.js", "", "");
    assert_eq!((plain.status, &plain.body[..]), (200, JS));
    assert_eq!(encoding(&plain), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let ctype = plain.header("content-type").unwrap().to_string();
    assert!(ctype.contains("javascript"), "{ctype}");
    for (accept, coding, body) in [
        ("gzip, deflate, br, zstd", "br", BR),
        ("gzip, zstd", "zstd", ZST),
        ("gzip", "gzip", GZ),
        ("x-gzip", "gzip", GZ),
    ] {
        let r = get_enc(&server, "GET", "/app.js", accept, "");
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(encoding(&r), Some(coding), "{accept}");
        assert_eq!(r.body, body, "{accept}");
        assert_eq!(r.header("content-type"), Some(&ctype[..]));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        let h = get_enc(&server, "HEAD", "/app.js", accept, "");
        assert_eq!(
            h.header("content-length"),
            Some(&body.len().to_string()[..])
        );
        assert_eq!(encoding(&h), Some(coding));
    }
    // A coding the file has no sibling in, and a file with only one sibling.
    assert_eq!(
        encoding(&get_enc(&server, "GET", "/app.js", "deflate", "")),
        None
    );
    let r = get_enc(&server, "GET", "/only.css", "br, gzip", "");
    assert_eq!((encoding(&r), &r.body[..]), (Some("gzip"), &b"gz css"[..]));
    // No siblings: no Vary.
    let r = get_enc(&server, "GET", "/hello.txt", "br, gzip", "");
    assert_eq!((encoding(&r), r.header("vary")), (None, None));
}

#[test]
fn quality_values_choose_and_exclude() {
    let server = TestServer::start_with(&[], site);
    for (accept, want) in [
        ("br;q=0, zstd;q=0, gzip", Some("gzip")),
        ("br;q=0, zstd", Some("zstd")),
        ("br;q=0.5, zstd;q=0.5, gzip;q=0.5", Some("br")),
        ("zstd;q=0.5, gzip;q=0.5", Some("zstd")),
        ("br;q=0.2, gzip;q=0.9", Some("gzip")),
        ("gzip;q=0.2, zstd;q=0.3", Some("zstd")),
        ("*;q=0", None),
        ("*", Some("br")),
        ("*, br;q=0", Some("zstd")),
        ("br;q=0, zstd;q=0, gzip;q=0", None),
        ("identity", None),
        ("gzip;q=0.5, identity;q=1", None),
        ("gzip;q=1, identity;q=0.5", Some("gzip")),
    ] {
        let r = get_enc(&server, "GET", "/app.js", accept, "");
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(encoding(&r), want, "{accept}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept}");
    }
}

#[test]
fn each_representation_has_its_own_etag() {
    let server = TestServer::start_with(&[], site);
    let tags: Vec<String> = ["", "br", "zstd", "gzip"]
        .iter()
        .map(|ae| {
            let r = get_enc(&server, "GET", "/app.js", ae, "");
            r.header("etag").unwrap().to_string()
        })
        .collect();
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(tags[1].ends_with("-br\""), "{}", tags[1]);
    // The brotli tag revalidates the brotli representation...
    let inm = format!("If-None-Match: {}\r\n", tags[1]);
    let r = get_enc(&server, "GET", "/app.js", "br", &inm);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(&tags[1][..]));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // ...and not the one a gzip-only client gets, nor the plain file.
    let r = get_enc(&server, "GET", "/app.js", "gzip", &inm);
    assert_eq!((r.status, encoding(&r)), (200, Some("gzip")));
    let r = get_enc(&server, "GET", "/app.js", "", &inm);
    assert_eq!((r.status, &r.body[..]), (200, JS));
    let inm = format!("If-None-Match: {}\r\n", tags[0]);
    assert_eq!(get_enc(&server, "GET", "/app.js", "", &inm).status, 304);
}

#[test]
fn ranges_apply_to_the_encoded_bytes() {
    let server = TestServer::start_with(&[], site);
    let r = get_enc(&server, "GET", "/app.js", "gzip", "Range: bytes=2-5\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(encoding(&r), Some("gzip"));
    assert_eq!(r.body, &GZ[2..6]);
    let range = format!("bytes 2-5/{}", GZ.len());
    assert_eq!(r.header("content-range"), Some(&range[..]));
    // If-Range with the gzip tag holds; with the plain file's tag the whole
    // representation comes back.
    let gz_tag = get_enc(&server, "GET", "/app.js", "gzip", "");
    let gz_tag = gz_tag.header("etag").unwrap();
    let plain_tag = get_enc(&server, "GET", "/app.js", "", "");
    let plain_tag = plain_tag.header("etag").unwrap();
    let extra = format!("Range: bytes=0-1\r\nIf-Range: {gz_tag}\r\n");
    let r = get_enc(&server, "GET", "/app.js", "gzip", &extra);
    assert_eq!((r.status, &r.body[..]), (206, &GZ[..2]));
    let extra = format!("Range: bytes=0-1\r\nIf-Range: {plain_tag}\r\n");
    let r = get_enc(&server, "GET", "/app.js", "gzip", &extra);
    assert_eq!((r.status, &r.body[..]), (200, GZ));
}

#[test]
fn a_sibling_older_than_its_file_is_ignored_and_logged_once() {
    let server = TestServer::start_with(&[], |root| {
        site(root);
        std::fs::write(root.join("old.js"), JS).unwrap();
        std::fs::write(root.join("old.js.gz"), GZ).unwrap();
        std::fs::write(root.join("old.js.br"), BR).unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let f = std::fs::File::options()
            .write(true)
            .open(root.join("old.js.gz"))
            .unwrap();
        f.set_modified(hour_ago).unwrap();
    });
    for _ in 0..3 {
        let r = get_enc(&server, "GET", "/old.js", "gzip", "");
        assert_eq!((encoding(&r), &r.body[..]), (None, JS));
        // The fresh sibling beside it is still served.
        let r = get_enc(&server, "GET", "/old.js", "br, gzip", "");
        assert_eq!((encoding(&r), &r.body[..]), (Some("br"), BR));
    }
    // Rechecked after a change beside it: still ignored, not logged again.
    std::fs::write(server.path("other.txt"), b"x").unwrap();
    let r = get_enc(&server, "GET", "/old.js", "gzip", "");
    assert_eq!(encoding(&r), None);
    let logged = wait_until(Duration::from_secs(5), || {
        server.log("server.log").contains("old.js.gz")
    });
    assert!(
        logged,
        "stale sibling not logged: {}",
        server.log("server.log")
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log("server.log");
    assert_eq!(log.matches("old.js.gz").count(), 1, "{log}");
}

#[test]
fn a_sibling_asked_for_by_name_is_a_plain_file() {
    let server = TestServer::start_with(&[], site);
    let r = get_enc(&server, "GET", "/app.js.gz", "gzip, br", "");
    assert_eq!((r.status, &r.body[..]), (200, GZ));
    assert_eq!(encoding(&r), None);
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    assert_eq!(r.header("vary"), None);
}

#[test]
fn copies_in_two_roots_have_equal_etags() {
    let when = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let deploy = |root: &Path| {
        site(root);
        for name in ["app.js", "app.js.br", "app.js.zst", "app.js.gz"] {
            let f = std::fs::File::options()
                .write(true)
                .open(root.join(name))
                .unwrap();
            f.set_modified(when).unwrap();
        }
    };
    // Another root on the same file system: new inodes, same bytes and times.
    let a = TestServer::start_with(&[], deploy);
    let b = TestServer::start_with(&[], deploy);
    for ae in ["", "br", "gzip"] {
        let ra = get_enc(&a, "GET", "/app.js", ae, "");
        let rb = get_enc(&b, "GET", "/app.js", ae, "");
        assert_eq!(ra.body, rb.body);
        assert_eq!(ra.header("etag"), rb.header("etag"), "{ae:?}");
        assert_eq!(ra.header("last-modified"), rb.header("last-modified"));
        // One host's tag revalidates at the other.
        let inm = format!("If-None-Match: {}\r\n", ra.header("etag").unwrap());
        assert_eq!(get_enc(&b, "GET", "/app.js", ae, &inm).status, 304);
    }
}

#[test]
fn precompressed_off_serves_the_file_itself() {
    let server = TestServer::start_with(&["--precompressed", "off"], site);
    let r = get_enc(&server, "GET", "/app.js", "br, zstd, gzip", "");
    assert_eq!((r.status, &r.body[..]), (200, JS));
    assert_eq!((encoding(&r), r.header("vary")), (None, None));
    let on = TestServer::start_with(&["--precompressed", "on"], site);
    let r = get_enc(&on, "GET", "/app.js", "gzip", "");
    assert_eq!(encoding(&r), Some("gzip"));
}

/// Sets the modification time of `path`.
fn touch(path: &Path, at: SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(at).unwrap();
}

#[test]
fn siblings_are_judged_stale_in_whole_seconds() {
    // The source has nanoseconds; the siblings carry the same second without them,
    // as `brotli -k` and `gzip -k` leave them.
    let second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let server = TestServer::start_with(&[], |root| {
        site(root);
        touch(
            &root.join("app.js"),
            second + Duration::from_nanos(987_654_321),
        );
        for s in ["br", "zst", "gz"] {
            touch(&root.join(format!("app.js.{s}")), second);
        }
    });
    for (ae, want) in [("br", BR), ("zstd", ZST), ("gzip", GZ)] {
        let r = get_enc(&server, "GET", "/app.js", ae, "");
        assert_eq!((encoding(&r), &r.body[..]), (Some(ae), want));
    }
    // A whole second older is stale.
    touch(&server.path("app.js.gz"), second - Duration::from_secs(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get_enc(&server, "GET", "/app.js", "gzip", "");
        if encoding(&r).is_none() || std::time::Instant::now() > deadline {
            assert_eq!((encoding(&r), &r.body[..]), (None, JS));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn precompressed_check_off_serves_older_siblings() {
    let server = TestServer::start_with(&["--precompressed-check", "off"], |root| {
        site(root);
        touch(
            &root.join("app.js.gz"),
            SystemTime::now() - Duration::from_secs(3600),
        );
    });
    let r = get_enc(&server, "GET", "/app.js", "gzip", "");
    assert_eq!((encoding(&r), &r.body[..]), (Some("gzip"), GZ));
    assert!(!server.log("server.log").contains("older than"));
}

#[test]
fn outputs_of_the_compression_tools_are_served() {
    let tools = [("gzip", "gzip"), ("zstd", "zstd"), ("brotli", "br")];
    if !tools.iter().all(|(t, _)| require_tool(t)) {
        return;
    }
    let text = "a line of a script that compresses well;\n".repeat(200);
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("tool.js"), &text).unwrap();
        // A modification time with nanoseconds, which the tools drop or round.
        touch(
            &root.join("tool.js"),
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 999_000_000),
        );
        for (tool, _) in tools {
            let st = std::process::Command::new(tool)
                .stderr(std::process::Stdio::null())
                .args(["-k", "-f"])
                .arg(root.join("tool.js"))
                .status()
                .unwrap();
            assert!(st.success(), "{tool}");
        }
    });
    for (_, token) in tools {
        let r = get_enc(&server, "GET", "/tool.js", token, "");
        assert_eq!(encoding(&r), Some(token), "{token}");
        let ext = if token == "zstd" {
            "zst"
        } else if token == "br" {
            "br"
        } else {
            "gz"
        };
        let sibling = std::fs::read(server.path(&format!("tool.js.{ext}"))).unwrap();
        assert_eq!(r.body, sibling, "{token}");
    }
}
