//! Compression on the fly through real clients: curl `--compressed` decoding br,
//! zstd and gzip, q-value negotiation, precompressed siblings first, per-encoding
//! entity tags and 304s, ranges of the encoded bytes, the cache (one compression
//! per burst, dropped when the file changes, bounded by bytes) and the switches.

mod common;
use common::*;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// A script of `n` bytes that compresses the way real code does.
fn script(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        let line = format!(
            "function handler{i}(event) {{ if (event.target.value > {}) {{ return render(state.items[{}]); }} }}\n",
            i * 7 % 1000,
            i % 97
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn site(root: &Path) {
    populate(root);
    std::fs::write(root.join("app.js"), script(20_000)).unwrap();
    // Larger than the in-memory threshold: read from disk to compress.
    std::fs::write(root.join("big.js"), script(200_000)).unwrap();
    std::fs::write(root.join("tiny.js"), b"let x = 1;\n").unwrap();
    std::fs::write(root.join("photo.png"), script(20_000)).unwrap();
    std::fs::write(root.join("pre.css"), script(5_000)).unwrap();
    std::fs::write(root.join("pre.css.gz"), b"precompressed gzip").unwrap();
}

fn get_enc(server: &TestServer, path: &str, accept: &str, extra: &str) -> Response {
    let ae = if accept.is_empty() {
        String::new()
    } else {
        format!("Accept-Encoding: {accept}\r\n")
    };
    server.request(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{ae}{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => brotli::BrotliDecompress(&mut &body[..], &mut out).unwrap(),
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("unknown coding {other}"),
    }
    out
}

/// A number on the statistics page's `compress_cache:` line.
fn cache_stat(server: &TestServer, key: &str) -> u64 {
    let text = String::from_utf8(server.get("/_stats").body).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("compress_cache: "))
        .unwrap_or_else(|| panic!("no compress_cache line in {text}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{key} not in {line}"))
        .parse()
        .unwrap()
}

#[test]
fn curl_decodes_each_encoding() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start_with(&[], site);
    for file in ["app.js", "big.js"] {
        let want = std::fs::read(server.path(file)).unwrap();
        for coding in ["br", "zstd", "gzip"] {
            let out = Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "10",
                    "--compressed",
                    "-D",
                    "/dev/stderr",
                ])
                .args(["-H", &format!("Accept-Encoding: {coding}")])
                .arg(format!("http://{}/{file}", server.addr))
                .output()
                .unwrap();
            let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
            assert!(
                head.contains(&format!("content-encoding: {coding}\r\n")),
                "{file} {coding}: {head}"
            );
            assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
            assert_eq!(out.stdout, want, "{file} {coding}");
        }
    }
    // curl's own Accept-Encoding lists all three: the server prefers br.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--compressed", "-o", "/dev/null"])
        .args(["-w", "%header{content-encoding}"])
        .arg(format!("http://{}/app.js", server.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "br");
}

#[test]
fn quality_values_choose_the_encoding() {
    let server = TestServer::start_with(&[], site);
    let want = std::fs::read(server.path("app.js")).unwrap();
    for (accept, coding) in [
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip, zstd", Some("zstd")),
        ("br;q=0.5, gzip;q=0.8", Some("gzip")),
        ("*", Some("br")),
        ("*;q=0.5, br;q=0", Some("zstd")),
        ("gzip;q=0.5, identity", None),
        ("deflate", None),
        ("", None),
    ] {
        let r = get_enc(&server, "/app.js", accept, "");
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(r.header("content-encoding"), coding, "{accept}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept}");
        let body = match coding {
            Some(c) => decode(c, &r.body),
            None => r.body.clone(),
        };
        assert_eq!(body, want, "{accept}");
        if coding.is_some() {
            assert!(r.body.len() < want.len() / 4, "{accept}: poorly compressed");
        }
    }
}

