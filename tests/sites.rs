//! Sites the way nginx server blocks work: host lists and wildcards, a default
//! site, `[defaults]` instead of inheritance, `[[location]]` by longest prefix and
//! `[[redirect]]` before any file lookup.

mod common;
use common::*;

use std::path::Path;

fn get_host(srv: &TestServer, path: &str, host: &str) -> Response {
    srv.request(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A directory holding `who.txt` with `name`, and `index.html`.
fn named_site(name: &str) -> tempfile::TempDir {
    let d = index_site(&format!("{name} index\n"));
    std::fs::write(d.path().join("who.txt"), format!("{name}\n")).unwrap();
    d
}

/// Starts a server on the default test site with `text` as its file.
fn serve(dir: &Path, text: &str) -> TestServer {
    let cfg = write_config(dir, text);
    TestServer::start(&["--config", cfg.to_str().unwrap()])
}

#[test]
fn host_lists_wildcards_and_the_default_site() {
    let (blog, any, deep, fallback) = (
        named_site("blog"),
        named_site("any"),
        named_site("deep"),
        named_site("fallback"),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[vhost]]\nhost = [\"blog.test\", \"WWW.blog.test\"]\nroot = {:?}\n\
         [[vhost]]\nhost = \"*.test\"\nroot = {:?}\n\
         [[vhost]]\nhost = \"*.eu.blog.test\"\nroot = {:?}\n\
         [[vhost]]\nhost = \"fallback.test\"\ndefault = true\nroot = {:?}\n",
        blog.path(),
        any.path(),
        deep.path(),
        fallback.path()
    );
    let srv = serve(dir.path(), &text);
    let who = |host: &str| String::from_utf8(get_host(&srv, "/who.txt", host).body).unwrap();
    // Both names of the list; case, trailing dot and port ignored.
    for host in [
        "blog.test",
        "www.blog.test",
        "Blog.Test.",
        "WWW.BLOG.TEST:8080",
    ] {
        assert_eq!(who(host), "blog\n", "{host}");
    }
    // An exact name beats a wildcard; among wildcards the longest suffix wins, at
    // any depth.
    assert_eq!(who("shop.test"), "any\n");
    assert_eq!(who("a.b.c.test"), "any\n");
    assert_eq!(who("fr.eu.blog.test"), "deep\n");
    assert_eq!(who("x.fr.eu.blog.test"), "deep\n");
    assert_eq!(who("eu.blog.test"), "any\n");
    // A host no name matches gets the site marked default, not the top level.
    assert_eq!(who("elsewhere.example"), "fallback\n");
    let r = srv.request(b"GET /who.txt HTTP/1.0\r\n\r\n");
    assert_eq!(r.body, b"fallback\n");
}

#[test]
fn names_given_twice_or_two_defaults_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = index_site("x");
    let r = format!("root = {:?}\n", root.path());
    for (body, want) in [
        (
            "[[vhost]]\nhost = [\"a.test\", \"b.test\"]\n[[vhost]]\nhost = \"B.test\"\n",
            ":5: host: vhost \"b.test\" is given twice (first at line 3)",
        ),
        (
            "[[vhost]]\nhost = [\"*.a.test\", \"*.A.test.\"]\n",
            ":3: host: vhost \"*.a.test\" is given twice",
        ),
        (
            "[[vhost]]\nhost = \"a.*.test\"\n",
            ":3: host: \"a.*.test\": a wildcard is",
        ),
        (
            "[[vhost]]\nhost = []\n",
            ":3: host: expected at least one name",
        ),
        (
            "[[vhost]]\nhost = \"a\"\ndefault = true\n[[vhost]]\nhost = \"b\"\ndefault = true\n",
            ":7: default: only one site may be the default (first at line 4)",
        ),
    ] {
        let cfg = write_config(dir.path(), &format!("{r}{body}"));
        let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(&format!("hearth.toml{want}")), "{body}: {err}");
    }
}

