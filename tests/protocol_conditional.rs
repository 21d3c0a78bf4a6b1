//! Conditional and range requests against the real binary over raw TCP: ETags and
//! dates (If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since), byte
//! ranges single and multipart, If-Range, and how preconditions and ranges combine.
//!
//! Every test starts its own server on an ephemeral port; every socket read has a
//! timeout (see `common::IO_TIMEOUT`), so no test can hang.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// 2020-01-01T00:00:00Z, the mtime given to files in the conditional tests.
const MTIME: u64 = 1_577_836_800;

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn dated_site(root: &Path) {
    populate(root);
    set_mtime(&root.join("hello.txt"), MTIME);
}

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

// ---------------------------------------------------------------------------
// conditional requests
// ---------------------------------------------------------------------------

#[test]
fn etag_is_strong_and_stable_across_requests_and_restarts() {
    let mut server = TestServer::start_with(&[], dated_site);
    let a = server.get("/hello.txt");
    let b = server.get("/hello.txt");
    let etag = a
        .header("etag")
        .expect("ETag on a file response")
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "strong ETag: {etag}"
    );
    assert!(!etag.starts_with("W/"));
    assert_eq!(b.header("etag"), Some(etag.as_str()));
    assert_eq!(a.header("last-modified"), Some(http_date(MTIME).as_str()));

    // The same file served by a new process has the same validator.
    let root = std::mem::replace(&mut server.root, tempfile::tempdir().unwrap());
    drop(server);
    let server = TestServer::start_in(root, &[]);
    let c = server.get("/hello.txt");
    assert_eq!(c.status, 200);
    assert_eq!(
        c.header("etag"),
        Some(etag.as_str()),
        "ETag changed across a restart"
    );
}