#[test]
fn what_is_not_compressed() {
    let server = TestServer::start_with(&[], site);
    for path in ["/tiny.js", "/photo.png"] {
        let r = get_enc(&server, path, "br, gzip", "");
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
    // A precompressed sibling wins over compressing on the fly.
    let r = get_enc(&server, "/pre.css", "br, gzip", "");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, b"precompressed gzip");
    // Without a sibling the client accepts, on the fly.
    let r = get_enc(&server, "/pre.css", "br", "");
    assert_eq!(r.header("content-encoding"), Some("br"));

    let off = TestServer::start_with(&["--compress", "off"], site);
    let r = get_enc(&off, "/app.js", "br, gzip", "");
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    // A lower minimum and other types.
    let args = ["--compress-min", "5", "--compress-types", "image/png"];
    let other = TestServer::start_with(&args, site);
    assert_eq!(
        get_enc(&other, "/tiny.js", "gzip", "").header("content-encoding"),
        None
    );
    let r = get_enc(&other, "/photo.png", "gzip", "");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[test]
fn each_encoding_has_its_own_etag_and_304() {
    let server = TestServer::start_with(&[], site);
    let tag = |accept: &str| {
        get_enc(&server, "/app.js", accept, "")
            .header("etag")
            .unwrap()
            .to_string()
    };
    let (plain, br, gz) = (tag(""), tag("br"), tag("gzip"));
    assert!(plain != br && br != gz && plain != gz, "{plain} {br} {gz}");
    let inm = |t: &str| format!("If-None-Match: {t}\r\n");
    let r = get_enc(&server, "/app.js", "gzip", &inm(&gz));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(gz.as_str()));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // The gzip tag does not validate the br representation, nor the plain one.
    let r = get_enc(&server, "/app.js", "br", &inm(&gz));
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("br")));
    assert_eq!(get_enc(&server, "/app.js", "", &inm(&gz)).status, 200);
    assert_eq!(get_enc(&server, "/app.js", "", &inm(&plain)).status, 304);
}