#[test]
fn vhosts_share_only_the_defaults_table() {
    let blog = named_site("blog");
    let dir = tempfile::tempdir().unwrap();
    // The top level is an SPA with its own header and Cache-Control rule; the blog
    // must get none of that, only [defaults].
    let text = format!(
        "try-files = \"$uri /index.html\"\nheader = [\"X-Site: main\"]\n\
         [[headers]]\npath = \"/**\"\nset = {{ \"Cache-Control\" = \"max-age=60\" }}\n\
         [defaults]\nheader = [\"X-Frame-Options: DENY\", \"X-Shared: defaults\"]\n\
         [[vhost]]\nhost = \"blog.test\"\nroot = {:?}\nheader = [\"X-Shared: blog\"]\n",
        blog.path()
    );
    let srv = serve(dir.path(), &text);
    let r = get_host(&srv, "/who.txt", "blog.test");
    assert_eq!((r.status, &r.body[..]), (200, &b"blog\n"[..]));
    assert_eq!(r.header("x-site"), None, "the top-level header stays there");
    assert_eq!(r.header("cache-control"), None, "so do its [[headers]]");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "defaults add");
    assert_eq!(
        r.header("x-shared"),
        Some("blog"),
        "a same-named header replaces"
    );
    // No SPA fallback on the blog.
    assert_eq!(get_host(&srv, "/some/route", "blog.test").status, 404);
    // The default site has its own settings and the defaults too.
    let r = srv.get("/some/route");
    assert_eq!((r.status, &r.body[..]), (200, &b"<h1>index</h1>\n"[..]));
    assert_eq!(r.header("x-site"), Some("main"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-shared"), Some("defaults"));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
}

/// The SPA of the issue: assets, a fallback, an admin area.
fn spa(root: &Path) {
    populate(root);
    std::fs::create_dir_all(root.join("assets/img")).unwrap();
    std::fs::write(root.join("assets/app.js"), b"app\n").unwrap();
    std::fs::write(root.join("assets/img/logo.svg"), b"<svg/>\n").unwrap();
    std::fs::write(root.join("assets/404.html"), b"asset missing\n").unwrap();
    std::fs::create_dir_all(root.join("files/pub")).unwrap();
    std::fs::write(root.join("files/pub/a.txt"), b"a\n").unwrap();
}

#[test]
fn locations_take_the_longest_prefix_and_inherit_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let text = "try-files = \"$uri $uri/ /index.html\"\nheader = [\"X-Site: main\"]\n\
                cache-control = \"no-cache\"\n\
                [[headers]]\npath = \"/**/*.svg\"\nset = { \"X-Svg\" = \"1\" }\n\
                [[location]]\npath = \"/assets/\"\ntry-files = \"$uri =404\"\n\
                cache-control = \"public, max-age=31536000, immutable\"\n\
                error-page = \"404=/assets/404.html\"\nheader = [\"X-Loc: assets\"]\n\
                [[location]]\npath = \"/assets/img/\"\nheader = [\"X-Loc: img\", \"X-Site: img\"]\n\
                [[location]]\npath = \"/files/\"\nautoindex = true\ntry-files = \"$uri $uri/ =404\"\n";
    let cfg = write_config(dir.path(), text);
    let srv = TestServer::start_with(&["--config", cfg.to_str().unwrap()], spa);
    // The SPA fallback still answers routes...
    let r = srv.get("/some/route");
    assert_eq!((r.status, &r.body[..]), (200, &b"<h1>index</h1>\n"[..]));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    // ...but not a missing asset, which gets the location's error page.
    let r = srv.get("/assets/missing.js");
    assert_eq!((r.status, &r.body[..]), (404, &b"asset missing\n"[..]));
    let r = srv.get("/assets/app.js");
    assert_eq!(r.status, 200);
    let immutable = Some("public, max-age=31536000, immutable");
    assert_eq!(r.header("cache-control"), immutable);
    assert_eq!(r.header("x-loc"), Some("assets"));
    assert_eq!(
        r.header("x-site"),
        Some("main"),
        "the site's header is kept"
    );
    // The longest prefix wins; what it leaves unset comes from the site, not from
    // the shorter location; [[headers]] rules still apply.
    let r = srv.get("/assets/img/logo.svg");
    assert_eq!(
        (r.header("x-loc"), r.header("x-site")),
        (Some("img"), Some("img"))
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-svg"), Some("1"));
    assert_eq!(
        srv.get("/assets/img/nothing").status,
        200,
        "site's try-files"
    );
    // Matched on the decoded, normalised path: escapes and dot segments do not
    // step around a location.
    let r = srv.get("/%61ssets/missing.js");
    assert_eq!((r.status, &r.body[..]), (404, &b"asset missing\n"[..]));
    assert_eq!(srv.get("/x/../assets/missing.js").status, 404);
    // autoindex in one location only.
    let r = srv.get("/files/pub/");
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("a.txt"));
    assert_eq!(
        srv.get("/empty/").status,
        200,
        "elsewhere: the SPA fallback"
    );
}