#[test]
fn etag_changes_when_the_file_changes() {
    let server = TestServer::start(&[]);
    let before = server.get("/hello.txt");
    let old = before.header("etag").unwrap().to_string();
    // Past the server's one-second trust in its cached entry.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(server.path("hello.txt"), b"HELLO WORLD\n").unwrap();
    let after = server.get("/hello.txt");
    assert_eq!(after.body, b"HELLO WORLD\n");
    assert_ne!(
        after.header("etag"),
        Some(old.as_str()),
        "same-size rewrite kept the ETag"
    );
    let r = get_with(&server, "/hello.txt", &format!("If-None-Match: {old}\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"HELLO WORLD\n");
}

#[test]
fn if_none_match_gives_304_without_body() {
    let server = TestServer::start_with(&[], dated_site);
    let etag = server.get("/hello.txt").header("etag").unwrap().to_string();
    for inm in [
        etag.clone(),
        format!("\"nope\", {etag}, \"other\""),
        format!("\"nope\",{etag}"),
        "*".to_string(),
        format!("W/{etag}"),
    ] {
        let r = get_with(&server, "/hello.txt", &format!("If-None-Match: {inm}\r\n"));
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("etag"),
            Some(etag.as_str()),
            "304 carries the ETag"
        );
        assert!(r
            .header("content-length")
            .map_or(true, |v| v == "0" || v == "12"));
    }
    let r = get_with(
        &server,
        "/hello.txt",
        "If-None-Match: \"nope\", W/\"also-nope\"\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");

    // HEAD behaves the same.
    let r = one(&server, &format!("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 304);

    // A 304 on a kept-alive connection leaves the connection in sync.
    let mut s = server.connect();
    s.write_all(format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
    let r1 = read_response(&mut s, true).unwrap();
    let r2 = read_response(&mut s, true).unwrap();
    assert_eq!((r1.status, r2.status), (304, 200));
    assert_eq!(r2.body, b"body{}\n");
}

#[test]
fn if_modified_since() {
    let server = TestServer::start_with(&[], dated_site);
    let ims = |d: &str| {
        get_with(
            &server,
            "/hello.txt",
            &format!("If-Modified-Since: {d}\r\n"),
        )
    };
    let equal = ims(&http_date(MTIME));
    assert_eq!(equal.status, 304);
    assert!(equal.body.is_empty());
    assert_eq!(ims(&http_date(MTIME + 86_400)).status, 304, "later date");
    let earlier = ims(&http_date(MTIME - 1));
    assert_eq!(earlier.status, 200, "earlier date");
    assert_eq!(earlier.body, b"hello world\n");
    // The obsolete formats are understood too.
    assert_eq!(
        ims("Wednesday, 01-Jan-20 00:00:00 GMT").status,
        304,
        "RFC 850 date"
    );
    assert_eq!(ims("Wed Jan  1 00:00:00 2020").status, 304, "asctime date");
    for garbage in [
        "yesterday",
        "",
        "Wed, 32 Jan 2020 00:00:00 GMT",
        "0",
        "\"etag\"",
    ] {
        let r = ims(garbage);
        assert_eq!(r.status, 200, "garbage date {garbage:?} must be ignored");
        assert_eq!(r.body, b"hello world\n");
    }
    // A date in the future is invalid and ignored.
    let future = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400 * 365;
    assert_eq!(ims(&http_date(future)).status, 200, "future date");
}

#[test]
fn if_match_and_if_unmodified_since() {
    let server = TestServer::start_with(&[], dated_site);
    let etag = server.get("/hello.txt").header("etag").unwrap().to_string();

    let r = get_with(&server, "/hello.txt", "If-Match: \"something-else\"\r\n");
    assert_eq!(r.status, 412);
    let r = get_with(&server, "/hello.txt", &format!("If-Match: W/{etag}\r\n"));
    assert_eq!(r.status, 412, "If-Match uses the strong comparison");
    for ok in [etag.clone(), "*".to_string(), format!("\"x\", {etag}")] {
        let r = get_with(&server, "/hello.txt", &format!("If-Match: {ok}\r\n"));
        assert_eq!(r.status, 200, "If-Match: {ok}");
        assert_eq!(r.body, b"hello world\n");
    }

    let r = get_with(
        &server,
        "/hello.txt",
        &format!("If-Unmodified-Since: {}\r\n", http_date(MTIME - 60)),
    );
    assert_eq!(r.status, 412);
    let r = get_with(
        &server,
        "/hello.txt",
        &format!("If-Unmodified-Since: {}\r\n", http_date(MTIME)),
    );
    assert_eq!(r.status, 200);
    let r = get_with(&server, "/hello.txt", "If-Unmodified-Since: not a date\r\n");
    assert_eq!(r.status, 200, "an invalid If-Unmodified-Since is ignored");
    // If-Match present: If-Unmodified-Since is not evaluated (RFC 9110 §13.2.2).
    let r = get_with(
        &server,
        "/hello.txt",
        &format!(
            "If-Match: {etag}\r\nIf-Unmodified-Since: {}\r\n",
            http_date(MTIME - 60)
        ),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn if_none_match_takes_precedence_over_if_modified_since() {
    let server = TestServer::start_with(&[], dated_site);
    let etag = server.get("/hello.txt").header("etag").unwrap().to_string();
    // Non-matching If-None-Match + an If-Modified-Since that alone would give 304: 200.
    let r = get_with(
        &server,
        "/hello.txt",
        &format!(
            "If-None-Match: \"other\"\r\nIf-Modified-Since: {}\r\n",
            http_date(MTIME + 3600)
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    // Matching If-None-Match + an If-Modified-Since that alone would give 200: 304.
    let r = get_with(
        &server,
        "/hello.txt",
        &format!(
            "If-Modified-Since: {}\r\nIf-None-Match: {etag}\r\n",
            http_date(MTIME - 3600)
        ),
    );
    assert_eq!(r.status, 304);
}

// ---------------------------------------------------------------------------
// ranges
// ---------------------------------------------------------------------------

const DIGITS: &[u8] = b"0123456789abcdefghij"; // 20 bytes

fn range_site(root: &Path) {
    populate(root);
    std::fs::write(root.join("digits.txt"), DIGITS).unwrap();
    set_mtime(&root.join("digits.txt"), MTIME);
    // Larger than the in-memory threshold, so it is sent from disk.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    std::fs::write(root.join("zero.txt"), b"").unwrap();
}

fn ranged(server: &TestServer, path: &str, range: &str) -> Response {
    get_with(server, path, &format!("Range: {range}\r\n"))
}

#[test]
fn single_ranges() {
    let server = TestServer::start_with(&[], range_site);
    let full = server.get("/digits.txt");
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let cases: &[(&str, &str, &[u8])] = &[
        ("bytes=0-4", "bytes 0-4/20", b"01234"),
        ("bytes=-5", "bytes 15-19/20", b"fghij"),
        ("bytes=5-", "bytes 5-19/20", b"56789abcdefghij"),
        ("bytes=15-100", "bytes 15-19/20", b"fghij"),
        ("bytes=-100", "bytes 0-19/20", DIGITS),
        ("bytes=19-19", "bytes 19-19/20", b"j"),
        ("bytes = 0-0", "bytes 0-0/20", b"0"),
    ];
    for (range, content_range, body) in cases {
        let r = ranged(&server, "/digits.txt", range);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("content-range"), Some(*content_range), "{range}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{range}"
        );
        assert_eq!(r.body, *body, "{range}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
    // From disk (sendfile at an offset).
    let big = std::fs::read(server.path("big.bin")).unwrap();
    let r = ranged(&server, "/big.bin", "bytes=70000-270009");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 70000-270009/300000"));
    assert_eq!(r.body, &big[70000..270010]);
    let r = ranged(&server, "/big.bin", "bytes=-10");
    assert_eq!(r.body, &big[299_990..]);
}

#[test]
fn unsatisfiable_and_ignored_ranges() {
    let server = TestServer::start_with(&[], range_site);
    for range in ["bytes=20-", "bytes=100-200", "bytes=-0", "bytes=20-30, 40-"] {
        let r = ranged(&server, "/digits.txt", range);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */20"), "{range}");
    }
    // Nothing of an empty file is satisfiable.
    for range in ["bytes=0-0", "bytes=-5", "bytes=0-"] {
        let r = ranged(&server, "/zero.txt", range);
        assert_eq!(r.status, 416, "empty file, {range}");
        assert_eq!(r.header("content-range"), Some("bytes */0"));
    }
    // Syntactically invalid Range headers are ignored: the whole file.
    for range in ["bytes=5-2", "bytes=a-b", "items=0-1", "bytes=", "0-4"] {
        let r = ranged(&server, "/digits.txt", range);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body, DIGITS, "{range}");
    }
    // Range on HEAD is ignored (ranges apply to GET).
    let r = one(
        &server,
        "HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20"));
}

/// The parts of a `multipart/byteranges` response: (Content-Range, bytes), after
/// checking the framing against the boundary in its Content-Type.
fn byteranges(r: &Response) -> Vec<(String, Vec<u8>)> {
    let ctype = r.header("content-type").expect("content-type");
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {ctype}"));
    let delim = format!("--{boundary}");
    let body = &r.body[..];
    assert_eq!(
        body.len().to_string(),
        r.header("content-length").unwrap_or("")
    );
    let close = format!("\r\n{delim}--\r\n");
    assert!(body.ends_with(close.as_bytes()), "no closing delimiter");
    let mut parts = Vec::new();
    let mut rest = &body[..body.len() - close.len()];
    let sep = format!("\r\n{delim}\r\n");
    assert!(rest.starts_with(format!("{delim}\r\n").as_bytes()));
    rest = &rest[delim.len() + 2..];
    loop {
        let end = rest
            .windows(sep.len())
            .position(|w| w == sep.as_bytes())
            .unwrap_or(rest.len());
        let part = &rest[..end];
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part head");
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let mut range = None;
        for line in head.split("\r\n") {
            if let Some(v) = line.strip_prefix("Content-Range: ") {
                range = Some(v.to_string());
            }
        }
        assert!(head.contains("Content-Type: text/plain"), "{head}");
        parts.push((range.expect("Content-Range"), part[split + 4..].to_vec()));
        if end == rest.len() {
            break;
        }
        rest = &rest[end + sep.len()..];
    }
    parts
}

#[test]
fn several_ranges_get_multipart_byteranges() {
    let server = TestServer::start_with(&[], range_site);
    let r = ranged(&server, "/digits.txt", "bytes=0-1,5-6");
    assert_eq!(r.status, 206);
    assert!(r.header("content-range").is_none());
    assert!(r.header("etag").is_some());
    let parts = byteranges(&r);
    assert_eq!(
        parts,
        [
            ("bytes 0-1/20".to_string(), b"01".to_vec()),
            ("bytes 5-6/20".to_string(), b"56".to_vec())
        ]
    );
    // Sorted, and the suffix range resolved.
    let r = ranged(&server, "/digits.txt", "bytes=10-14, 0-4, -2");
    let parts = byteranges(&r);
    let got: Vec<_> = parts.iter().map(|(h, b)| (h.as_str(), &b[..])).collect();
    assert_eq!(
        got,
        [
            ("bytes 0-4/20", &DIGITS[0..5]),
            ("bytes 10-14/20", &DIGITS[10..15]),
            ("bytes 18-19/20", &DIGITS[18..20])
        ]
    );
    // Overlapping and adjacent ranges are merged; merged into one, a plain 206.
    let r = ranged(&server, "/digits.txt", "bytes=0-3,2-5,6-7");
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 0-7/20"))
    );
    assert_eq!(r.body, &DIGITS[..8]);
    // Only one of the ranges satisfiable: that one.
    let r = ranged(&server, "/digits.txt", "bytes=0-1, 500-600");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"01");
    // HEAD: the same head, no body.
    let r = one(
        &server,
        "HEAD /digits.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,5-6\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn several_ranges_of_a_large_file_are_sent_from_disk() {
    let server = TestServer::start_with(&[], range_site);
    let big = std::fs::read(server.path("big.bin")).unwrap();
    let r = ranged(&server, "/big.bin", "bytes=0-9,100000-199999,-10");
    assert_eq!(r.status, 206);
    let ctype = r.header("content-type").unwrap().to_string();
    let boundary = ctype.split("boundary=").nth(1).unwrap();
    let delim = format!("--{boundary}\r\n");
    let n = r
        .body
        .windows(delim.len())
        .filter(|w| *w == delim.as_bytes())
        .count();
    assert_eq!(n, 3);
    let at = |needle: &[u8]| r.body.windows(needle.len()).position(|w| w == needle);
    let mid = at(b"Content-Range: bytes 100000-199999/300000\r\n\r\n").expect("middle part");
    let start = mid + b"Content-Range: bytes 100000-199999/300000\r\n\r\n".len();
    assert_eq!(&r.body[start..start + 100_000], &big[100_000..200_000]);
    assert!(at(b"Content-Range: bytes 299990-299999/300000").is_some());
}

#[test]
fn too_many_or_too_large_ranges_get_the_whole_file() {
    let server = TestServer::start_with(&[], range_site);
    let seventeen: Vec<String> = (0..17).map(|i| format!("{i}-{i}")).collect();
    let seventeen = format!("bytes={}", seventeen.join(","));
    let sixteen = format!(
        "bytes={}",
        (0..16)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for range in [seventeen.as_str(), "bytes=0-15,5-19", "bytes=0-,0-"] {
        let r = ranged(&server, "/digits.txt", range);
        assert_eq!((r.status, &r.body[..]), (200, DIGITS), "{range}");
    }
    // Sixteen adjacent one-byte ranges are one range once merged.
    let r = ranged(&server, "/digits.txt", &sixteen);
    assert_eq!((r.status, &r.body[..]), (206, &DIGITS[..16]));
}

#[test]
fn curl_reads_a_multipart_response() {
    let server = TestServer::start_with(&[], range_site);
    let url = format!("http://{}/digits.txt", server.addr);
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "-r", "0-1,5-6", &url])
        .output();
    let Ok(out) = out else {
        eprintln!("skipping: curl not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Content-Range: bytes 0-1/20"), "{text}");
    assert!(text.contains("Content-Range: bytes 5-6/20"), "{text}");
}

#[test]
fn preconditions_come_before_ranges() {
    let server = TestServer::start_with(&[], range_site);
    let etag = server
        .get("/digits.txt")
        .header("etag")
        .unwrap()
        .to_string();
    let r = get_with(
        &server,
        "/digits.txt",
        &format!("Range: bytes=0-4\r\nIf-None-Match: {etag}\r\n"),
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = get_with(
        &server,
        "/digits.txt",
        "Range: bytes=0-4\r\nIf-Match: \"other\"\r\n",
    );
    assert_eq!(r.status, 412);
    let r = get_with(
        &server,
        "/digits.txt",
        &format!("Range: bytes=0-4\r\nIf-Match: {etag}\r\n"),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"01234");
}

#[test]
fn if_range() {
    let server = TestServer::start_with(&[], range_site);
    let full = server.get("/digits.txt");
    let etag = full.header("etag").unwrap().to_string();
    let lm = full.header("last-modified").unwrap().to_string();

    let r = get_with(
        &server,
        "/digits.txt",
        &format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"01234");
    let r = get_with(
        &server,
        "/digits.txt",
        &format!("Range: bytes=0-4\r\nIf-Range: {lm}\r\n"),
    );
    assert_eq!(r.status, 206, "If-Range with the exact Last-Modified date");
    assert_eq!(r.body, b"01234");
    for stale in [
        "\"not-the-etag\"".to_string(),
        format!("W/{etag}"),
        http_date(MTIME - 10),
    ] {
        let r = get_with(
            &server,
            "/digits.txt",
            &format!("Range: bytes=0-4\r\nIf-Range: {stale}\r\n"),
        );
        assert_eq!(r.status, 200, "If-Range: {stale}");
        assert_eq!(r.body, DIGITS);
        assert!(r.header("content-range").is_none());
    }
}

#[test]
fn range_across_four_gib_in_a_sparse_file() {
    const SIZE: u64 = 5 << 30;
    const FOUR_GIB: u64 = 1 << 32;
    const MARK_AT: u64 = (9 << 30) / 2; // 4.5 GiB
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(root.join("huge.bin")).unwrap();
        f.set_len(SIZE).unwrap();
        f.write_all_at(b"<<low>>", FOUR_GIB - 4).unwrap(); // straddles 4 GiB
        f.write_all_at(b"MARKER-4.5GiB", MARK_AT).unwrap();
        f.write_all_at(b"END", SIZE - 3).unwrap();
    });
    let r = one(
        &server,
        "HEAD /huge.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));

    let (a, b) = (FOUR_GIB - 8, FOUR_GIB + 7);
    let r = ranged(&server, "/huge.bin", &format!("bytes={a}-{b}"));
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {a}-{b}/{SIZE}").as_str())
    );
    assert_eq!(r.body, b"\0\0\0\0<<low>>\0\0\0\0\0");

    let r = ranged(
        &server,
        "/huge.bin",
        &format!("bytes={}-{}", MARK_AT - 2, MARK_AT + 14),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"\0\0MARKER-4.5GiB\0\0");

    let r = ranged(&server, "/huge.bin", "bytes=-5");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{SIZE}", SIZE - 5, SIZE - 1).as_str())
    );
    assert_eq!(r.body, b"\0\0END");

    let r = ranged(&server, "/huge.bin", &format!("bytes={SIZE}-"));
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{SIZE}").as_str())
    );
}
