//! The file cache and autoindex under hostile conditions: descriptor limits, files
//! deleted or rewritten while cached, huge directories, and names or links crafted to
//! reach what the server should not show.

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Descriptors of `pid` whose target was deleted.
fn deleted_fds(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.ends_with("(deleted)"))
        .collect()
}

fn head(s: &mut std::net::TcpStream, path: &str) -> u16 {
    s.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    read_response(s, false).map_or(0, |r| r.status)
}

#[test]
fn cached_descriptors_leave_room_for_connections() {
    let root = tempfile::tempdir().unwrap();
    let body = vec![b'x'; 70 * 1024];
    for i in 0..400 {
        std::fs::write(root.path().join(format!("f{i:03}.bin")), &body).unwrap();
    }
    std::fs::write(root.path().join("mid.bin"), &body).unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=400:400", "--", env!("CARGO_BIN_EXE_hearth")]);
    let server = TestServer::launch(cmd, root, &[]);
    let mut s = server.connect();
    let failed: Vec<(usize, u16)> = (0..400)
        .map(|i| (i, head(&mut s, &format!("/f{i:03}.bin"))))
        .filter(|&(_, status)| status != 200)
        .collect();
    assert!(failed.is_empty(), "file opens refused: {failed:?}");
    // Connections still have their descriptors: more clients are served at once.
    let clients: Vec<_> = (0..50).map(|_| server.connect()).collect();
    for mut c in clients {
        assert_eq!(head(&mut c, "/mid.bin"), 200);
    }
    let r = server.get("/mid.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
}

#[test]
fn deleted_files_are_released() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("big.bin"), vec![b'b'; 100 * 1024]).unwrap();
        std::fs::write(root.join("big2.bin"), vec![b'c'; 100 * 1024]).unwrap();
    });
    let pid = server.child.id();
    assert_eq!(server.get("/big.bin").status, 200);
    assert_eq!(server.get("/big2.bin").status, 200);
    std::fs::remove_file(server.path("big.bin")).unwrap();
    std::fs::remove_file(server.path("big2.bin")).unwrap();
    // Asked for again: gone, and its descriptor with it.
    assert_eq!(server.get("/big.bin").status, 404);
    // Never asked for again: released while other files are served.
    let released = wait_until(Duration::from_secs(5), || {
        server.assert_alive();
        deleted_fds(pid).is_empty()
    });
    assert!(released, "still open: {:?}", deleted_fds(pid));
}

#[test]
fn rewritten_files_are_served_fresh() {
    let server = TestServer::start(&[]);
    let big = |c: u8, n: usize| vec![c; 100 * 1024 + n];
    std::fs::write(server.path("big.bin"), big(b'1', 0)).unwrap();
    let small = server.get("/hello.txt");
    let large = server.get("/big.bin");
    assert_eq!(large.body, big(b'1', 0));

    std::fs::write(server.path("hello.txt"), b"second version\n").unwrap();
    std::fs::write(server.path("big.bin"), big(b'2', 7)).unwrap();
    let r = server.get("/hello.txt");
    assert_eq!(r.body, b"second version\n");
    assert_ne!(r.header("etag"), small.header("etag"));
    let r = server.get("/big.bin");
    assert_eq!(r.body, big(b'2', 7));
    assert_ne!(r.header("etag"), large.header("etag"));

    // Same size, new bytes: the modification time tells them apart.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(server.path("hello.txt"), b"third  version\n").unwrap();
    assert_eq!(server.get("/hello.txt").body, b"third  version\n");
    // A directory's index is checked too.
    assert_eq!(server.get("/sub/").body, b"<p>sub</p>\n");
    std::fs::write(server.path("sub/index.html"), b"<p>new sub</p>\n").unwrap();
    assert_eq!(server.get("/sub/").body, b"<p>new sub</p>\n");
}

fn big_dir(root: &Path) {
    populate(root);
    let dir = root.join("bigdir");
    std::fs::create_dir(&dir).unwrap();
    // Long names: a listing bigger than the kernel buffers a stalled socket absorbs.
    let pad = "n".repeat(200);
    for i in 0..20_000 {
        std::fs::write(dir.join(format!("{pad}-{i:05}.txt")), b"").unwrap();
    }
}

#[test]
fn stalled_listing_readers_share_one_bounded_copy() {
    let server = TestServer::start_with(&["--autoindex"], big_dir);
    let pid = server.child.id();
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut s = server.connect();
        s.write_all(b"GET /bigdir/ HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        held.push(s);
    }
    // Read only the first bytes of each, so every response has been produced.
    for s in &mut held {
        let mut first = [0u8; 512];
        assert!(s.read(&mut first).unwrap() > 0);
    }
    std::thread::sleep(Duration::from_millis(300));
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB for 50 stalled readers"
    );
    // Served promptly meanwhile.
    let start = Instant::now();
    server.assert_alive();
    assert!(start.elapsed() < Duration::from_secs(2));
    let page = String::from_utf8(server.get("/bigdir/").body).unwrap();
    let links = page.matches("<a href=").count();
    assert!(links <= 10_001, "{links} links: the listing is not bounded");
    assert!(
        page.contains("truncated"),
        "no note that entries were left out"
    );
}

