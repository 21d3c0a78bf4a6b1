//! Basic authentication against htpasswd files made by Apache's `htpasswd`: every
//! hash type lets its user in, anything else gets `401` with the realm, bad files
//! are refused by `--check` with file and line, and SIGHUP reads the file again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;

/// `htpasswd -nb<flag> user password` (flag `B` bcrypt, `m` apr1, `s` SHA-1).
fn htpasswd(flag: &str, user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args([&format!("-nb{flag}"), user, password])
        .output()
        .expect("run htpasswd");
    assert!(out.status.success(), "htpasswd -nb{flag} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        STANDARD.encode(format!("{user}:{password}"))
    )
}

fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(10), cond),
        "timed out waiting for {what}"
    );
}

/// Writes `dir`/users: a comment, then one user per hash type, bea (bcrypt
/// $2y$), ann ($2a$), bob ($2b$), amy (apr1 MD5) and sam (SHA-1), with the
/// passwords b-pass, a-pass, bb-pass, m-pass and s-pass; returns its path.
fn users_of_every_hash_type(dir: &Path) -> PathBuf {
    let bcrypt = htpasswd("B", "bea", "b-pass");
    // $2a$ and $2b$ hash as $2y$ does for such passwords.
    let (b2a, b2b) = (
        htpasswd("B", "ann", "a-pass").replacen("$2y$", "$2a$", 1),
        htpasswd("B", "bob", "bb-pass").replacen("$2y$", "$2b$", 1),
    );
    let users = format!(
        "# staff\n{bcrypt}\n{b2a}\n{b2b}\n{}\n{}\n",
        htpasswd("m", "amy", "m-pass"),
        htpasswd("s", "sam", "s-pass")
    );
    let file = dir.join("users");
    std::fs::write(&file, users).unwrap();
    file
}

#[test]
fn each_hash_type_lets_its_user_in_and_anything_else_gets_401() {
    if !require_tool("htpasswd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = users_of_every_hash_type(dir.path());
    let srv = TestServer::start(&[
        "--auth-basic",
        "Staff only",
        "--auth-basic-user-file",
        file.to_str().unwrap(),
    ]);
    let mut s = srv.connect();
    let r = get_on(&mut s, "/hello.txt", "t", "");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Staff only\"")
    );
    assert!(!r.body.starts_with(b"hello"));
    for (user, password) in [
        ("bea", "b-pass"),
        ("ann", "a-pass"),
        ("bob", "bb-pass"),
        ("amy", "m-pass"),
        ("sam", "s-pass"),
    ] {
        let r = get_on(&mut s, "/hello.txt", "t", &basic(user, password));
        assert_eq!((user, r.status), (user, 200));
        assert_eq!(r.body, b"hello world\n");
        let r = get_on(&mut s, "/hello.txt", "t", &basic(user, "wrong"));
        assert_eq!((user, r.status), (user, 401));
        assert!(r.header("www-authenticate").is_some());
    }
    for bad in [
        basic("nobody", "b-pass"),
        "Authorization: Basic !!notbase64\r\n".to_string(),
        "Authorization: Bearer abc\r\n".to_string(),
        format!("Authorization: Basic {}\r\n", STANDARD.encode("sam")),
    ] {
        assert_eq!(get_on(&mut s, "/", "t", &bad).status, 401, "{bad}");
    }
    // The health check stays open to load balancers.
    assert_eq!(get_on(&mut s, "/healthz", "t", "").status, 200);
    // The user let in goes to the access log.
    eventually("the user in access.log", || {
        let log = srv.log("access.log");
        log.contains("127.0.0.1 - sam [") && log.contains("127.0.0.1 - - [")
    });
}