#[test]
fn locations_in_a_vhost() {
    let blog = named_site("blog");
    std::fs::create_dir_all(blog.path().join("static")).unwrap();
    std::fs::write(blog.path().join("static/s.css"), b"css\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[vhost]]\nhost = \"blog.test\"\nroot = {:?}\n\
         [[vhost.location]]\npath = \"/static/\"\ncache-control = \"max-age=99\"\n\
         cors = true\n",
        blog.path()
    );
    let srv = serve(dir.path(), &text);
    let r = get_host(&srv, "/static/s.css", "blog.test");
    assert_eq!(r.header("cache-control"), Some("max-age=99"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = get_host(&srv, "/who.txt", "blog.test");
    assert_eq!(
        (
            r.header("cache-control"),
            r.header("access-control-allow-origin")
        ),
        (None, None)
    );
    // The default site has no such location.
    assert_eq!(srv.get("/static/s.css").status, 404);
}

#[test]
fn redirects_run_first_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[redirect]]\nfrom = \"^/old/(.*)$\"\nto = \"/new/$1\"\n\
                [[redirect]]\nfrom = \"^/old/\"\nto = \"/never\"\n\
                [[redirect]]\nfrom = \"^/hello\\\\.txt$\"\nto = \"https://$host/greeting?lang=en\"\nstatus = 302\n\
                [[redirect]]\nfrom = \"^/t/(\\\\w+)/(\\\\w+)$\"\nto = \"/$2/$1\"\nstatus = 307\n\
                [[redirect]]\nfrom = \"^/p$\"\nto = \"/q\"\nstatus = 308\n";
    let srv = serve(dir.path(), text);
    let r = srv.get("/old/a%20b?x=1&y=2");
    assert_eq!(r.status, 301, "301 by default");
    assert_eq!(
        r.header("location"),
        Some("/new/a%20b?x=1&y=2"),
        "query kept"
    );
    // Before the file lookup: hello.txt exists but is redirected; the target's own
    // query replaces the request's; $host is the request's host without the port.
    let r = get_host(&srv, "/hello.txt?q=1", "Site.test:8080");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://Site.test/greeting?lang=en")
    );
    let r = srv.get("/t/a/b");
    assert_eq!((r.status, r.header("location")), (307, Some("/b/a")));
    let r = srv.get("/p");
    assert_eq!((r.status, r.header("location")), (308, Some("/q")));
    // Other paths are served as before.
    assert_eq!(srv.get("/style.css").status, 200);
    assert_eq!(srv.get("/new/x").status, 404);
}

#[test]
fn vhost_redirects_are_their_own() {
    let www = named_site("www");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[vhost]]\nhost = \"www.blog.test\"\nroot = {:?}\n\
         [[vhost.redirect]]\nfrom = \"^/(.*)$\"\nto = \"https://blog.test/$1\"\n",
        www.path()
    );
    let srv = serve(dir.path(), &text);
    let r = get_host(&srv, "/post/1?c=2", "www.blog.test");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("https://blog.test/post/1?c=2"))
    );
    assert_eq!(srv.get("/hello.txt").status, 200);
}

#[test]
fn sighup_applies_new_redirects_and_locations_and_keeps_them_over_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |n: u32| {
        format!(
            "[[redirect]]\nfrom = \"^/go$\"\nto = \"/gen{n}\"\n\
             [[location]]\npath = \"/sub/\"\ncache-control = \"gen-{n}\"\n"
        )
    };
    let srv = serve(dir.path(), &gen(1));
    assert_eq!(srv.get("/go").header("location"), Some("/gen1"));
    write_config(dir.path(), &gen(2));
    send_signal(srv.child.id(), "HUP");
    assert!(
        wait_until(std::time::Duration::from_secs(10), || {
            srv.get("/go").header("location") == Some("/gen2")
        }),
        "the new redirect never took"
    );
    assert_eq!(srv.get("/sub/").header("cache-control"), Some("gen-2"));
    // A bad pattern: the reload fails with file and line, the running rules stay.
    write_config(dir.path(), "[[redirect]]\nfrom = \"(\"\nto = \"/x\"\n");
    send_signal(srv.child.id(), "HUP");
    assert!(
        wait_until(std::time::Duration::from_secs(10), || {
            srv.log("server.log").contains("hearth.toml:2: from:")
        }),
        "the failed reload was not logged"
    );
    assert_eq!(srv.get("/go").header("location"), Some("/gen2"));
}

#[test]
fn host_in_a_redirect_is_only_ever_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(
        dir.path(),
        "[[redirect]]\nfrom = \"^/(.*)$\"\nto = \"https://$host/$1\"\n",
    );
    let r =
        srv.request(b"GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("location"), Some("https://a.test/x"));
    // Whatever gets past the parser as an authority, $host never carries userinfo.
    let r = srv.request(
        b"GET http://a.test@evil.example/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        r.status == 400 || !r.header("location").unwrap_or("").contains('@'),
        "{:?}",
        r.header("location")
    );
}
