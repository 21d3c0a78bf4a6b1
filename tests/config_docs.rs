//! The documented configuration: `docs/config.md`'s complete example and
//! `scripts/hearth.example.toml` pass `--check`, and the example file names every
//! key the documentation lists.

mod common;
use common::*;

use std::path::Path;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The first fenced block of `lang` in `text`.
fn fenced<'a>(text: &'a str, lang: &str) -> &'a str {
    let start = text
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block"));
    let body = &text[start + lang.len() + 4..];
    &body[..body.find("```").expect("unterminated block")]
}

#[test]
fn the_example_file_passes_check() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--config", "scripts/hearth.example.toml", "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration ok"
    );
}

#[test]
fn the_example_file_names_every_documented_key() {
    let docs = repo("docs/config.md");
    let example = repo("scripts/hearth.example.toml");
    let table = &docs[docs.find("## Every key").unwrap()..docs.find("## From nginx").unwrap()];
    let mut keys = 0;
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        // `max-uri`, `max-header`, ... or `[[redirect]]` `from`, `to`: each name.
        for key in first.split('`').skip(1).step_by(2) {
            let key = key.trim_start_matches("[[").trim_end_matches("]]");
            assert!(
                example.contains(&format!("# {key} = "))
                    || example.contains(&format!("# [[{key}]]"))
                    || example.contains(&format!("# {key}")),
                "scripts/hearth.example.toml does not show {key}"
            );
            keys += 1;
        }
    }
    assert!(keys > 40, "only {keys} keys found in the table");
}

#[test]
fn the_documented_example_passes_check() {
    let docs = repo("docs/config.md");
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("srv");
    for d in ["app/assets", "app/admin", "blog"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    std::fs::write(base.join("app/index.html"), b"app\n").unwrap();
    std::fs::write(
        base.join("admin.htpasswd"),
        b"admin:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
    )
    .unwrap();
    let logs = tmp.path().join("log");
    std::fs::create_dir_all(&logs).unwrap();
    let text = fenced(&docs, "toml")
        .replace("/srv/hearth", base.to_str().unwrap())
        .replace("/var/log/hearth", logs.to_str().unwrap());
    let cfg = write_config(tmp.path(), &text);
    let out = run_hearth(&["--config", cfg.to_str().unwrap(), "--check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{text}");
}