#[test]
fn check_refuses_plain_text_entries_and_missing_files_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        "sam:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncarol:secret\n",
    )
    .unwrap();
    let root = index_site("x\n");
    let check = |text: &str| {
        let cfg = write_config(dir.path(), text);
        let out = run_hearth(&["--check", "--config", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code(), err)
    };
    let site = format!("root = {:?}\n", root.path());
    let (code, err) = check(&format!(
        "{site}auth-basic = \"R\"\nauth-basic-user-file = {users:?}\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    let at = format!("{}:2: user \"carol\"", users.display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("hearth.toml:"), "{err}");

    let missing = dir.path().join("nope");
    let (code, err) = check(&format!(
        "{site}[[vhost]]\nhost = \"a.test\"\nroot = {:?}\nauth-basic = \"R\"\n\
         auth-basic-user-file = {missing:?}\n",
        root.path()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nope") && err.contains("a.test"), "{err}");

    let (code, err) = check(&format!("{site}auth-basic = \"R\"\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("hearth.toml:2: auth-basic"), "{err}");

    std::fs::write(&users, "sam:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let (code, err) = check(&format!(
        "{site}auth-basic = \"R\"\nauth-basic-user-file = {users:?}\n"
    ));
    assert_eq!(code, Some(0), "{err}");
}

/// A config with basic auth on the vhost `a.test` only.
fn vhost_auth(root: &Path, users: &Path) -> String {
    format!(
        "[[vhost]]\nhost = \"a.test\"\nroot = {root:?}\nauth-basic = \"A\"\n\
         auth-basic-user-file = {users:?}\n"
    )
}

#[test]
fn sighup_reads_the_user_file_again_and_keeps_it_when_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let sha = |u: &str| format!("{u}:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
    std::fs::write(&users, sha("alice")).unwrap();
    let site = index_site("a site\n");
    let cfg = write_config(dir.path(), &vhost_auth(site.path(), &users));
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut s = srv.connect();
    // The default site asks for nothing; the vhost does.
    assert_eq!(get_on(&mut s, "/hello.txt", "t", "").status, 200);
    assert_eq!(get_on(&mut s, "/", "a.test", "").status, 401);
    let alice = basic("alice", "password");
    let bob = basic("bob", "password");
    let r = get_on(&mut s, "/", "a.test", &alice);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"a site\n"[..]));
    assert_eq!(get_on(&mut s, "/", "a.test", &bob).status, 401);

    std::fs::write(&users, sha("bob")).unwrap();
    send_signal(srv.child.id(), "HUP");
    eventually("bob let in after the reload", || {
        get_on(&mut s, "/", "a.test", &bob).status == 200
    });
    assert_eq!(get_on(&mut s, "/", "a.test", &alice).status, 401);

    // A file that is gone fails the reload; the running users stay.
    std::fs::remove_file(&users).unwrap();
    send_signal(srv.child.id(), "HUP");
    eventually("the failed reload in server.log", || {
        let log = srv.log("server.log");
        log.contains("reload of") && log.contains("users")
    });
    assert_eq!(get_on(&mut s, "/", "a.test", &bob).status, 200);
    assert_eq!(get_on(&mut s, "/", "a.test", "").status, 401);
}

#[test]
fn auth_is_shared_through_defaults_only_and_a_site_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "sam:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let (open, shared) = (index_site("open\n"), index_site("shared\n"));
    // Auth at the top level is the default site's alone; [defaults] is every
    // site's, and "off" turns it off.
    let cfg = write_config(
        dir.path(),
        &format!(
            "auth-basic = \"Top\"\nauth-basic-user-file = {users:?}\n\
             [[vhost]]\nhost = \"open.test\"\nroot = {:?}\n",
            open.path()
        ),
    );
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut s = srv.connect();
    let r = get_on(&mut s, "/hello.txt", "t", "");
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Basic realm=\"Top\""))
    );
    let r = get_on(&mut s, "/", "open.test", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"open\n"[..]));
    drop(srv);
    let cfg = write_config(
        dir.path(),
        &format!(
            "[defaults]\nauth-basic = \"Shared\"\nauth-basic-user-file = {users:?}\n\
             [[vhost]]\nhost = \"shared.test\"\nroot = {:?}\n\
             [[vhost]]\nhost = \"open.test\"\nroot = {:?}\nauth-basic = \"off\"\n",
            shared.path(),
            open.path()
        ),
    );
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut s = srv.connect();
    for host in ["t", "shared.test"] {
        let r = get_on(&mut s, "/", host, "");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Shared\""),
            "{host}"
        );
    }
    let r = get_on(&mut s, "/", "open.test", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"open\n"[..]));
}

#[test]
fn a_location_asks_for_a_password_and_the_user_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    // sam / s-pass
    std::fs::write(&users, "sam:{SHA}MjlF6q5cr8aq00t3ZD1oBsp7Rfg=\n").unwrap();
    let text = format!(
        "log-format = \"json\"\n\
         [[location]]\npath = \"/sub/\"\nauth-basic = \"Admin area\"\n\
         auth-basic-user-file = {users:?}\n\
         [[location]]\npath = \"/sub/public/\"\nauth-basic = \"off\"\n"
    );
    let cfg = write_config(dir.path(), &text);
    let srv = TestServer::start_with(&["--config", cfg.to_str().unwrap()], |root| {
        populate(root);
        std::fs::create_dir_all(root.join("sub/public")).unwrap();
        std::fs::write(root.join("sub/public/p.txt"), b"public\n").unwrap();
    });
    let mut s = srv.connect();
    assert_eq!(get_on(&mut s, "/hello.txt", "t", "").status, 200);
    for path in [
        "/sub/",
        "/sub/index.html",
        "/%73ub/index.html",
        "/x/../sub/",
    ] {
        let r = get_on(&mut s, path, "t", "");
        assert_eq!(
            (r.status, r.header("www-authenticate")),
            (401, Some("Basic realm=\"Admin area\"")),
            "{path}"
        );
    }
    let r = get_on(&mut s, "/sub/", "t", &basic("sam", "wrong"));
    assert_eq!(r.status, 401);
    let r = get_on(&mut s, "/sub/", "t", &basic("sam", "s-pass"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<p>sub</p>\n"[..]));
    let r = get_on(&mut s, "/sub/public/p.txt", "t", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"public\n"[..]));
    eventually("the user in the access log", || {
        srv.log("access.log")
            .lines()
            .any(|l| l.contains("\"user\":\"sam\"") && l.contains("\"status\":200"))
    });
}