#[test]
fn listing_shows_directory_changes_at_once() {
    let server = TestServer::start_with(&["--autoindex"], |root| {
        populate(root);
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/one.txt"), b"1").unwrap();
    });
    // Old enough that the listing is cached, then asked twice.
    std::thread::sleep(Duration::from_millis(300));
    let page = |s: &TestServer| String::from_utf8(s.get("/d/").body).unwrap();
    assert!(page(&server).contains("one.txt"));
    assert!(page(&server).contains("one.txt"));
    std::fs::write(server.path("d/two.txt"), b"2").unwrap();
    let p = page(&server);
    assert!(p.contains("one.txt") && p.contains("two.txt"), "{p}");
    std::fs::remove_file(server.path("d/one.txt")).unwrap();
    let p = page(&server);
    assert!(!p.contains("one.txt") && p.contains("two.txt"), "{p}");
}

#[test]
fn listing_hrefs_are_relative() {
    let server = TestServer::start_with(&["--autoindex"], |root| {
        populate(root);
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/javascript:alert(1)"), b"js").unwrap();
        std::fs::write(root.join("d/data:text"), b"data").unwrap();
    });
    let page = String::from_utf8(server.get("/d/").body).unwrap();
    for href in page.split("href=\"").skip(1) {
        let url = href.split('"').next().unwrap_or("");
        let scheme = url.split(['/', '?', '#']).next().unwrap_or("");
        assert!(!scheme.contains(':'), "href {url:?} has a scheme: {page}");
    }
    assert!(page.contains("javascript%3Aalert(1)"), "{page}");
    // The encoded link still leads to the file.
    let r = server.get("/d/javascript%3Aalert(1)");
    assert_eq!((r.status, r.body), (200, b"js".to_vec()));
}

#[test]
fn links_to_dotfiles_are_hidden_like_the_dotfiles() {
    use std::os::unix::fs::symlink;
    let server = TestServer::start_with(&["--autoindex"], |root| {
        populate(root);
        std::fs::write(root.join(".env"), b"SECRET=1\n").unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), b"[core]\n").unwrap();
        symlink(".env", root.join("envlink")).unwrap();
        symlink(".git", root.join("gitlink")).unwrap();
        symlink("hello.txt", root.join("hellolink")).unwrap();
    });
    assert_eq!(server.get("/.env").status, 404);
    for path in ["/envlink", "/gitlink/config", "/gitlink/"] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("SECRET"));
    }
    let r = server.get("/hellolink");
    assert_eq!((r.status, r.body), (200, b"hello world\n".to_vec()));
}

#[test]
fn followed_links_to_dotfiles_are_hidden() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join(".secret"), b"SECRET\n").unwrap();
    std::fs::write(outside.path().join("public.txt"), b"public\n").unwrap();
    let server = TestServer::start_with(&["--follow-symlinks"], |root| {
        populate(root);
        symlink(outside.path().join(".secret"), root.join("secretlink")).unwrap();
        symlink(outside.path().join("public.txt"), root.join("publiclink")).unwrap();
    });
    assert_eq!(server.get("/secretlink").status, 404);
    assert_eq!(server.get("/publiclink").body, b"public\n");
}

#[test]
fn renamed_over_files_are_served_fresh() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    let big = |i: usize| vec![b'a' + (i % 26) as u8; 100 * 1024 + i];
    std::fs::write(server.path("big.bin"), big(0)).unwrap();
    assert_eq!(get_on(&mut s, "/hello.txt", "t", "").status, 200);
    assert_eq!(get_on(&mut s, "/big.bin", "t", "").body, big(0));
    // Each version written beside the file, then renamed over it, as deploys do;
    // the next request on the same connection sees it.
    for i in 1..40 {
        let tmp = server.path(&format!("hello.txt.tmp{i}"));
        std::fs::write(&tmp, format!("version {i}\n")).unwrap();
        std::fs::rename(&tmp, server.path("hello.txt")).unwrap();
        let r = get_on(&mut s, "/hello.txt", "t", "");
        assert_eq!(r.body, format!("version {i}\n").as_bytes(), "round {i}");
        let tmp = server.path(&format!("big.tmp{i}"));
        std::fs::write(&tmp, big(i)).unwrap();
        std::fs::rename(&tmp, server.path("big.bin")).unwrap();
        assert!(
            get_on(&mut s, "/big.bin", "t", "").body == big(i),
            "round {i}"
        );
    }
}

#[test]
fn a_sibling_that_appears_is_served_at_once() {
    let server = TestServer::start(&[]);
    let mut s = server.connect();
    let gzip = "Accept-Encoding: gzip\r\n";
    let r = get_on(&mut s, "/style.css", "t", gzip);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    for round in 0..10 {
        std::fs::write(server.path("style.css.gz"), format!("gz {round}")).unwrap();
        let r = get_on(&mut s, "/style.css", "t", gzip);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "round {round}");
        assert_eq!(r.body, format!("gz {round}").as_bytes());
        std::fs::remove_file(server.path("style.css.gz")).unwrap();
        let r = get_on(&mut s, "/style.css", "t", gzip);
        assert_eq!(r.header("content-encoding"), None, "round {round}");
        assert_eq!(r.body, b"body{}\n");
    }
}
