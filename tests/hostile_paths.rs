//! Hostile paths against the real binary: traversal spellings, double decoding,
//! symlinks out of the root, dotfiles, listings and special files.
//!
//! Every wait is bounded: socket timeouts come from `common::IO_TIMEOUT` or are set
//! here, and polling loops have deadlines. After each hostile case the server must
//! still answer a normal request (`assert_alive`).

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

// ---------------------------------------------------------------------------
// paths
// ---------------------------------------------------------------------------

#[test]
fn traversal_spellings_are_400() {
    let server = TestServer::start(&[]);
    for path in [
        "/../hello.txt",
        "/../../../../etc/passwd",
        "/sub/../../hello.txt",
        "/..",
        "/%2e%2e/hello.txt",
        "/%2E%2E/hello.txt",
        "/%2E./hello.txt",
        "/.%2e/hello.txt",
        "/..%2fhello.txt",
        "/..%2Fetc%2Fpasswd",
        "/sub%2fhello.txt",
        "/..\\hello.txt",
        "/sub\\..\\hello.txt",
        "/%5c..%5chello.txt",
        "/..%5chello.txt",
        "/hello.txt%00",
        "/hello.txt%00.html",
        "/%00",
        "/%c0%ae%c0%ae/hello.txt",
        "/%c0%af",
        "/%e0%80%ae%e0%80%ae/hello.txt",
        "/%ff",
        "/%0d%0aX-Injected:%201",
        "/%zz",
        "/%2",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut s = server.connect();
        s.write_all(raw.as_bytes()).unwrap();
        let r = read_response(&mut s, true).unwrap();
        assert_eq!(r.status, 400, "{path}");
        assert!(r.header("x-injected").is_none());
        assert!(is_closed(&mut s), "{path}");
    }
    server.assert_alive();
}

#[test]
fn paths_decode_exactly_once() {
    let server = TestServer::start(&[]);
    assert_eq!(server.get("/%252e%252e/hello.txt").status, 404);
    assert_eq!(server.get("/%252e%252e%252fhello.txt").status, 404);
    let r = server.get("/hello%2etxt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    let r = server.get("/sub/../hello.txt");
    assert_eq!(r.status, 200, "`..` that stays inside the root is resolved");
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(server.get("/./sub/./index.html").status, 200);
    assert_eq!(server.get("//hello.txt").status, 200);
    assert_eq!(
        server.get("/hello.txt/").status,
        404,
        "a file named as a directory"
    );
    assert_eq!(
        server.get("/hello.txt?x=../../etc/passwd").status,
        200,
        "the query is not a path"
    );
    server.assert_alive();
}

fn symlink_site(root: &Path, outside: &Path) {
    populate(root);
    std::fs::write(outside.join("secret.txt"), b"outside\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("out.txt")).unwrap();
    std::os::unix::fs::symlink(outside, root.join("outdir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("hostname")).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("in.txt")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("sub/up.txt")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("subl")).unwrap();
}

#[test]
fn directory_redirects_stay_on_this_host() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::create_dir_all(root.join("evil.example")).unwrap();
    });
    for path in [
        "//evil.example",
        "///evil.example",
        "//evil.example?x=1",
        "/./sub",
        "//sub",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 301, "{path}");
        let location = r.header("location").unwrap();
        assert!(
            location.starts_with('/') && !location.starts_with("//"),
            "{path} -> Location: {location}"
        );
        assert!(!location.contains('\\'), "{path} -> Location: {location}");
    }
    server.assert_alive();
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&[], |root| symlink_site(root, outside.path()));
    assert_eq!(server.get("/out.txt").status, 403);
    assert_eq!(server.get("/outdir/secret.txt").status, 403);
    assert_eq!(server.get("/outdir/").status, 403);
    if Path::new("/etc/hostname").exists() {
        assert_eq!(server.get("/hostname").status, 403);
    }
    // Links that stay inside the root are fine.
    for path in ["/in.txt", "/sub/up.txt", "/subl/../hello.txt"] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, b"hello world\n", "{path}");
    }
    assert_eq!(server.get("/subl/index.html").body, b"<p>sub</p>\n");
    server.assert_alive();
}

