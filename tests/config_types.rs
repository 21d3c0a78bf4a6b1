//! The typed configuration file: a wrong type, an unknown key, a value out of range,
//! a bad enum value or a key in the wrong table is refused by `--check` and at start
//! with `FILE:LINE: key: what was expected`, and nothing is silently ignored.

mod common;
use common::*;

/// `--check` on `text`: the exit code and stderr.
fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), text);
    let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wrong_types_and_values_name_file_line_and_key() {
    let root = index_site("x");
    let r = format!("root = {:?}\n", root.path());
    let cases: &[(&str, &str)] = &[
        // The two values the issue found passing --check.
        ("port = \"19510\"\n", ":2: port: invalid type: string \"19510\", expected a whole number"),
        ("cache-control = 60\n", ":2: cache-control: invalid type: integer `60`, expected a string"),
        ("port = 70000\n", ":2: port: invalid value: integer `70000`, expected a whole number from 0 to 65535"),
        ("threads = 0\n", ":2: threads: must be at least 1"),
        ("threads = -1\n", ":2: threads:"),
        ("accept-spread = \"sideways\"\n", ":2: accept-spread: unknown variant `sideways`, expected `reuseport` or `exclusive`"),
        ("defer-accept = 4000\n", ":2: defer-accept: expected 0 to 3600 seconds"),
        ("defer-accept = true\n", ":2: defer-accept: invalid type: boolean"),
        ("log-level = \"loud\"\n", ":2: log-level: invalid value: string \"loud\", expected one of \"off\""),
        ("precompressed = \"maybe\"\n", ":2: precompressed: invalid value: string \"maybe\", expected true, false, \"on\" or \"off\""),
        ("autoindex = \"yes\"\n", ":2: autoindex: invalid type: string \"yes\", expected true or false"),
        ("bind = [\"nowhere\"]\n", ":2: bind: \"nowhere\": invalid IP address syntax"),
        ("compress-cache = \"12X\"\n", ":2: compress-cache:"),
        ("header = 5\n", ":2: header: invalid type: integer `5`, expected a string or an array of strings"),
        ("\n\nmax-body = 1.5\n", ":4: max-body: invalid type: floating point"),
        ("[defaults]\nport = 80\n", ":3: port: not allowed in [defaults]: it applies to the whole server"),
        ("[defaults]\naccess-log = \"/tmp/x.log\"\n", ":3: access-log: not allowed in [defaults]: the main log"),
        ("[defaults]\n[[defaults.location]]\npath = \"/\"\n", ":3: location: belongs to one site"),
        ("[[vhost]]\nhost = \"a\"\nthreads = 2\n", ":4: threads: not allowed in [[vhost]]"),
        ("[[vhost]]\nhost = 5\n", ":3: host: invalid type: integer `5`, expected a string or an array"),
        ("[[vhost]]\nhost = \"a\"\ncolour = 1\n", ":4: colour: unknown key"),
        ("[[location]]\npath = \"/a/\"\nroot = \"/\"\n", ":4: root: not allowed in [[location]]: set it on the site"),
        ("[[location]]\npath = \"/a/\"\nport = 1\n", ":4: port: not allowed in [[location]]: it applies to the whole server"),
        ("[[location]]\npath = \"/a/\"\ntry-files = 3\n", ":4: try-files: invalid type: integer `3`, expected a string"),
        ("[[location]]\npath = \"/a/\"\ntry-files = \"$uri\"\n", ":4: try-files: location \"/a/\": --try-files"),
        ("[[location]]\nautoindex = true\n", ":2: location: missing `path"),
        ("[[location]]\npath = \"a/\"\n", ":3: path:"),
        ("[[redirect]]\nfrom = \"(\"\nto = \"/\"\n", ":3: from: \"(\":"),
        ("[[redirect]]\nfrom = \"^/a\"\nto = \"/$2\"\n", ":4: to:"),
        ("[[redirect]]\nfrom = \"^/a\"\nto = \"/b\"\nstatus = 303\n", ":5: status: 303: expected 301, 302, 307 or 308"),
        ("[[redirect]]\nfrom = \"^/a\"\nto = \"/b\"\ncode = 301\n", ":5: code: unknown key (expected one of from, to, status)"),
        ("[[redirect]]\nfrom = \"^/a\"\n", ":2: redirect: missing key `to`"),
    ];
    for (body, want) in cases {
        let (code, err) = check(&format!("{r}{body}"));
        assert_eq!(code, Some(2), "{body:?}: {err}");
        assert!(
            err.contains(&format!("hearth.toml{want}")),
            "{body:?}: {err}"
        );
    }
}

#[test]
fn a_bad_file_stops_the_start_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "port = 0\ncache-control = 60\n");
    let out = run_hearth(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hearth.toml:2: cache-control: invalid type"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "it must not have started");
    // Of several mistakes, the first in the file is named, whatever its kind.
    for (text, want) in [
        ("port = \"1\"\ncache-control = 60\n", ":1: port:"),
        ("cache-control = 60\nport = \"1\"\n", ":1: cache-control:"),
        ("colour = 1\nport = \"1\"\n", ":1: colour: unknown key"),
        ("port = 1\n[[redirect]]\nfrom = \"(\"\nto = \"/\"\n[[headers]]\npath = \"x\"\nset = {}\n", ":3: from:"),
    ] {
        let (code, err) = check(text);
        assert_eq!(code, Some(2), "{text}");
        assert!(err.contains(&format!("hearth.toml{want}")), "{text}: {err}");
    }
}

#[test]
fn typed_values_of_every_kind_are_accepted() {
    let root = index_site("x");
    let text = format!(
        "root = {:?}\nport = 0\nbind = \"127.0.0.1\"\nthreads = 2\nlog-level = \"DEBUG\"\n\
         compress-cache = \"8M\"\nmax-body = 1024\nprecompressed = \"off\"\ncompress = false\n\
         cors = \"https://a.example\"\nheader = \"X-One: 1\"\nstats-allow = \"10.0.0.0/8\"\n\
         compress-types = \"text/*, application/json\"\n",
        root.path()
    );
    let (code, err) = check(&text);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn command_line_flags_override_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    // The file's port would be refused (privileged), and its root does not exist:
    // the command line's win, so the server starts.
    let cfg = write_config(
        dir.path(),
        "port = 1\nroot = \"/does/not/exist\"\ncache-control = \"from-file\"\nthreads = 9\n",
    );
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let r = srv.get("/hello.txt");
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("from-file"))
    );
}