#[test]
fn ranges_are_coherent_with_the_encoding() {
    let server = TestServer::start_with(&[], site);
    let full = get_enc(&server, "/big.js", "gzip", "");
    let gz_tag = full.header("etag").unwrap().to_string();
    let plain = std::fs::read(server.path("big.js")).unwrap();
    let plain_tag = get_enc(&server, "/big.js", "", "")
        .header("etag")
        .unwrap()
        .to_string();
    // A range of the encoded bytes, with the encoded tag.
    let r = get_enc(&server, "/big.js", "gzip", "Range: bytes=10-109\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some(gz_tag.as_str()));
    let total = format!("bytes 10-109/{}", full.body.len());
    assert_eq!(r.header("content-range"), Some(total.as_str()));
    assert_eq!(r.body, &full.body[10..110]);
    // If-Range with the identity tag while gzip is accepted: the whole gzip body.
    let extra = format!("Range: bytes=0-9\r\nIf-Range: {plain_tag}\r\n");
    let r = get_enc(&server, "/big.js", "gzip", &extra);
    assert_eq!((r.status, r.body.len()), (200, full.body.len()));
    // With the encoded tag: the range.
    let extra = format!("Range: bytes=0-9\r\nIf-Range: {gz_tag}\r\n");
    let r = get_enc(&server, "/big.js", "gzip", &extra);
    assert_eq!((r.status, &r.body[..]), (206, &full.body[..10]));
    // Without Accept-Encoding: ranges of the file itself.
    let r = get_enc(&server, "/big.js", "", "Range: bytes=0-9\r\n");
    assert_eq!((r.status, &r.body[..]), (206, &plain[..10]));
    assert_eq!(r.header("etag"), Some(plain_tag.as_str()));
}

#[test]
fn a_burst_compresses_once_and_later_requests_hit_the_cache() {
    let server = TestServer::start_with(&["--stats-path", "/_stats", "--threads", "4"], site);
    let server = Arc::new(server);
    let barrier = Arc::new(Barrier::new(16));
    let want = std::fs::read(server.path("big.js")).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (server, barrier, want) = (server.clone(), barrier.clone(), want.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = get_enc(&server, "/big.js", "zstd", "");
                assert_eq!(r.status, 200);
                // Those that came while it was compressed got the file itself.
                match r.header("content-encoding") {
                    Some(c) => assert_eq!(decode(c, &r.body), want),
                    None => assert_eq!(r.body, want),
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(cache_stat(&server, "compressions"), 1);
    for _ in 0..5 {
        let r = get_enc(&server, "/big.js", "zstd", "");
        assert_eq!(r.header("content-encoding"), Some("zstd"));
    }
    assert_eq!(cache_stat(&server, "compressions"), 1);
    assert!(cache_stat(&server, "hits") >= 5);
    assert_eq!(cache_stat(&server, "entries"), 1);
}

#[test]
fn a_changed_file_is_compressed_again() {
    let server = TestServer::start_with(&["--stats-path", "/_stats"], site);
    let r = get_enc(&server, "/app.js", "gzip", "");
    let old_tag = r.header("etag").unwrap().to_string();
    let new = b"const changed = true;\n".repeat(200);
    std::fs::write(server.path("app.js.tmp"), &new).unwrap();
    std::fs::rename(server.path("app.js.tmp"), server.path("app.js")).unwrap();
    let seen = wait_until(Duration::from_secs(5), || {
        let r = get_enc(&server, "/app.js", "gzip", "");
        r.header("content-encoding") == Some("gzip") && decode("gzip", &r.body) == new
    });
    assert!(seen, "the new content was never served compressed");
    let r = get_enc(&server, "/app.js", "gzip", "");
    assert_ne!(r.header("etag"), Some(old_tag.as_str()));
    assert_eq!(cache_stat(&server, "entries"), 1, "the old variant stayed");
    assert!(cache_stat(&server, "evictions") >= 1);
}

#[test]
fn the_cache_stays_within_its_size() {
    let server = TestServer::start_with(
        &["--stats-path", "/_stats", "--compress-cache", "64K"],
        |root| {
            populate(root);
            for i in 0..40 {
                // Each compresses to several KiB: distinct, hard to compress lines.
                let body: String = (0..3000u64)
                    .map(|j| format!("{:x}", (j * 2_654_435_761 + i * 97) % 1_000_003))
                    .collect::<Vec<_>>()
                    .join(",");
                std::fs::write(root.join(format!("f{i}.js")), body).unwrap();
            }
        },
    );
    for i in 0..40 {
        let r = get_enc(&server, &format!("/f{i}.js"), "gzip", "");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "f{i}");
    }
    let bytes = cache_stat(&server, "bytes");
    assert!(bytes <= 64 * 1024, "{bytes} bytes cached");
    assert!(cache_stat(&server, "evictions") > 0);
    assert!(cache_stat(&server, "entries") < 40);
    // The most recent stays.
    let before = cache_stat(&server, "compressions");
    get_enc(&server, "/f39.js", "gzip", "");
    assert_eq!(cache_stat(&server, "compressions"), before);
}

#[test]
fn compression_keys_in_the_file_and_per_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    site(other.path());
    let cfg = dir.path().join("hearth.toml");
    std::fs::write(
        &cfg,
        format!(
            "compress-min = 100000\ncompress-cache = \"1M\"\ncompress-types = [\"text/*\", \"application/json\"]\n\
             [[vhost]]\nhost = \"v.example\"\nroot = {:?}\ncompress = false\n\
             [[vhost]]\nhost = \"w.example\"\nroot = {:?}\ncompress-min = 10\n",
            other.path(),
            other.path()
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&["--config", cfg.to_str().unwrap()], site);
    let on = |host: &str, path: &str| {
        let r = server.request(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        r.header("content-encoding").map(str::to_string)
    };
    // 200,000 bytes is above the file's minimum; 20,000 below it.
    assert_eq!(on("t", "/big.js").as_deref(), Some("gzip"));
    assert_eq!(on("t", "/app.js"), None);
    assert_eq!(on("v.example", "/big.js"), None);
    assert_eq!(on("w.example", "/app.js").as_deref(), Some("gzip"));
    // A cache size is process-wide: refused inside a vhost.
    std::fs::write(&cfg, "[[vhost]]\nhost = \"x\"\ncompress-cache = \"1M\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--config", cfg.to_str().unwrap(), "--check", "--root"])
        .arg(other.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for bad in [
        ["--compress-cache", "lots"],
        ["--compress-types", "text"],
        ["--compress", "maybe"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(bad)
            .arg("--root")
            .arg(other.path())
            .arg("--check")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn a_file_larger_than_the_cache_is_sent_as_it_is() {
    let server = TestServer::start_with(
        &["--stats-path", "/_stats", "--compress-cache", "100K"],
        site,
    );
    // big.js is 200,000 bytes: its variant could not be kept, so it is never made.
    for _ in 0..3 {
        let r = get_enc(&server, "/big.js", "gzip", "");
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.body.len(), 200_000);
    }
    assert_eq!(cache_stat(&server, "compressions"), 0);
    let r = get_enc(&server, "/app.js", "gzip", "");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}