#[test]
fn follow_symlinks_serves_links_out_of_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["--follow-symlinks"], |root| {
        symlink_site(root, outside.path())
    });
    let r = server.get("/out.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"outside\n");
    assert_eq!(server.get("/outdir/secret.txt").body, b"outside\n");
    if let Ok(host) = std::fs::read("/etc/hostname") {
        let r = server.get("/hostname");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, host);
    }
    assert_eq!(server.get("/in.txt").body, b"hello world\n");
    // Still no climbing out with `..` in the request.
    assert_eq!(server.get("/../hello.txt").status, 400);
    server.assert_alive();
}

#[test]
fn dotfiles_are_hidden() {
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join(".env"), b"SECRET=1\n").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), b"[core]\n").unwrap();
        std::fs::write(root.join("sub/.htpasswd"), b"u:p\n").unwrap();
        std::fs::create_dir_all(root.join(".well-known")).unwrap();
        std::fs::write(root.join(".well-known/security.txt"), b"Contact: x\n").unwrap();
    });
    for path in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/.git",
        "/sub/.htpasswd",
        "/%2eenv",
        "/sub/../.env",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("SECRET"));
    }
    assert_eq!(server.get("/.well-known/security.txt").status, 200);
    server.assert_alive();
}

fn listing_site(root: &Path) {
    populate(root);
    std::fs::create_dir_all(root.join("files/inner")).unwrap();
    std::fs::write(root.join("files/plain.txt"), b"p").unwrap();
    std::fs::write(root.join("files/a<b>&\"c'.txt"), b"x").unwrap();
    std::fs::write(root.join("files/<img src=x onerror=alert(1)>"), b"x").unwrap();
    std::fs::write(root.join("files/.hidden"), b"x").unwrap();
}

#[test]
fn directories_without_index() {
    let server = TestServer::start_with(&[], listing_site);
    assert_eq!(server.get("/empty/").status, 403);
    assert_eq!(server.get("/files/").status, 403);
    assert_eq!(
        server.get("/sub/").status,
        200,
        "a directory with index.html"
    );

    let server = TestServer::start_with(&["--autoindex"], listing_site);
    let r = server.get("/files/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("plain.txt"), "{page}");
    assert!(page.contains("inner/"), "{page}");
    assert!(
        page.contains("a&lt;b&gt;&amp;&quot;c&#39;.txt"),
        "names are HTML-escaped: {page}"
    );
    assert!(
        !page.contains("<img"),
        "no raw markup from file names: {page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains(".hidden"), "dotfiles are not listed: {page}");
    // Links are percent-encoded so they lead back to the files, and cannot end the
    // attribute or open a tag.
    assert!(page.contains("href=\"a%3Cb%3E"), "{page}");
    assert!(
        page.contains("href=\"%3Cimg%20src=x%20onerror=alert(1)%3E\""),
        "{page}"
    );
    let r = server.get("/files/a%3Cb%3E%26%22c'.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"x");
    let r = server.get("/empty/");
    assert_eq!(r.status, 200);
    server.assert_alive();
}

#[test]
fn autoindex_hrefs_lead_to_the_files() {
    let server = TestServer::start_with(&["--autoindex"], |root| {
        populate(root);
        std::fs::create_dir_all(root.join("amp")).unwrap();
        std::fs::write(root.join("amp/x&amp;y.txt"), b"x").unwrap();
    });
    let page = String::from_utf8(server.get("/amp/").body).unwrap();
    // The attribute value must decode (HTML) to a URL naming `x&amp;y.txt`: either
    // `&` HTML-escaped (`x&amp;amp;y.txt`) or percent-encoded (`x%26amp;y.txt`).
    assert!(
        page.contains("href=\"x&amp;amp;y.txt\"")
            || page.contains("href=\"x%26amp%3By.txt\"")
            || page.contains("href=\"x%26amp;y.txt\""),
        "{page}"
    );
}

#[test]
fn unreadable_and_special_files_are_403() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_with(&[], |root| {
        populate(root);
        std::fs::write(root.join("locked.txt"), b"no").unwrap();
        std::fs::set_permissions(
            root.join("locked.txt"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status();
        assert!(status.is_ok_and(|s| s.success()), "mkfifo");
    });
    let r = server.get("/locked.txt");
    assert_eq!(r.status, 403);
    assert_ne!(r.body, b"no");
    // Opening a FIFO must neither hang a worker nor serve it.
    let (status, took) = timed_get(&server, "/fifo");
    assert_eq!(status, 403);
    assert!(took < Duration::from_secs(2));
    server.assert_alive();
}
