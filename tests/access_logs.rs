//! Access logs: the JSON format (checked with Python's json module), logs of a
//! site's own that take its requests away from the main log, and SIGHUP reopening
//! every log after logrotate renamed it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;

fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(Duration::from_secs(10), cond),
        "timed out waiting for {what}"
    );
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Each line of the JSON log `text` parsed by Python, printed as
/// `user|status|host|method|path|query|bytes|request_time type|referer|user_agent`.
fn python_fields(text: &str) -> Vec<String> {
    const SCRIPT: &str = "import json, sys\n\
        for line in sys.stdin:\n\
        \x20   o = json.loads(line)\n\
        \x20   assert isinstance(o['time'], str) and o['remote_addr'] == '127.0.0.1'\n\
        \x20   print('|'.join(str(o[k]) for k in ['user', 'status', 'host', 'method', \
        'path', 'query', 'bytes']) + '|' + type(o['request_time']).__name__ + '|' \
        + str(o['referer']) + '|' + repr(o['user_agent']))\n";
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python could not parse the log: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn json_lines_parse_and_carry_the_user() {
    if !require_tool("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "sam:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let srv = TestServer::start(&[
        "--log-format",
        "json",
        "--auth-basic",
        "R",
        "--auth-basic-user-file",
        users.to_str().unwrap(),
    ]);
    let mut s = srv.connect();
    let creds = format!(
        "Authorization: Basic {}\r\nReferer: http://r.test/\"q\"\r\n\
         User-Agent: ua \"quoted\" \\ back\ttab\r\n",
        STANDARD.encode("sam:password")
    );
    assert_eq!(
        get_on(&mut s, "/hello.txt?a=1", "Site.Test:80", &creds).status,
        200
    );
    assert_eq!(get_on(&mut s, "/hello.txt", "t", "").status, 401);
    let want = [
        "sam|200|Site.Test:80|GET|/hello.txt|a=1|12|float|http://r.test/\"q\"|'ua \"quoted\" \\\\ back\\ttab'",
        "None|401|t|GET|/hello.txt|None|",
    ];
    eventually("two JSON lines", || {
        read(&srv.logs.path().join("access.log")).lines().count() >= 2
    });
    let got = python_fields(&read(&srv.logs.path().join("access.log")));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], want[0]);
    assert!(got[1].starts_with(want[1]), "{got:?}");
}

/// A config with the vhost `a.test` logging to `a_log` in `format`.
fn own_log_config(root: &Path, a_log: &Path, format: &str) -> String {
    format!(
        "[[vhost]]\nhost = \"a.test\"\nroot = {root:?}\naccess-log = {a_log:?}\n\
         log-format = \"{format}\"\n\
         [[vhost]]\nhost = \"quiet.test\"\nroot = {root:?}\naccess-log = \"off\"\n"
    )
}

#[test]
fn a_site_log_takes_the_sites_requests_and_sighup_reopens_every_log() {
    let dir = tempfile::tempdir().unwrap();
    let site = index_site("a\n");
    let a_log = dir.path().join("a.log");
    let cfg = write_config(dir.path(), &own_log_config(site.path(), &a_log, "json"));
    let srv = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let main = srv.logs.path().join("access.log");
    let mut s = srv.connect();
    assert_eq!(get_on(&mut s, "/?site=a", "a.test", "").status, 200);
    assert_eq!(get_on(&mut s, "/?site=quiet", "quiet.test", "").status, 200);
    assert_eq!(get_on(&mut s, "/hello.txt?site=main", "t", "").status, 200);
    eventually("both logs written", || {
        read(&a_log).contains("site=a") && read(&main).contains("site=main")
    });
    // Let any straggler land before checking what is absent.
    std::thread::sleep(Duration::from_millis(700));
    let (a, m) = (read(&a_log), read(&main));
    assert!(
        a.starts_with("{\"time\":") && a.contains("\"host\":\"a.test\""),
        "{a}"
    );
    assert!(!a.contains("site=main") && !a.contains("site=quiet"), "{a}");
    assert!(
        m.contains("\"GET /hello.txt?site=main HTTP/1.1\" 200"),
        "{m}"
    );
    assert!(!m.contains("site=a") && !m.contains("site=quiet"), "{m}");

    // logrotate: rename, SIGHUP, new lines in new files.
    std::fs::rename(&a_log, dir.path().join("a.log.1")).unwrap();
    std::fs::rename(&main, srv.logs.path().join("access.log.1")).unwrap();
    send_signal(srv.child.id(), "HUP");
    eventually("the reopened logs", || {
        get_on(&mut s, "/?site=a2", "a.test", "");
        get_on(&mut s, "/hello.txt?site=main2", "t", "");
        read(&a_log).contains("site=a2") && read(&main).contains("site=main2")
    });
    let old = read(&dir.path().join("a.log.1"));
    assert!(
        old.contains("site=a") && !old.contains("site=main"),
        "{old}"
    );
}

#[test]
fn check_refuses_a_vhost_format_for_the_main_log_and_an_unwritable_site_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = index_site("x\n");
    let check = |text: &str| {
        let cfg = write_config(dir.path(), text);
        let out = run_hearth(&["--check", "--close-log", "--config", cfg.to_str().unwrap()]);
        let out2 = run_hearth(&[
            "--check",
            "--log-dir",
            dir.path().join("logs").to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            out2.status.code(),
            String::from_utf8_lossy(&out2.stderr).to_string(),
        )
    };
    let vhost = format!("[[vhost]]\nhost = \"a.test\"\nroot = {:?}\n", root.path());
    let (_, code, err) = check(&format!("{vhost}log-format = \"json\"\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("hearth.toml:4: log-format: vhost \"a.test\""),
        "{err}"
    );
    // A directory where the file should be.
    let (_, code, err) = check(&format!("{vhost}access-log = {:?}\n", dir.path()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("hearth.toml:4: access-log"), "{err}");
    let (quiet, code, err) = check(&format!(
        "{vhost}access-log = {:?}\n",
        dir.path().join("a.log")
    ));
    assert_eq!((quiet, code), (Some(0), Some(0)), "{err}");
    let (_, code, err) = check("log-format = \"xml\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("hearth.toml:1: log-format"), "{err}");
}
